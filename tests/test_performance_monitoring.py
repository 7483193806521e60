"""Unit tests of realized and estimated performance: the calibration a model carries, the counts a
scored table is reduced to, and the figures computed from them, each against an answer known in
advance or recomputed from the rows by the evaluation code training uses."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tabular_pipeline.data.splits import harmonise_dtypes
from tabular_pipeline.data.synthetic import make_mixed_table
from tabular_pipeline.evaluation.metrics import evaluate_model, regression_metrics
from tabular_pipeline.monitoring.calibration import calibrate, model_performance_profile, score_edges
from tabular_pipeline.monitoring.performance import (
    PerformanceCounter,
    binned_auc,
    estimated_metrics,
    performance_figures,
)
from tabular_pipeline.monitoring.thresholds import has_dropped
from tabular_pipeline.serving.model import probability_frame
from tabular_pipeline.training.pipelines import build_pipeline, fit_params_for, split_feature_columns

LABEL = "label"


def table(rows: int, task: str, seed: int) -> pd.DataFrame:
    frame = harmonise_dtypes(make_mixed_table(rows, 14, task=task, seed=seed).drop(columns=["row_id"]), LABEL)
    return frame.astype({name: object for name in frame.columns if str(frame[name].dtype) == "category"})


class Trained:
    """A model, its test split, its performance section, and a pool of further rows from the same source."""

    def __init__(self, task: str, algorithm: str = "lightgbm"):
        data = table(36_000, task, seed=1)
        train, self.test, self.pool = data.iloc[:5000], data.iloc[5000:8000], data.iloc[8000:]
        features = train.drop(columns=[LABEL])
        kinds = split_feature_columns(features)
        self.task = task
        self.model = build_pipeline(algorithm, task, {}, kinds, seed=1).fit(
            features, train[LABEL], **fit_params_for(algorithm, kinds)
        )
        self.metrics = evaluate_model(self.model, self.test.drop(columns=[LABEL]), self.test[LABEL], task)
        self.section = model_performance_profile(self.model, self.test, LABEL, task, self.metrics, seed=1)

    def count(self, rows: pd.DataFrame, batches: int = 4, labelled: bool = True) -> PerformanceCounter:
        counter = PerformanceCounter(self.section)
        for part in np.array_split(np.arange(len(rows)), batches):
            batch = rows.iloc[part]
            features = batch.drop(columns=[LABEL])
            labels = batch[LABEL] if labelled else None
            if self.task == "regression":
                counter.add(labels, self.model.predict(features), None)
            else:
                answer = probability_frame(self.model, features)
                columns = self.section["probability_columns"]
                counter.add(labels, answer["prediction"].to_numpy(), answer[columns].to_numpy(dtype=float))
        return counter


@pytest.fixture(scope="module")
def binary() -> Trained:
    return Trained("binary")


@pytest.fixture(scope="module")
def multiclass() -> Trained:
    return Trained("multiclass")


def covariate_shift(pool: pd.DataFrame) -> pd.DataFrame:
    """Rows drawn with a weight that grows with num_00: the features' distribution moves, and the
    label keeps its relation to them (each row keeps its own label)."""
    weight = 1 / (1 + np.exp(-2.5 * pool["num_00"].fillna(0).to_numpy()))
    return pool.iloc[np.flatnonzero(np.random.default_rng(3).random(len(pool)) < weight**2)]


def concept_shift(pool: pd.DataFrame, classes: int) -> pd.DataFrame:
    """The same rows, but where num_01 > 0 the label moves to the next class: P(y|x) changed."""
    changed = pool.copy()
    flip = changed["num_01"].fillna(0) > 0
    changed.loc[flip, LABEL] = (changed.loc[flip, LABEL] + 1) % classes
    return changed


def test_binned_auc_and_the_estimate_on_a_table_whose_answer_is_known():
    # Bin 0: 2 positives and 8 negatives; bin 1: 9 positives, 1 negative. Pairs across bins count
    # when the positive is above, pairs inside a bin count half: (9*8 + (2*8 + 9*1)/2) / (11*9).
    assert binned_auc([2, 9], [8, 1]) == pytest.approx((72 + 12.5) / 99)
    assert binned_auc([2, 9], [8, 1]) == pytest.approx(
        roc_auc_score([1, 1, 0, 0], [0, 1, 0, 1], sample_weight=[2, 9, 8, 1])
    )
    assert binned_auc([0, 0], [3, 4]) is None
    # 10 rows score 0.3 (bin 0, calibrated 0.2, predicted 0) and 10 score 0.8 (bin 1, calibrated 0.9, predicted 1):
    # expected correct = 10 * 0.8 + 10 * 0.9, expected positives per bin 2 and 9 as above.
    section = {
        "task": "binary",
        "label_column": LABEL,
        "primary_metric": "test_roc_auc",
        "greater_is_better": True,
        "test_metrics": {"test_roc_auc": 0.9},
        "classes": ["0", "1"],
        "probability_columns": ["probability_0", "probability_1"],
        "scores": [{"class": 1, "edges": [0.5], "calibration": [0.2, 0.9]}],
    }
    counter = PerformanceCounter(section)
    scores = np.array([0.3] * 10 + [0.8] * 10)
    counter.add(None, np.array([0] * 10 + [1] * 10), np.column_stack([1 - scores, scores]))
    estimated = estimated_metrics(counter.counts, section)
    assert estimated == pytest.approx({"test_accuracy": 0.85, "test_roc_auc": (72 + 12.5) / 99})
    assert counter.realized() == {}, "no labels, nothing realized"


def test_the_calibration_is_the_test_splits_share_per_bin_made_monotone():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    edges = score_edges(scores, 4, binary=True)
    assert 0.5 in edges and edges == sorted(edges)
    # Bins [<0.25, 0.25-0.5, 0.5-0.75, >=0.75] hold (0,1), (0,0), (1,0), (1,1): shares 0.5, 0, 0.5, 1;
    # isotonic regression pools the first two (0.25 each).
    assert calibrate(scores, np.array([0, 1, 0, 0, 1, 0, 1, 1]), [0.25, 0.5, 0.75]) == pytest.approx(
        [0.25, 0.25, 0.5, 1.0]
    )


@pytest.mark.parametrize("fixture", ["binary", "multiclass"])
def test_realized_figures_are_the_evaluation_codes_on_the_same_rows(fixture, request):
    trained = request.getfixturevalue(fixture)
    rows = trained.pool.iloc[:6000]
    realized = trained.count(rows, batches=7).realized()
    exact = evaluate_model(trained.model, rows.drop(columns=[LABEL]), rows[LABEL], trained.task)
    assert set(exact) <= set(realized)
    assert realized == pytest.approx({name: exact[name] for name in realized}, abs=1e-12)


def test_the_realized_roc_auc_is_exact_where_scores_crowd_into_one_calibration_bin():
    """Every score in one bin of the calibration (a batch the model scores all alike): a count per
    bin would say 0.5; the rows per distinct score give scikit-learn's figure, ties counting half."""
    section = {
        "task": "binary",
        "label_column": LABEL,
        "primary_metric": "test_roc_auc",
        "greater_is_better": True,
        "test_metrics": {"test_roc_auc": 0.9},
        "classes": ["0", "1"],
        "probability_columns": ["probability_0", "probability_1"],
        "scores": [{"class": 1, "edges": [0.5], "calibration": [0.2, 0.9]}],
    }
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 2, 5000)
    scores = np.round(0.7 + 0.2 * rng.random(5000) * (0.4 + truth), 3)  # all >= 0.5, many ties
    counter = PerformanceCounter(section)
    for part in np.array_split(np.arange(5000), 7):
        counter.add(
            truth[part].astype(str), (scores[part] >= 0.5).astype(int), np.column_stack([1 - scores, scores])[part]
        )
    assert counter.counts.bin_rows[0].tolist() == [0, 5000]
    assert counter.realized()["test_roc_auc"] == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)
    assert 0.7 < counter.realized()["test_roc_auc"] < 0.95 and len(np.unique(scores)) < 5000


