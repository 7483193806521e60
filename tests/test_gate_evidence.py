"""The gate's evidence against a real MLflow store (SQLite, local artifacts): models logged as the
training steps log them, loaded and scored as served in a fresh Python, and judged on the rows of
the candidate's test split the champion did not train on. Every figure the gate records is
recomputed here independently, from the splits themselves and the models loaded in this process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import psutil
import pytest
from fixtures import mixed_frame

from tabular_pipeline.data.screening import screen_columns
from tabular_pipeline.data.splits import harmonise_dtypes, split_table
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.evaluation.metrics import metrics_from_served_output
from tabular_pipeline.registry.gate_rule import GateRules
from tabular_pipeline.registry.model_scoring import SCORER, ModelUnusable, missing_requirements, served_output
from tabular_pipeline.serving.model import probability_frame
from tabular_pipeline.training.model_logging import log_pipeline_model
from tabular_pipeline.training.pipelines import build_pipeline, split_feature_columns

TABLE = harmonise_dtypes(mixed_frame(rows=1200, seed=4).drop(columns=["customer_id"]), "label")


@dataclass
class Trained:
    model_uri: str
    run_id: str
    train: pd.DataFrame
    test: pd.DataFrame
    model: object


@pytest.fixture()
def store(own_store):
    """A SQLite store of this test's own, put back to the worker's afterwards."""
    return own_store


def train(seed: int, shuffle_labels: bool = False, logged_score: float | None = None, algorithm="lr") -> Trained:
    """Split `TABLE` with `seed`, fit, and log the run as train_basic does (test split, training-row
    fingerprints, dataset digests, primary metric); `logged_score` overrides the logged metric."""
    from tabular_pipeline.evaluation.report import log_evaluation
    from tabular_pipeline.registry.lineage import record_training_inputs

    splits = split_table(TABLE, "label", 0.25, seed, "binary")
    features = splits.train.drop(columns=["label"])
    labels = splits.train["label"]
    if shuffle_labels:
        labels = pd.Series(np.random.default_rng(0).permutation(labels.to_numpy()))
    kept, _ = screen_columns(features)
    model = build_pipeline(algorithm, "binary", {}, split_feature_columns(features[kept]), seed=0).fit(features, labels)
    with mlflow.start_run() as run:
        mlflow.log_params({"label_column": "label", "data_path": "/somewhere/table.csv"})
        mlflow.set_tag("pipeline.task", "binary")
        record_training_inputs(splits.train, splits.test, "label", "/somewhere/table.csv")
        log_evaluation(model, splits.test, "label", "binary", 0)
        if logged_score is not None:
            mlflow.log_metric("test_roc_auc", logged_score)
        uri = log_pipeline_model(model, features, algorithm).model_uri
    return Trained(uri, run.info.run_id, splits.train, splits.test, model)


def champion_of(store, name: str, trained: Trained) -> None:
    store.create_registered_model(name)
    version = mlflow.register_model(trained.model_uri, name)
    store.set_registered_model_alias(name, "production", version.version)


def judge(store, name: str, trained: Trained, rules: GateRules | None = None):
    from tabular_pipeline.registry.gate import evaluate_gate

    version = mlflow.register_model(trained.model_uri, name)
    return evaluate_gate(store, trained.model_uri, name, "production", version.version, rules or GateRules())


def roc_auc(model, rows: pd.DataFrame) -> float:
    output = probability_frame(model, rows.drop(columns=["label"]))
    return metrics_from_served_output(output, rows["label"], "binary")["test_roc_auc"]


def test_both_models_are_scored_on_the_rows_neither_trained_on(store):
    """Champion on seed 1, candidate on seed 2: the rows the gate compares are the candidate's test
    rows absent from the champion's training split, found here by a plain join of the two splits."""
    champion, candidate = train(seed=1), train(seed=2)
    champion_of(store, "churn", champion)
    decision = judge(store, "churn", candidate)
    evidence = decision.evidence
    assert evidence.champion_version == "1", decision.reason

    seen = candidate.test.merge(champion.train.drop_duplicates(), how="left", indicator=True)["_merge"] == "both"
    fair = candidate.test[~seen.to_numpy()]
    assert 50 <= len(fair) < len(candidate.test), "the seeds share most rows: the test needs both kinds"
    assert (evidence.compared_rows, evidence.left_out_rows, evidence.test_rows) == (
        len(fair),
        int(seen.sum()),
        len(candidate.test),
    )
    assert evidence.same_training_split is False and evidence.champion_version == "1"
    assert evidence.champion_score == pytest.approx(roc_auc(champion.model, fair), abs=1e-9)
    assert evidence.candidate_score == pytest.approx(roc_auc(candidate.model, fair), abs=1e-9)
    assert evidence.candidate_whole_split_score == pytest.approx(roc_auc(candidate.model, candidate.test), abs=1e-9)
    leaked = roc_auc(champion.model, candidate.test)
    assert leaked != pytest.approx(evidence.champion_score, abs=1e-6), "the whole split would have scored otherwise"
    better = evidence.candidate_score - evidence.champion_score > 1e-6
    assert decision.promote == better, decision.reason
    assert f"on {len(fair)} rows neither trained on" in decision.reason


