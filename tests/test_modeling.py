"""Unit tests of pipeline building: every algorithm and task on a tiny mixed table."""

import numpy as np
import pandas as pd
import pytest
from fixtures import mixed_frame

from tabular_pipeline.data.splits import harmonise_dtypes
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.evaluation.metrics import PRIMARY_METRIC, evaluate_model
from tabular_pipeline.training.algorithms import ALGORITHMS, check_hyperparameters, normalise_algorithm
from tabular_pipeline.training.pipelines import (
    build_pipeline,
    data_dependent_defaults,
    effective_hyperparameters,
    split_feature_columns,
)
from tabular_pipeline.training.search import build_search, search_results_table


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("LR", "lr"),
        ("SVM", "svm"),
        ("LightGBM", "lightgbm"),
        ("XGboost", "xgboost"),
        (" xgboost ", "xgboost"),
        ("LogisticRegression", "lr"),
        ("logistic_regression", "lr"),
        ("SVC", "svm"),
        ("lgbm", "lightgbm"),
        ("XGB", "xgboost"),
    ],  # fmt: skip
)
def test_algorithm_names_in_any_case(given, expected):
    assert normalise_algorithm(given) == expected


def test_unknown_algorithm_is_refused():
    with pytest.raises(PipelineError, match="expected one of lr, svm, lightgbm, xgboost"):
        normalise_algorithm("randomforest")


def features_and_label(task):
    frame = harmonise_dtypes(mixed_frame(120, task), "label")
    return frame.drop(columns=["label"]), frame["label"]


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_fits_and_predicts_raw_rows(algorithm, task):
    x, y = features_and_label(task)
    model = build_pipeline(algorithm, task, {}, split_feature_columns(x), seed=1).fit(x, y)
    unseen = x.head(2).copy()
    unseen.loc[:, "colour"] = ["purple", None]
    unseen.loc[:, "x1"] = np.nan
    predictions = model.predict(unseen)
    assert len(predictions) == 2
    if task != "regression":
        assert set(predictions) <= set(y)
        assert set(model.classes_) == set(y)
    metrics = evaluate_model(model, x, y, task)
    assert PRIMARY_METRIC[task] in metrics


def test_fixed_hyperparameters_reach_the_estimator():
    x, y = features_and_label("binary")
    model = build_pipeline("lightgbm", "binary", {"n_estimators": 7}, split_feature_columns(x), seed=1).fit(x, y)
    effective = effective_hyperparameters(model, "binary", "lightgbm")
    assert effective["n_estimators"] == 7 and effective["stopping_rounds"] == 30


def test_hyperparameters_checked_against_the_algorithm():
    check_hyperparameters({"C": 0.5}, "lr", "binary")
    with pytest.raises(PipelineError, match="unknown hyperparameter 'alpha' for algorithm 'lr'"):
        check_hyperparameters({"alpha": 1.0}, "lr", "binary")
    check_hyperparameters({"alpha": 1.0}, "lr", "regression")


def test_small_grid_is_exhaustive_and_large_one_randomised():
    x, y = features_and_label("binary")
    pipeline = build_pipeline("lr", "binary", {}, split_feature_columns(x), seed=1)
    search = build_search(pipeline, {"C": [0.1, 1.0]}, "binary", "lr", cv=3, seed=1)
    assert type(search).__name__ == "GridSearchCV"
    search.fit(x, y)
    table = search_results_table(search)
    assert list(table["C"]) and {"mean_test_score", "std_test_score"} <= set(table.columns)
    assert len(table) == 2
    large = build_search(pipeline, {"C": list(np.linspace(0.1, 2, 30))}, "binary", "lr", cv=3, seed=1)
    assert type(large).__name__ == "RandomizedSearchCV"
    with pytest.raises(PipelineError, match="at least 2 folds"):
        build_search(pipeline, {"C": [1, 2]}, "binary", "lr", cv=1, seed=1)


def test_feature_columns_split_by_kind():
    x, _ = features_and_label("binary")
    columns = split_feature_columns(x)
    assert set(columns.categorical) == {"colour", "member"}
    assert "x1" in columns.numeric


def test_string_labels_round_trip_through_xgboost():
    x, y = features_and_label("binary")
    model = build_pipeline("xgboost", "binary", {"n_estimators": 5}, split_feature_columns(x), seed=1).fit(x, y)
    assert set(pd.unique(model.predict(x))) <= {"good", "bad"}


