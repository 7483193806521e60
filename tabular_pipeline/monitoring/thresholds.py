"""`predict`'s `drift_thresholds`: when a column has drifted, when the table as a whole has, and
when the model's performance has dropped.

- `psi`: a column drifts at this population stability index or above (default 0.2);
- `missing`: or when its missing share rose by this much (default 0.1);
- `js`, `wasserstein`: the Jensen-Shannon distance of a category column and the normalized
  Wasserstein distance of a number column are always measured; they make a column drift only
  when a threshold is given for them (Evidently uses 0.1 for both);
- `share`: the table has drifted when at least this share of its columns has (default 0.5);
- `drop`: the model is degraded when its primary metric fell by more than this (default 0.05):
  for ROC AUC (binary) and macro F1 (multiclass) an absolute drop below the recorded test score,
  for RMSE (regression) a rise above the recorded test RMSE by this fraction of it.
"""

from __future__ import annotations

from tabular_pipeline.errors import PipelineError

DEFAULT_THRESHOLDS = {"psi": 0.2, "missing": 0.1, "share": 0.5, "drop": 0.05}
DISTANCES = ("js", "wasserstein")
# The largest value each threshold may take: shares and the JS distance (natural log) stop at 1.
UPPER_BOUNDS = {"psi": 100.0, "missing": 1.0, "js": 1.0, "wasserstein": 100.0, "share": 1.0, "drop": 100.0}


def parse_thresholds(text: str) -> dict[str, float]:
    """`psi=0.2;missing=0.1;...` (any may be left out) as numbers; anything else is one error line.

    Returns:
        Every threshold by name; `js` and `wasserstein` only when given.
    """
    from tabular_pipeline.parameters.strings import parse_param_string

    thresholds = dict(DEFAULT_THRESHOLDS)
    for name, value in parse_param_string(text, "drift_thresholds").items():
        if name not in UPPER_BOUNDS:
            raise PipelineError(
                f"drift_thresholds: unknown threshold '{name}'; expected psi, missing, js, wasserstein, share or drop"
            )
        upper = UPPER_BOUNDS[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= upper:
            raise PipelineError(
                f"drift_thresholds: {name}={value!r} is not a positive number up to {upper:g}; expected e.g. "
                "psi=0.2;missing=0.1;drop=0.05"
            )
        thresholds[name] = float(value)
    return thresholds


def has_dropped(recorded: float, now: float, greater_is_better: bool, drop: float) -> bool:
    """Whether `now` is worse than the recorded test score by more than `drop` (absolute for
    scores, relative for errors such as RMSE)."""
    if greater_is_better:
        return now < recorded - drop
    return now > recorded * (1 + drop)


def drop_rule(greater_is_better: bool, drop: float) -> str:
    """The degradation rule in words, for the report and the log."""
    if greater_is_better:
        return f"more than {drop:g} below the recorded test score"
    return f"more than {drop * 100:g}% above the recorded test score"
