"""End to end: real-world tables (strings, NaNs, booleans, IDs, constants, string labels) for every
task through `main`, served over HTTP; and the promotion gate deciding between versions."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import PROJECT_DIR
from fixtures import mixed_frame
from helpers import runs_of
from serving import served_model

pytestmark = pytest.mark.e2e
SAMPLE = PROJECT_DIR / "data" / "breast_cancer.csv"
TASK_CASES = {
    "binary": (
        "xgboost",
        {"test_roc_auc", "test_log_loss", "test_f1_macro"},
        {"confusion_matrix.png", "roc_curve.png", "pr_curve.png"},
    ),
    "multiclass": ("lightgbm", {"test_roc_auc", "test_log_loss", "test_f1_macro"}, {"confusion_matrix.png"}),
    "regression": ("svm", {"test_rmse", "test_mae", "test_r2"}, {"residuals.png"}),
}


@pytest.mark.parametrize("task", list(TASK_CASES))
def test_mixed_table_trains_evaluates_and_serves_raw_rows(
    task, tmp_path, run_project, client, experiment_name, tracking_uri
):
    algorithm, metric_names, plots = TASK_CASES[task]
    table = mixed_frame(400, task, seed=3)
    data_file = tmp_path / f"{task}.csv"
    table.to_csv(data_file, index=False)
    name = f"mixed-{task}-{uuid.uuid4().hex[:6]}"

    result = run_project("main", {"algorithm": algorithm, "data_path": data_file, "model_name": name})
    assert result.returncode == 0, result.output
    [train] = runs_of(client, experiment_name, "train_basic")
    assert train.data.params["task_detected"] == task and train.data.tags["pipeline.task"] == task
    assert train.data.params["dropped_columns"] == "customer_id,constant"
    assert metric_names <= set(train.data.metrics)
    dropped = json.loads(
        Path(client.download_artifacts(train.info.run_id, "features/dropped_columns.json", str(tmp_path))).read_text()
    )
    assert dropped["constant"] == "constant" and dropped["customer_id"].startswith("identifier-like")
    evaluation = {a.path.split("/")[-1] for a in client.list_artifacts(train.info.run_id, "evaluation")}
    assert plots | {"feature_importance.png", "feature_importance.csv", "test.parquet"} <= evaluation
    version = client.get_model_version_by_alias(name, "production")
    assert version.tags["gate.decision"] == "promoted"

    rows = table.drop(columns=["label"]).head(2).astype({"x2": "float64"})
    rows.loc[0, "x1"] = np.nan
    rows.loc[1, "colour"] = "ultraviolet"
    records = json.loads(rows.to_json(orient="records"))
    with served_model(f"models:/{name}@production", tracking_uri) as url:
        plain = requests.post(f"{url}/invocations", json={"dataframe_records": records}, timeout=60)
        with_proba = requests.post(
            f"{url}/invocations",
            json={"dataframe_records": records, "params": {"return_probabilities": True}},
            timeout=60,
        )
    assert plain.status_code == 200, plain.text
    predictions = plain.json()["predictions"]
    assert len(predictions) == 2
    if task == "regression":
        assert all(isinstance(value, float) for value in predictions)
        return
    assert set(predictions) <= set(table["label"]), "classifiers answer in the original label values"
    answer = with_proba.json()["predictions"]
    assert with_proba.status_code == 200 and [row["prediction"] for row in answer] == predictions
    for row in answer:
        probabilities = {k: v for k, v in row.items() if k.startswith("probability_")}
        assert set(probabilities) == {f"probability_{label}" for label in table["label"].unique()}
        assert abs(sum(probabilities.values()) - 1) < 1e-6


def gate_tags(client, name, version):
    """The version's gate tags, with the figures of `gate.details` spread out as `gate.<name>`."""
    tags = dict(client.get_model_version(name, version).tags)
    tags.update({f"gate.{key}": value for key, value in json.loads(tags.get("gate.details", "{}")).items()})
    return tags