def test_boosters_stop_early_on_a_held_out_share():
    from sklearn.datasets import make_classification

    features, label = make_classification(n_samples=1000, n_features=8, flip_y=0.3, random_state=0)
    big_x, big_y = pd.DataFrame(features, columns=[f"f{i}" for i in range(8)]), pd.Series(label)
    columns = split_feature_columns(big_x)
    for algorithm in ("lightgbm", "xgboost"):
        model = build_pipeline(algorithm, "binary", {}, columns, seed=1).fit(big_x, big_y)
        booster = model.named_steps["model"].estimator_.estimator_
        best = booster.best_iteration_ if algorithm == "lightgbm" else booster.best_iteration
        assert 0 < best < 500, algorithm


def test_imbalanced_classes_are_reweighted():
    x, _ = features_and_label("binary")
    label = pd.Series(["rare"] * 10 + ["common"] * (len(x) - 10))
    columns = split_feature_columns(x)
    assert data_dependent_defaults("lr", "binary", label, columns)["class_weight"] == "balanced"
    xgb = data_dependent_defaults("xgboost", "binary", label, columns)
    assert xgb["scale_pos_weight"] == pytest.approx((len(x) - 10) / 10)
    assert xgb["feature_types"][-2:] == ["c", "c"]
    assert data_dependent_defaults("lr", "binary", pd.Series(["a", "b"] * 40), columns) == {}


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_boosters_use_their_histogram_methods(task):
    from tabular_pipeline.training.algorithms import base_estimator

    # LightGBM's tree learner is histogram-based only; XGBoost's must be asked for.
    assert base_estimator("xgboost", task, seed=0).get_params()["tree_method"] == "hist"


