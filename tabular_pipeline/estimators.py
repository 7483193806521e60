"""Small scikit-learn compatible pieces that travel inside logged models.

This module is shipped with every model (`code_paths`), so it must stay importable on its own:
it imports nothing from the rest of the project.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.preprocessing import LabelEncoder


def to_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Cast categorical columns to text so that booleans, numbers-as-codes and NaN encode alike.

    Missing values become the category "<missing>", which the one-hot encoder treats like any other.
    """
    return frame.astype(object).where(frame.notna(), "<missing>").astype(str)


class LabelEncodedClassifier(ClassifierMixin, BaseEstimator):
    """Fit any classifier on integer-coded labels and answer in the original label values.

    XGBoost accepts only labels 0..k-1; wrapping every classifier the same way lets string labels
    such as "good"/"bad" round-trip through training and serving.

    Args:
        estimator: the classifier to fit on encoded labels.
    """

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, X, y, **fit_params):
        self.label_encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.label_encoder_.classes_
        self.estimator_ = clone(self.estimator).fit(X, self.label_encoder_.transform(y), **fit_params)
        if hasattr(self.estimator_, "n_features_in_"):
            self.n_features_in_ = self.estimator_.n_features_in_
        return self

    def predict(self, X):
        codes = np.asarray(self.estimator_.predict(X)).astype(int).ravel()
        return self.label_encoder_.inverse_transform(codes)

    def predict_proba(self, X):
        return self.estimator_.predict_proba(X)

    @property
    def feature_importances_(self):
        return self.estimator_.feature_importances_
