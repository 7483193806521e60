"""Where models logged before the sub-package layout (December 2026) find their estimators.

Their skops files name `tabular_pipeline.estimators.<class>`; the classes now live in
`tabular_pipeline.serving.estimators`. Kept so that such a model still loads where this project is
importable (the promotion gate scoring an older champion, `predict`).
"""

from tabular_pipeline.serving.estimators import EarlyStoppedBooster, LabelEncodedClassifier, to_text

__all__ = ["EarlyStoppedBooster", "LabelEncodedClassifier", "to_text"]