def test_a_candidate_trained_on_shuffled_labels_is_not_promoted_whatever_it_logged(store):
    champion = train(seed=1)
    champion_of(store, "fraud", champion)
    shuffled = train(seed=1, shuffle_labels=True, logged_score=0.99)
    decision = judge(store, "fraud", shuffled)
    assert not decision.promote, decision.reason
    assert decision.evidence.candidate_whole_split_score == pytest.approx(roc_auc(shuffled.model, shuffled.test))
    assert decision.evidence.candidate_whole_split_score < decision.evidence.champion_score < 0.99, (
        "its own served score decides, not the 0.99 it logged"
    )
    assert decision.evidence.same_training_split is True and decision.evidence.left_out_rows == 0
    assert decision.evidence.compared_rows == len(shuffled.test), "the same split: every test row is compared"


def test_a_candidate_that_cannot_load_never_takes_the_alias_not_even_forced(store, tmp_path):
    champion_of(store, "credit", train(seed=1))
    broken = train(seed=2)
    skops_files = list((tmp_path / "art").rglob("pipeline.skops"))
    model_id = broken.model_uri.rsplit("/", 1)[-1]
    [target] = [path for path in skops_files if model_id in str(path)]
    target.write_bytes(b"garbage, not a skops file")
    decision = judge(store, "credit", broken, GateRules(force=True))
    assert not decision.promote
    assert decision.reason.startswith(
        "the candidate could not be loaded and scored as it will be served: it failed to load or predict ("
    ), decision.reason
    assert "\n" not in decision.reason


def test_register_fails_in_one_line_on_a_candidate_that_cannot_load_and_leaves_it_tagged(store, tmp_path):
    """The step, not only the rule: an orchestrator must see a model that cannot be served as a failure."""
    from steps.register import register_model

    champion_of(store, "loans", train(seed=1))
    broken = train(seed=2)
    model_id = broken.model_uri.rsplit("/", 1)[-1]
    [target] = [path for path in (tmp_path / "art").rglob("pipeline.skops") if model_id in str(path)]
    target.write_bytes(b"garbage, not a skops file")
    with mlflow.start_run():
        with pytest.raises(PipelineError) as failure:
            register_model(broken.model_uri, "loans", "production", "", 0.0, False)
    message = str(failure.value)
    assert message.startswith("registered models:/loans/2 but it cannot be served, so it did not take 'production'")
    assert "\n" not in message
    version = store.get_model_version("loans", "2")
    assert version.tags["gate.decision"] == "rejected" and version.aliases == []
    assert str(store.get_model_version_by_alias("loans", "production").version) == "1"


def test_the_alias_does_not_move_when_it_changed_hands_after_the_gate_judged(store, tmp_path):
    """Moved by hand, by another tool or by a register outside the lock: the candidate was judged
    against another champion, so it is not promoted over the new one."""
    from steps.register import check_champion_unchanged

    store.create_registered_model("cards")
    for _ in range(3):
        store.create_model_version("cards", (tmp_path / "model").as_uri())
    store.set_registered_model_alias("cards", "production", "1")
    check_champion_unchanged(store, "cards", "production", "1", "3")
    store.set_registered_model_alias("cards", "production", "3")
    check_champion_unchanged(store, "cards", "production", "1", "3")  # the candidate itself holds it
    store.set_registered_model_alias("cards", "production", "2")
    with pytest.raises(PipelineError, match="'production' moved to version 2 while the gate judged against version 1"):
        check_champion_unchanged(store, "cards", "production", "1", "3")
    with pytest.raises(PipelineError, match="moved to version 2 while the gate judged against no version"):
        check_champion_unchanged(store, "cards", "production", None, "3")


