"""Every algorithm and task, logged as an MLflow model, answers raw rows that hold a missing value
and an unseen category: loaded back through pyfunc, and served by `mlflow models serve` over HTTP
(a real local MLflow store, no mocks)."""

import json

import mlflow
import numpy as np
import pytest
import requests
from fixtures import mixed_frame
from serving import served_model

from tabular_pipeline.feature_screening import screen_columns
from tabular_pipeline.model_logging import log_pipeline_model
from tabular_pipeline.modeling import ALGORITHMS, build_pipeline, data_dependent_defaults, fit_params_for, split_feature_columns
from tabular_pipeline.tables import harmonise_dtypes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def local_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    # Without an explicit artifact location a SQLite store writes ./mlruns into the working directory.
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("model-logging", artifact_location=(root / "artifacts").as_uri()))
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_logged_model_serves_raw_rows(local_store, algorithm, task):
    frame = harmonise_dtypes(mixed_frame(120, task), "label")
    features, label = frame.drop(columns=["label"]), frame["label"]
    kept, dropped = screen_columns(features)
    assert dropped == {"customer_id": "identifier-like (unique whole numbers in a column named like an id)", "constant": "constant"}
    columns = split_feature_columns(features[kept])
    defaults = data_dependent_defaults(algorithm, task, label, columns)
    model = build_pipeline(algorithm, task, {}, columns, seed=1, defaults=defaults).fit(features, label, **fit_params_for(algorithm, columns))
    with mlflow.start_run():
        info = log_pipeline_model(model, features, algorithm)
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    rows = features.head(3).copy()
    rows.loc[0, "x1"] = np.nan
    rows.loc[1, "colour"] = "ultraviolet"
    predictions = loaded.predict(rows)
    assert len(predictions) == 3
    with served_model(info.model_uri, local_store) as url:
        answer = requests.post(f"{url}/invocations", json={"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == pytest.approx(list(predictions)) if task == "regression" else answer.json()["predictions"] == list(predictions)
    if task == "regression":
        assert np.isfinite(np.asarray(predictions, dtype=float)).all()
        return
    assert set(predictions) <= set(label)
    with_proba = loaded.predict(rows, params={"return_probabilities": True})
    assert list(with_proba["prediction"]) == list(predictions)
    proba_columns = [c for c in with_proba.columns if c.startswith("probability_")]
    assert sorted(proba_columns) == sorted(f"probability_{c}" for c in set(label))
    assert np.allclose(with_proba[proba_columns].sum(axis=1), 1.0)