def test_the_evaluations_answer_gives_the_same_section_without_asking_the_model_again(binary, monkeypatch):
    """`train_basic` hands the evaluation's answer on the whole test split to the calibration,
    which takes its sampled rows from it by position."""
    import tabular_pipeline.monitoring.calibration as calibration
    from tabular_pipeline.evaluation.report import model_answer

    monkeypatch.setattr(calibration, "CALIBRATION_ROWS", 1000)  # a sample, as on a large split
    test = binary.test.set_axis(np.arange(len(binary.test))[::-1] * 7)  # index labels are not positions
    asked = model_performance_profile(binary.model, test, LABEL, "binary", binary.metrics, seed=3)
    answer = model_answer(binary.model, test.drop(columns=[LABEL]), "binary")

    class Unasked:
        classes_ = binary.model.classes_

        def predict_proba(self, _features):
            raise AssertionError("the model was asked again")

    reused = model_performance_profile(Unasked(), test, LABEL, "binary", binary.metrics, seed=3, answer=answer)
    assert reused == asked and asked["calibration_rows"] == 1000
    rows = test.sample(1000, random_state=3)  # the rows the calibration is documented to take
    assert asked == model_performance_profile(binary.model, rows, LABEL, "binary", binary.metrics, seed=3)


def test_batches_count_the_same_as_the_whole_table(binary):
    rows = binary.pool.iloc[:3000]
    whole, streamed = binary.count(rows, batches=1), binary.count(rows, batches=9)
    assert whole.realized() == pytest.approx(streamed.realized(), abs=1e-12)
    assert whole.estimated() == pytest.approx(streamed.estimated(), abs=1e-12)
    assert whole.counts.labeled == streamed.counts.labeled == 3000


