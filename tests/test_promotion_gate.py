"""The promotion gate: its rule as a pure function, and the evidence it gathers from a real MLflow
store (models logged and loaded for real, scored in a fresh Python as served)."""

import json

import pandas as pd
import pytest

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.evaluation.metrics import metrics_from_served_output
from tabular_pipeline.registry.gate_rule import (
    GateEvidence,
    GateRules,
    decide_promotion,
    parse_min_score,
    too_few_compared,
)


def decide(candidate, champion=None, min_score=None, min_delta=0.0, force=False, greater=True, **evidence):
    """A decision on the compared rows; the whole split scores like them unless said otherwise."""
    evidence.setdefault("candidate_whole_split_score", candidate)
    if champion is not None:
        evidence.setdefault("champion_version", "1")
    return decide_promotion(
        GateEvidence(
            "test_roc_auc" if greater else "test_rmse",
            greater,
            candidate_score=candidate,
            champion_score=champion,
            **evidence,
        ),
        GateRules(min_score, min_delta, force),
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


def test_min_score_judges_the_whole_split_and_the_comparison_the_compared_rows():
    """On the compared rows the candidate wins; on its whole split it misses the threshold."""
    kept = decide(0.95, champion=0.90, min_score=0.9, candidate_whole_split_score=0.85)
    assert not kept.promote and "0.8500 is below the threshold min_score=0.9" in kept.reason
    assert decide(0.95, champion=0.90, min_score=0.8, candidate_whole_split_score=0.85).promote


def test_errors_are_better_when_smaller():
    assert decide(4.0, champion=5.0, greater=False).promote
    assert not decide(6.0, champion=5.0, greater=False).promote
    assert not decide(6.0, min_score=5.0, greater=False).promote


def test_force_overrides_scores_but_never_a_candidate_that_cannot_serve():
    assert decide(0.1, champion=0.99, min_score=0.9, force=True).promote
    assert not decide(None).promote
    assert not decide(float("nan")).promote
    broken = decide(0.99, force=True, candidate_failure="it failed to load or predict (UntrustedTypesFoundException)")
    assert not broken.promote and broken.reason.startswith(
        "the candidate could not be loaded and scored as it will be served: it failed to load or predict"
    )


def test_a_champion_that_cannot_be_judged_keeps_the_alias_unless_forced():
    why = "version 3 holds 'production' but it could not be scored on the candidate's test split (OSError: gone)"
    kept = decide(0.99, champion_version="3", champion_unjudged=why)
    assert not kept.promote and kept.reason.startswith(why) and "force=true promotes anyway" in kept.reason
    assert decide(0.99, champion_version="3", champion_unjudged=why, force=True).promote
    assert not decide(0.5, min_score=0.8, champion_version="3", champion_unjudged=why).promote


def test_too_few_rows_neither_trained_on_is_no_promotion():
    assert too_few_compared(260, 1114, []) == ""
    few = too_few_compared(36, 142, [])
    assert few.startswith("only 36 of the candidate's 142 test rows were not in the champion's training split")
    assert too_few_compared(60, 1000, []).startswith("only 60"), "under 10% of the split"
    assert "no row of class bad" in too_few_compared(500, 1000, ["bad"])
    assert too_few_compared(12, 12, []).startswith("the candidate's test split holds only 12 rows"), "none left out"
    assert too_few_compared(50, 50, []) == ""
    kept = decide(0.99, champion=0.5, too_few=few)
    assert not kept.promote and kept.reason.startswith(few) and "force=true promotes anyway" in kept.reason
    assert decide(0.99, champion=0.5, too_few=few, force=True).promote


def test_decision_tags_record_the_compared_rows_and_both_scores():
    decision = decide(0.85, champion=0.9, compared_rows=260, left_out_rows=854, test_rows=1114)
    tags = decision.as_tags(GateRules())
    assert tags["gate.decision"] == "rejected"
    assert set(tags) == {"gate.decision", "gate.reason", "gate.details"}, "few tags: the figures are one JSON value"
    details = json.loads(tags["gate.details"])
    assert details["candidate_score"] == 0.85 and details["champion_score"] == 0.9
    assert (details["compared_rows"], details["left_out_rows"], details["test_rows"]) == (260, 854, 1114)
    assert details["candidate_whole_split_score"] == 0.85 and details["primary_metric"] == "test_roc_auc"
    assert details["min_score"] is None and details["forced"] is False
    assert "on 260 rows neither trained on" in decision.reason


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
    for bad in ("high", "nan", "inf"):
        with pytest.raises(PipelineError, match=f"min_score '{bad}' is not a number"):
            parse_min_score(bad)
