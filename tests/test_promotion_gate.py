"""Unit tests of the promotion gate's rules."""

import json

import pandas as pd
import pytest

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.evaluation.metrics import metrics_from_served_output
from tabular_pipeline.registry.gate import decide_promotion, parse_min_score


def decide(candidate, champion=None, min_score=None, min_delta=0.0, force=False, greater=True, unjudged=""):
    metric = "test_roc_auc" if greater else "test_rmse"
    return decide_promotion(
        metric, greater, candidate, champion, min_score, min_delta, force, champion_unjudged=unjudged
    )


def test_first_version_is_promoted_when_it_passes_the_threshold():
    assert decide(0.9).promote
    assert decide(0.9, min_score=0.8).promote
    rejected = decide(0.7, min_score=0.8)
    assert not rejected.promote and "below the threshold min_score=0.8" in rejected.reason


def test_challenger_must_beat_the_champion_by_min_delta():
    assert decide(0.95, champion=0.90).promote
    tie = decide(0.90, champion=0.90)
    assert not tie.promote and "a tie does not replace it" in tie.reason, "ties must not churn versions"
    noise = decide(0.9000000004, champion=0.90)
    assert not noise.promote and "tie" in noise.reason, "float noise between two scorings is a tie"
    large = decide(1_000_000.0004, champion=1_000_000.0, greater=False)
    assert not large.promote and "tie" in large.reason, "float noise on a large RMSE is a tie too"
    assert decide(999_990.0, champion=1_000_000.0, greater=False).promote
    worse = decide(0.85, champion=0.90)
    assert not worse.promote and "does not beat the champion's 0.9000" in worse.reason
    assert not decide(0.91, champion=0.90, min_delta=0.02).promote


def test_errors_are_better_when_smaller():
    assert decide(4.0, champion=5.0, greater=False).promote
    assert not decide(6.0, champion=5.0, greater=False).promote
    assert not decide(6.0, min_score=5.0, greater=False).promote


def test_force_overrides_and_missing_scores_reject():
    assert decide(0.1, champion=0.99, min_score=0.9, force=True).promote
    assert not decide(None).promote
    assert not decide(float("nan")).promote


def test_a_champion_that_cannot_be_scored_keeps_the_alias_unless_forced():
    why = "version 3 holds 'production' but it could not be scored on the candidate's test split (OSError: gone)"
    kept = decide(0.99, unjudged=why)
    assert not kept.promote and kept.reason.startswith(why) and "force=true promotes anyway" in kept.reason
    assert decide(0.99, unjudged=why, force=True).promote
    assert not decide(0.5, min_score=0.8, unjudged=why).promote


def test_decision_tags_record_both_scores():
    tags = decide(0.85, champion=0.9).as_tags(min_score=None, min_delta=0.0, forced=False)
    assert tags["gate.decision"] == "rejected"
    assert set(tags) == {"gate.decision", "gate.reason", "gate.details"}, "few tags: the figures are one JSON value"
    details = json.loads(tags["gate.details"])
    assert details["candidate_score"] == 0.85 and details["champion_score"] == 0.9
    assert details["min_score"] is None and details["forced"] is False


@pytest.mark.parametrize("labels", [[0, 1, 1, 0], ["bad", "good", "good", "bad"]])
def test_served_probabilities_map_back_to_labels(labels):
    truth = pd.Series(labels)
    output = pd.DataFrame(
        {
            "prediction": labels,
            f"probability_{labels[0]}": [0.9, 0.2, 0.1, 0.7],
            f"probability_{labels[1]}": [0.1, 0.8, 0.9, 0.3],
        }
    )
    metrics = metrics_from_served_output(output, truth, "binary")
    assert metrics["test_accuracy"] == 1.0 and metrics["test_roc_auc"] == 1.0


def test_min_score_is_a_number_or_nothing():
    assert parse_min_score("") is None and parse_min_score(" None ") is None
    assert parse_min_score("0.85") == 0.85
    with pytest.raises(PipelineError, match="min_score 'high' is not a number"):
        parse_min_score("high")


@pytest.mark.parametrize("sampled", [True, False])
def test_a_candidate_judged_on_a_sample_is_compared_with_the_champion_on_that_sample(tmp_path, sampled, monkeypatch):
    """A Spark run's `test_*` metrics cover its whole test split but it keeps only a sample for the
    gate: the champion is scored on the sample, so the candidate must be too. Here the candidate's
    logged score (0.99) is far better than what it scores on the sample (it learnt shuffled labels)."""
    import mlflow
    import numpy as np
    from fixtures import mixed_frame

    from tabular_pipeline.data.screening import screen_columns
    from tabular_pipeline.data.splits import harmonise_dtypes
    from tabular_pipeline.evaluation.report import TAG_GATE_SAMPLE
    from tabular_pipeline.registry.gate import evaluate_gate
    from tabular_pipeline.training.model_logging import log_pipeline_model
    from tabular_pipeline.training.pipelines import build_pipeline, split_feature_columns

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # A store of its own: no experiment another test of this worker made active, and put back after.
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    # Set through monkeypatch, so the worker's tracking URI and active experiment come back after.
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.set_experiment("gate-sample").experiment_id
    client = mlflow.MlflowClient(uri)
    table = harmonise_dtypes(mixed_frame(rows=240, seed=1), "label")
    features, label = table.drop(columns=["label"]), table["label"]
    kept, _ = screen_columns(features)
    columns = split_feature_columns(features[kept])

    def logged_model(labels, tags: dict, metrics: dict):
        with mlflow.start_run(experiment_id=experiment_id) as run:
            model = build_pipeline("lr", "binary", {}, columns, seed=0).fit(features, labels)
            mlflow.log_params({"label_column": "label"})
            mlflow.set_tags({"pipeline.primary_metric": "test_roc_auc", "pipeline.task": "binary", **tags})
            mlflow.log_metrics(metrics)
            table.to_parquet(tmp_path / "test.parquet", index=False)
            mlflow.log_artifact(str(tmp_path / "test.parquet"), "evaluation")
            return log_pipeline_model(model, features, "lr").model_uri, run

    champion_uri, _ = logged_model(label, {}, {"test_roc_auc": 0.9})
    client.create_registered_model("churn")
    champion = mlflow.register_model(champion_uri, "churn")
    client.set_registered_model_alias("churn", "production", champion.version)
    shuffled = pd.Series(np.random.default_rng(0).permutation(label.to_numpy()))
    tags = {TAG_GATE_SAMPLE: "240 of 24000 rows"} if sampled else {}
    candidate_uri, _ = logged_model(shuffled, tags, {"test_roc_auc": 0.99})
    candidate = mlflow.register_model(candidate_uri, "churn")

    decision = evaluate_gate(client, candidate_uri, "churn", "production", candidate.version, None, 0.0, False)
    assert decision.champion_score > 0.8
    if sampled:
        assert decision.candidate_sample_score < decision.champion_score and not decision.promote, decision.reason
        assert decision.candidate_score == 0.99, "the whole split's score is kept beside the sample's"
        assert decision.reason.endswith("(both on the test sample of 240 of 24000 rows)")
        # min_score judges the whole split's metric (0.99), not the sample's.
        high_bar = evaluate_gate(client, candidate_uri, "churn", "production", candidate.version, 0.995, 0.0, False)
        assert not high_bar.promote and "0.9900 is below the threshold min_score=0.995" in high_bar.reason
    else:
        assert decision.candidate_score == 0.99 and decision.promote, "its logged score covers the gate's rows"
