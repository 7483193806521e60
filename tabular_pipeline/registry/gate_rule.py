"""The promotion gate's rule: a pure function of the evidence that `registry.gate` gathers.

Nothing here talks to MLflow or loads a model; every figure it decides on arrives in `GateEvidence`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from tabular_pipeline.errors import PipelineError

# Scores this close are a tie: two scorings of equal models differ by float noise; relative for
# large errors (an RMSE of 1e6), absolute near zero.
TIE_TOLERANCE = 1e-6
# The fewest rows neither model trained on that a comparison may rest on: at least this many, and
# at least this share of the candidate's test split. Below that, one lucky row moves the score by
# more than most real improvements (1/50 of accuracy is 0.02).
MIN_COMPARED_ROWS = 50
MIN_COMPARED_SHARE = 0.10
FORCE_HINT = "force=true promotes anyway"


@dataclass(frozen=True)
class GateRules:
    """What the user asked of the gate: an absolute threshold, a margin over the champion, force."""

    min_score: float | None = None
    min_delta: float = 0.0
    force: bool = False


@dataclass(frozen=True)
class GateEvidence:
    """Everything the decision rests on, each figure computed by `registry.gate` from the models
    as they will be served.

    Attributes:
        metric: the primary metric's name; `greater_is_better` is False for errors such as RMSE.
        candidate_failure: why the candidate could not be loaded or scored as served ("" if it was).
        candidate_whole_split_score: the candidate's score on its whole test split (`min_score` judges it).
        candidate_score: the candidate's score on the compared rows.
        champion_version: the version holding the alias, if another one does.
        champion_score: the champion's score on the compared rows.
        champion_unjudged: why the champion could not be compared ("" when it was, or when there is none).
        no_champion: why there is no champion to beat (the first version, or the candidate holds the alias).
        test_rows: the rows of the candidate's test split the gate read (the whole split, or the kept sample).
        compared_rows: those the champion did not train on; `left_out_rows`: those it did.
        same_training_split: whether both were trained on the same split (then every row is compared).
        too_few: why the compared rows cannot carry a comparison ("" when they can).
        sample: "<kept> of <all> rows" when the candidate's run kept only a sample of its test split.
    """

    metric: str
    greater_is_better: bool
    candidate_failure: str = ""
    candidate_whole_split_score: float | None = None
    candidate_score: float | None = None
    champion_version: str | None = None
    champion_score: float | None = None
    champion_unjudged: str = ""
    no_champion: str = ""
    test_rows: int | None = None
    compared_rows: int | None = None
    left_out_rows: int | None = None
    same_training_split: bool | None = None
    too_few: str = ""
    sample: str = ""


@dataclass(frozen=True)
class GateDecision:
    """Whether to promote, why, and the evidence it was decided on."""

    promote: bool
    reason: str
    evidence: GateEvidence

    def details(self, rules: GateRules) -> dict[str, object]:
        """The figures behind the decision, for the `gate.details` tag and the model card."""
        evidence = asdict(self.evidence)
        figures = {
            key: evidence[key]
            for key in (
                "metric",
                "candidate_score",
                "champion_score",
                "champion_version",
                "compared_rows",
                "left_out_rows",
                "test_rows",
                "candidate_whole_split_score",
                "same_training_split",
                "sample",
            )
        }
        figures["primary_metric"] = figures.pop("metric")
        return {**figures, "min_score": rules.min_score, "min_delta": float(rules.min_delta), "forced": rules.force}

    def as_tags(self, rules: GateRules) -> dict[str, str]:
        """The decision as three model-version tags: the verdict, why, and the figures as JSON."""
        return {
            "gate.decision": "promoted" if self.promote else "rejected",
            "gate.reason": self.reason[:500],
            "gate.details": json.dumps(self.details(rules)),
        }


def parse_min_score(text: str) -> float | None:
    """The optional `min_score` threshold: empty (or "none") means no threshold."""
    if not text.strip() or text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value):
        raise PipelineError(
            f"min_score {text!r} is not a number; expected e.g. -P min_score=0.8, or empty for no threshold"
        )
    return value


def too_few_compared(compared: int, test_rows: int, missing_classes: list[str]) -> str:
    """Why `compared` of `test_rows` rows cannot carry a comparison, or "" when they can.

    Args:
        compared: the rows of the candidate's test split the champion did not train on.
        test_rows: all rows of that split the gate read.
        missing_classes: classes of the test split with no compared row (empty for regression).
    """
    floor = max(MIN_COMPARED_ROWS, math.ceil(MIN_COMPARED_SHARE * test_rows))
    if compared < floor and compared == test_rows:
        return (
            f"the candidate's test split holds only {test_rows} rows (a comparison with the champion needs at least "
            f"{MIN_COMPARED_ROWS})"
        )
    if compared < floor:
        return (
            f"only {compared} of the candidate's {test_rows} test rows were not in the champion's training split "
            f"(a comparison needs at least {MIN_COMPARED_ROWS} and {MIN_COMPARED_SHARE:.0%} of them)"
        )
    if missing_classes:
        shown = ", ".join(missing_classes[:5]) + (", ..." if len(missing_classes) > 5 else "")
        return (
            f"no row of class {shown} is left among the {compared} test rows the champion did not train on "
            "(a comparison needs every class)"
        )
    return ""


def decide_promotion(evidence: GateEvidence, rules: GateRules) -> GateDecision:
    """Apply the gate's rules, in order:

    1. A candidate that cannot be loaded or scored as served never takes the alias (not even forced).
    2. `force` promotes.
    3. `min_score` judges the candidate's whole test split.
    4. A champion that cannot be compared (not scored, its training split not found), or too few
       rows that neither trained on, keeps the alias: the gate fails closed.
    5. Without a champion, the candidate is promoted.
    6. Otherwise the candidate must beat the champion on the compared rows by more than a tie and
       by at least `min_delta`.
    """

    def decision(promote: bool, reason: str) -> GateDecision:
        return GateDecision(promote, reason, evidence)

    metric, greater = evidence.metric, evidence.greater_is_better
    if evidence.candidate_failure:
        return decision(False, f"the candidate could not be loaded and scored as it will be served: "
                               f"{evidence.candidate_failure}")  # fmt: skip
    if rules.force:
        return decision(True, "forced with force=true")
    whole = evidence.candidate_whole_split_score
    if whole is None or math.isnan(whole):
        return decision(False, f"the candidate has no {metric} on its test split to judge it by")
    if rules.min_score is not None:
        passes = whole >= rules.min_score if greater else whole <= rules.min_score
        if not passes:
            relation = "below" if greater else "above"
            return decision(False, f"{metric} {whole:.4f} is {relation} the threshold min_score={rules.min_score:g}")
    if evidence.champion_unjudged:
        return decision(False, f"{evidence.champion_unjudged}; the champion keeps the alias ({FORCE_HINT})")
    if evidence.champion_version is None:
        return decision(True, evidence.no_champion or "first version to pass the gate: no champion to beat")
    if evidence.too_few:
        return decision(False, f"{evidence.too_few}; the champion keeps the alias ({FORCE_HINT})")
    candidate, champion = evidence.candidate_score, evidence.champion_score
    if candidate is None or champion is None or math.isnan(candidate) or math.isnan(champion):
        return decision(False, f"no {metric} for both models on the compared rows; the champion keeps the alias "
                               f"({FORCE_HINT})")  # fmt: skip
    rows = (
        "its whole test split" if evidence.same_training_split else f"{evidence.compared_rows} rows neither trained on"
    )
    if math.isclose(candidate, champion, rel_tol=TIE_TOLERANCE, abs_tol=TIE_TOLERANCE):
        return decision(False, f"{metric} {candidate:.4f} ties the champion's on {rows}; a tie does not replace it")
    gain = candidate - champion if greater else champion - candidate
    if gain > 0 and gain >= rules.min_delta:
        return decision(
            True,
            f"{metric} {candidate:.4f} beats the champion's {champion:.4f} by {gain:.4f} on {rows} "
            f"(min_delta={rules.min_delta:g})",
        )
    return decision(
        False,
        f"{metric} {candidate:.4f} does not beat the champion's {champion:.4f} by min_delta={rules.min_delta:g} "
        f"on {rows}",
    )