@pytest.mark.parametrize("fixture", ["binary", "multiclass"])
def test_under_covariate_shift_the_estimate_follows_the_realized_figure(fixture, request):
    trained = request.getfixturevalue(fixture)
    shifted = covariate_shift(trained.pool)
    assert shifted["num_00"].mean() > trained.test["num_00"].mean() + 0.5, "the features really moved"
    figures = performance_figures(trained.count(shifted), drop=0.05)
    for name in (figures.primary, "test_accuracy"):
        assert abs(figures.estimated[name] - figures.realized[name]) <= 0.03, name
    # A shift the model copes with: neither figure reports a drop.
    assert figures.degraded == []


@pytest.mark.parametrize("fixture", ["binary", "multiclass"])
def test_under_concept_shift_the_estimate_misses_and_the_realized_figure_catches_it(fixture, request):
    trained = request.getfixturevalue(fixture)
    changed = concept_shift(trained.pool, classes=len(trained.section["classes"]))
    figures = performance_figures(trained.count(changed), drop=0.05)
    recorded = trained.metrics[figures.primary]
    assert figures.realized[figures.primary] < recorded - 0.1, "the labels tell"
    assert abs(figures.estimated[figures.primary] - recorded) < 0.03, "the features alone cannot"
    assert figures.degraded == ["realized"]


def test_regression_is_realized_from_sums_and_not_estimated():
    trained = Trained("regression")
    rows = trained.pool.iloc[:5000]
    counter = trained.count(rows, batches=5)
    exact = regression_metrics(rows[LABEL], trained.model.predict(rows.drop(columns=[LABEL])))
    assert counter.realized() == pytest.approx(exact, rel=1e-9)
    assert counter.estimated() == {} and "scores" not in trained.section
    unlabelled = trained.count(rows, labelled=False)
    assert unlabelled.realized() == {} and performance_figures(unlabelled, 0.05).degraded == []
    # RMSE is an error: "drop" is a rise of that share of the recorded RMSE.
    assert has_dropped(1.0, 1.06, greater_is_better=False, drop=0.05)
    assert not has_dropped(1.0, 1.04, greater_is_better=False, drop=0.05)
    assert has_dropped(0.90, 0.84, greater_is_better=True, drop=0.05)
    assert not has_dropped(0.90, 0.86, greater_is_better=True, drop=0.05)


def test_labels_the_model_never_learnt_and_missing_labels(binary):
    rows = binary.pool.iloc[:400].copy()
    rows[LABEL] = rows[LABEL].astype(object)
    rows.iloc[:50, rows.columns.get_loc(LABEL)] = None
    rows.iloc[50:60, rows.columns.get_loc(LABEL)] = "maybe"
    counter = binary.count(rows, batches=2)
    realized = counter.realized()
    assert counter.counts.labeled == 350 and counter.counts.confusion[-1].sum() == 10
    predictions = binary.model.predict(rows.iloc[50:].drop(columns=[LABEL]))
    truth = rows.iloc[50:][LABEL].astype(str).to_numpy()
    assert realized["test_accuracy"] == pytest.approx(np.mean(truth == predictions.astype(str)))
    assert "test_roc_auc" not in realized and "test_log_loss" not in realized, "as in training's evaluation"


def test_figures_from_few_rows_are_shown_not_judged(binary):
    changed = concept_shift(binary.pool.iloc[:60], classes=2)
    figures = performance_figures(binary.count(changed, batches=1), drop=0.05)
    assert figures.realized and figures.degraded == [] and figures.unjudged == ["realized", "estimated"]


@pytest.mark.parametrize("algorithm", ["lr", "svm", "lightgbm", "xgboost"])
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_labels_from_one_pass_of_probabilities_equal_predict(algorithm, task):
    rows = table(900, task, seed=4)
    train, new = rows.iloc[:600], rows.iloc[600:].drop(columns=[LABEL])
    kinds = split_feature_columns(train.drop(columns=[LABEL]))
    model = build_pipeline(algorithm, task, {}, kinds, seed=1).fit(
        train.drop(columns=[LABEL]), train[LABEL], **fit_params_for(algorithm, kinds)
    )
    answer = probability_frame(model, new)
    assert (answer["prediction"].to_numpy() == model.predict(new)).all()


