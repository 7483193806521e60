"""Unit tests of registry name and alias rules (the registering itself is tested end to end)."""

import pytest

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.registry import parse_model_uri, stage_for_alias, validate_alias, validate_model_name


def test_valid_names_and_aliases_pass():
    assert validate_model_name(" iris_A ") == "iris_A"
    assert validate_model_name("churn model-v2.1") == "churn model-v2.1"
    assert validate_alias("production") == "production"


@pytest.mark.parametrize("name", ["", "  ", "a/b", "a:b", "bad\nname", "x" * 300, "a?b"])
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
    assert parse_model_uri("models:/m-abc") == ("logged", "m-abc", "")
    assert parse_model_uri("runs:/r1/model") == ("run", "r1", "model")
    assert parse_model_uri("models:/iris/Production")[0] == "registered"
    for bad in ("runs:/r1", "/tmp/model", "s3://bucket/model"):
        with pytest.raises(PipelineError, match="is not a model URI"):
            parse_model_uri(bad)


def test_promotion_on_a_direct_sqlite_store_keeps_the_new_version_in_its_stage(tmp_path):
    """A SQLite store (the default of `make run`) returns versions as int, the REST API as text:
    the new version must stay in Production and only the older one be archived, on both."""
    from mlflow import MlflowClient

    from tabular_pipeline.registry import promote

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", registry_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model("m")
    for _ in range(2):
        client.create_model_version("m", source=str(tmp_path))
    promote(client, "m", "1", "production")
    assert client.get_model_version("m", "1").current_stage == "Production"
    promote(client, "m", "2", "production")
    assert client.get_model_version("m", "2").current_stage == "Production"
    assert client.get_model_version("m", "1").current_stage == "Archived"
