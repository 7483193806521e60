"""Unit tests of the AutoGluon settings (the allowlist and the refused presets), and of a tiny real
fit: what the step records about it and the scikit-learn view that is evaluated and served."""

import numpy as np
import pandas as pd
import pytest
from fixtures import mixed_frame

from tabular_pipeline.data.splits import harmonise_dtypes
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.orchestration.pipeline_inputs import check_training_choice
from tabular_pipeline.training.automl import check_tool
from tabular_pipeline.training.automl.autogluon_settings import (
    PRESETS,
    UNAVAILABLE_MODEL_TYPES,
    autogluon_settings,
    check_autogluon_params,
)

# The fits below have 10 s budgets; nothing here may run long.
pytestmark = pytest.mark.timeout(180)
# Training rows for settings whose bagging does not depend on them: 1 s of budget is enough to bag 100.
ROWS = 100


def test_the_tool_is_known_in_any_case():
    assert check_tool("AutoGluon") == "autogluon"


def test_defaults_and_the_budget():
    settings = autogluon_settings({}, 40, "binary", training_rows=ROWS)
    assert settings == {
        "presets": "medium_quality",
        "eval_metric": "roc_auc",
        "time_limit": 40.0,
        "excluded_model_types": [],
        "hyperparameters": "zeroshot",
        "num_bag_folds": 5,
        "num_stack_levels": 0,
        "refit_full": "best",
        "set_best_to_refit_full": True,
        "infer_limit": 0.05,
        "infer_limit_batch_size": 1,
        "search_time_limit": 34.0,
        "bag_min_budget": 1.0,
    }, "without a preset: the zeroshot portfolio, bagged, the best refit within the budget's last 15%"
    named = autogluon_settings({"presets": "medium_quality"}, 45, "binary", training_rows=ROWS)
    assert named == {
        "presets": "medium_quality",
        "eval_metric": "roc_auc",
        "time_limit": 45.0,
        "excluded_model_types": [],
    }, "a named preset is AutoGluon's own: bagging and stacking are left to it unless set"
    assert autogluon_settings({"time_limit": 100}, 60, "binary", training_rows=ROWS)["search_time_limit"] == 85.0
    unbagged = autogluon_settings({"num_bag_folds": 0}, 60, "binary", training_rows=ROWS)
    assert unbagged["num_bag_folds"] == 0, "the user's folds win"
    assert unbagged["refit_full"] is False and unbagged["search_time_limit"] == 54.0, "no refit: 10% held back"
    assert autogluon_settings({}, 45, "multiclass", training_rows=ROWS)["eval_metric"] == "f1_macro"
    assert autogluon_settings({}, 45, "regression", training_rows=ROWS)["eval_metric"] == "root_mean_squared_error"
    chosen = autogluon_settings(
        {
            "presets": "good_quality",
            "eval_metric": "log_loss",
            "excluded_model_types": ["CAT", "XT"],
            "num_bag_folds": 5,
            "num_stack_levels": 1,
            "time_limit": 30,
        },
        60,
        "binary",
        training_rows=ROWS,
    )
    assert chosen["time_limit"] == 30.0 and chosen["excluded_model_types"] == ["CAT", "XT"]
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
            "setting 'time_budget' is FLAML's name; expected time_limit, AutoGluon's name",
        ),
        ({"presets": "fast"}, "presets 'fast' is not a preset here; expected one of medium_quality, good_quality"),
        ({"excluded_model_types": ["NN_TOTCH"]}, r"excluded_model_types holds \['NN_TOTCH'\]; expected model types"),
        ({"excluded_model_types": ["GBM", "CAT", "XGB", "RF", "XT"]}, "excludes every model type"),
        ({"excluded_model_types": ["KNN"]}, "expected model types among GBM, CAT, XGB, RF, XT"),
        ({"num_bag_folds": 1}, "num_bag_folds is 1; expected 0"),
        ({"num_bag_folds": [2, 3]}, "setting 'num_bag_folds' for autogluon is a list; expected one value"),
        (
            {"num_stack_levels": 1, "presets": "medium_quality"},
            "without bagging; expected num_bag_folds of 2 or more",
        ),
        # An explicit 0 wins over any preset, so the message names num_bag_folds only.
        (
            {"num_stack_levels": 1, "num_bag_folds": 0},
            "num_bag_folds=0 turns bagging off; expected num_bag_folds of 2 or more to stack$",
        ),
        (
            {"num_stack_levels": 1, "num_bag_folds": 0, "presets": "best_quality"},
            "num_bag_folds=0 turns bagging off; expected num_bag_folds of 2 or more to stack$",
        ),
        ({"num_bag_folds": None}, "setting 'num_bag_folds' for autogluon is None; expected a value"),
        ({"time_limit": None}, "setting 'time_limit' for autogluon is None"),
        ({"excluded_model_types": 5}, r"excluded_model_types holds \[5\]; expected model types among"),
        ({"excluded_model_types": True}, r"excluded_model_types holds \[True\]"),
        ({"num_bag_folds": "five"}, "must be int"),
        ({"eval_metric": "auc"}, "eval_metric 'auc' is not a metric here; expected one of"),
        ({"time_limit": 0}, "time_limit is 0 s; expected between 1 and 86400"),
    ],
)
def test_bad_settings_fail_in_one_line(params, message):
    with pytest.raises(PipelineError, match=message) as raised:
        autogluon_settings(params, 60, "binary", training_rows=ROWS)
    assert "\n" not in str(raised.value)


