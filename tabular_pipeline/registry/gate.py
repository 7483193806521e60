"""The promotion gate: gather the evidence, then apply the rule (`gate_rule`).

The evidence is computed here, never taken from a training run's logged metrics: both models are
loaded as they will be served (`model_scoring`), and both scores come from the same rows of the
candidate's test split, those the champion did not train on (`evidence.rows_seen_in_training`).
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
    takes the alias. Anything that cannot be established keeps the alias where it is.

    Both models are scored at once, each in a Python of its own, on every row of the candidate's
    test split, while this process works out which of those rows the champion trained on; those
    are then left out of both scores. (A model scores each row on its own, so the rows dropped
    from its answer do not change the answer on the others.) A model saved under another Python
    is scored in its own environment when its answer is needed, not beside the other. A scorer
    killed by SIGKILL while the other ran beside it (the machine's memory, most likely) is tried
    once more alone: the two at once failed, not the model.
    """
    from contextlib import ExitStack

    from mlflow.exceptions import MlflowException

    from tabular_pipeline.evaluation.metrics import GREATER_IS_BETTER
    from tabular_pipeline.registry.evidence import EvidenceUnavailable, kept_test_split, training_run_of
    from tabular_pipeline.registry.lineage import recorded_parameter
    from tabular_pipeline.registry.model_scoring import ModelUnusable, PendingAnswer, served_output, started_scoring
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
    except EvidenceUnavailable as error:
        return decide_promotion(GateEvidence(**base, candidate_failure=str(error)), rules)
    features, labels = test.drop(columns=[label]), test[label]
    with ExitStack() as scorers:  # leaving it ends a scorer still running (a failure, a stop)
        candidate_scoring = scorers.enter_context(started_scoring(model_uri, features, params))
        try:
            holder, unjudged = current_holder(client, name, alias), ""
        except MlflowException as error:
            holder, unjudged = None, f"the current '{alias}' version could not be looked up ({one_line(error, 200)})"
        challenged = holder is not None and str(holder.version) != str(version)
        if challenged:
            champion_uri = f"models:/{name}/{holder.version}"
            champion_scoring = scorers.enter_context(started_scoring(champion_uri, features, params))
            rows = compared_rows(client, holder, alias, run, test)
        # Scoring the answers needs scikit-learn's metrics: loaded while the scorers work (about
        # 0.8 s), not after them.
        import sklearn.metrics  # noqa: F401

        try:
            try:
                output = candidate_scoring.answer()
            except ModelUnusable as error:
                if not (error.killed and challenged and champion_scoring.beside):
                    raise
                champion_scoring.stop()  # (a finished champion is scored again too: rare, and simpler)
                champion_scoring = PendingAnswer(lambda: served_output(champion_uri, features, params))
                output = served_output(model_uri, features, params)
        except ModelUnusable as error:
            return decide_promotion(GateEvidence(**base, candidate_failure=str(error)), rules)
        whole = score_on(output, labels, task, metric)
        # A sampled run's whole split was scored on the cluster; the sample above shows the model serves.
        whole_split = run.data.metrics.get(metric) if sample else whole
        base.update(candidate_whole_split_score=whole_split, test_rows=len(test))
        if unjudged:
            return decide_promotion(GateEvidence(**base, candidate_score=whole, champion_unjudged=unjudged), rules)
        if not challenged:
            note = f"it already holds '{alias}'" if holder is not None else ""
            return decide_promotion(
                GateEvidence(**base, candidate_score=whole, compared_rows=len(test), left_out_rows=0, no_champion=note),
                rules,
            )
        candidate = Candidate(features, labels, output, task, metric, params)
        comparison = compare_with_champion(holder, champion_uri, alias, candidate, rows, champion_scoring)
    return decide_promotion(GateEvidence(**base, champion_version=str(holder.version), **comparison), rules)


def compared_rows(client, holder, alias: str, run, test: pd.DataFrame) -> dict:
    """Which of the candidate's test rows the champion did not train on (all of them when both
    trained on the same split), as `GateEvidence` fields and the boolean mask `compared`; or
    `champion_unjudged` alone, when that cannot be told."""
    from tabular_pipeline.registry.evidence import EvidenceUnavailable, recorded_digests, rows_seen_in_training

    holds = f"version {holder.version} holds '{alias}'"
    try:
        champion_digest, candidate_digest = recorded_digests(client, holder, run)
        same = bool(champion_digest) and champion_digest == candidate_digest
        seen = np.zeros(len(test), dtype=bool) if same else rows_seen_in_training(client.get_run(holder.run_id), test)
    except EvidenceUnavailable as error:
        return {
            "champion_unjudged": f"{holds} but which of the candidate's test rows it trained on is unknown: {error}"
        }
    except Exception as error:  # noqa: BLE001 - the registry or store failing: the comparison cannot be made
        return {"champion_unjudged": f"{holds} but its training split could not be looked up ({one_line(error, 200)})"}
    return {"same_training_split": same, "compared_rows": int((~seen).sum()), "left_out_rows": int(seen.sum()),
            "compared": ~seen}  # fmt: skip


def compare_with_champion(
    holder, champion_uri: str, alias: str, candidate: Candidate, rows: dict, champion_scoring
) -> dict:
    """The champion's and the candidate's scores on the rows `rows` compares, as `GateEvidence`
    fields; the champion's answer (on every test row) is waited for only when they are enough."""
    from tabular_pipeline.registry.model_scoring import ModelUnusable, served_output

    if "champion_unjudged" in rows:
        return rows
    compared = rows["compared"]
    figures = {key: value for key, value in rows.items() if key != "compared"}
    # Judged however many rows were left out: a comparison on a tiny split is as fragile as on a tiny remainder.
    missing = []
    if candidate.task != "regression":
        present = set(candidate.labels[compared].astype(str))
        missing = sorted(set(candidate.labels.astype(str)) - present)
    figures["too_few"] = too_few_compared(int(compared.sum()), len(compared), missing)
    if figures["too_few"]:
        return figures
    try:
        try:
            champion_output = champion_scoring.answer()
        except ModelUnusable as error:
            if not (error.killed and champion_scoring.beside):  # alone already: the model's failure
                raise
            champion_output = served_output(champion_uri, candidate.features, candidate.params)  # alone, now
    except ModelUnusable as error:
        holds = f"version {holder.version} holds '{alias}'"
        return {**figures, "champion_unjudged": f"{holds} but it could not be scored on the candidate's test split "
                                                f"({error})"}  # fmt: skip
    return {
        **figures,
        "champion_score": score_on(champion_output, candidate.labels, candidate.task, candidate.metric, compared),
        "candidate_score": score_on(candidate.output, candidate.labels, candidate.task, candidate.metric, compared),
    }
