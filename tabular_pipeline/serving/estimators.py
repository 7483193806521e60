"""Small scikit-learn compatible pieces that travel inside logged models.

This module is shipped with every model (`code_paths`), so it must stay importable on its own:
it imports nothing from the rest of the project.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_classifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder


def to_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Cast categorical columns to text so that booleans, numbers-as-codes and NaN encode alike.

    Missing values become the category "<missing>", which the one-hot encoder treats like any other.
    """
    return frame.astype(object).where(frame.notna(), "<missing>").astype(str)


class _DelegatesToFittedEstimator:
    """Probabilities and importances come from the wrapped, fitted `estimator_`."""

    def predict_proba(self, X):
        return self.estimator_.predict_proba(X)

    @property
    def feature_importances_(self):
        return self.estimator_.feature_importances_


class LabelEncodedClassifier(_DelegatesToFittedEstimator, ClassifierMixin, BaseEstimator):
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

    @classmethod
    def from_fitted(cls, estimator, label_encoder: LabelEncoder) -> LabelEncodedClassifier:
        """Wrap a classifier already fitted on `label_encoder`-coded labels (e.g. by an AutoML search)."""
        wrapper = cls(estimator)
        wrapper.label_encoder_ = label_encoder
        wrapper.classes_ = label_encoder.classes_
        wrapper.estimator_ = estimator
        return wrapper

    def predict(self, X):
        codes = np.asarray(self.estimator_.predict(X)).astype(int).ravel()
        return self.label_encoder_.inverse_transform(codes)


class EarlyStoppedBooster(_DelegatesToFittedEstimator, BaseEstimator):
    """Fit a LightGBM or XGBoost model on most rows and stop adding trees once a held-out share stops
    improving; the fitted booster predicts with its best iteration.

    Args:
        estimator: an LGBM*/XGB* classifier or regressor.
        validation_fraction: the share of training rows held out for stopping.
        stopping_rounds: rounds without improvement before stopping; 0 turns stopping off.
        min_rows: below this many rows the model is fitted on everything, without stopping.
        random_state: seed of the hold-out split.
    """

    def __init__(self, estimator=None, validation_fraction=0.1, stopping_rounds=30, min_rows=200, random_state=None):
        self.estimator = estimator
        self.validation_fraction = validation_fraction
        self.stopping_rounds = stopping_rounds
        self.min_rows = min_rows
        self.random_state = random_state

    def _holdout(self, X, y):
        stratify = y if is_classifier(self.estimator) and np.unique(y, return_counts=True)[1].min() >= 2 else None
        return train_test_split(
            X, y, test_size=self.validation_fraction, random_state=self.random_state, stratify=stratify
        )

    def fit(self, X, y, **fit_params):
        booster = clone(self.estimator)
        if not self.stopping_rounds or len(y) < self.min_rows:
            booster.fit(X, y, **fit_params)
        else:
            fit_x, stop_x, fit_y, stop_y = self._holdout(X, y)
            if type(booster).__module__.startswith("xgboost"):
                booster.set_params(early_stopping_rounds=self.stopping_rounds)
                booster.fit(fit_x, fit_y, eval_set=[(stop_x, stop_y)], verbose=False, **fit_params)
            else:
                import lightgbm

                stop = lightgbm.early_stopping(self.stopping_rounds, verbose=False)
                booster.fit(fit_x, fit_y, eval_X=(stop_x,), eval_y=(stop_y,), callbacks=[stop], **fit_params)
        self.estimator_ = booster
        self.n_features_in_ = getattr(booster, "n_features_in_", np.shape(X)[1])
        if hasattr(booster, "classes_"):
            self.classes_ = booster.classes_
        return self

    def predict(self, X):
        return self.estimator_.predict(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self.estimator.__sklearn_tags__() if self.estimator is not None else tags
        tags.estimator_type = inner.estimator_type
        return tags