def test_the_default_bags_only_with_ten_ms_of_budget_for_each_training_row():
    """15,000 training rows: a holdout at 60 s (no refit, 54 s to search), bagging from
    150 s; the user's folds, stacking (which needs bagging) or a named preset decide instead, and then
    no `bag_min_budget` is logged."""

    def settings(params, budget, rows=15_000):
        return autogluon_settings(params, budget, "multiclass", training_rows=rows)

    small = settings({}, 60)
    assert (small["num_bag_folds"], small["refit_full"], small["set_best_to_refit_full"]) == (0, False, False)
    assert (small["search_time_limit"], small["bag_min_budget"]) == (54.0, 150.0)
    assert settings({}, 149.9)["num_bag_folds"] == 0
    at_the_edge = settings({}, 150)
    assert (at_the_edge["num_bag_folds"], at_the_edge["refit_full"]) == (5, "best")
    assert at_the_edge["search_time_limit"] == 127.5, "85% to search when a refit follows"
    assert settings({}, 60, rows=426)["num_bag_folds"] == 5, "a small table is bagged at 60 s"
    assert settings({"time_limit": 200}, 60)["num_bag_folds"] == 5, "params' time_limit is the budget judged"
    assert settings({"time_limit": 100}, 300)["num_bag_folds"] == 0
    assert settings({"num_stack_levels": 0}, 60)["num_bag_folds"] == 0, "no stacking asked: the rule decides"
    users_folds = settings({"num_bag_folds": 3}, 60)
    assert users_folds["num_bag_folds"] == 3 and "bag_min_budget" not in users_folds
    users_zero = settings({"num_bag_folds": 0}, 600)
    assert (users_zero["num_bag_folds"], users_zero["refit_full"]) == (0, False) and "bag_min_budget" not in users_zero
    stacked = settings({"num_stack_levels": 1}, 60)
    assert (stacked["num_bag_folds"], stacked["num_stack_levels"], stacked["refit_full"]) == (5, 1, "best")
    assert "bag_min_budget" not in stacked
    named = settings({"presets": "good_quality"}, 60)
    assert "num_bag_folds" not in named and "bag_min_budget" not in named, "a named preset decides its bagging"


