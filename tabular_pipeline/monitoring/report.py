"""What `predict` records about a scored table: metrics, tags, a few log lines, and the HTML report."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from tabular_pipeline.errors import one_line
from tabular_pipeline.monitoring.drift import ColumnDrift, dataset_drift
from tabular_pipeline.monitoring.monitor import ScoringMonitor
from tabular_pipeline.monitoring.performance import PerformanceFigures, performance_figures
from tabular_pipeline.monitoring.thresholds import drop_rule

REPORT_PATH = "monitoring/drift_report.html"
DRIFTED_TAG = "monitoring.drifted"
UNJUDGED_TAG = "monitoring.unjudged"  # columns with too few rows to tell drift from noise
DATASET_TAG = "monitoring.dataset_drifted"  # "true" when the share of drifted columns reaches `share`
DEGRADED_TAG = "monitoring.degraded"  # "realized" and/or "estimated": whose primary metric dropped
log = logging.getLogger("predict")


@dataclass(frozen=True)
class Findings:
    """Everything measured of one scored table."""

    drifts: list[ColumnDrift]
    drifted_share: float
    dataset_drifted: bool
    performance: PerformanceFigures | None
    thresholds: dict[str, float]
    label_column: str | None = None

    @property
    def drifted(self) -> list[str]:
        return [d.column for d in self.drifts if d.drifted]


def metric_name(column: str, prefix: str = "drift") -> str:
    """`<prefix>.<column>`, with characters MLflow refuses in metric names replaced by `_`."""
    return f"{prefix}." + re.sub(r"[^A-Za-z0-9_\-. /]", "_", column)[:200]


def measure(monitor: ScoringMonitor, thresholds: dict[str, float]) -> Findings:
    """The figures of a counted table, judged against the thresholds."""
    drifts = monitor.drift.result(thresholds)
    share, drifted = dataset_drift(drifts, thresholds["share"])
    figures = performance_figures(monitor.performance, thresholds["drop"]) if monitor.performance else None
    return Findings(drifts, share, drifted, figures, thresholds, monitor.label_column)


def performance_line(findings: Findings) -> tuple[str, bool]:
    """One line on the model's performance, and whether it is a warning."""
    figures = findings.performance
    if figures is None:
        return "", False
    primary, recorded = figures.primary, figures.recorded.get(figures.primary)
    shown = ", ".join(
        f"{kind} {primary} {values[primary]:.4f}"
        for kind, values in (("realized", figures.realized), ("estimated", figures.estimated))
        if primary in values
    )
    if not shown:
        return f"performance not measured: no values in the label column '{findings.label_column}' to compare", False
    against = f" against {recorded:.4f} recorded" if recorded is not None else ""
    if figures.degraded:
        rule = drop_rule(figures.greater_is_better, findings.thresholds["drop"])
        return f"performance dropped ({' and '.join(figures.degraded)}): {shown}{against}, {rule}", True
    estimate = " (the estimate assumes the features-label relation is unchanged)" if figures.estimated else ""
    return f"performance holding: {shown}{against}{estimate}", False


def record_monitoring(
    findings: Findings, model_uri: str, model_key: str, data: str, rows: int, fail_on_drift: bool = False
) -> None:
    """Log the metrics, the tags, the report and a few lines.

    Columns with too few rows to judge are tagged (`monitoring.unjudged`) and said in one line, a
    warning when the caller asked to fail on drift, since they cannot fail the run."""
    import mlflow

    from tabular_pipeline.monitoring.history import MODEL_TAG, earlier_runs
    from tabular_pipeline.monitoring.page import render_report

    drifts, figures = findings.drifts, findings.performance
    metrics = {"drifted_columns": len(findings.drifted), "drifted_share": findings.drifted_share}
    metrics.update({metric_name(d.column): d.psi for d in drifts})
    metrics.update({metric_name(d.column, "drift_distance"): d.distance for d in drifts})
    if figures is not None:
        metrics.update({f"realized.{name}": value for name, value in figures.realized.items()})
        metrics.update({f"estimated.{name}": value for name, value in figures.estimated.items()})
    mlflow.log_metrics(metrics)
    unjudged = [d.column for d in drifts if not d.judged]
    mlflow.set_tags(
        {
            DRIFTED_TAG: ",".join(findings.drifted)[:5000],
            UNJUDGED_TAG: ",".join(unjudged)[:5000],
            DATASET_TAG: str(findings.dataset_drifted).lower(),
            DEGRADED_TAG: ",".join(figures.degraded) if figures is not None else "",
            MODEL_TAG: model_key,
        }
    )
    try:
        history, note = earlier_runs(model_key, figures.primary if figures else None), ""
    except Exception as error:  # noqa: BLE001 - the page still tells this run's story without them
        history, note = [], f"Earlier runs could not be read from the tracking server ({one_line(error, 200)})."
    mlflow.log_text(render_report(findings, model_uri, data, rows, history, note), REPORT_PATH)
    if unjudged:
        (log.warning if fail_on_drift else log.info)(
            "too few rows to judge drift in %d column(s): %s", len(unjudged), ", ".join(unjudged)
        )
    if findings.drifted:
        table = " (the table has drifted)" if findings.dataset_drifted else ""
        log.warning(
            "drift in %d of %d columns%s: %s (report: %s)",
            len(findings.drifted), len(drifts), table, ", ".join(findings.drifted), REPORT_PATH,
        )  # fmt: skip
    else:
        log.info("no drift in %d columns against the training profile (report: %s)", len(drifts), REPORT_PATH)
    line, warning = performance_line(findings)
    if line:
        (log.warning if warning else log.info)(line)
