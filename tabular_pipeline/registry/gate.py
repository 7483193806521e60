"""The gate between a new model version and the production alias: an absolute threshold plus a
champion/challenger comparison on the candidate's own test split."""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tabular_pipeline.errors import PipelineError, one_line
from tabular_pipeline.evaluation.metrics import GREATER_IS_BETTER, metrics_from_served_output
from tabular_pipeline.evaluation.report import TAG_GATE_SAMPLE

log = logging.getLogger("gate")
TEST_SPLIT_URI = "runs:/{run_id}/evaluation/test.parquet"
# Scores this close are a tie: the candidate's score was logged at training, the champion's is
# computed now through its pyfunc (or a JSON round trip), so equal models differ by float noise;
# relative for large errors (an RMSE of 1e6), absolute near zero.
TIE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class GateDecision:
    """Whether to promote, why, and the scores that decided it."""

    promote: bool
    reason: str
    metric: str
    candidate_score: float | None
    champion_score: float | None = None
    champion_version: str | None = None
    # Whether the champion was trained on the candidate's training split: when not, it may have
    # seen rows of the candidate's test split, and its score there can be optimistic.
    same_split: bool | None = None
    # When the run kept a sample of its test split: the candidate's score on it, compared with the
    # champion's (`candidate_score` stays the whole split's, which `min_score` judges).
    candidate_sample_score: float | None = None

    def details(self, min_score: float | None, min_delta: float, forced: bool) -> dict[str, object]:
        """Everything the decision was made from, for the `gate.details` tag and the model card."""
        return {
            "champion_trained_on_the_same_split": self.same_split,
            "primary_metric": self.metric,
            "candidate_score": self.candidate_score,
            "candidate_sample_score": self.candidate_sample_score,
            "champion_score": self.champion_score,
            "champion_version": self.champion_version,
            "min_score": min_score,
            "min_delta": float(min_delta),
            "forced": forced,
        }

    def as_tags(self, min_score: float | None, min_delta: float, forced: bool) -> dict[str, str]:
        """The decision as three model-version tags: the verdict, why, and the figures as JSON."""
        import json

        return {
            "gate.decision": "promoted" if self.promote else "rejected",
            "gate.reason": self.reason[:500],
            "gate.details": json.dumps(self.details(min_score, min_delta, forced)),
        }


def parse_min_score(text: str) -> float | None:
    """The optional `min_score` threshold: empty (or "none") means no threshold."""
    if not text.strip() or text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise PipelineError(
            f"min_score {text!r} is not a number; expected e.g. -P min_score=0.8, or empty for no threshold"
        ) from None


def decide_promotion(
    metric: str,
    greater_is_better: bool,
    candidate: float | None,
    champion: float | None,
    min_score: float | None,
    min_delta: float,
    force: bool,
    champion_note: str = "",
    champion_unjudged: str = "",
) -> GateDecision:
    """Apply the gate's rules; a pure function of the scores.

    The gate fails closed: when a champion holds the alias but cannot be scored, the candidate is
    not promoted (only `force` goes through). A tie does not beat the champion.

    Args:
        metric: the primary metric's name.
        greater_is_better: False for errors such as RMSE.
        candidate: the new version's score on its test split (None if missing).
        champion: the current version's score on the same split (None if there is no champion).
        min_score: the absolute threshold, or None.
        min_delta: how much the candidate must beat the champion by (a gain of 0 never does).
        force: promote whatever the scores say.
        champion_note: why there is no champion, for the reason text.
        champion_unjudged: why an existing champion could not be scored ("" when it was).

    Returns:
        The decision.
    """

    def decision(promote: bool, reason: str) -> GateDecision:
        return GateDecision(promote, reason, metric, candidate, champion)

    if force:
        return decision(True, "forced with force=true")
    if candidate is None or math.isnan(candidate):
        return decision(False, f"the candidate has no {metric} to judge it by")
    if min_score is not None:
        passes = candidate >= min_score if greater_is_better else candidate <= min_score
        if not passes:
            relation = "below" if greater_is_better else "above"
            return decision(False, f"{metric} {candidate:.4f} is {relation} the threshold min_score={min_score:g}")
    if champion_unjudged:
        return decision(False, f"{champion_unjudged}; the champion keeps the alias (force=true promotes anyway)")
    if champion is None or math.isnan(champion):
        return decision(True, champion_note or "first version to pass the gate: no champion to beat")
    gain = candidate - champion if greater_is_better else champion - candidate
    if math.isclose(candidate, champion, rel_tol=TIE_TOLERANCE, abs_tol=TIE_TOLERANCE):
        return decision(False, f"{metric} {candidate:.4f} ties the champion's; a tie does not replace it")
    if gain > 0 and gain >= min_delta:
        return decision(
            True,
            f"{metric} {candidate:.4f} beats the champion's {champion:.4f} by {gain:.4f} (min_delta={min_delta:g})",
        )
    return decision(
        False, f"{metric} {candidate:.4f} does not beat the champion's {champion:.4f} by min_delta={min_delta:g}"
    )