@pytest.mark.parametrize(
    ("kind", "budget", "search_s"),
    [
        ("holdout", 60, 54.0), ("holdout", 61, 54.9), ("holdout", 300, 270.0), ("holdout", 20, 14.0),
        ("holdout", 12, 6.0), ("holdout", 8, 4.0), ("holdout", 1, 0.5),
        ("bagged", 300, 255.0), ("bagged", 60, 51.0), ("bagged", 40, 34.0), ("bagged", 20, 14.0), ("bagged", 8, 4.0),
    ],
)  # fmt: skip
def test_the_search_leaves_a_share_of_the_budget_and_at_least_six_seconds(kind, budget, search_s):
    """15% after a bagged search (for the refit), 10% after a holdout one; at least 6 s (AutoGluon's
    overrun, the deployment copy and logging took 4 to 6 s after a 60 s search), at most half."""
    params = {} if kind == "bagged" else {"num_bag_folds": 0}
    settings = autogluon_settings(params, budget, "binary", training_rows=ROWS)
    assert (settings["num_bag_folds"], settings["search_time_limit"]) == (5 if kind == "bagged" else 0, search_s)


def test_the_default_passes_its_portfolio_refit_and_inference_limit_and_a_named_preset_does_not():
    from tabular_pipeline.training.automl.autogluon_settings import default_arguments

    assert default_arguments(autogluon_settings({}, 60, "binary", training_rows=ROWS)) == {
        "hyperparameters": "zeroshot",
        "refit_full": "best",
        "set_best_to_refit_full": True,
        "infer_limit": 0.05,
        "infer_limit_batch_size": 1,
    }
    unbagged = default_arguments(autogluon_settings({"num_bag_folds": 0}, 60, "binary", training_rows=ROWS))
    assert (unbagged["refit_full"], unbagged["set_best_to_refit_full"]) == (False, False)
    assert default_arguments(autogluon_settings({"presets": "good_quality"}, 60, "binary", training_rows=ROWS)) == {}
    stacked = autogluon_settings({"num_stack_levels": 1}, 60, "binary", training_rows=ROWS)
    assert (stacked["num_bag_folds"], stacked["num_stack_levels"]) == (5, 1), "the default bags, so it may stack"


@pytest.mark.parametrize(
    ("params", "rows", "budget", "search_s"),
    [
        ({}, 40, 60, 51.0),
        ({"num_bag_folds": 0}, 40, 60, 54.0),
        ({}, 15_000, 20, 14.0),  # 20 s for 15,000 training rows: under 10 ms a row, so a holdout
        ({"presets": "good_quality"}, 40, 60, 60.0),
        ({"presets": "good_quality", "num_bag_folds": 0}, 40, 60, 60.0),  # the preset's own share and refit
    ],
)
def test_the_search_gets_its_share_of_the_budget(params, rows, budget, search_s, tmp_path, monkeypatch):
    """What `fit` is given: the search's share by default (`search_limit`: less without a refit after it), the
    whole budget with a named preset (a recorded call, stopped before anything trains)."""
    from autogluon.tabular import TabularPredictor

    from tabular_pipeline.training.automl.autogluon_search import run_search

    calls = []

    class Stopped(Exception):
        """Raised by the recorded fit: nothing after it runs."""

    def recorded_fit(_predictor, _train, **arguments):
        calls.append(arguments)
        raise Stopped

    monkeypatch.setattr(TabularPredictor, "fit", recorded_fit)
    frame = harmonise_dtypes(mixed_frame(40, "binary", seed=6), "label")
    with pytest.raises(Stopped):
        run_search(frame, "label", "binary", autogluon_settings(params, budget, "binary", training_rows=rows), tmp_path)
    [arguments] = calls
    assert arguments["time_limit"] == search_s
    assert ("hyperparameters" in arguments) == ("presets" not in params)
    if params == {"num_bag_folds": 0} or rows == 15_000:
        assert (arguments["refit_full"], arguments["set_best_to_refit_full"]) == (False, False)
        assert (arguments["num_bag_folds"], arguments["num_stack_levels"], arguments["dynamic_stacking"]) == (
            0, 0, False,
        )  # fmt: skip
    elif not params:
        assert (arguments["refit_full"], arguments["num_bag_folds"], arguments["num_stack_levels"]) == ("best", 5, 0)
    elif params.get("num_bag_folds") == 0:  # a named preset: its own refit and portfolio, no folds, no stacking
        assert "refit_full" not in arguments and "hyperparameters" not in arguments
        assert arguments["presets"] == "good_quality"
        assert (arguments["num_bag_folds"], arguments["num_stack_levels"], arguments["dynamic_stacking"]) == (
            0, 0, False,
        )  # fmt: skip


