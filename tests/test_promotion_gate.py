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
