"""Unit tests of the AutoGluon settings (the allowlist and the refused presets), and of a tiny real
fit: what the step records about it and the scikit-learn view that is evaluated and served."""

import numpy as np
import pytest
from fixtures import mixed_frame

from tabular_pipeline.data.splits import harmonise_dtypes
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.orchestration.pipeline_inputs import check_training_choice
from tabular_pipeline.training.automl import check_tool
from tabular_pipeline.training.automl.autogluon_search import (
    PRESETS,
    UNAVAILABLE_MODEL_TYPES,
    autogluon_settings,
    check_autogluon_params,
)

# The fit below has a 20 s budget; nothing here may run long.
pytestmark = pytest.mark.timeout(180)


def test_the_tool_is_known_in_any_case():
    assert check_tool("AutoGluon") == "autogluon"


def test_defaults_and_the_budget():
    settings = autogluon_settings({}, 45, "binary")
    assert settings == {
        "presets": "medium_quality",
        "eval_metric": "roc_auc",
        "time_limit": 45.0,
        "excluded_model_types": [],
    }, "bagging and stacking are left to the preset unless set"
    assert autogluon_settings({}, 45, "multiclass")["eval_metric"] == "f1_macro"
    assert autogluon_settings({}, 45, "regression")["eval_metric"] == "root_mean_squared_error"
    chosen = autogluon_settings(
        {
            "presets": "good_quality",
            "eval_metric": "log_loss",
            "excluded_model_types": ["CAT", "KNN"],
            "num_bag_folds": 5,
            "num_stack_levels": 1,
            "time_limit": 30,
        },
        60,
        "binary",
    )
    assert chosen["time_limit"] == 30.0 and chosen["excluded_model_types"] == ["CAT", "KNN"]
    assert (chosen["num_bag_folds"], chosen["num_stack_levels"], chosen["presets"]) == (5, 1, "good_quality")


@pytest.mark.parametrize(
    "preset", ["extreme_quality", "extreme", "extreme_quality_v150", "experimental_quality_v120", "noncommercial"]
)
def test_presets_that_need_pytorch_or_downloaded_weights_are_refused_in_one_line(preset):
    with pytest.raises(PipelineError) as raised:
        check_autogluon_params({"presets": preset})
    message = str(raised.value)
    assert "\n" not in message and "PyTorch" in message and "downloaded" in message
    assert message.endswith(f"expected one of {', '.join(PRESETS)}")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hyperparameters": {"GBM": {}}}, "unknown hyperparameter 'hyperparameters' for algorithm 'autogluon'"),
        (
            {"time_budget": 30},
            "unknown hyperparameter 'time_budget' for algorithm 'autogluon'; expected one of: .*time_limit",
        ),
        ({"presets": "fast"}, "presets is 'fast'; expected one of medium_quality, good_quality"),
        ({"excluded_model_types": ["NN_TORCH"]}, r"excluded_model_types holds \['NN_TORCH'\]; expected model types"),
        ({"excluded_model_types": ["GBM", "CAT", "XGB", "RF", "XT", "KNN", "LR"]}, "excludes every model type"),
        ({"num_bag_folds": 1}, "num_bag_folds is 1; expected 0"),
        ({"num_bag_folds": [2, 3]}, "setting 'num_bag_folds' for autogluon is a list; expected one value"),
        ({"num_stack_levels": 1}, "without bagging; expected num_bag_folds of 2 or more"),
        ({"num_stack_levels": 1, "num_bag_folds": 0, "presets": "best_quality"}, "without bagging"),
        ({"num_bag_folds": "five"}, "must be int"),
        ({"eval_metric": "auc"}, "eval_metric is 'auc'; expected one of"),
        ({"time_limit": 0}, "time_limit is 0 s; expected between 1 and 86400"),
    ],
)
def test_bad_settings_fail_in_one_line(params, message):
    with pytest.raises(PipelineError, match=message) as raised:
        autogluon_settings(params, 60, "binary")
    assert "\n" not in str(raised.value)