def test_a_model_passed_over_for_the_inference_limit_is_named():
    from tabular_pipeline.training.automl.autogluon_outcome import choice_warnings

    settings = autogluon_settings({}, 60, "binary", training_rows=ROWS)
    board = pd.DataFrame(
        {
            "model": ["WeightedEnsemble_L2", "CatBoost_BAG_L1", "LightGBM_BAG_L1", "LightGBM_BAG_L1_FULL"],
            "score_val": [0.95, 0.96, 0.93, np.nan],
        }
    )
    refit_sources = {"LightGBM_BAG_L1_FULL": "LightGBM_BAG_L1"}
    [slower] = choice_warnings(board, refit_sources, "LightGBM_BAG_L1_FULL", settings)
    assert slower == (
        "AutoGluon serves LightGBM_BAG_L1_FULL (validation score 0.9300), not CatBoost_BAG_L1 (0.9600), which "
        "answers one row slower than infer_limit=0.05 s"
    )
    best = {"CatBoost_BAG_L1_FULL": "CatBoost_BAG_L1"}
    assert choice_warnings(board, best, "CatBoost_BAG_L1_FULL", settings) == ()
    tied = board.assign(score_val=[0.96, 0.96, 0.93, np.nan])
    assert choice_warnings(tied, {}, "WeightedEnsemble_L2", settings) == (), "a tie is not a substitution"
    regression = board.assign(score_val=[-0.71, -0.70, -0.74, np.nan])  # AutoGluon's sign: higher is better
    [slower_rmse] = choice_warnings(regression, refit_sources, "LightGBM_BAG_L1_FULL", settings)
    assert "not CatBoost_BAG_L1 (-0.7000)" in slower_rmse
    named = autogluon_settings({"presets": "medium_quality"}, 60, "binary", training_rows=ROWS)
    assert choice_warnings(board, {}, "LightGBM_BAG_L1", named) == (), "a named preset sets no limit"


def test_a_preset_that_bags_may_stack_and_an_explicit_zero_turns_bagging_off():
    stacked = autogluon_settings({"presets": "good_quality", "num_stack_levels": 1}, 60, "binary", training_rows=ROWS)
    assert stacked["num_stack_levels"] == 1 and "num_bag_folds" not in stacked
    assert autogluon_settings({"num_bag_folds": 0}, 60, "binary", training_rows=ROWS)["num_bag_folds"] == 0


def test_values_from_a_param_file_are_not_repeated_in_errors():
    for params in ({"presets": "secret_quality"}, {"eval_metric": "secret"}, {"num_bag_folds": 99}):
        [name] = params
        with pytest.raises(PipelineError, match="from param_file") as raised:
            check_autogluon_params(params, unechoed={name})
        assert "secret" not in str(raised.value) and "99" not in str(raised.value)


def test_excluding_a_type_that_is_always_excluded_is_accepted():
    settings = autogluon_settings({"excluded_model_types": ["NN_TORCH", "CAT"]}, 60, "binary", training_rows=ROWS)
    assert settings["excluded_model_types"] == ["NN_TORCH", "CAT"]


