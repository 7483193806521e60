"""Unit tests of lineage records, metric comparison for `reproduce`, and run-to-run determinism of
every algorithm (same data, parameters and seed give identical metrics)."""

import json
from types import SimpleNamespace

import pytest
from fixtures import mixed_frame

from steps.reproduce import code_to_run
from tabular_pipeline.data.splits import harmonise_dtypes
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.evaluation.metrics import evaluate_model
from tabular_pipeline.registry.datasets import is_concurrent_dataset_insert
from tabular_pipeline.registry.lineage import (
    check_tolerance,
    compare_metrics,
    declared_parameters,
    is_clean_commit,
    lineage_tags,
    recorded_parameter,
)
from tabular_pipeline.training.algorithms import ALGORITHMS
from tabular_pipeline.training.pipelines import build_pipeline, data_dependent_defaults, split_feature_columns

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_clean_commits_are_told_from_dirty_trees():
    assert is_clean_commit(COMMIT)
    assert not is_clean_commit(COMMIT + "+dirty.abc") and not is_clean_commit("nogit.abc")


def test_code_to_run_checks_out_a_recorded_commit_unless_it_is_this_one():
    assert code_to_run(COMMIT, COMMIT) == (None, True)
    assert code_to_run(COMMIT, "f" * 40) == (COMMIT, True)
    assert code_to_run(COMMIT + "+dirty.abc", COMMIT) == (None, False)


def test_metrics_match_only_within_tolerance():
    match, lines = compare_metrics({"test_rmse": 1.0, "train_time": 5.0}, {"test_rmse": 1.0, "train_time": 9.0}, 0.0)
    assert match and lines == ["test_rmse: recorded 1.000000, rerun 1.000000 -> same"]
    match, lines = compare_metrics({"test_rmse": 1.0}, {"test_rmse": 1.01}, 0.001)
    assert not match and lines[0].endswith("DIFFERENT")
    assert compare_metrics({"test_rmse": 1.0}, {}, 1.0)[0] is False, "a missing metric is not a match"
    assert compare_metrics({}, {}, 0.0)[0] is False, "nothing to compare is not a match"


@pytest.mark.parametrize("tolerance", [-0.1, float("nan"), float("inf")])
def test_a_tolerance_must_be_a_finite_non_negative_number(tolerance):
    with pytest.raises(PipelineError, match="expected a number of at least 0"):
        check_tolerance(tolerance)
    assert check_tolerance(0.01) == 0.01


def test_recorded_parameters_are_unquoted_as_mlflow_logged_them():
    assert recorded_parameter("''") == ""
    assert recorded_parameter("lr") == "lr"
    assert (
        recorded_parameter("'time_budget=30;estimator_list=['\"'\"'lgbm'\"'\"']'")
        == "time_budget=30;estimator_list=['lgbm']"
    )


def test_declared_parameters_come_from_the_mlproject():
    mlproject = {"entry_points": {"train_basic": {"parameters": {"data_path": {}, "seed": {}}}}}
    assert declared_parameters(mlproject, "train_basic") == ["data_path", "seed"]
    assert declared_parameters(mlproject, "missing") == []


def test_lineage_tags_point_at_run_code_and_data():
    dataset = lambda name, digest, context: SimpleNamespace(  # noqa: E731 - a tiny stand-in
        dataset=SimpleNamespace(name=name, digest=digest),
        tags=[SimpleNamespace(key="mlflow.data.context", value=context)],
    )
    run = SimpleNamespace(
        info=SimpleNamespace(run_id="r1"),
        data=SimpleNamespace(
            tags={
                "pipeline.entry_point": "train_basic",
                "pipeline.code_version": COMMIT,
                "mlflow.source.git.commit": COMMIT,
                "pipeline.git_dirty": "false",
            },
            params={"data_path": "runs:/p1/processed"},
        ),
        inputs=SimpleNamespace(dataset_inputs=[dataset("train", "d1", "training"), dataset("test", "d2", "testing")]),
    )
    [(name, value)] = lineage_tags(run).items()
    assert name == "lineage" and json.loads(value) == {
        "training_run_id": "r1",
        "entry_point": "train_basic",
        "code_version": COMMIT,
        "git_commit": COMMIT,
        "git_dirty": "false",
        "data_uri": "runs:/p1/processed",
        "train_digest": "d1",
        "test_digest": "d2",
    }


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("task", ["binary", "regression"])
def test_same_data_parameters_and_seed_give_identical_metrics(algorithm, task):
    frame = harmonise_dtypes(mixed_frame(160, task, seed=3), "label")
    train, test = frame.iloc[:120], frame.iloc[120:]
    x, y = train.drop(columns=["label"]), train["label"]
    columns = split_feature_columns(x)

    def metrics_of_one_fit():
        pipeline = build_pipeline(
            algorithm, task, {}, columns, seed=7, defaults=data_dependent_defaults(algorithm, task, y, columns)
        )
        return evaluate_model(pipeline.fit(x, y), test.drop(columns=["label"]), test["label"], task)

    assert metrics_of_one_fit() == metrics_of_one_fit()


def test_sampled_schemas_equal_mlflows_own_inference():
    import numpy as np
    import pandas as pd
    from mlflow.types.utils import _infer_schema

    from tabular_pipeline.data.schemas import SCHEMA_SAMPLE_ROWS, frame_schema
    from tabular_pipeline.data.splits import harmonise_dtypes

    rows = SCHEMA_SAMPLE_ROWS + 500
    frame = harmonise_dtypes(mixed_frame(rows), "label")
    # Gaps only after the sample, and a text column that is empty in the whole sample.
    frame.loc[rows - 3, "x2"] = np.nan
    frame["late_text"] = pd.Series([np.nan] * (rows - 10) + ["a"] * 10, dtype=object)
    assert frame_schema(frame) == _infer_schema(frame)
    assert not frame_schema(frame).input_dict()["x2"].required


@pytest.mark.parametrize(
    "message",
    [
        'BAD_REQUEST: (psycopg.errors.UniqueViolation) duplicate key value violates unique constraint "dataset_pk"',
        "BAD_REQUEST: (sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, datasets.name, "
        "datasets.digest",
        "BAD_REQUEST: (pymysql.err.IntegrityError) (1062, \"Duplicate entry '1-train-abc' for key "
        "'datasets.PRIMARY'\")",
    ],
)
def test_a_concurrent_insert_of_the_same_dataset_is_recognised_on_every_store(message):
    from mlflow.exceptions import MlflowException

    assert is_concurrent_dataset_insert(MlflowException(message))


@pytest.mark.parametrize(
    "message",
    [
        'duplicate key value violates unique constraint "registered_model_pk"',
        "RESOURCE_DOES_NOT_EXIST: Run 'abc' not found",
        "INVALID_PARAMETER_VALUE: dataset name must be at most 500 characters",
    ],
)
def test_other_store_errors_are_not_taken_for_the_dataset_race(message):
    from mlflow.exceptions import MlflowException

    assert not is_concurrent_dataset_insert(MlflowException(message))
    assert not is_concurrent_dataset_insert(OSError(f"dataset {message}")), "only the store's own errors"