def candidate_run(client, model_uri: str):
    """The training run behind a model URI."""
    from tabular_pipeline.registry.registration import parse_model_uri

    kind, identifier, _ = parse_model_uri(model_uri)
    if kind == "logged":
        return client.get_run(client.get_logged_model(identifier).source_run_id)
    if kind == "run":
        return client.get_run(identifier)
    raise PipelineError(
        f"the gate needs the training run behind {model_uri}; expected models:/<model id> or runs:/<run id>/<path>"
    )


def python_version() -> str:
    """This interpreter's major.minor version."""
    import sys

    return f"{sys.version_info.major}.{sys.version_info.minor}"


def recorded_python(model_dir: Path) -> str:
    """The major.minor Python version a downloaded model was saved with."""
    from mlflow.models import Model

    flavor = Model.load(str(model_dir / "MLmodel")).flavors.get("python_function", {})
    return ".".join(str(flavor.get("python_version", python_version())).split(".")[:2])


def predict_in_model_environment(model_uri: str, features: pd.DataFrame, params: dict | None):
    """Predict with a model in the environment it records (an auto-sklearn model needs Python 3.9),
    the way a scoring server would; returns the same shapes as `PyFuncModel.predict`.

    The one use of a private MLflow API in this project (`get_flavor_backend`): the public
    `mlflow.models.predict` builds a fresh pyenv root and virtualenv on every call, and so downloads
    Python. `test_mlflow_private_api` pins the names and signature used here.
    """
    import json

    from mlflow.models.flavor_backend_registry import get_flavor_backend

    # Not `mlflow.models.predict`: it builds a fresh pyenv root and virtualenv on every call (and
    # so downloads Python); this backend reuses the one `mlflow models serve` and training built.
    backend = get_flavor_backend(model_uri, env_manager="virtualenv", install_mlflow=False)
    with tempfile.TemporaryDirectory() as scratch:
        request, answer = Path(scratch) / "request.json", Path(scratch) / "answer.json"
        payload = {"dataframe_split": json.loads(features.to_json(orient="split", index=False, double_precision=15))}
        request.write_text(json.dumps({**payload, **({"params": params} if params else {})}))
        backend.predict(model_uri=model_uri, input_path=str(request), output_path=str(answer), content_type="json")
        predictions = json.loads(answer.read_text())["predictions"]
    return pd.DataFrame(predictions) if predictions and isinstance(predictions[0], dict) else predictions


def score_on_test_split(model_uri: str, run, task: str, metric: str) -> tuple[float | None, str]:
    """Score a model on the rows the candidate run kept for the gate; (None, why) when it cannot be scored."""
    import mlflow

    label_column = run.data.params.get("label_column", "label")
    try:
        from tabular_pipeline.serving.model import PROBABILITIES_PARAM

        params = {PROBABILITIES_PARAM: True} if task != "regression" else None
        with tempfile.TemporaryDirectory() as scratch:
            path = mlflow.artifacts.download_artifacts(TEST_SPLIT_URI.format(run_id=run.info.run_id), dst_path=scratch)
            test = pd.read_parquet(Path(path))
            features, label = test.drop(columns=[label_column]), test[label_column]
            # Downloaded once; read for its Python version and loaded from disk, without MLflow's
            # check of installed versions against the model's requirements (about a second, and
            # only a warning): the prediction is the test.
            model_dir = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(Path(scratch) / "model")))
            if recorded_python(model_dir) == python_version():
                output = mlflow.pyfunc.load_model(str(model_dir), suppress_warnings=True).predict(
                    features, params=params
                )
            else:
                output = predict_in_model_environment(model_uri, features, params)
        score = metrics_from_served_output(output, label, task).get(metric)
    except Exception as error:  # noqa: BLE001 - any failure means "not compared"; the gate then fails closed
        reason = one_line(error, 200)
        return None, f"it could not be scored on the candidate's test split ({type(error).__name__}: {reason})"
    if score is None or math.isnan(score):
        return None, f"it gives no {metric} on the candidate's test split"
    return float(score), ""


