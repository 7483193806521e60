"""Logging a fitted pipeline as an MLflow model that serves raw rows."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

# Shipped inside every model so the custom estimators import wherever the model is served.
PACKAGE_DIR = Path(__file__).resolve().parent
INPUT_EXAMPLE_ROWS = 5


def trusted_types_of(model) -> list[str]:
    """The non-default types in `model` that skops must be told to trust when loading.

    They are the types of the object this process just built, not of a file from elsewhere.
    """
    import skops.io as sio

    return sorted(sio.get_untrusted_types(data=sio.dumps(model)))


def log_pipeline_model(model, train_features: pd.DataFrame, name: str = "model"):
    """Log `model` with a signature and input example inferred from the raw training columns.

    Args:
        model: a fitted scikit-learn pipeline.
        train_features: training rows without the label (dtypes as served).
        name: the model's name within the run.

    Returns:
        The `mlflow.models.model.ModelInfo` (its `model_uri` is what `register` takes).
    """
    import mlflow
    from mlflow.models import infer_signature

    example = train_features.head(INPUT_EXAMPLE_ROWS)
    with warnings.catch_warnings():
        # The hint concerns integer *outputs* (class labels); integer features are already float64.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        signature = infer_signature(train_features, model.predict(example))
    return mlflow.sklearn.log_model(
        model,
        name=name,
        signature=signature,
        input_example=example,
        code_paths=[str(PACKAGE_DIR)],
        serialization_format="skops",
        skops_trusted_types=trusted_types_of(model),
    )
