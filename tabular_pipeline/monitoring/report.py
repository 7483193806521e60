"""What `predict` records about drift: metrics, one tag, one log line, and an HTML report."""

from __future__ import annotations

import html
import logging
import re

from tabular_pipeline.monitoring.drift import ColumnDrift

REPORT_PATH = "monitoring/drift_report.html"
DRIFTED_TAG = "monitoring.drifted"
UNJUDGED_TAG = "monitoring.unjudged"  # columns with too few rows to tell drift from noise
log = logging.getLogger("predict")
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2933}
table{border-collapse:collapse;font-size:.9rem}td,th{border:1px solid #d9e2ec;padding:.25rem .6rem;text-align:left}
th{background:#f0f4f8}.drifted{color:#b42318;font-weight:600}.pair{display:flex;gap:2rem;margin:.5rem 0 1.5rem}
.bars{min-width:420px}.bar{display:flex;align-items:center;gap:.4rem;font-size:.8rem;margin:1px 0}
.bar span{width:9rem;text-align:right;overflow:hidden;white-space:nowrap}
.bar i{display:inline-block;height:.8rem}.train i{background:#3b75af}.now i{background:#d9822b}
"""


def metric_name(column: str) -> str:
    """`drift.<column>`, with characters MLflow refuses in metric names replaced by `_`."""
    return "drift." + re.sub(r"[^A-Za-z0-9_\-. /]", "_", column)[:200]


def _bars(labels: list[str], shares: list[float], css: str, title: str) -> str:
    rows = "".join(
        f'<div class="bar"><span title="{html.escape(label)}">{html.escape(label)}</span>'
        f'<i style="width:{max(share, 0) * 300:.1f}px"></i>{share:.1%}</div>'
        for label, share in zip(labels, shares, strict=True)
    )
    return f'<div class="bars {css}"><b>{title}</b>{rows}</div>'


def render_report(drifts: list[ColumnDrift], model_uri: str, data: str, thresholds: dict[str, float], rows: int) -> str:
    """The report: every column sorted by drift, then training and scored histograms of the drifted ones."""
    header = ["column", "kind", "PSI", "missing (training → now)", "unseen values", "drifted"]
    body = "".join(
        f'<tr class="{"drifted" if d.drifted else ""}"><td>{html.escape(d.column)}</td><td>{d.kind}</td>'
        f"<td>{d.psi:.3f}</td><td>{d.missing_train:.1%} → {d.missing_now:.1%}</td><td>{d.unseen_share:.1%}</td>"
        f"<td>{'yes' if d.drifted else 'no' if d.judged else 'too few rows to tell'}</td></tr>"
        for d in drifts
    )
    table = "<table><tr>" + "".join(f"<th>{h}</th>" for h in header) + f"</tr>{body}</table>"
    drifted = [d for d in drifts if d.drifted]
    pairs = "".join(
        f'<h3>{html.escape(d.column)}</h3><div class="pair">'
        + _bars(d.labels, d.train_shares, "train", "training")
        + _bars(d.labels, d.now_shares, "now", "this table")
        + f"</div><p>Missing values: {d.missing_train:.1%} in training, {d.missing_now:.1%} here "
        + "(the bars share out the values present).</p>"
        for d in drifted
    )
    summary = (
        f"{len(drifted)} of {len(drifts)} columns drifted (PSI ≥ {thresholds['psi']:g}, or missing share up by "
        f"≥ {thresholds['missing']:g}) in {rows:,} scored rows of {html.escape(data)}, against the training "
        f"profile of {html.escape(model_uri)}."
    )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>Drift report</title><style>{STYLE}</style></head>'
        f"<body><h1>Drift report</h1><p>{summary}</p>{table}"
        + (f"<h2>Drifted columns: training and this table</h2>{pairs}" if drifted else "")
        + "</body></html>"
    )


def record_drift(
    drifts: list[ColumnDrift],
    model_uri: str,
    data: str,
    thresholds: dict[str, float],
    rows: int,
    fail_on_drift: bool = False,
) -> list[str]:
    """Log the metrics, the tags, the report and one line; return the drifted columns.

    Columns with too few rows to judge are tagged (`monitoring.unjudged`) and said in one line, a
    warning when the caller asked to fail on drift, since they cannot fail the run."""
    import mlflow

    drifted = [d.column for d in drifts if d.drifted]
    mlflow.log_metrics({"drifted_columns": len(drifted), **{metric_name(d.column): d.psi for d in drifts}})
    mlflow.set_tag(DRIFTED_TAG, ",".join(drifted)[:5000])
    mlflow.log_text(render_report(drifts, model_uri, data, thresholds, rows), REPORT_PATH)
    unjudged = [d.column for d in drifts if not d.judged]
    mlflow.set_tag(UNJUDGED_TAG, ",".join(unjudged)[:5000])
    if unjudged:
        (log.warning if fail_on_drift else log.info)(
            "too few rows to judge drift in %d column(s): %s", len(unjudged), ", ".join(unjudged)
        )
    if drifted:
        log.warning(
            "drift in %d of %d columns: %s (report: %s)", len(drifted), len(drifts), ", ".join(drifted), REPORT_PATH
        )
    else:
        log.info("no drift in %d columns against the training profile (report: %s)", len(drifts), REPORT_PATH)
    return drifted
