"""Unit tests of registry name and alias rules (the registering itself is tested end to end)."""

import pytest

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.orchestration.step_runs import StepTerminated
from tabular_pipeline.registry.model_uris import parse_model_uri
from tabular_pipeline.registry.promotion import stage_for_alias
from tabular_pipeline.registry.registration import validate_alias, validate_model_name


def test_valid_names_and_aliases_pass():
    assert validate_model_name(" iris_A ") == "iris_A"
    assert validate_model_name("churn model-v2.1") == "churn model-v2.1"
    assert validate_alias("production") == "production"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "  ",
        "a/b",
        "a:b",
        "bad\nname",
        "x" * 257,
        "tabular-pipeline.promotion-queue",
        "a?b",
        "o'brien",
        'say "hi"',
        "a`b",
        "churn@v2",
        "churn.promotion-lock",
    ],
)
def test_names_the_registry_refuses_fail_early(name):
    with pytest.raises(PipelineError, match="model_name"):
        validate_model_name(name)


@pytest.mark.parametrize("alias", ["latest", "v3", "has space", "", "a/b"])
def test_bad_aliases(alias):
    with pytest.raises(PipelineError, match="alias"):
        validate_alias(alias)


def test_production_and_staging_aliases_mirror_stages():
    assert stage_for_alias("production") == "Production"
    assert stage_for_alias("Staging") == "Staging"
    assert stage_for_alias("champion") is None


def test_model_uris_are_parsed_before_anything_is_registered():
    logged_id = "m-" + "0123456789abcdef" * 2
    assert parse_model_uri(f"models:/{logged_id}") == ("logged", logged_id, "")
    assert parse_model_uri("runs:/r1/model") == ("run", "r1", "model")
    assert parse_model_uri("models:/iris/Production")[0] == "registered"
    # Registered names that merely start with `m-` are not logged-model ids.
    for registered in (
        "models:/m-fraud@production",
        "models:/m-fraud/3",
        f"models:/{logged_id}@champion",
        f"models:/{logged_id}/2",
    ):
        assert parse_model_uri(registered) == ("registered", registered, "")
    for bad in (
        "runs:/r1",
        "/tmp/model",
        "s3://bucket/model",
        "models:/m-abc",
        "models:/iris",
        "models:/a/b/c",
        "models:/@x",
    ):
        with pytest.raises(PipelineError, match="is not a model URI"):
            parse_model_uri(bad)


def test_promotion_on_a_direct_sqlite_store_keeps_the_new_version_in_its_stage(tmp_path):
    """A SQLite store (the default of `make run`) returns versions as int, the REST API as text:
    the new version must stay in Production and only the older one be archived, on both."""
    from mlflow import MlflowClient

    from tabular_pipeline.registry.promotion import promote

    client = MlflowClient(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", registry_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"
    )
    client.create_registered_model("m")
    for _ in range(2):
        client.create_model_version("m", source=str(tmp_path))
    promote(client, "m", "1", "production")
    assert client.get_model_version("m", "1").current_stage == "Production"
    promote(client, "m", "2", "production")
    assert client.get_model_version("m", "2").current_stage == "Production"
    assert client.get_model_version("m", "1").current_stage == "Archived"


def test_a_failed_registration_never_deletes_a_registered_model_it_did_not_create(tmp_path):
    """An empty registered model made by someone else survives a failure after registering, even
    when looking it up fails (a lookup error is not proof that the model did not exist)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from sklearn.linear_model import LogisticRegression

    from tabular_pipeline.registry.registration import register_and_promote

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    class FlakyLookups(MlflowClient):
        """Looking a registered model up fails when the project's own code asks (MLflow's
        internals, which also call this, still get answers)."""

        def get_registered_model(self, name):
            import inspect

            if "tabular_pipeline" in inspect.stack()[1].filename:
                raise MlflowException("the server is busy", error_code="TEMPORARILY_UNAVAILABLE")
            return super().get_registered_model(name)

    client = FlakyLookups(tracking_uri=uri, registry_uri=uri)
    mlflow.set_tracking_uri(uri)
    try:
        experiment = client.create_experiment("registry", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.sklearn.log_model(
                LogisticRegression().fit([[0.0], [1.0]], [0, 1]), name="model", pip_requirements=[]
            )
        client.create_registered_model("shared", description="made by another team")

        def failing_judge(_version):
            raise PipelineError("the gate could not run")

        with pytest.raises(PipelineError, match="could not promote version 1 of 'shared'"):
            register_and_promote(client, info.model_uri, "shared", "production", judge=failing_judge)
        kept = MlflowClient(tracking_uri=uri, registry_uri=uri).get_registered_model("shared")
        assert kept.description == "made by another team"
        assert client.search_model_versions("name = 'shared'") == [], "the half-registered version was rolled back"

        with pytest.raises(PipelineError, match="could not promote version 1 of 'fresh'"):
            register_and_promote(client, info.model_uri, "fresh", "production", judge=failing_judge)
        assert client.search_registered_models("name = 'fresh'") == [], "a model this run created is removed again"
    finally:
        mlflow.set_tracking_uri(None)


@pytest.mark.parametrize("interruption", ["mlflow error", "sigterm"])
def test_a_promotion_cut_off_half_way_leaves_the_champion_where_it_was(tmp_path, interruption, capfd):
    """The alias moves first, then the stages: if moving a stage fails or the step is interrupted
    there, the alias goes back to the champion, the champion keeps Production, and the new version
    is rolled back; an interruption still ends the step afterwards."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from sklearn.linear_model import LogisticRegression

    from tabular_pipeline.registry.registration import register_and_promote

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    class StageFailsOnce(MlflowClient):
        failed = False

        def transition_model_version_stage(self, name, version, stage, archive_existing_versions=False):
            if not StageFailsOnce.failed and str(version) == "2":
                StageFailsOnce.failed = True
                if interruption == "sigterm":
                    raise StepTerminated("terminated")
                raise MlflowException("the database went away", error_code="TEMPORARILY_UNAVAILABLE")
            return super().transition_model_version_stage(name, version, stage, archive_existing_versions)

    client = StageFailsOnce(tracking_uri=uri, registry_uri=uri)
    mlflow.set_tracking_uri(uri)
    try:
        experiment = client.create_experiment("promotion", artifact_location=(tmp_path / "artifacts").as_uri())
        infos = []
        for c in (1.0, 0.5):
            with mlflow.start_run(experiment_id=experiment):
                infos.append(
                    mlflow.sklearn.log_model(
                        LogisticRegression(C=c).fit([[0.0], [1.0]], [0, 1]), name="model", pip_requirements=[]
                    )
                )
        capfd.readouterr()
        register_and_promote(client, infos[0].model_uri, "churn", "production")
        printed = capfd.readouterr().err
        assert "already exists" not in printed and "Created version" not in printed, "MLflow's notes held back"
        expected = {"mlflow error": PipelineError, "sigterm": StepTerminated}  # Ctrl-C: the same path
        with pytest.raises(expected[interruption]):
            register_and_promote(client, infos[1].model_uri, "churn", "production")
        assert client.get_model_version_by_alias("churn", "production").version in (1, "1")
        assert client.get_model_version("churn", "1").current_stage == "Production"
        assert [str(v.version) for v in client.search_model_versions("name = 'churn'")] == ["1"]
    finally:
        mlflow.set_tracking_uri(None)