def test_a_champion_whose_training_rows_are_unknown_keeps_the_alias(store):
    """A champion logged before the training rows were recorded, trained on a raw table."""
    champion = train(seed=1)
    artifacts = Path(mlflow.get_run(champion.run_id).info.artifact_uri.removeprefix("file://"))
    (artifacts / "evaluation" / "train_rows.parquet").unlink()
    champion_of(store, "legacy", champion)
    decision = judge(store, "legacy", train(seed=2))
    assert not decision.promote
    assert decision.reason.startswith(
        "version 1 holds 'production' but which of the candidate's test rows it trained on is unknown: its training "
        f"run {champion.run_id} recorded neither its training rows nor a process run's split"
    ), decision.reason
    assert decision.reason.endswith("the champion keeps the alias (force=true promotes anyway)")


def test_too_few_rows_neither_trained_on_keeps_the_champion(store, monkeypatch):
    import tabular_pipeline.registry.gate_rule as rule

    monkeypatch.setattr(rule, "MIN_COMPARED_SHARE", 0.5)
    champion_of(store, "small", train(seed=1))
    decision = judge(store, "small", train(seed=2))
    assert not decision.promote and "a comparison needs at least 50 and 50% of them" in decision.reason
    assert decision.evidence.champion_score is None, "no comparison was made on too few rows"


def test_a_library_the_requirements_do_not_name_is_missing(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(["mlflow==3.17.2", "scikit-learn==1.9.1", "# a comment", "skops==0.16.0"]))
    modules = ["sklearn", "lightgbm", "scipy", "joblib", "tabular_pipeline", "json"]
    assert missing_requirements(modules, requirements) == ["lightgbm"], "scipy and joblib come with scikit-learn"


@pytest.mark.usefixtures("store")
def test_a_model_whose_requirements_lack_its_booster_cannot_be_served(tmp_path):
    trained = train(seed=1, algorithm="lightgbm")
    model_id = trained.model_uri.rsplit("/", 1)[-1]
    [requirements] = [p for p in tmp_path.rglob("requirements.txt") if model_id in str(p)]
    kept = [line for line in requirements.read_text().splitlines() if "lightgbm" not in line]
    requirements.write_text("\n".join(kept))
    rows = trained.test.drop(columns=["label"]).head(5)
    with pytest.raises(ModelUnusable, match="it holds lightgbm objects, which its requirements.txt does not name"):
        served_output(trained.model_uri, rows, {"return_probabilities": True})
    # The requirements are checked while the scorer starts: the refused model's scorer is ended.
    assert not live_scorers()


