"""The Spark engine's monitoring counts against the pandas engine's, on a local session: the same
cast inputs, labels and answers give the same counts (integers exactly, sums within 1e-9), so the
same drift, realized and estimated figures. The whole path, casts and the model's UDF included, is
run on both engines in test_e2e_predict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tabular_pipeline.data.synthetic import make_mixed_table
from tabular_pipeline.monitoring.calibration import performance_profile
from tabular_pipeline.monitoring.monitor import ScoringMonitor
from tabular_pipeline.monitoring.performance import ScoreCounts, performance_figures
from tabular_pipeline.monitoring.profile import training_profile
from tabular_pipeline.monitoring.thresholds import parse_thresholds

CLASSES = {"binary": 2, "multiclass": 3}


@pytest.fixture(scope="module")
def spark():
    from tabular_pipeline.spark.session import start_session, stop_session

    session = start_session("local[1]", "tabular-pipeline-monitoring-tests")
    yield session
    stop_session(session)


def inputs(rows: int, seed: int) -> pd.DataFrame:
    """Model inputs as cast for the model: numbers double, categories text, a flag boolean."""
    table = make_mixed_table(rows, columns=12, seed=seed).drop(columns=["label", "row_id"])
    return table.astype({name: object for name in table.columns if str(table[name].dtype) == "category"})


def answers(rows: int, task: str, seed: int) -> tuple[pd.Series, np.ndarray, np.ndarray | None]:
    """Labels (some missing, some the model never learnt), predictions, probabilities."""
    rng = np.random.default_rng(seed)
    if task == "regression":
        predictions = rng.normal(50, 10, rows)
        labels = pd.Series(predictions + rng.normal(0, 3, rows))
        labels[rng.random(rows) < 0.1] = np.nan
        return labels, predictions, None
    probabilities = rng.dirichlet(np.ones(CLASSES[task]), rows)
    predictions = probabilities.argmax(axis=1)
    labels = pd.Series([int(rng.choice(len(p), p=p)) for p in probabilities], dtype=object)
    labels[rng.random(rows) < 0.1] = None
    labels[rng.random(rows) < 0.02] = 7
    return labels, predictions, probabilities


def profile_for(task: str) -> dict:
    labels, predictions, probabilities = answers(3000, task, seed=1)
    known = labels.notna() & (labels != 7)
    if task == "regression":
        output = predictions[known]
    else:
        output = pd.DataFrame({"prediction": predictions[known]})
        for cls in range(CLASSES[task]):
            output[f"probability_{cls}"] = probabilities[known, cls]
    truth = labels[known].astype(float if task == "regression" else int).reset_index(drop=True)
    section = performance_profile(output, truth, task, "label", {"test_accuracy": 0.5, "test_rmse": 3.0})
    return training_profile(inputs(2000, seed=1), section)


def counted_on_spark(spark, monitor: ScoringMonitor, features, labels, predictions, probabilities) -> None:
    """Count as `scoring.spark.score_frame` does: cast inputs, the label and the answer in one frame, observed."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    from tabular_pipeline.monitoring import spark_counts

    frame = features.rename(columns={name: f"f_{name}" for name in features.columns})
    frame["label"] = labels.astype(object if monitor.performance.task != "regression" else float)
    frame["prediction"] = predictions
    for index, name in enumerate(monitor.probability_columns):
        frame[name] = probabilities[:, index]
    scored = spark.createDataFrame(frame)
    cast = {name: f"f_{name}" for name in features.columns}
    prediction = F.col("prediction")
    probability_columns = [F.col(f"`{name}`") for name in monitor.probability_columns]
    if monitor.performance.task != "regression":
        prediction = spark_counts.label_text(prediction, dict(scored.dtypes)["prediction"])
    label = spark_counts.label_text(F.col("label"), dict(scored.dtypes)["label"])
    derived, expressions = spark_counts.drift_expressions(monitor, cast)
    columns, aggregates = spark_counts.performance_expressions(monitor, label, prediction, probability_columns)
    observation = Observation("test")
    counted = scored.select("*", *derived, *columns)
    observed = counted.observe(observation, F.count(F.lit(1)).alias(spark_counts.ROWS), *expressions, *aggregates)
    observed.write.format("noop").mode("overwrite").save()
    spark_counts.set_counts(monitor, observation.get, cast)
    if spark_counts.needs_score_counts(monitor, has_label=True):
        monitor.performance.counts.ranked_aucs = spark_counts.ranked_aucs(counted, monitor, probability_columns)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_spark_counts_what_pandas_counts(spark, task):
    profile = profile_for(task)
    features = inputs(1200, seed=2)
    features["num_01"] = features["num_01"] * 10  # a drifted column
    labels, predictions, probabilities = answers(1200, task, seed=3)
    on_pandas, on_spark = ScoringMonitor.from_profile(profile), ScoringMonitor.from_profile(profile)
    for part in np.array_split(np.arange(1200), 3):
        on_pandas.add(
            features.iloc[part],
            labels.iloc[part],
            predictions[part],
            None if probabilities is None else probabilities[part],
        )
    counted_on_spark(spark, on_spark, features, labels, predictions, probabilities)

    thresholds = parse_thresholds("")
    for name, counts in on_pandas.drift.counts.items():
        other = on_spark.drift.counts[name]
        assert (counts.rows, counts.missing) == (other.rows, other.missing), name
        if counts.bins is not None:
            assert counts.bins.tolist() == other.bins.tolist()
            assert counts.tail_sums == pytest.approx(other.tail_sums, rel=1e-12)
    drifts = {d.column: d for d in on_pandas.drift.result(thresholds)}
    assert drifts["num_01"].drifted
    for drift in on_spark.drift.result(thresholds):
        mine = drifts[drift.column]
        assert (drift.psi, drift.distance) == pytest.approx((mine.psi, mine.distance), abs=1e-9)
        assert drift.drifted == mine.drifted

    mine, theirs = on_pandas.performance.counts, on_spark.performance.counts
    assert (mine.rows, mine.labeled) == (theirs.rows, theirs.labeled) == (1200, int(labels.notna().sum()))
    if task == "regression":
        assert mine.error_sums == pytest.approx(theirs.error_sums, rel=1e-12)
    else:
        assert mine.confusion.tolist() == theirs.confusion.tolist() and mine.confusion[-1].sum() > 0
        assert mine.expected == pytest.approx(theirs.expected, rel=1e-12)
        assert [b.tolist() for b in mine.bin_rows] == [b.tolist() for b in theirs.bin_rows]
        # Each scored class's exact ROC AUC: ranked by Spark, and from the rows per score on pandas.
        aucs = [counts.auc() for counts in mine.score_counts]
        assert len(aucs) == len(profile["performance"]["scores"]) and None not in aucs
        assert theirs.ranked_aucs == pytest.approx(aucs, abs=1e-12)
        truth = labels.astype(str)
        known = labels.notna().to_numpy()
        for score, auc in zip(profile["performance"]["scores"], aucs, strict=True):
            hit = truth[known] == str(score["class"])
            assert auc == pytest.approx(roc_auc_score(hit, probabilities[known, score["class"]]), abs=1e-12)
    on_both = [performance_figures(m.performance, 0.05) for m in (on_pandas, on_spark)]
    assert on_both[0].realized and on_both[0].realized == pytest.approx(on_both[1].realized, abs=1e-9)
    assert on_both[0].estimated == pytest.approx(on_both[1].estimated, abs=1e-9)
    assert bool(on_both[0].estimated) == (task != "regression")