def test_a_metric_of_another_task_is_refused():
    with pytest.raises(PipelineError, match="eval_metric 'r2' does not fit a binary task"):
        autogluon_settings({"eval_metric": "r2"}, 60, "binary", training_rows=ROWS)


def test_main_checks_autogluon_settings_before_any_step_runs():
    options = {"tool": "AutoGluon", "time_budget": 60}
    assert check_training_choice(options, {"presets": "best_quality"}, {}, set()) == "train_automl"
    with pytest.raises(PipelineError, match="presets 'extreme_quality' needs PyTorch"):
        check_training_choice(options, {"presets": "extreme_quality"}, {}, set())
    with pytest.raises(PipelineError, match="search_params is not used by the AutoML tool autogluon"):
        check_training_choice(options, {}, {"n_estimators": [10, 20]}, set())


@pytest.fixture(scope="module")
def tiny_fit(tmp_path_factory):
    """A real AutoGluon fit on 160 rows with LightGBM and random forests only (10 s budget)."""
    from tabular_pipeline.serving.autogluon import quiet_gpu_check
    from tabular_pipeline.training.automl.autogluon_search import run_search

    quiet_gpu_check()
    frame = harmonise_dtypes(mixed_frame(160, "binary", seed=3), "label").drop(columns=["customer_id", "constant"])
    settings = autogluon_settings(
        {"excluded_model_types": ["CAT", "XGB", "XT"]}, 10, "binary", training_rows=len(frame)
    )
    predictor, outcome = run_search(frame, "label", "binary", settings, tmp_path_factory.mktemp("autogluon"))
    return frame, predictor, outcome