def test_a_register_outcome_stands_only_while_the_alias_is_where_the_gate_left_it(own_store, tmp_path):
    """main reuses an earlier register run when its outcome still stands: a promotion while its
    version holds the alias, a rejection while the alias still points at the champion it was judged
    against. Before, a rejection never stood, so every cached rerun judged the same model again
    (the bench's cached rerun reused 3 of 4 steps). The tags are the ones `register` writes."""
    import mlflow

    from steps.register import champion_source, record_decision
    from tabular_pipeline.registry.gate_rule import GateDecision, GateEvidence
    from tabular_pipeline.registry.registration import register_run_still_current

    client = own_store

    def make_model(name: str, count: int) -> None:
        client.create_registered_model(name)
        for _ in range(count):
            folder = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}"
            folder.mkdir()
            client.create_model_version(name, folder.as_uri(), tags={"gate.decision": "promoted"})

    def register_run(name: str, version: str, promoted: bool, champion: str | None, **evidence) -> dict[str, str]:
        """A register run's tags, as `record_decision` writes them."""
        decision = GateDecision(
            promoted, "reason", GateEvidence("test_roc_auc", True, champion_version=champion, **evidence)
        )
        with mlflow.start_run() as run:
            record_decision(
                f"models:/{name}/{version}",
                client.get_model_version(name, version),
                True,
                promoted,
                decision,
                champion_source(client, name, decision),
            )
        return client.get_run(run.info.run_id).data.tags

    def stands(tags: dict[str, str]) -> bool:
        return register_run_still_current(client, tags, "production")

    make_model("churn", 3)
    client.set_registered_model_alias("churn", "production", "1")
    promoted_1 = register_run("churn", "1", True, None)
    rejected_2 = register_run("churn", "2", False, "1")
    assert stands(promoted_1) and stands(rejected_2), "same model, same champion: the same answer"
    assert not stands(register_run("churn", "2", False, "1", too_few="12 rows")), "a check that could not run"
    assert not stands({k: v for k, v in rejected_2.items() if not k.startswith("pipeline.gate_champion")}), "old run"
    assert not stands(register_run("churn", "2", False, "3")), "judged against another champion"
    assert not stands(register_run("churn", "2", False, None)), "judged when there was none"
    assert not stands({**promoted_1, "pipeline.output_uri": "models:/churn/2"}), "a version without the alias"
    assert not register_run_still_current(client, {"pipeline.output_uri": "runs:/abc/model"}, "production")

    client.set_registered_model_alias("churn", "production", "3")
    assert not stands(promoted_1) and not stands(rejected_2), "the alias moved"
    client.delete_registered_model_alias("churn", "production")
    no_champion = register_run("churn", "2", False, None)
    assert stands(no_champion) and not stands(rejected_2), "still no champion"
    client.delete_model_version("churn", "2")
    assert not stands(no_champion), "the rejected version is gone"

    # Deleted and made again: the numbers come back from 1, the models behind them do not.
    client.set_registered_model_alias("churn", "production", "1")
    rejected_2 = register_run("churn", "3", False, "1")
    assert stands(rejected_2)
    client.delete_registered_model("churn")
    make_model("churn", 3)
    client.set_registered_model_alias("churn", "production", "1")
    assert not stands(rejected_2) and not stands(promoted_1), "same numbers, other models"
