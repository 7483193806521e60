"""What both training steps record about how a model was trained, in the same form."""

from __future__ import annotations

import logging
from collections.abc import Mapping

log = logging.getLogger("training")
# MLflow stores params as text; long values (lists, configs) are cut to stay readable.
MAX_PARAM_VALUE_LENGTH = 500


def log_prefixed_params(prefix: str, values: Mapping[str, object]) -> None:
    """Log `values` as params named `<prefix>.<name>`, nested names (`a__b`) left out."""
    import mlflow

    mlflow.log_params(
        {f"{prefix}.{name}": str(value)[:MAX_PARAM_VALUE_LENGTH] for name, value in values.items() if "__" not in name}
    )


def log_screening(dropped: Mapping[str, str]) -> None:
    """Record which columns were left out of training and why (param, JSON artifact, log lines)."""
    import mlflow

    mlflow.log_param("dropped_columns", ",".join(dropped)[:MAX_PARAM_VALUE_LENGTH] or "none")
    if dropped:
        mlflow.log_dict(dict(dropped), "features/dropped_columns.json")
        for name, reason in dropped.items():
            log.info("dropping column %r: %s", name, reason)