@pytest.mark.parametrize("algorithm", ["lightgbm", "xgboost"])
def test_boosters_use_the_cores_they_are_given(algorithm):
    """Threads follow the machine and the search's parallel fits, never a fixed number."""
    from tabular_pipeline.training.algorithms import booster_threads, usable_cores

    cores = usable_cores()
    assert booster_threads() == cores and booster_threads(cores + 5) == 1
    assert booster_threads(2) == max(1, cores // 2)
    x = mixed_frame(40).drop(columns=["label"])
    pipeline = build_pipeline(algorithm, "binary", {}, split_feature_columns(x), seed=1, threads=7)
    assert effective_hyperparameters(pipeline, "binary", algorithm)["n_jobs"] == 7
    pinned = build_pipeline(algorithm, "binary", {"n_jobs": 3}, split_feature_columns(x), seed=1, threads=7)
    assert effective_hyperparameters(pinned, "binary", algorithm)["n_jobs"] == 3, "a user's n_jobs wins"


def test_permutation_importance_predicts_a_bounded_number_of_rows():
    """Its cost is rows x repeats x columns predictions: the sample is sized to a budget, so a wide
    table gets fewer rows (never under the floor) and a narrow one no more than the ceiling. The
    rows counted here are the ones the model was actually asked to predict."""
    from sklearn.base import BaseEstimator, RegressorMixin

    from tabular_pipeline.evaluation.importance import (
        IMPORTANCE_MAX_ROWS,
        IMPORTANCE_MIN_ROWS,
        IMPORTANCE_PREDICTED_ROWS,
        IMPORTANCE_REPEATS,
        importance_rows,
        permutation_importance_table,
    )

    class CountingRegressor(RegressorMixin, BaseEstimator):
        def fit(self, _features, _label):
            self.predicted_rows_ = 0
            return self

        def predict(self, features):
            self.predicted_rows_ += len(features)
            return features["x0"].to_numpy()

    assert importance_rows(60_000, 5) == IMPORTANCE_MAX_ROWS
    assert importance_rows(60_000, 400) == IMPORTANCE_MIN_ROWS
    assert importance_rows(300, 5) == 300
    columns = 40
    rows = importance_rows(60_000, columns)
    assert IMPORTANCE_MIN_ROWS < rows < IMPORTANCE_MAX_ROWS

    generator = np.random.default_rng(0)
    features = pd.DataFrame(generator.normal(size=(5_000, columns)), columns=[f"x{i}" for i in range(columns)])
    model = CountingRegressor().fit(features, None)
    table = permutation_importance_table(model, features, features["x0"] * 2, "neg_root_mean_squared_error", 0)
    # One baseline pass, then every column shuffled `IMPORTANCE_REPEATS` times.
    assert model.predicted_rows_ == rows * (1 + IMPORTANCE_REPEATS * columns)
    assert model.predicted_rows_ <= IMPORTANCE_PREDICTED_ROWS + rows
    assert table.loc[0, "feature"] == "x0" and (table["importance_mean"].iloc[1:] == 0).all()


@pytest.mark.parametrize(
    ("task", "algorithm"), [("binary", "lightgbm"), ("multiclass", "lr"), ("regression", "xgboost")]
)
def test_permutation_importance_equals_scikit_learns_with_few_predict_calls(task, algorithm, monkeypatch):
    """The stacked shuffles score what scikit-learn's `permutation_importance` scores, shuffle for
    shuffle, recomputed by scikit-learn itself; and they are predicted in a few calls, not one per
    column and shuffle (that fixed cost per call was most of the importance's time)."""
    from sklearn.inspection import permutation_importance

    from tabular_pipeline.evaluation import importance
    from tabular_pipeline.evaluation.metrics import scoring_for_task

    frame = harmonise_dtypes(mixed_frame(400, task, seed=5), "label")
    x, y = frame.drop(columns=["label"]), frame["label"]
    model = build_pipeline(algorithm, task, {}, split_feature_columns(x), seed=1).fit(x, y)
    test = harmonise_dtypes(mixed_frame(300, task, seed=6), "label")
    features, label = test.drop(columns=["label"]), test["label"]
    rows = importance.importance_rows(len(features), features.shape[1])
    # Four copies a call: a column's three shuffles fall across two calls, and the last call is partial.
    monkeypatch.setattr(importance, "CELLS_PER_CALL", 4 * rows * features.shape[1])

    method = "predict_proba" if task == "binary" else "predict"
    calls = []
    original = getattr(type(model), method)
    monkeypatch.setattr(type(model), method, lambda self, rows: calls.append(len(rows)) or original(self, rows))
    table = importance.permutation_importance_table(model, features, label, scoring_for_task(task), seed=7)
    monkeypatch.undo()

    copies = importance.IMPORTANCE_REPEATS * features.shape[1]
    assert calls[0] == rows and sum(calls[1:]) == rows * copies  # the baseline, then every shuffled copy
    assert len(calls) == 1 + -(-copies // 4) and copies % 4 and calls[-1] == (copies % 4) * rows
    sample = features.sample(n=rows, random_state=7)
    expected = permutation_importance(
        model, sample, label.loc[sample.index], scoring=scoring_for_task(task),
        n_repeats=importance.IMPORTANCE_REPEATS, random_state=7,
    )  # fmt: skip
    by_feature = table.set_index("feature").loc[list(features.columns)]
    np.testing.assert_allclose(by_feature["importance_mean"], expected.importances_mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(by_feature["importance_std"], expected.importances_std, rtol=0, atol=1e-12)
    assert (by_feature["importance_mean"] != 0).any()


def test_permutation_importance_of_a_one_class_sample_raises_value_error():
    from tabular_pipeline.evaluation.importance import permutation_importance_table

    x, y = features_and_label("binary")
    model = build_pipeline("lr", "binary", {}, split_feature_columns(x), seed=1).fit(x, y)
    one_class = y == y.iloc[0]
    with pytest.raises(ValueError, match="ROC AUC needs both classes, and the 6. sampled test rows hold one"):
        permutation_importance_table(model, x[one_class], y[one_class], "roc_auc", 0)


def test_permutation_importance_calls_stay_bounded_on_wide_tables_and_rows_match_by_position():
    """A call holds at most `CELLS_PER_CALL` raw cells, or one copy where a copy is wider; and the
    sample is taken by position, so an index with repeated labels still scores row against row."""
    from sklearn.base import BaseEstimator, RegressorMixin

    from tabular_pipeline.evaluation import importance

    class WidthRecordingRegressor(RegressorMixin, BaseEstimator):
        def fit(self, _features, _label):
            self.cells_ = []
            return self

        def predict(self, features):
            self.cells_.append(features.size)
            return features["x0"].to_numpy() + features["x1"].to_numpy()

    generator = np.random.default_rng(1)
    for columns in (30, 600):
        features = pd.DataFrame(generator.normal(size=(800, columns)), columns=[f"x{i}" for i in range(columns)])
        model = WidthRecordingRegressor().fit(features, None)
        label = features["x0"] + features["x1"]
        table = importance.permutation_importance_table(model, features, label, "neg_root_mean_squared_error", 0)
        rows = importance.importance_rows(len(features), columns)
        assert max(model.cells_[1:]) <= max(importance.CELLS_PER_CALL, rows * columns)
        assert sum(model.cells_[1:]) == rows * columns * importance.IMPORTANCE_REPEATS * columns
        assert set(table["feature"].head(2)) == {"x0", "x1"} and (table["importance_mean"].iloc[2:] == 0).all()

    repeated = features.set_axis([0, 1] * (len(features) // 2))  # two labels, each on 400 rows
    by_position = importance.permutation_importance_table(model, repeated, label.set_axis(repeated.index),
                                                          "neg_root_mean_squared_error", 0)  # fmt: skip
    pd.testing.assert_frame_equal(by_position, table)