def live_scorers() -> list:
    """This process's children running the gate's scorer."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if SCORER in child.cmdline():
                found.append(child)
        except psutil.Error:  # another child that ended meanwhile, or a zombie
            continue
    return found


@pytest.mark.usefixtures("store")
def test_a_failing_requirements_check_ends_the_scorer_it_started_beside(monkeypatch):
    import tabular_pipeline.registry.model_scoring as model_scoring

    trained = train(seed=1, algorithm="lightgbm")

    def broken(_model_dir):
        raise RuntimeError("the check broke")

    monkeypatch.setattr(model_scoring, "requirements_problem", broken)
    with pytest.raises(RuntimeError, match="the check broke"):
        served_output(trained.model_uri, trained.test.drop(columns=["label"]).head(5), {"return_probabilities": True})
    assert not live_scorers()


def test_a_champion_that_cannot_be_scored_keeps_the_alias(store, tmp_path):
    champion = train(seed=1)
    champion_of(store, "scored", champion)
    model_id = champion.model_uri.rsplit("/", 1)[-1]
    [target] = [path for path in tmp_path.rglob("pipeline.skops") if model_id in str(path)]
    target.write_bytes(b"garbage, not a skops file")
    decision = judge(store, "scored", train(seed=2))
    assert not decision.promote
    assert decision.reason.startswith(
        "version 1 holds 'production' but it could not be scored on the candidate's test split (it failed to load"
    ), decision.reason
    assert decision.reason.endswith("the champion keeps the alias (force=true promotes anyway)")
    assert decision.evidence.compared_rows is not None, "the rows were settled before the champion failed"


def test_the_champion_is_scored_beside_the_candidate_not_after_it(store, tmp_path, monkeypatch):
    """Each scorer waits until the other has started: scored one after the other, the first would
    wait for a second that never starts and fail, and the gate would reject the candidate."""
    from tabular_pipeline.registry import model_scoring

    started = tmp_path / "started"
    started.mkdir()
    barrier = (
        "import os, pathlib, sys, time\n"
        f"started = pathlib.Path({str(started)!r})\n"
        "(started / str(os.getpid())).touch()\n"
        "deadline = time.monotonic() + 120\n"
        "while len(list(started.iterdir())) < 2:\n"
        "    if time.monotonic() > deadline:\n"
        "        print('scoring failed: the other scorer never started', file=sys.stderr); sys.exit(3)\n"
        "    time.sleep(0.05)\n"
    )
    monkeypatch.setattr(model_scoring, "SCORER", barrier + model_scoring.SCORER)
    champion, candidate = train(seed=1), train(seed=2)
    champion_of(store, "side", champion)
    decision = judge(store, "side", candidate)
    assert len(list(started.iterdir())) == 2
    evidence = decision.evidence
    assert evidence.champion_version == "1" and not evidence.candidate_failure, decision.reason
    seen = candidate.test.merge(champion.train.drop_duplicates(), how="left", indicator=True)["_merge"] == "both"
    fair = candidate.test[~seen.to_numpy()]
    assert evidence.compared_rows == len(fair) < len(candidate.test)
    # Scored on every test row, the champion's answer on the rows it trained on is left out.
    assert evidence.champion_score == pytest.approx(roc_auc(champion.model, fair), abs=1e-9)
    assert evidence.candidate_score == pytest.approx(roc_auc(candidate.model, fair), abs=1e-9)


def still_running(pid: int, wait_s: float = 10.0) -> bool:
    """Whether `pid` is alive after up to `wait_s` (a zombie waiting for its reaper is not)."""
    import time

    import psutil

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            return False
        time.sleep(0.1)
    return True


def test_a_champion_still_scoring_when_the_candidate_fails_is_ended(store, tmp_path, monkeypatch):
    import os

    from tabular_pipeline.registry import model_scoring

    pid_file = tmp_path / "champion.pid"
    # The champion's scorer (the one whose model is not the broken file) records itself and hangs;
    # the candidate's fails only once the champion's is running.
    hang = (
        "import os, pathlib, sys, time\n"
        f"pid_file = pathlib.Path({str(pid_file)!r})\n"
        "[skops] = pathlib.Path(sys.argv[1]).rglob('pipeline.skops')\n"
        "if not skops.read_bytes().startswith(b'garbage'):\n"
        "    import subprocess\n"
        "    child = subprocess.Popen(['sleep', '600'])\n"
        "    pid_file.write_text(f'{os.getpid()} {child.pid}')\n"
        "    time.sleep(600)\n"
        "deadline = time.monotonic() + 120\n"
        "while not pid_file.exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
    )
    monkeypatch.setattr(model_scoring, "SCORER", hang + model_scoring.SCORER)
    champion_of(store, "hung", train(seed=1))
    broken = train(seed=2)
    model_id = broken.model_uri.rsplit("/", 1)[-1]
    [target] = [path for path in (tmp_path / "art").rglob("pipeline.skops") if model_id in str(path)]
    target.write_bytes(b"garbage, not a skops file")
    decision = judge(store, "hung", broken)
    assert not decision.promote and decision.evidence.candidate_failure, decision.reason
    scorer, its_child = map(int, pid_file.read_text().split())
    with pytest.raises(ProcessLookupError):  # ended and reaped, not left running
        os.kill(scorer, 0)
    assert not still_running(its_child), "what the scorer started outlived it"


def test_a_champion_that_does_not_answer_in_time_keeps_the_alias_and_is_ended(store, tmp_path, monkeypatch):
    import os

    from tabular_pipeline.registry import model_scoring

    champion = train(seed=1)
    pid_file = tmp_path / "champion.pid"
    hang = (
        "import os, pathlib, sys, time\n"
        f"if {champion.model_uri.rsplit('/', 1)[-1]!r} in (pathlib.Path(sys.argv[1]) / 'MLmodel').read_text():\n"
        f"    pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
        "    time.sleep(600)\n"
    )
    monkeypatch.setattr(model_scoring, "SCORER", hang + model_scoring.SCORER)
    start = model_scoring.start_in_fresh_python

    def start_with_short_limit_for_champion(model_dir, *args):
        # Only the champion's clock is short: the candidate keeps the real limit on a slow machine.
        slow = champion.model_uri.rsplit("/", 1)[-1] in (model_dir / "MLmodel").read_text()
        monkeypatch.setattr(model_scoring, "SCORING_TIMEOUT_S", 15 if slow else 1800)
        return start(model_dir, *args)

    monkeypatch.setattr(model_scoring, "start_in_fresh_python", start_with_short_limit_for_champion)
    champion_of(store, "slow", champion)
    decision = judge(store, "slow", train(seed=2))
    assert not decision.promote
    assert decision.reason.startswith(
        "version 1 holds 'production' but it could not be scored on the candidate's test split (it did not answer "
        "within 15 s)"
    ), decision.reason
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


@pytest.mark.parametrize("killed", ["candidate", "champion"])
def test_a_scorer_killed_while_both_ran_is_tried_once_more_alone(store, tmp_path, monkeypatch, killed):
    """As the kernel's out-of-memory killer would end one of the two: the first attempt of one
    model's scorer kills itself; alone, it answers, and the gate judges as usual."""
    from tabular_pipeline.registry import model_scoring

    champion, candidate = train(seed=1), train(seed=2)
    victim = (champion if killed == "champion" else candidate).model_uri.rsplit("/", 1)[-1]
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    die_once = (
        "import os, pathlib, signal, sys\n"
        f"if {victim!r} in (pathlib.Path(sys.argv[1]) / 'MLmodel').read_text():\n"
        f"    attempts = pathlib.Path({str(attempts)!r})\n"
        "    (attempts / str(os.getpid())).touch()\n"
        "    if len(list(attempts.iterdir())) == 1:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    monkeypatch.setattr(model_scoring, "SCORER", die_once + model_scoring.SCORER)
    champion_of(store, f"oom-{killed}", champion)
    decision = judge(store, f"oom-{killed}", candidate)
    assert len(list(attempts.iterdir())) == 2, "killed once, then scored alone"
    evidence = decision.evidence
    assert not evidence.candidate_failure and not evidence.champion_unjudged, decision.reason
    seen = candidate.test.merge(champion.train.drop_duplicates(), how="left", indicator=True)["_merge"] == "both"
    fair = candidate.test[~seen.to_numpy()]
    assert evidence.champion_score == pytest.approx(roc_auc(champion.model, fair), abs=1e-9)
    assert evidence.candidate_score == pytest.approx(roc_auc(candidate.model, fair), abs=1e-9)


def test_a_scorer_killed_with_nothing_beside_it_is_the_models_failure(store, tmp_path, monkeypatch):
    from tabular_pipeline.registry import model_scoring

    attempts = tmp_path / "attempts"
    attempts.mkdir()
    kill = (
        "import os, pathlib, signal\n"
        f"(pathlib.Path({str(attempts)!r}) / str(os.getpid())).touch()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    monkeypatch.setattr(model_scoring, "SCORER", kill + model_scoring.SCORER)
    decision = judge(store, "first", train(seed=1))
    assert not decision.promote
    assert "its scorer was killed (SIGKILL: out of memory?)" in decision.reason, decision.reason
    assert len(list(attempts.iterdir())) == 1, "not tried again: nothing ran beside it"


def test_a_scorer_that_crashes_on_another_signal_is_the_models_failure_at_once(store, tmp_path, monkeypatch):
    """SIGSEGV or SIGABRT is the model's or a library's own crash, which would happen again."""
    from tabular_pipeline.registry import model_scoring

    champion, candidate = train(seed=1), train(seed=2)
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    crash = (
        "import os, pathlib, signal, sys\n"
        f"if {candidate.model_uri.rsplit('/', 1)[-1]!r} in (pathlib.Path(sys.argv[1]) / 'MLmodel').read_text():\n"
        f"    (pathlib.Path({str(attempts)!r}) / str(os.getpid())).touch()\n"
        "    os.kill(os.getpid(), signal.SIGABRT)\n"
    )
    monkeypatch.setattr(model_scoring, "SCORER", crash + model_scoring.SCORER)
    champion_of(store, "abort", champion)
    decision = judge(store, "abort", candidate)
    assert not decision.promote
    assert "it failed to load or predict (ended by SIGABRT; " in decision.reason, decision.reason
    assert len(list(attempts.iterdir())) == 1
