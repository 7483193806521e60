"""Unit tests of the auto-sklearn settings, the hand-over to its worker, and the worker's model
class (its pandas-only parts run here too; the search itself runs in the end-to-end test)."""

import json
import sys

import numpy as np
import pandas as pd
import pytest

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.paths import AUTOSKLEARN_WORKER_DIR
from tabular_pipeline.training.automl import check_tool
from tabular_pipeline.training.automl.autosklearn_search import (
    autosklearn_settings,
    config_params,
    read_worker_result,
    served_output,
    write_worker_request,
)

sys.path.insert(0, str(AUTOSKLEARN_WORKER_DIR))
from autosklearn_model import as_model_frame, class_probability_frame, describe_columns  # noqa: E402


def test_tool_names_in_any_spelling():
    assert check_tool("FLAML") == "flaml"
    assert check_tool("auto-sklearn") == check_tool("AutoSklearn") == check_tool("auto_sklearn") == "autosklearn"
    with pytest.raises(PipelineError, match="tool 'h2o' is not supported; expected flaml, autogluon or autosklearn"):
        check_tool("h2o")


def test_settings_from_dolphinscheduler_params():
    settings = autosklearn_settings({"time_left_for_this_task": 60, "per_run_time_limit": 20}, 45, "binary", seed=3)
    assert settings["time_left_for_this_task"] == 60 and settings["per_run_time_limit"] == 20 and settings["seed"] == 3
    assert settings["resampling_strategy"] == "holdout" and "include" not in settings


def test_step_budget_applies_unless_params_set_one():
    settings = autosklearn_settings({}, 40.0, "regression", seed=1)
    assert settings["time_left_for_this_task"] == 40 and settings["per_run_time_limit"] == 10


def test_include_estimators_become_the_task_specific_include():
    assert autosklearn_settings({"include_estimators": ["random_forest"]}, 30, "binary", 1)["include"] == {
        "classifier": ["random_forest"]
    }
    assert autosklearn_settings({"include_estimators": "ard_regression"}, 30, "regression", 1)["include"] == {
        "regressor": ["ard_regression"]
    }
    with pytest.raises(
        PipelineError, match="include_estimators holds \\['ard_regression'\\]; expected names among adaboost"
    ):
        autosklearn_settings({"include_estimators": ["ard_regression"]}, 30, "multiclass", 1)


@pytest.mark.parametrize(
    ("params", "budget", "message"),
    [
        ({}, 10, "the auto-sklearn budget is 10 s; expected between 30 and 86400 seconds"),
        ({"time_left_for_this_task": 20}, 60, "the auto-sklearn budget is 20 s"),
        ({"per_run_time_limit": 90}, 60, "per_run_time_limit is 90 s; expected between 1 and the budget of 60 s"),
        ({"time_left_for_this_task": "long"}, 60, "must be int"),
        ({"ensemble_size": 3}, 60, "unknown hyperparameter 'ensemble_size' for algorithm 'autosklearn'"),
        ({"resampling_strategy": "bootstrap"}, 60, "resampling_strategy is 'bootstrap'; expected one of holdout, cv"),
        ({"memory_limit": 100}, 60, "memory_limit is 100 MB; expected at least 512 MB"),
        ({"per_run_time_limit": [10, 20]}, 60, "setting 'per_run_time_limit' for autosklearn is a list; expected one"),
        ({"memory_limit": None}, 60, "setting 'memory_limit' for autosklearn is None; expected a value"),
        ({"time_left_for_this_task": None}, 60, "setting 'time_left_for_this_task' for autosklearn is None"),
    ],
)
def test_bad_settings_fail_clearly(params, budget, message):
    with pytest.raises(PipelineError, match=message):
        autosklearn_settings(params, budget, "binary", seed=1)


def test_config_names_become_param_names():
    assert config_params({"classifier:__choice__": "sgd", "classifier:sgd:alpha": 0.1}) == {
        "classifier.choice": "sgd",
        "classifier.sgd.alpha": 0.1,
    }


def test_a_worker_that_stopped_early_is_reported_with_its_reason(tmp_path):
    write_worker_request(
        tmp_path,
        pd.DataFrame({"a": [1.0], "label": [0]}),
        pd.DataFrame({"a": [2.0], "label": [1]}),
        ["a"],
        {"task": "binary"},
    )
    assert json.loads((tmp_path / "request.json").read_text())["feature_columns"] == ["a"]
    with pytest.raises(PipelineError, match="the auto-sklearn search failed: it stopped before writing its results"):
        read_worker_result(tmp_path)
    (tmp_path / "error.txt").write_text("Time left for this task must be at least 30 seconds.")
    with pytest.raises(PipelineError, match="search failed: Time left for this task must be at least 30 seconds"):
        read_worker_result(tmp_path)


def test_served_output_is_values_for_regression_and_the_frame_otherwise():
    frame = pd.DataFrame({"prediction": [1.5, 2.5]})
    assert served_output(frame, "regression").tolist() == [1.5, 2.5]
    assert served_output(frame, "binary") is frame


def test_model_frame_keeps_training_columns_and_categories():
    training = pd.DataFrame({"x": [1.0, np.nan], "colour": pd.Categorical(["red", "blue"]), "unused": ["a", "b"]})
    description = describe_columns(training[["x", "colour"]], classes=["bad", "good"])
    assert description == {
        "columns": ["x", "colour"],
        "categorical": {"colour": ["blue", "red"]},
        "classes": ["bad", "good"],
    }
    rows = pd.DataFrame({"colour": ["red", "ultraviolet", None], "x": ["3", None, 2], "unused": [1, 2, 3]})
    frame = as_model_frame(rows, json.loads(json.dumps(description)))
    assert list(frame.columns) == ["x", "colour"]
    assert frame["x"].dtype == "float64" and np.isnan(frame["x"][1])
    assert list(frame["colour"].cat.categories) == ["blue", "red"] and frame["colour"].isna().tolist() == [
        False,
        True,
        True,
    ]


def test_model_frame_names_missing_columns():
    with pytest.raises(ValueError, match="input is missing columns \\['x'\\]"):
        as_model_frame(pd.DataFrame({"y": [1]}), {"columns": ["x"], "categorical": {}, "classes": None})


def test_probability_frame_has_one_column_per_class():
    frame = class_probability_frame(np.array(["bad", "good"]), np.array([[0.9, 0.1], [0.2, 0.8]]), ["bad", "good"])
    assert list(frame.columns) == ["prediction", "probability_bad", "probability_good"]