def test_a_near_tie_is_left_to_the_estimators_own_predict():
    """A logistic regression whose decision value is a hair above 0: its probabilities round to
    0.5 each, so the most probable class would be the first; `predict` says the second."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.array([[0.0], [1.0]]), np.array(["no", "yes"]))
    model.coef_, model.intercept_ = np.array([[1.0]]), np.array([0.0])
    rows = pd.DataFrame({"x": [1e-17, -2.0, 3.0]})
    assert model.predict_proba(rows.to_numpy())[0].tolist() == [0.5, 0.5]

    class Wrapped:  # the pipeline's interface, on raw frames
        classes_ = model.classes_

        def predict_proba(self, frame):
            return model.predict_proba(frame.to_numpy())

        def predict(self, frame):
            return model.predict(frame.to_numpy())

    assert probability_frame(Wrapped(), rows)["prediction"].tolist() == ["yes", "no", "yes"]


def test_a_model_logged_before_performance_monitoring_is_said_once_and_scores(tmp_path, caplog):
    import json

    from steps.predict import local_model
    from tabular_pipeline.monitoring.profile import training_profile

    model_dir = tmp_path / "model"
    (model_dir / "artifacts").mkdir(parents=True)
    profile = training_profile(table(200, "binary", seed=2).drop(columns=[LABEL]))
    (model_dir / "artifacts" / "monitoring_profile.json").write_text(json.dumps({**profile, "version": 1}))
    with caplog.at_level(logging.INFO, logger="predict"):
        _, monitor = local_model(str(model_dir), tmp_path / "copy", fail_on_drift=False)
    assert monitor.performance is None and monitor.label_column is None and monitor.probability_columns == []
    [line] = [r.getMessage() for r in caplog.records if "performance" in r.getMessage()]
    assert "carries no performance calibration" in line and "not computed" in line
    # It still counts drift, and answers with the model's plain predictions.
    monitor.add(table(200, "binary", seed=3).drop(columns=[LABEL]), None, np.zeros(200), None)
    assert monitor.drift.counts["num_00"].rows == 200


def test_fail_on_drift_fails_on_a_performance_drop_alone_after_recording_it(binary, tmp_path):
    """Concept shift: the features do not drift, the labels show the drop; the run records it all,
    then fails in one line (a real MLflow store, in a folder of the test's own)."""
    from types import SimpleNamespace

    import mlflow

    from steps.predict import check_monitoring
    from tabular_pipeline.errors import PipelineError
    from tabular_pipeline.monitoring.monitor import ScoringMonitor
    from tabular_pipeline.monitoring.profile import training_profile
    from tabular_pipeline.monitoring.thresholds import parse_thresholds

    monitor = ScoringMonitor.from_profile(training_profile(binary.test.drop(columns=[LABEL]), binary.section))
    rows = concept_shift(binary.pool.iloc[:4000], classes=2)
    features = rows.drop(columns=[LABEL])
    answer = probability_frame(binary.model, features)
    monitor.add(features, rows[LABEL], answer["prediction"].to_numpy(), answer[monitor.probability_columns].to_numpy())
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        experiment = mlflow.create_experiment("fail-on-drop", artifact_location=str(tmp_path / "artifacts"))
        options = {"data_path": "/data/rows.parquet", "model_uri": "models:/m-test", "fail_on_drift": True}
        info = SimpleNamespace(model_id="m-test", model_uuid=None, model_uri="models:/m-test")
        with mlflow.start_run(experiment_id=experiment) as run:
            with pytest.raises(PipelineError) as failure:
                check_monitoring(monitor, info, options, parse_thresholds(""), len(rows), run)
        stored = mlflow.MlflowClient().get_run(run.info.run_id)
        artifacts = [f.path for f in mlflow.MlflowClient().list_artifacts(run.info.run_id, "monitoring")]
    finally:
        mlflow.set_tracking_uri(None)
    realized = stored.data.metrics["realized.test_roc_auc"]
    assert str(failure.value).startswith(
        f"performance dropped (realized test_roc_auc {realized:.4f} against {binary.metrics['test_roc_auc']:.4f} "
        "recorded) (report: runs:/"
    )
    assert stored.data.tags["monitoring.degraded"] == "realized" and stored.data.tags["monitoring.drifted"] == ""
    assert stored.data.tags["monitoring.model"] == "m-test" and artifacts == ["monitoring/drift_report.html"]
    assert realized < binary.metrics["test_roc_auc"] - 0.05
