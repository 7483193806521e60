"""What `predict` counts while it scores: the drift of the model's inputs, as cast for the model,
and, when the model's profile has a performance section, the model's performance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tabular_pipeline.monitoring.drift import DriftCounter
from tabular_pipeline.monitoring.performance import PerformanceCounter


@dataclass
class ScoringMonitor:
    """The counters of one scoring run; both engines fill the same ones."""

    drift: DriftCounter
    performance: PerformanceCounter | None

    @classmethod
    def from_profile(cls, profile: dict) -> ScoringMonitor:
        """Counters for a model's profile (performance only when the profile has that section)."""
        section = profile.get("performance")
        return cls(DriftCounter(profile), PerformanceCounter(section) if section else None)

    @property
    def label_column(self) -> str | None:
        return self.performance.label_column if self.performance is not None else None

    @property
    def probability_columns(self) -> list[str]:
        """The probability columns asked of the model; empty: its plain predictions are enough."""
        return self.performance.probability_columns if self.performance is not None else []

    def answer(self, model, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """The model's predictions and, when needed, its class probabilities, from one call."""
        columns = self.probability_columns
        if not columns:
            return np.asarray(model.predict(features)), None
        from tabular_pipeline.serving.model import PROBABILITIES_PARAM

        output = model.predict(features, params={PROBABILITIES_PARAM: True})
        return output["prediction"].to_numpy(), output[columns].to_numpy(dtype=float)

    def add(self, features: pd.DataFrame, labels, predictions, probabilities: np.ndarray | None) -> None:
        """Count one batch: the cast inputs, the label column's values (None without one), the answer."""
        self.drift.add(features)
        if self.performance is not None:
            self.performance.add(labels, predictions, probabilities)