def current_holder(client, name: str, alias: str):
    """The version holding `alias`, or None when the model or the alias does not exist.

    Any other failure (the server, permissions) raises: "cannot tell" must not read as "no champion".
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        missing = error.error_code == "RESOURCE_DOES_NOT_EXIST" or (
            error.error_code == "INVALID_PARAMETER_VALUE" and "not found" in error.message
        )
        if missing:
            return None
        raise


def evaluate_gate(
    client, model_uri: str, name: str, alias: str, version: str, min_score: float | None, min_delta: float, force: bool
) -> GateDecision:
    """Score the candidate and the current `alias` holder and decide whether `version` takes the alias.

    A champion that cannot be looked up or scored keeps the alias (the reason is in the decision).
    """
    from mlflow.exceptions import MlflowException

    run = candidate_run(client, model_uri)
    metric = run.data.tags.get("pipeline.primary_metric")
    task = run.data.tags.get("pipeline.task")
    if not metric or task not in GREATER_IS_BETTER:
        raise PipelineError(
            f"run {run.info.run_id} records no primary metric or task; expected a model logged by train_basic or "
            "train_automl"
        )
    candidate = run.data.metrics.get(metric)
    champion, unjudged, champion_version = None, "", None
    try:
        current = current_holder(client, name, alias)
    except MlflowException as error:
        current, unjudged = None, f"the current '{alias}' version could not be looked up ({one_line(error, 200)})"
    same_split, note, sample = None, "", ""
    if current is not None and str(current.version) == str(version):
        note = f"it already holds '{alias}'"
    elif current is not None:
        champion_version = str(current.version)
        champion, unjudged = score_on_test_split(f"models:/{name}/{current.version}", run, task, metric)
        if unjudged:
            unjudged = f"version {champion_version} holds '{alias}' but {unjudged}"
        elif run.data.tags.get(TAG_GATE_SAMPLE):
            sample = run.data.tags[TAG_GATE_SAMPLE]
        same_split = trained_on_same_split(current, run)
    if sample and not force:
        scores = GateDecision(False, "", metric, candidate, champion, champion_version, same_split)
        return judge_on_sample(scores, model_uri, run, task, sample, min_score, min_delta)
    decision = decide_promotion(
        metric, GREATER_IS_BETTER[task], candidate, champion, min_score, min_delta, force, note, unjudged
    )
    if unjudged and not force:
        log.warning("not promoting: %s", unjudged)
    return GateDecision(decision.promote, decision.reason, metric, candidate, champion, champion_version, same_split)


def judge_on_sample(
    scores: GateDecision, model_uri: str, run, task: str, sample: str, min_score: float | None, min_delta: float
) -> GateDecision:
    """The gate for a candidate whose run kept only a sample of its test split (`sample`, e.g.
    "200000 of 2500000 rows"): `min_score` judges the whole split's metric, then the candidate is
    scored on the sample and compared with the champion's score there. A candidate that cannot be
    scored on it does not take the alias.

    Args:
        scores: the metric, the whole split's candidate score and the champion's, without a verdict.
        model_uri: the candidate model; `run`: its training run; `task`: the learning task.
        sample: the run's `pipeline.gate_test_sample` tag.
        min_score: the absolute threshold, or None; `min_delta`: the margin over the champion.
    """
    from dataclasses import replace

    greater = GREATER_IS_BETTER[task]
    threshold = decide_promotion(scores.metric, greater, scores.candidate_score, None, min_score, min_delta, False)
    if not threshold.promote:
        return replace(scores, reason=threshold.reason)
    on_sample, why = score_on_test_split(model_uri, run, task, scores.metric)
    if why:
        reason = (
            f"the candidate could not be compared with the champion on the test sample of {sample}: {why}; the "
            "champion keeps the alias (force=true promotes anyway)"
        )
        log.warning("not promoting: %s", reason)
        return replace(scores, reason=reason)
    decision = decide_promotion(scores.metric, greater, on_sample, scores.champion_score, None, min_delta, False)
    reason = f"{decision.reason} (both on the test sample of {sample})"
    return replace(scores, promote=decision.promote, reason=reason, candidate_sample_score=on_sample)


def trained_on_same_split(champion_version, candidate_run) -> bool | None:
    """Whether the champion's recorded training split is the candidate's (None when unrecorded)."""
    import json

    from tabular_pipeline.registry.lineage import dataset_digests

    champion_digest = json.loads(champion_version.tags.get("lineage", "{}")).get("train_digest")
    candidate_digest = dataset_digests(candidate_run).get("training")
    return None if not champion_digest or not candidate_digest else champion_digest == candidate_digest
