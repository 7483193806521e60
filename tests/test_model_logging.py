"""Every algorithm and task, logged as an MLflow model to the session's real `mlflow server`,
answers raw rows that hold a missing value and an unseen category: loaded back through pyfunc, and
through the scoring server's own JSON request parsing (`mlflow.models.predict` with the local env
manager runs it in process). Real HTTP requests to `mlflow models serve` are sent in
test_e2e_model_quality and test_e2e_serving, for every task."""

import json
import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import mlflow_process_state_restored
from fixtures import mixed_frame

from tabular_pipeline.data.screening import screen_columns
from tabular_pipeline.data.splits import harmonise_dtypes
from tabular_pipeline.training.algorithms import ALGORITHMS
from tabular_pipeline.training.model_logging import log_pipeline_model
from tabular_pipeline.training.pipelines import (
    build_pipeline,
    data_dependent_defaults,
    fit_params_for,
    split_feature_columns,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server_experiment(tracking_uri):
    """The session's tracking server (a real `mlflow server` on loopback), in an experiment of its own."""
    with mlflow_process_state_restored():
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_experiment(f"model-logging-{uuid.uuid4().hex[:8]}")
        yield tracking_uri


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.usefixtures("server_experiment")
def test_logged_model_serves_raw_rows(algorithm, task, tmp_path):
    frame = harmonise_dtypes(mixed_frame(120, task), "label")
    features, label = frame.drop(columns=["label"]), frame["label"]
    kept, dropped = screen_columns(features)
    assert dropped == {
        "customer_id": "identifier-like (unique whole numbers in a column named like an id)",
        "constant": "constant",
    }
    columns = split_feature_columns(features[kept])
    defaults = data_dependent_defaults(algorithm, task, label, columns)
    model = build_pipeline(algorithm, task, {}, columns, seed=1, defaults=defaults).fit(
        features, label, **fit_params_for(algorithm, columns)
    )
    with mlflow.start_run():
        info = log_pipeline_model(model, features, algorithm)
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    rows = features.head(3).copy()
    rows.loc[0, "x1"] = np.nan
    rows.loc[1, "colour"] = "ultraviolet"
    predictions = loaded.predict(rows)
    assert len(predictions) == 3
    answer = tmp_path / "answer.json"
    mlflow.models.predict(info.model_uri, rows, content_type="json", output_path=str(answer), env_manager="local")
    served = json.loads(answer.read_text())["predictions"]
    assert served == pytest.approx(list(predictions)) if task == "regression" else served == list(predictions)
    if task == "regression":
        assert np.isfinite(np.asarray(predictions, dtype=float)).all()
        return
    assert set(predictions) <= set(label)
    with_proba = loaded.predict(rows, params={"return_probabilities": True})
    assert list(with_proba["prediction"]) == list(predictions)
    proba_columns = [c for c in with_proba.columns if c.startswith("probability_")]
    assert sorted(proba_columns) == sorted(f"probability_{c}" for c in set(label))
    assert np.allclose(with_proba[proba_columns].sum(axis=1), 1.0)


LOAD_WITHOUT_THE_PROJECT = """
import json, sys
import mlflow.pyfunc
import pandas as pd

model = mlflow.pyfunc.load_model(sys.argv[1])
rows = pd.read_parquet(sys.argv[2])
import tabular_pipeline

print(json.dumps({
    "predictions": [str(value) for value in model.predict(rows)],
    "package_path": list(tabular_pipeline.__path__),
    "modules": sorted(name for name in sys.modules if name.startswith("tabular_pipeline")),
}))
"""


@pytest.mark.usefixtures("server_experiment")
def test_a_model_carries_only_the_serving_code_and_loads_without_the_project(tmp_path):
    """The model's code is `tabular_pipeline/serving` alone; a fresh Python that cannot import the
    project (another folder, no PYTHONPATH) loads it and predicts with it."""
    import subprocess
    import sys

    frame = harmonise_dtypes(mixed_frame(120, "binary"), "label")
    features, label = frame.drop(columns=["label"]), frame["label"]
    columns = split_feature_columns(features)
    model = build_pipeline("lightgbm", "binary", {}, columns, seed=1).fit(
        features, label, **fit_params_for("lightgbm", columns)
    )
    with mlflow.start_run():
        info = log_pipeline_model(model, features, "lightgbm")
    local = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "model"))
    code = sorted(str(path.relative_to(local)) for path in (tmp_path / "model" / "code").rglob("*.py"))
    assert code == [
        f"code/tabular_pipeline/serving/{name}.py"
        for name in ("__init__", "autogluon", "autogluon_model_code", "estimators", "model", "model_code")
    ], "serving/ alone (a pipeline model never imports the AutoGluon module beside it)"

    rows = features.head(4)
    rows_file = tmp_path / "rows.parquet"
    rows.to_parquet(rows_file, index=False)
    environment = {k: v for k, v in __import__("os").environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_THE_PROJECT, local, str(rows_file)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["predictions"] == [str(value) for value in model.predict(rows)]
    assert all(path.startswith(str(tmp_path / "model")) for path in answer["package_path"]), "only the model's copy"
    assert all(name.startswith("tabular_pipeline.serving") or name == "tabular_pipeline" for name in answer["modules"])
    assert "tabular_pipeline.serving.autogluon" not in answer["modules"], "a pipeline model loads no AutoGluon code"


def test_models_logged_before_the_layout_still_load():
    """Models logged before the sub-package layout name `tabular_pipeline.estimators.*` in their
    skops file and `tabular_pipeline.serving_model.TabularModel` in their model code; both names
    still resolve, so the gate can score such a champion."""
    import io
    import zipfile

    import skops.io as sio

    from tabular_pipeline.serving.model import TabularModel
    from tabular_pipeline.training.model_logging import trusted_types_of

    assert TabularModel.__module__ == "tabular_pipeline.serving.model"
    frame = harmonise_dtypes(mixed_frame(80, "binary"), "label")
    features, label = frame.drop(columns=["label"]), frame["label"]
    columns = split_feature_columns(features)
    model = build_pipeline("xgboost", "binary", {}, columns, seed=1).fit(features, label)
    old, new = "tabular_pipeline.serving.estimators", "tabular_pipeline.estimators"
    rewritten = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(sio.dumps(model))) as source, zipfile.ZipFile(rewritten, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            target.writestr(item, data.replace(old.encode(), new.encode()) if item.filename == "schema.json" else data)
    trusted = [name.replace(old, new) for name in trusted_types_of(model)]
    assert any(name.startswith(new) for name in trusted), "the old names are really in use here"
    loaded = sio.loads(rewritten.getvalue(), trusted=trusted)
    assert (loaded.predict(features) == model.predict(features)).all()


@pytest.mark.usefixtures("server_experiment")
def test_a_parquet_table_with_category_columns_trains_and_logs(tmp_path):
    """pandas writes `category` columns to Parquet as such; the split gives their plain values, so the
    logged model's input example matches its signature (it used to fail inside `log_model`)."""
    from tabular_pipeline.data.splits import prepare_splits
    from tabular_pipeline.data.synthetic import make_mixed_table
    from tabular_pipeline.data.tables import locate_table

    table = make_mixed_table(200, 8, "binary", seed=1)
    table["count_00"] = table["count_00"].astype("category")  # numeric categories, with missing values
    assert isinstance(table["cat_00"].dtype, pd.CategoricalDtype)
    table.to_parquet(tmp_path / "cats.parquet", index=False)
    splits, task = prepare_splits(locate_table(tmp_path / "cats.parquet"), "label", 0.25, 1, "auto")
    features = splits.train.drop(columns=["label"])
    assert features["cat_00"].dtype == object and features["count_00"].dtype == "float64"
    assert features["count_00"].isna().any() and set(features["cat_00"].dropna()) <= {"c0_0", "c0_1", "c0_2"}
    kept, _ = screen_columns(features)
    columns = split_feature_columns(features[kept])
    model = build_pipeline("lr", task, {}, columns, seed=1).fit(features, splits.train["label"])
    with mlflow.start_run():
        info = log_pipeline_model(model, features, "lr")
    rows = features.head(2).copy()
    rows.loc[rows.index[0], "cat_00"] = "unseen"
    assert len(mlflow.pyfunc.load_model(info.model_uri).predict(rows)) == 2


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.usefixtures("server_experiment")
def test_a_registered_model_takes_read_csv_of_its_training_table(algorithm, tmp_path):
    """What a data scientist tries first: `load_model("models:/<name>/1").predict(pd.read_csv(...))`
    on the table the model was trained on, whose whole-number columns pandas reads as int64 (or
    float64 where a value is missing); and a table where the missing values sit elsewhere. A JSON
    request with a missing value in a whole-number column still gets its answer."""
    table = mixed_frame(120, "binary").drop(columns=["customer_id", "constant"])
    table["visits"] = np.arange(120) % 7
    table.loc[::10, "visits"] = np.nan  # whole numbers with gaps: read back as float64
    table.to_csv(tmp_path / "train.csv", index=False)
    frame = harmonise_dtypes(pd.read_csv(tmp_path / "train.csv"), "label")
    features = frame.drop(columns=["label"])
    columns = split_feature_columns(features)
    model = build_pipeline(algorithm, "binary", {}, columns, seed=1).fit(
        features, frame["label"], **fit_params_for(algorithm, columns)
    )
    with mlflow.start_run():
        info = log_pipeline_model(model, features, algorithm)
    name = f"read-csv-{algorithm}-{uuid.uuid4().hex[:6]}"
    version = mlflow.register_model(info.model_uri, name).version
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/{version}")

    as_read = pd.read_csv(tmp_path / "train.csv").drop(columns=["label"])
    assert as_read["x2"].dtype == "int64" and as_read["visits"].dtype == "float64"
    assert list(loaded.predict(as_read)) == list(model.predict(features))
    swapped = table.assign(visits=np.arange(120) % 7, x2=table["x2"].where(table.index % 9 > 0))
    swapped.to_csv(tmp_path / "later.csv", index=False)
    later = pd.read_csv(tmp_path / "later.csv").drop(columns=["label"])
    assert later["visits"].dtype == "int64" and later["x2"].dtype == "float64"
    assert list(loaded.predict(later)) == list(model.predict(harmonise_dtypes(later, "label")))

    answer = tmp_path / "answer.json"
    rows = later.head(3)  # row 0: x2 missing, as a JSON null
    mlflow.models.predict(
        f"models:/{name}/{version}", rows, content_type="json", output_path=str(answer), env_manager="local"
    )
    assert json.loads(answer.read_text())["predictions"] == list(model.predict(harmonise_dtypes(rows, "label")))