def test_a_preset_that_bags_may_stack_and_an_explicit_zero_turns_bagging_off():
    stacked = autogluon_settings({"presets": "good_quality", "num_stack_levels": 1}, 60, "binary")
    assert stacked["num_stack_levels"] == 1 and "num_bag_folds" not in stacked
    assert autogluon_settings({"num_bag_folds": 0}, 60, "binary")["num_bag_folds"] == 0


def test_a_metric_of_another_task_is_refused():
    with pytest.raises(PipelineError, match="eval_metric 'r2' does not fit a binary task"):
        autogluon_settings({"eval_metric": "r2"}, 60, "binary")


def test_main_checks_autogluon_settings_before_any_step_runs():
    options = {"tool": "AutoGluon", "time_budget": 60}
    assert check_training_choice(options, {"presets": "best_quality"}, {}, set()) == "train_automl"
    with pytest.raises(PipelineError, match="presets 'extreme_quality' needs PyTorch"):
        check_training_choice(options, {"presets": "extreme_quality"}, {}, set())
    with pytest.raises(PipelineError, match="search_params is not used by the AutoML tool autogluon"):
        check_training_choice(options, {}, {"n_estimators": [10, 20]}, set())


@pytest.fixture(scope="module")
def tiny_fit(tmp_path_factory):
    """A real AutoGluon fit on 160 rows with LightGBM and random forests only (a few seconds)."""
    from tabular_pipeline.serving.autogluon import quiet_gpu_check
    from tabular_pipeline.training.automl.autogluon_search import run_search

    quiet_gpu_check()
    frame = harmonise_dtypes(mixed_frame(160, "binary", seed=3), "label").drop(columns=["customer_id", "constant"])
    settings = autogluon_settings({"excluded_model_types": ["CAT", "XGB", "XT", "KNN", "LR"]}, 20, "binary")
    predictor, outcome = run_search(frame, "label", "binary", settings, tmp_path_factory.mktemp("autogluon"))
    return frame, predictor, outcome


def test_the_fit_records_its_leaderboard_ensemble_and_libraries(tiny_fit):
    _, predictor, outcome = tiny_fit
    board = outcome.leaderboard
    assert {"model", "score_val", "fit_time"} <= set(board.columns) and outcome.best_model in set(board["model"])
    assert set(board["model"]) & {"LightGBM", "RandomForestGini"}, "the runnable model types were trained"
    assert not any(name.startswith(("NeuralNet", "CatBoost", "XGBoost")) for name in board["model"])
    assert outcome.ensemble and abs(sum(outcome.ensemble.values()) - 1) < 1e-6
    assert outcome.libraries in (["lightgbm"], []), "only LightGBM imports a library of its own here"
    assert (outcome.predictor_dir / "predictor.pkl").is_file()
    assert predictor.path.rstrip("/") == str(outcome.predictor_dir)


def test_the_scikit_learn_view_answers_in_original_labels_with_probabilities_that_sum_to_one(tiny_fit):
    from tabular_pipeline.serving.autogluon import AutoGluonClassifier, as_estimator
    from tabular_pipeline.serving.model import probability_frame

    frame, predictor, _ = tiny_fit
    estimator = as_estimator(predictor)
    assert isinstance(estimator, AutoGluonClassifier) and list(estimator.classes_) == ["bad", "good"]
    rows = frame.drop(columns=["label"]).head(3).copy()
    rows.loc[rows.index[0], "x1"], rows.loc[rows.index[1], "colour"] = np.nan, "ultraviolet"
    answer = probability_frame(estimator, rows)
    assert list(answer.columns) == ["prediction", "probability_bad", "probability_good"]
    assert set(answer["prediction"]) <= {"good", "bad"}
    np.testing.assert_allclose(answer[["probability_bad", "probability_good"]].sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (answer["prediction"] == np.where(answer["probability_good"] > 0.5, "good", "bad")).all()


def test_the_pytorch_models_are_always_excluded():
    assert {"NN_TORCH", "FASTAI", "TABPFN-3", "MITRA"} <= set(UNAVAILABLE_MODEL_TYPES)
