"""Validating a labelled table, settling the learning task, and splitting it into train and test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pandas.api import types as ptypes

from tabular_pipeline.data.tables import TableLocation, read_table
from tabular_pipeline.errors import PipelineError

TASKS = ("binary", "multiclass", "regression")
# A numeric label with at most this many distinct integer values is taken as classes.
MAX_CLASSES_FOR_NUMERIC_LABEL = 20


@dataclass(frozen=True)
class Splits:
    """Train and test frames with the label column still inside."""

    train: pd.DataFrame
    test: pd.DataFrame


# Words that name a label column (`label`, `target`, `is_churn`, `default_flag`...).
LABEL_WORDS = frozenset({"label", "labels", "target", "class", "y", "outcome", "response", "churn", "default"})
LIKELY_SHOWN = 3


def looks_like_a_label(name: str, distinct: int | None) -> tuple[bool, bool]:
    """Whether a column's name is a label's, and whether its few distinct values could be classes."""
    import re

    words = set(re.split(r"[^a-z0-9]+", name.lower())) | {name.lower()}
    return bool(words & LABEL_WORDS), distinct is not None and 2 <= distinct <= MAX_CLASSES_FOR_NUMERIC_LABEL


def likely_labels(table: pd.DataFrame, wanted: str, shown: int = LIKELY_SHOWN) -> list[str]:
    """The columns most likely meant by a label name that is not there: columns that look like a
    label (a label's name first, then few distinct values), then close spellings of `wanted`.

    Args:
        table: the table, or a sample of it (distinct values are counted on what it holds).
        wanted: the label column asked for.
        shown: how many names to return at most.
    """
    import difflib

    names = [str(name) for name in table.columns]
    distinct = {str(name): int(table[name].nunique()) for name in table.columns} if len(table) else {}
    looks = {name: looks_like_a_label(name, distinct.get(name)) for name in names}
    similarity = {name: difflib.SequenceMatcher(None, wanted.lower(), name.lower()).ratio() for name in names}
    labelled = [name for name in names if looks[name][0]]
    few_values = [name for name in names if looks[name][1] and not looks[name][0]]
    # The closest label name first; among few-valued columns the fewest values (two classes), and
    # the nearest the end, where a label usually is.
    labelled.sort(key=lambda name: (-similarity[name], -names.index(name)))
    few_values.sort(key=lambda name: (distinct[name], -names.index(name)))
    lowered = {name.lower(): name for name in names}
    close = [lowered[name] for name in difflib.get_close_matches(wanted.lower(), list(lowered), n=shown, cutoff=0.5)]
    # Columns that look like labels lead; the last place is kept for a close spelling.
    label_like = [*labelled, *few_values]
    return list(dict.fromkeys([*label_like[: shown - 1], *close, *label_like[shown - 1 :]]))[:shown]


def describe_columns(table: pd.DataFrame, wanted: str, shown: int = 8) -> str:
    """The columns most likely meant (`likely_labels`), else the last columns, where a label
    usually is; never a list cut short before the likely answer."""
    names = [str(name) for name in table.columns]
    likely = likely_labels(table, wanted)
    if likely:
        return f"likely: {', '.join(likely)}; {len(names)} columns in all"
    tail = names[-shown:]
    return (
        f"{len(names)} columns, the last {len(tail)}: {', '.join(tail)}"
        if len(names) > shown
        else f"columns: {', '.join(names)}"
    )


def validate_table(table: pd.DataFrame, label_column: str, name: str = "table") -> None:
    """Check that the table has rows, the label column, a usable label and at least one feature.

    Args:
        table: the loaded table.
        label_column: the name of the target column.
        name: how to call the table in messages (e.g. "train.csv").
    """
    if table.shape[0] == 0:
        raise PipelineError(f"{name} has a header but no data rows; expected at least one row")
    if label_column not in table.columns:
        raise PipelineError(
            f"label column '{label_column}' is not in {name} ({describe_columns(table, label_column)}); "
            "set -P label_column=<name>"
        )
    if table[label_column].isna().all():
        raise PipelineError(f"label column '{label_column}' of {name} is empty; expected a value on every row")
    if table.shape[1] < 2:
        raise PipelineError(f"{name} has only the label column; expected at least one feature column")
    features = table.drop(columns=[label_column])
    if features.isna().all().all():
        raise PipelineError(f"every feature of {name} is missing (all NaN); expected at least one feature with values")


def validate_split_columns(train: pd.DataFrame, test: pd.DataFrame) -> None:
    """Check that train and test hold the same columns."""
    if list(train.columns) != list(test.columns):
        only_train = sorted(set(train.columns) - set(test.columns))
        only_test = sorted(set(test.columns) - set(train.columns))
        detail = (
            f"only in train: {only_train}; only in test: {only_test}"
            if only_train or only_test
            else "same names, different order"
        )
        raise PipelineError(f"train.csv and test.csv have different columns ({detail}); expected identical headers")


def detect_task(label: pd.Series) -> str:
    """Guess the learning task from the label column.

    Args:
        label: the target values (NaN allowed; they are ignored).

    Returns:
        "binary", "multiclass" or "regression".
    """
    values = label.dropna()
    distinct = values.nunique()
    if ptypes.is_bool_dtype(values) or not ptypes.is_numeric_dtype(values):
        return "binary" if distinct <= 2 else "multiclass"
    integral = bool((values.astype(float) % 1 == 0).all())
    if integral and distinct <= MAX_CLASSES_FOR_NUMERIC_LABEL:
        return "binary" if distinct <= 2 else "multiclass"
    return "regression"


def resolve_task(requested: str, label: pd.Series) -> str:
    """Return the requested task, or the detected one when `requested` is "auto" or empty."""
    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        return detect_task(label)
    if requested == "classification":
        return "binary" if label.dropna().nunique() <= 2 else "multiclass"
    if requested not in TASKS:
        raise PipelineError(f"task '{requested}' is not known; expected auto, binary, multiclass or regression")
    return requested


def check_label_for_task(label: pd.Series, task: str, label_column: str) -> None:
    """Refuse labels the task cannot learn from: one class only, or text for regression."""
    distinct = label.dropna().nunique()
    if task != "regression" and distinct < 2:
        raise PipelineError(f"label column '{label_column}' has a single class; expected at least two classes")
    if task == "regression" and not ptypes.is_numeric_dtype(label):
        raise PipelineError(f"label column '{label_column}' is not numeric; expected numbers for a regression task")


def harmonise_dtypes(table: pd.DataFrame, label_column: str) -> pd.DataFrame:
    """Make feature dtypes safe to serve: integers become float64, text becomes `object`, and
    pandas `category` columns become their values (text as `object`, numbers as float64).

    Integer columns are declared double so that a missing value at prediction time is valid input
    (MLflow's schema refuses NaN in a column declared long).

    Args:
        table: the raw table.
        label_column: the target column, left untouched.

    Returns:
        A new frame; the input is not modified.
    """
    converted = {}
    for column in table.columns:
        if column == label_column:
            continue
        series = table[column]
        if ptypes.is_integer_dtype(series) and not ptypes.is_bool_dtype(series):
            converted[column] = series.astype("float64")
        elif isinstance(series.dtype, pd.StringDtype):
            converted[column] = series.astype(object)
        elif isinstance(series.dtype, pd.CategoricalDtype):
            # pandas writes `category` columns to Parquet as such; served rows arrive as plain values.
            numeric = ptypes.is_numeric_dtype(series.cat.categories) and not ptypes.is_bool_dtype(series.cat.categories)
            converted[column] = series.astype("float64" if numeric else object)
    return table.assign(**converted) if converted else table


def drop_unlabelled_rows(table: pd.DataFrame, label_column: str) -> pd.DataFrame:
    """Remove rows whose label is missing; they can be neither learned from nor scored."""
    return table[table[label_column].notna()].reset_index(drop=True)


def split_table(table: pd.DataFrame, label_column: str, test_size: float, seed: int, task: str) -> Splits:
    """Split one table into train and test, stratified for classification.

    Args:
        table: the whole labelled table.
        label_column: the target column.
        test_size: the test fraction, strictly between 0 and 1.
        seed: the random seed of the split.
        task: "binary", "multiclass" or "regression".

    Returns:
        The train and test frames.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise PipelineError(f"test_size is {test_size}; expected a fraction between 0 and 1")
    label = table[label_column]
    stratify = None
    if task != "regression":
        counts = label.value_counts()
        n_test = int(round(test_size * len(table)))
        # Stratification needs two rows of every class and room for every class in the test set.
        if counts.min() >= 2 and n_test >= counts.size and len(table) - n_test >= counts.size:
            stratify = label
    if len(table) < 2:
        raise PipelineError(f"the table has {len(table)} row; expected at least 2 rows to split into train and test")
    train, test = train_test_split(table, test_size=test_size, random_state=seed, stratify=stratify)
    return Splits(train=train.reset_index(drop=True), test=test.reset_index(drop=True))


def prepare_splits(
    location: TableLocation, label_column: str, test_size: float, seed: int, task: str, origin: str = ""
) -> tuple[Splits, str]:
    """Load, validate and split the table at `location`, and settle the task.

    Args:
        location: where the table lives.
        label_column: the target column.
        test_size: the test fraction when the table is a single file.
        seed: the split's random seed.
        task: "auto" or one of `TASKS`.
        origin: what the user passed, when `location` holds a copy of it (`download`'s typed
            copy): messages then name both, since the copy's name is not what the user typed.

    Returns:
        The validated splits (dtypes harmonised) and the task.
    """

    def shown(file: Path) -> str:
        return f"{file.name} from {origin}" if origin else file.name

    if location.is_split:
        train, test = read_table(location.train), read_table(location.test)
        validate_table(train, label_column, shown(location.train))
        validate_table(test, label_column, shown(location.test))
        validate_split_columns(train, test)
        train, test = drop_unlabelled_rows(train, label_column), drop_unlabelled_rows(test, label_column)
        resolved = resolve_task(task, train[label_column])
        check_label_for_task(train[label_column], resolved, label_column)
        splits = Splits(train=train, test=test)
    else:
        table = read_table(location.single)
        validate_table(table, label_column, shown(location.single))
        table = drop_unlabelled_rows(table, label_column)
        resolved = resolve_task(task, table[label_column])
        check_label_for_task(table[label_column], resolved, label_column)
        splits = split_table(table, label_column, test_size, seed, resolved)
    return (
        Splits(
            train=harmonise_dtypes(splits.train, label_column),
            test=harmonise_dtypes(splits.test, label_column),
        ),
        resolved,
    )