def test_a_bin_on_spark_is_numpys_searchsorted_right(spark):
    """Values on an edge, between, beyond both ends, NaN, and edges that repeat (a quantile that
    several rows share) fall in numpy's bin; a text's position falls back to `other`."""
    from pyspark.sql import functions as F

    from tabular_pipeline.monitoring.spark_counts import bucket_index, value_position

    edges = [0.1, 0.5, 0.5, 0.9]
    values = [-1.0, 0.1, 0.2, 0.5, 0.50001, 0.9, 5.0, float("nan")]
    frame = spark.createDataFrame([(v, t) for v, t in zip(values, "abcdefgh", strict=True)], "v double, t string")
    rows = frame.select(bucket_index(F.col("v"), edges).alias("b"), value_position(F.col("t"), ["c", "a"], 9)).collect()
    assert [r[0] for r in rows] == np.searchsorted(edges, values, side="right").tolist() == [0, 1, 1, 3, 3, 4, 4, 4]
    assert [r[1] for r in rows] == [1, 9, 0, 9, 9, 9, 9, 9]


@pytest.mark.usefixtures("spark")  # a PySparkException is built with a live context
def test_a_ranking_spark_cannot_make_leaves_the_roc_auc_out_and_says_so(monkeypatch, caplog):
    """After the predictions are published, a failed ranking (say, past Spark's result limit)
    costs the one figure: a warning line, and realized ROC AUC is left out, not guessed."""
    from pyspark.errors import PySparkException

    from tabular_pipeline.monitoring import spark_counts
    from tabular_pipeline.scoring.spark import add_ranked_aucs

    monitor = ScoringMonitor.from_profile(profile_for("binary"))
    labels, predictions, probabilities = answers(400, "binary", seed=5)
    known = labels.notna() & (labels != 7)
    monitor.add(inputs(400, seed=5)[known.to_numpy()], labels[known], predictions[known], probabilities[known])
    assert "test_roc_auc" in monitor.performance.realized()
    monitor.performance.counts.score_counts = [ScoreCounts() for _ in monitor.performance.scores]  # as on Spark

    def refused(*_):
        raise PySparkException(message="Total size of serialized results is bigger than spark.driver.maxResultSize")

    monkeypatch.setattr(spark_counts, "ranked_aucs", refused)
    with caplog.at_level("WARNING"):
        add_ranked_aucs(None, monitor)
    assert monitor.performance.counts.ranked_aucs is None
    assert "test_roc_auc" not in monitor.performance.realized()
    assert "test_accuracy" in monitor.performance.realized()
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert line.startswith("the realized ROC AUC is left out") and "maxResultSize" in line
