"""Where models logged before the sub-package layout (December 2026) find their model class.

Their `model_code.py` imports `tabular_pipeline.serving_model.TabularModel`; it now lives in
`tabular_pipeline.serving.model`. Kept so that such a model still loads where this project is
importable (the promotion gate scoring an older champion, `predict`).
"""

from tabular_pipeline.serving.model import TabularModel

__all__ = ["TabularModel"]
