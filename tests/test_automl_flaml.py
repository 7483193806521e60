"""Unit tests of the FLAML settings and the pipeline around its best estimator."""

import numpy as np
import pytest
from fixtures import mixed_frame

from tabular_pipeline.data.splits import harmonise_dtypes
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.training.automl import check_tool
from tabular_pipeline.training.automl.flaml_search import assemble_pipeline, flaml_settings, run_search, trial_history
from tabular_pipeline.training.pipelines import build_preprocessor, split_feature_columns


def test_tools_in_any_case():
    assert check_tool("FLAML") == "flaml"
    with pytest.raises(PipelineError, match="expected flaml, autogluon or autosklearn"):
        check_tool("h2o")


def test_settings_from_dolphinscheduler_params():
    settings = flaml_settings({"time_budget": 30, "estimator_list": ["lgbm"]}, 60, "binary", seed=1)
    assert settings["time_budget"] == 30.0 and settings["estimator_list"] == ["lgbm"]
    assert settings["metric"] == "roc_auc" and settings["task"] == "classification"
    assert flaml_settings({}, 45, "regression", seed=1)["metric"] == "rmse"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"estimator_list": ["catboost"]}, "expected learners among"),
        ({"time_budget": "soon"}, "must be float"),
        ({"time_budget": 0}, "expected between 1 and 86400"),
        ({"time_budget": [10, 20]}, "setting 'time_budget' for flaml is a list; expected one value"),
        ({"time_budget": None}, "setting 'time_budget' for flaml is None; expected a value like the default 60.0"),
        ({"ensemble": True}, "unknown hyperparameter 'ensemble' for algorithm 'flaml'"),
    ],
)
def test_bad_settings_fail_clearly(params, message):
    with pytest.raises(PipelineError, match=message):
        flaml_settings(params, 60, "binary", seed=1)


def test_search_result_serves_raw_rows_with_original_labels(tmp_path):
    from sklearn.preprocessing import LabelEncoder

    frame = harmonise_dtypes(mixed_frame(200, "binary"), "label")
    features, label = frame.drop(columns=["label"]), frame["label"]
    preprocessor = build_preprocessor("lightgbm", split_feature_columns(features)).fit(features)
    encoder = LabelEncoder().fit(label)
    settings = flaml_settings({"time_budget": 3, "estimator_list": ["lgbm"]}, 60, "binary", seed=1)
    automl = run_search(preprocessor.transform(features), encoder.transform(label), settings, tmp_path / "flaml.log")
    history = trial_history(tmp_path / "flaml.log")
    assert len(history) >= 1 and {"learner", "validation_loss", "config"} <= set(history.columns)
    model = assemble_pipeline(preprocessor, automl.model.estimator, encoder, "binary")
    rows = features.head(2).copy()
    rows.loc[0, "x1"], rows.loc[1, "colour"] = np.nan, "ultraviolet"
    assert set(model.predict(rows)) <= {"good", "bad"}
    assert model.predict_proba(rows).shape == (2, 2)


CHILDREN_AFTER_IMPORT = """
import sys, time, psutil
{import_line}
time.sleep(2)
children = psutil.Process().children(recursive=True)
print("children:", sorted(child.name() for child in children))
for child in children:  # a JVM, if the adapter ever started one: never leave it behind
    child.kill()
"""


def test_importing_flaml_through_the_adapter_starts_no_spark_jvm():
    """A plain `import flaml` starts a Spark JVM when pyspark is installed (18 to 20 s and about
    315 MB, measured in bench/RESULTS.md; not repeated here, a JVM start costs half a minute of the
    suite); the adapter's import starts none."""
    import subprocess
    import sys

    from conftest import PROJECT_DIR

    import_line = "from tabular_pipeline.training.automl.flaml_search import flaml_automl_class; flaml_automl_class()"
    code = CHILDREN_AFTER_IMPORT.format(import_line=import_line)
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
    [line] = [line for line in done.stdout.splitlines() if line.startswith("children:")]
    assert line == "children: []", line
