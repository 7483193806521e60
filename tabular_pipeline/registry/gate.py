"""The promotion gate: gather the evidence, then apply the rule (`gate_rule`).

The evidence is computed here, never taken from a training run's logged metrics: both models are
loaded as they will be served (`model_scoring`) and scored on the same rows of the candidate's
test split, those the champion did not train on (`evidence.rows_seen_in_training`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tabular_pipeline.errors import PipelineError, one_line
from tabular_pipeline.evaluation.artifacts import TAG_GATE_SAMPLE
from tabular_pipeline.registry.gate_rule import (
    GateDecision,
    GateEvidence,
    GateRules,
    decide_promotion,
    too_few_compared,
)

log = logging.getLogger("gate")


@dataclass(frozen=True)
class Candidate:
    """The candidate's test rows and its answer on them, as served."""

    features: pd.DataFrame
    labels: pd.Series
    output: object
    task: str
    metric: str
    params: dict | None


def score_on(output, labels: pd.Series, task: str, metric: str, rows: np.ndarray | None = None) -> float | None:
    """The metric of a served answer on `labels`, or on the rows `rows` marks (None if undefined)."""
    import math

    from tabular_pipeline.evaluation.metrics import metrics_from_served_output

    if rows is not None:
        labels = labels[rows].reset_index(drop=True)
        if isinstance(output, pd.DataFrame):
            output = output[rows].reset_index(drop=True)
        else:
            output = [value for value, kept in zip(output, rows, strict=True) if kept]
    value = metrics_from_served_output(output, labels, task).get(metric)
    return None if value is None or math.isnan(value) else float(value)


def evaluate_gate(client, model_uri: str, name: str, alias: str, version: str, rules: GateRules) -> GateDecision:
    """Score the candidate (and the current `alias` holder) as served and decide whether `version`
    takes the alias. Anything that cannot be established keeps the alias where it is."""
    from mlflow.exceptions import MlflowException

    from tabular_pipeline.evaluation.metrics import GREATER_IS_BETTER
    from tabular_pipeline.registry.evidence import EvidenceUnavailable, kept_test_split, training_run_of
    from tabular_pipeline.registry.lineage import recorded_parameter
    from tabular_pipeline.registry.model_scoring import ModelUnusable, served_output
    from tabular_pipeline.registry.promotion import current_holder
    from tabular_pipeline.serving.model import PROBABILITIES_PARAM

    run = training_run_of(client, model_uri)
    metric, task = run.data.tags.get("pipeline.primary_metric"), run.data.tags.get("pipeline.task")
    if not metric or task not in GREATER_IS_BETTER:
        raise PipelineError(
            f"run {run.info.run_id} records no primary metric or task; expected a model logged by train_basic or "
            "train_automl"
        )
    sample = run.data.tags.get(TAG_GATE_SAMPLE, "")
    base = {"metric": metric, "greater_is_better": GREATER_IS_BETTER[task], "sample": sample}
    label = recorded_parameter(run.data.params.get("label_column", "label")) or "label"
    params = {PROBABILITIES_PARAM: True} if task != "regression" else None
    try:
        test = kept_test_split(run)
        if label not in test.columns:
            raise EvidenceUnavailable(f"its test split has no label column '{label}'")
        output = served_output(model_uri, test.drop(columns=[label]), params)
    except (EvidenceUnavailable, ModelUnusable) as error:
        return decide_promotion(GateEvidence(**base, candidate_failure=str(error)), rules)
    candidate = Candidate(test.drop(columns=[label]), test[label], output, task, metric, params)
    whole = score_on(output, candidate.labels, task, metric)
    # A sampled run's whole split was scored on the cluster; the sample above shows the model serves.
    whole_split = run.data.metrics.get(metric) if sample else whole
    base.update(candidate_whole_split_score=whole_split, test_rows=len(test))
    try:
        holder = current_holder(client, name, alias)
    except MlflowException as error:
        unjudged = f"the current '{alias}' version could not be looked up ({one_line(error, 200)})"
        return decide_promotion(GateEvidence(**base, candidate_score=whole, champion_unjudged=unjudged), rules)
    if holder is None or str(holder.version) == str(version):
        note = f"it already holds '{alias}'" if holder is not None else ""
        return decide_promotion(
            GateEvidence(**base, candidate_score=whole, compared_rows=len(test), left_out_rows=0, no_champion=note),
            rules,
        )
    comparison = compare_with_champion(client, holder, name, alias, run, candidate)
    return decide_promotion(GateEvidence(**base, champion_version=str(holder.version), **comparison), rules)


def compare_with_champion(client, holder, name: str, alias: str, run, candidate: Candidate) -> dict:
    """The champion's and the candidate's scores on the candidate's test rows the champion did not
    train on (all of them when both trained on the same split), as `GateEvidence` fields."""
    from tabular_pipeline.registry.evidence import EvidenceUnavailable, recorded_digests, rows_seen_in_training
    from tabular_pipeline.registry.model_scoring import ModelUnusable, served_output

    holds = f"version {holder.version} holds '{alias}'"
    try:
        champion_digest, candidate_digest = recorded_digests(client, holder, run)
        same = bool(champion_digest) and champion_digest == candidate_digest
        seen = np.zeros(len(candidate.labels), dtype=bool)
        if not same:
            seen = rows_seen_in_training(client.get_run(holder.run_id), pd.concat(
                [candidate.features, candidate.labels], axis=1))  # fmt: skip
    except EvidenceUnavailable as error:
        return {
            "champion_unjudged": f"{holds} but which of the candidate's test rows it trained on is unknown: {error}"
        }
    except Exception as error:  # noqa: BLE001 - the registry or store failing: the comparison cannot be made
        return {"champion_unjudged": f"{holds} but its training split could not be looked up ({one_line(error, 200)})"}
    compared = ~seen
    figures = {"same_training_split": same, "compared_rows": int(compared.sum()), "left_out_rows": int(seen.sum())}
    # Judged however many rows were left out: a comparison on a tiny split is as fragile as on a tiny remainder.
    missing = []
    if candidate.task != "regression":
        present = set(candidate.labels[compared].astype(str))
        missing = sorted(set(candidate.labels.astype(str)) - present)
    figures["too_few"] = too_few_compared(int(compared.sum()), len(seen), missing)
    if figures["too_few"]:
        return figures
    try:
        champion_output = served_output(
            f"models:/{name}/{holder.version}",
            candidate.features[compared].reset_index(drop=True),
            candidate.params,
        )
    except ModelUnusable as error:
        return {**figures, "champion_unjudged": f"{holds} but it could not be scored on the candidate's test split "
                                                f"({error})"}  # fmt: skip
    labels = candidate.labels[compared].reset_index(drop=True)
    return {
        **figures,
        "champion_score": score_on(champion_output, labels, candidate.task, candidate.metric),
        "candidate_score": score_on(candidate.output, candidate.labels, candidate.task, candidate.metric, compared),
    }