def test_the_fit_records_its_leaderboard_ensemble_and_libraries(tiny_fit):
    _, predictor, outcome = tiny_fit
    board = outcome.leaderboard
    assert {"model", "score_val", "fit_time"} <= set(board.columns) and outcome.best_model in set(board["model"])
    assert board["model"].str.startswith(("LightGBM", "RandomForest")).any(), "a runnable model type was trained"
    assert not any(name.startswith(("NeuralNet", "CatBoost", "XGBoost")) for name in board["model"])
    assert outcome.ensemble and abs(sum(outcome.ensemble.values()) - 1) < 1e-6
    errors = outcome.failures[outcome.failures["exc_type"] != "TimeLimitExceeded"] if len(outcome.failures) else []
    assert not len(errors), errors.to_dict("records")  # no PyTorch model was tried (time-outs may happen)
    assert (outcome.bag_folds_used, outcome.stack_levels_used) == (5, 0), "the default bags and does not stack"
    assert outcome.best_model.endswith("_FULL"), "the best ensemble is refit on all rows"
    # Either outcome of infer_limit: no substitution, or one line naming the model actually served.
    assert all(line.startswith(f"AutoGluon serves {outcome.best_model} ") for line in outcome.warnings)
    assert board["model"].str.contains("_BAG_L1").any()
    assert 0.5 < outcome.best_validation_score <= 1
    keeps_lightgbm = any(name.startswith("LightGBM") for name in predictor.model_names())
    assert outcome.libraries == (["lightgbm"] if keeps_lightgbm else []), predictor.model_names()
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
    served = estimator.probability_frame(rows)  # what the served model answers
    pd.testing.assert_frame_equal(served, answer)
    assert list(answer.columns) == ["prediction", "probability_bad", "probability_good"]
    assert set(answer["prediction"]) <= {"good", "bad"}
    np.testing.assert_allclose(answer[["probability_bad", "probability_good"]].sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (answer["prediction"] == np.where(answer["probability_good"] > 0.5, "good", "bad")).all()


def test_the_allowed_presets_train_the_runnable_types_and_nothing_else_that_could_run_here():
    """Pinned against AutoGluon's own preset configurations: every model type an allowed preset
    trains is either runnable here or always excluded (PyTorch)."""
    from autogluon.tabular.configs.hyperparameter_configs import get_hyperparameter_config
    from autogluon.tabular.configs.presets_configs import tabular_presets_dict

    from tabular_pipeline.training.automl.autogluon_settings import BUDGET_DEFAULTS, RUNNABLE_MODEL_TYPES

    portfolios = {preset: tabular_presets_dict[preset].get("hyperparameters", "default") for preset in PRESETS}
    portfolios["the default"] = BUDGET_DEFAULTS["hyperparameters"]
    for preset, portfolio in portfolios.items():
        types = set(get_hyperparameter_config(portfolio))
        assert types - set(UNAVAILABLE_MODEL_TYPES) == set(RUNNABLE_MODEL_TYPES), preset


def test_a_fit_that_trains_no_model_fails_in_one_line(tmp_path):
    """Settings that leave AutoGluon nothing to train (validation refuses them; here they are built by
    hand) end in this step's one-line error, not AutoGluon's exception."""
    from tabular_pipeline.training.automl.autogluon_search import run_search
    from tabular_pipeline.training.automl.autogluon_settings import RUNNABLE_MODEL_TYPES

    frame = harmonise_dtypes(mixed_frame(120, "binary", seed=4), "label").drop(columns=["customer_id", "constant"])
    settings = {
        **autogluon_settings({}, 10, "binary", training_rows=ROWS),
        "excluded_model_types": list(RUNNABLE_MODEL_TYPES),
    }
    expected = r"AutoGluon trained no model within time_limit=10 s \(5 s of search\); expected"
    with pytest.raises(PipelineError, match=expected) as raised:
        run_search(frame, "label", "binary", settings, tmp_path)
    assert "\n" not in str(raised.value)


def test_served_probabilities_take_one_pass_of_the_ensemble(tiny_fit, monkeypatch):
    from tabular_pipeline.serving.autogluon import as_estimator

    frame, predictor, _ = tiny_fit

    def second_pass(*_args, **_kwargs):
        pytest.fail("the probabilities path ran the ensemble again through predict")

    monkeypatch.setattr(predictor, "predict", second_pass)
    answer = as_estimator(predictor).probability_frame(frame.drop(columns=["label"]).head(4))
    assert len(answer) == 4 and set(answer["prediction"]) <= {"good", "bad"}


def test_no_bagging_with_a_preset_that_bags_fits_and_scores_the_refit_model(tmp_path):
    """good_quality with num_bag_folds=0: stacking goes off with bagging (AutoGluon would refuse
    stacking without folds), and the refit-on-all-rows best model reports the score of the model it
    was refit from."""
    from tabular_pipeline.serving.autogluon import quiet_gpu_check
    from tabular_pipeline.training.automl.autogluon_search import run_search
    from tabular_pipeline.training.automl.autogluon_settings import stacking_arguments

    quiet_gpu_check()
    params = {"presets": "good_quality", "num_bag_folds": 0, "excluded_model_types": ["CAT", "XGB", "RF", "XT"]}
    settings = autogluon_settings(params, 15, "binary", training_rows=ROWS)
    assert stacking_arguments(settings) == {"num_bag_folds": 0, "num_stack_levels": 0, "dynamic_stacking": False}
    frame = harmonise_dtypes(mixed_frame(160, "binary", seed=5), "label").drop(columns=["customer_id", "constant"])
    _, outcome = run_search(frame, "label", "binary", settings, tmp_path)
    assert (outcome.bag_folds_used, outcome.stack_levels_used) == (0, 0)
    assert not outcome.leaderboard["model"].str.contains("_BAG_").any()
    assert outcome.best_model.endswith("_FULL") and 0.5 < outcome.best_validation_score <= 1


def test_validation_score_of_a_refit_model_is_its_source_s():
    from tabular_pipeline.training.automl.autogluon_outcome import validation_score

    board = pd.DataFrame({"model": ["WeightedEnsemble_L2", "WeightedEnsemble_L2_FULL"], "score_val": [0.9, np.nan]})
    refit_sources = {"WeightedEnsemble_L2_FULL": "WeightedEnsemble_L2"}
    assert validation_score(board, refit_sources, "WeightedEnsemble_L2_FULL") == 0.9
    assert validation_score(board, {}, "WeightedEnsemble_L2") == 0.9
    assert np.isnan(validation_score(board, {}, "Missing"))


def test_why_nothing_was_trained_is_named():
    from tabular_pipeline.training.automl.autogluon_outcome import no_model_message

    timed_out = pd.DataFrame({"model": ["LightGBM"], "exc_type": ["TimeLimitExceeded"], "exc_str": [""]})
    assert "expected a larger budget" in no_model_message(timed_out, 5)
    assert "expected a larger budget" in no_model_message(pd.DataFrame(), 5)
    broken = pd.DataFrame({"model": ["LightGBM"], "exc_type": ["ValueError"], "exc_str": ["bad input"]})
    assert no_model_message(broken, 5) == (
        "AutoGluon trained no model: LightGBM (ValueError: bad input); expected at least one model type to train on "
        "this table"
    )


def test_the_fit_line_says_bagged_or_holdout_and_why():
    from tabular_pipeline.training.automl.search_runs import describe_autogluon_fit

    def line(params, budget=60, rows=15_000):
        return describe_autogluon_fit(autogluon_settings(params, budget, "binary", training_rows=rows), "binary", rows)

    assert line({}) == (
        "binary for 60 s, the zeroshot portfolio on a holdout (bagging 15,000 training rows needs at least 150 s) "
        "for 54 s (metric roc_auc)"
    )
    assert line({}, budget=300) == (
        "binary for 300 s, the zeroshot portfolio bagged in 5 folds for 255 s, then a refit of the best on all rows "
        "(metric roc_auc)"
    )
    assert line({"num_bag_folds": 0}, budget=300) == (
        "binary for 300 s, the zeroshot portfolio on a holdout for 270 s (metric roc_auc)"
    ), "the user's 0, not the rule: no reason given"
    assert line({"presets": "good_quality"}) == "binary for 60 s, presets good_quality (metric roc_auc)"
    assert line({"presets": "good_quality", "num_bag_folds": 0}) == (
        "binary for 60 s, presets good_quality, num_bag_folds=0 (metric roc_auc)"
    )
    assert line({"num_stack_levels": 1}) == (
        "binary for 60 s, the zeroshot portfolio bagged in 5 folds, 1 stack level for 51 s, then a refit of the best "
        "on all rows (metric roc_auc)"
    ), "stacking asked for: bagged whatever the budget per row"


def test_a_small_budget_for_the_rows_is_really_fitted_on_a_holdout(tmp_path):
    """The default's holdout path, fitted for real: 10 s declared for 10,000 training rows (1 ms a row)
    on 160 rows, so no folds, no stacking and no refit, and the predictor answers."""
    from tabular_pipeline.serving.autogluon import quiet_gpu_check
    from tabular_pipeline.training.automl.autogluon_search import run_search

    quiet_gpu_check()
    frame = harmonise_dtypes(mixed_frame(160, "binary", seed=3), "label").drop(columns=["customer_id", "constant"])
    settings = autogluon_settings({"excluded_model_types": ["CAT", "XGB", "XT"]}, 10, "binary", training_rows=10_000)
    assert (settings["num_bag_folds"], settings["refit_full"], settings["search_time_limit"]) == (0, False, 5.0)
    predictor, outcome = run_search(frame, "label", "binary", settings, tmp_path)
    assert (outcome.bag_folds_used, outcome.stack_levels_used) == (0, 0)
    assert not outcome.best_model.endswith("_FULL") and "_BAG_" not in outcome.best_model, outcome.best_model
    assert len(predictor.predict(frame.drop(columns=["label"]).head(3))) == 3