def test_gate_rejects_worse_promotes_better_and_force_overrides(run_project, client, experiment_name):
    name = f"gate-{uuid.uuid4().hex[:8]}"
    models = {}
    for label, params in {"good": "n_estimators=100", "weak": "n_estimators=1;num_leaves=2;learning_rate=0.01"}.items():
        assert (
            run_project("train_basic", {"data_path": SAMPLE, "algorithm": "lightgbm", "params": params}).returncode == 0
        )
        train = runs_of(client, experiment_name, "train_basic")[0]
        models[label] = (train.data.tags["pipeline.output_uri"], train.data.metrics["test_roc_auc"])
    assert models["weak"][1] < models["good"][1]

    def register(label, **extra):
        result = run_project("register", {"model_uri": models[label][0], "model_name": name, **extra})
        assert result.returncode == 0, result.output
        return runs_of(client, experiment_name, "register")[0].data.tags["pipeline.registered_version"]

    first = register("good")
    assert gate_tags(client, name, first)["gate.decision"] == "promoted"
    assert gate_tags(client, name, first)["gate.reason"].startswith("first version")

    weak = register("weak")
    tags = gate_tags(client, name, weak)
    assert tags["gate.decision"] == "rejected"
    assert tags["gate.candidate_score"] == pytest.approx(models["weak"][1], abs=1e-5)
    assert tags["gate.champion_score"] == pytest.approx(models["good"][1], abs=1e-5), (
        "champion scored on the candidate's test split"
    )
    assert tags["gate.champion_version"] == first
    assert client.get_model_version_by_alias(name, "production").version == first
    assert client.get_model_version(name, weak).current_stage == "None"
    assert client.get_model_version(name, weak).aliases == []

    assert register("weak", force="true") == weak
    assert gate_tags(client, name, weak)["gate.forced"] is True
    assert client.get_model_version_by_alias(name, "production").version == weak
    assert client.get_model_version(name, weak).current_stage == "Production"

    assert register("good") == first
    assert gate_tags(client, name, first)["gate.decision"] == "promoted"
    assert client.get_model_version_by_alias(name, "production").version == first
    assert client.get_model_version(name, weak).current_stage == "Archived"

    other = f"{name}-threshold"
    result = run_project("register", {"model_uri": models["weak"][0], "model_name": other, "min_score": "0.9999"})
    assert result.returncode == 0
    [version] = client.search_model_versions(f"name = '{other}'")
    assert (
        version.tags["gate.decision"] == "rejected"
        and "below the threshold min_score=0.9999" in version.tags["gate.reason"]
    )
    assert version.aliases == []


def test_a_champion_that_cannot_be_judged_keeps_the_alias(run_project, client, experiment_name, tmp_path):
    """The gate fails closed: the champion was trained on other columns, so which of the
    challenger's test rows it saw cannot be told (nor could it score them); the challenger is
    registered but not promoted, and says why."""
    name = f"closed-{uuid.uuid4().hex[:8]}"
    other_table = tmp_path / "other.csv"
    mixed_frame(300, "binary", seed=5).to_csv(other_table, index=False)
    uris = {}
    for label, data in (("champion", SAMPLE), ("challenger", other_table)):
        assert run_project("train_basic", {"data_path": data, "algorithm": "lr"}).returncode == 0
        uris[label] = runs_of(client, experiment_name, "train_basic")[0].data.tags["pipeline.output_uri"]
    assert run_project("register", {"model_uri": uris["champion"], "model_name": name}).returncode == 0

    result = run_project("register", {"model_uri": uris["challenger"], "model_name": name})
    assert result.returncode == 0, result.output[-3000:]
    tags = gate_tags(client, name, "2")
    assert tags["gate.decision"] == "rejected" and tags["gate.champion_version"] == "1"
    assert tags["gate.reason"].startswith(
        "version 1 holds 'production' but which of the candidate's test rows it trained on is unknown: it was "
        "trained on columns the candidate's test split lacks ("
    ), tags["gate.reason"]
    assert tags["gate.reason"].endswith("the champion keeps the alias (force=true promotes anyway)")
    assert client.get_model_version_by_alias(name, "production").version == "1"
    assert (
        client.get_model_version(name, "2").aliases == []
        and client.get_model_version(name, "2").current_stage == "None"
    )
    said = [line for line in result.output.splitlines() if "version 1 holds 'production' but" in line]
    assert len(said) == 1 and "WARNING [register] registered models:/" in said[0], "said once, as a warning"
    assert "but REJECTED it for 'production'" in said[0]

    result = run_project("register", {"model_uri": uris["challenger"], "model_name": name, "force": "true"})
    assert result.returncode == 0
    assert client.get_model_version_by_alias(name, "production").version == "2", (
        "force=true is the explicit way through"
    )
