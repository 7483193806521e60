"""Turning raw Spark columns into model input: screening, label codes, class weights, and the
`pyspark.ml` stages for categories and missing numbers.

Categories go through a `StringIndexer` that keeps unseen values (they get the index after the
known ones) and treats a missing value as the category "<missing>", as the pandas engine does.
Linear models and SVMs also get median imputation and one-hot columns; XGBoost takes NaN and the
category indices as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tabular_pipeline.data.screening import MIN_ROWS_FOR_ID_RULES, TEXT_ID_UNIQUE_SHARE, has_id_name
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.spark.tables import TEXT_TYPES
from tabular_pipeline.training.pipelines import IMBALANCE_RATIO

MISSING_CATEGORY = "<missing>"
LABEL_CODE = "__label"
WEIGHT = "__weight"
FEATURES = "__features"
INDEX_SUFFIX = "__index"
IMPUTED_SUFFIX = "__imputed"
ONE_HOT_SUFFIX = "__one_hot"


@dataclass(frozen=True)
class FeatureColumns:
    """The feature columns by kind, after screening."""

    numeric: list[str]
    categorical: list[str]


def screen_frame(frame, label_column: str) -> tuple[FeatureColumns, dict[str, str]]:
    """Sort features into numeric and categorical and drop the useless ones: all values missing,
    constant, text with a different value on nearly every row, or unique whole numbers in a column
    named like an id (the pandas engine's rules, less its row-counter one).

    One pass gathers the counts; a second counts exact distinct values, only of the columns that
    can still be keys after it.

    Returns:
        (kept columns by kind, {dropped column: reason}).
    """
    from pyspark.sql import functions as F

    kinds = {name: kind for name, kind in frame.dtypes if name != label_column}
    id_named = [name for name, kind in kinds.items() if kind not in TEXT_TYPES and has_id_name(name)]
    stats = column_statistics(frame, list(kinds), id_named).first()
    rows, dropped = stats["__rows"], {}
    # A key has a value on every row, all of them whole numbers; only those need the exact count.
    suspects = [
        name
        for name in id_named
        if rows >= MIN_ROWS_FOR_ID_RULES and stats[f"n:{name}"] == rows and not stats[f"f:{name}"]
    ]
    exact = [F.count_distinct(F.col(f"`{name}`")).alias(f"u:{name}") for name in suspects]
    unique = frame.agg(*exact).first() if exact else {}
    for name, kind in kinds.items():
        values, distinct = stats[f"n:{name}"], stats[f"d:{name}"]
        if values == 0:
            dropped[name] = "all values missing"
        elif distinct <= 1 and values == rows:
            dropped[name] = "constant"
        elif kind in TEXT_TYPES and rows >= MIN_ROWS_FOR_ID_RULES and distinct >= TEXT_ID_UNIQUE_SHARE * rows:
            dropped[name] = "identifier-like (a different text value on nearly every row)"
        elif name in suspects and unique[f"u:{name}"] == rows:
            dropped[name] = "identifier-like (unique whole numbers in a column named like an id)"
    kept = [name for name in kinds if name not in dropped]
    if not kept:
        detail = "; ".join(f"{name}: {reason}" for name, reason in list(dropped.items())[:5])
        raise PipelineError(f"no usable feature column is left ({detail}); expected at least one informative feature")
    return (
        FeatureColumns(
            numeric=[name for name in kept if kinds[name] not in TEXT_TYPES],
            categorical=[name for name in kept if kinds[name] in TEXT_TYPES],
        ),
        dropped,
    )


def column_statistics(frame, columns: list[str], id_named: list[str]):
    """The screening's one-pass aggregation (not yet run): rows, values and approximate distinct
    values per column, and how many non-whole numbers each id-named column holds.

    No exact distinct count belongs here: Spark would group every other aggregate by that column,
    one group per row of a key (40 s instead of 2 s on 750,000 rows)."""
    from pyspark.sql import functions as F

    return frame.agg(
        F.count(F.lit(1)).alias("__rows"),
        *[F.count(F.col(f"`{name}`")).alias(f"n:{name}") for name in columns],
        *[F.approx_count_distinct(F.col(f"`{name}`")).alias(f"d:{name}") for name in columns],
        *[F.sum((F.col(f"`{name}`") % 1 != 0).cast("int")).alias(f"f:{name}") for name in id_named],
    )


def class_counts(frame, label_column: str) -> dict:
    """Rows per class, in the order scikit-learn's `LabelEncoder` codes them (sorted)."""
    counts = {row[0]: int(row[1]) for row in frame.groupBy(f"`{label_column}`").count().collect()}
    return {value: counts[value] for value in sorted(counts)}


def is_imbalanced(counts: dict) -> bool:
    """The pandas engine's rule: the smallest class under `IMBALANCE_RATIO` of the largest."""
    return min(counts.values()) < IMBALANCE_RATIO * max(counts.values())


def balanced_weights(counts: dict) -> dict:
    """scikit-learn's `class_weight="balanced"`: rows / (classes * rows of the class)."""
    total = sum(counts.values())
    return {value: total / (len(counts) * rows) for value, rows in counts.items()}


def with_label_and_weight(frame, label_column: str, classes: list, weights: dict | None):
    """Add the label's code (classes in sorted order, 0..k-1; the value itself for regression), an
    optional weight column, and "<missing>" for missing categories."""
    from pyspark.sql import functions as F

    label = F.col(f"`{label_column}`")
    if classes:
        codes = F.create_map(
            *[part for code, value in enumerate(classes) for part in (F.lit(value), F.lit(float(code)))]
        )
        frame = frame.withColumn(LABEL_CODE, codes[label])
    else:
        frame = frame.withColumn(LABEL_CODE, label.cast("double"))
    if weights:
        by_class = F.create_map(*[part for value, weight in weights.items() for part in (F.lit(value), F.lit(weight))])
        frame = frame.withColumn(WEIGHT, by_class[label])
    return frame


def categories_as_text(frame, columns: FeatureColumns):
    """Category columns as the served model's encoder sees them (`serving.estimators.to_text`):
    booleans as "True"/"False", and a missing value as the category "<missing>"."""
    from pyspark.sql import functions as F

    kinds = dict(frame.dtypes)
    for name in columns.categorical:
        value = F.col(f"`{name}`")
        if kinds[name] == "boolean":
            value = F.when(value, "True").when(~value, "False")
        frame = frame.withColumn(name, F.coalesce(value, F.lit(MISSING_CATEGORY)))
    return frame


def index_column(name: str) -> str:
    return name + INDEX_SUFFIX


def encoding_stages(columns: FeatureColumns, linear: bool) -> tuple[list, list[str]]:
    """The `pyspark.ml` stages before the estimator, and the columns the estimator reads.

    Args:
        columns: the features by kind.
        linear: one-hot categories, median-imputed numbers and one assembled vector (linear models
            and SVMs); otherwise numbers as they are plus category indices (XGBoost).

    Returns:
        (stages, model input columns; for linear models the single vector column).
    """
    from pyspark.ml.feature import Imputer, OneHotEncoder, StringIndexer, VectorAssembler

    stages: list = []
    indexed = [index_column(name) for name in columns.categorical]
    if columns.categorical:
        stages.append(
            StringIndexer(
                inputCols=columns.categorical, outputCols=indexed, handleInvalid="keep", stringOrderType="frequencyDesc"
            )
        )
    if not linear:
        return stages, columns.numeric + indexed
    imputed = [name + IMPUTED_SUFFIX for name in columns.numeric]
    one_hot = [name + ONE_HOT_SUFFIX for name in columns.categorical]
    if columns.numeric:
        stages.append(Imputer(inputCols=columns.numeric, outputCols=imputed, strategy="median"))
    if columns.categorical:
        # The indexer's metadata counts the unseen-value index as a category, the last one, which
        # `dropLast` drops: an unseen category is all zeros, as scikit-learn's "ignore".
        stages.append(OneHotEncoder(inputCols=indexed, outputCols=one_hot, dropLast=True, handleInvalid="error"))
    stages.append(VectorAssembler(inputCols=imputed + one_hot, outputCol=FEATURES, handleInvalid="keep"))
    return stages, [FEATURES]


def probability_matrix(vectors) -> np.ndarray:
    """Rows of Spark probability vectors as a 2-D numpy array."""
    return np.stack([np.asarray(vector.toArray(), dtype=float) for vector in vectors])
