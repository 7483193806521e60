"""The pyfunc model every training path logs: raw rows in, labels (or labels plus class
probabilities) out.

The fitted scikit-learn pipeline is stored with skops next to the list of types it needs, and this
class loads it; nothing is unpickled. Like `estimators`, this module travels inside the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

PIPELINE_ARTIFACT = "pipeline"
TRUSTED_TYPES_ARTIFACT = "trusted_types"
PROBABILITIES_PARAM = "return_probabilities"


def probability_frame(pipeline, features: pd.DataFrame) -> pd.DataFrame:
    """Predicted labels plus one `probability_<class>` column per class, in the model's class order."""
    frame = pd.DataFrame({"prediction": pipeline.predict(features)})
    proba = np.asarray(pipeline.predict_proba(features))
    for index, label in enumerate(pipeline.classes_):
        frame[f"probability_{label}"] = proba[:, index]
    return frame


class TabularModel(mlflow.pyfunc.PythonModel):
    """Serves a fitted pipeline; pass params {"return_probabilities": true} for class probabilities."""

    def load_context(self, context):
        import skops.io as sio

        trusted = json.loads(Path(context.artifacts[TRUSTED_TYPES_ARTIFACT]).read_text())
        self.pipeline = sio.load(context.artifacts[PIPELINE_ARTIFACT], trusted=trusted)

    # `pd.DataFrame` is a hint MLflow infers no schema from: the model's own signature checks input,
    # and MLflow no longer warns that `predict` has no type hints.
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):  # noqa: ARG002 - pyfunc signature
        if (params or {}).get(PROBABILITIES_PARAM) and hasattr(self.pipeline, "predict_proba"):
            return probability_frame(self.pipeline, model_input)
        return self.pipeline.predict(model_input)
