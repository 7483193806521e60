"""`monitoring/drift_report.html`: one page that answers "is the model still good, and since when?"

From the top: the verdict in a few lines, the model's performance (recorded at training, realized
on this table's labels, estimated from its probabilities), this model's earlier scoring runs as a
time series, every column with drifted ones first, and the drifted columns' histograms.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from tabular_pipeline.monitoring.history import ScoringPoint, drift_chart, performance_chart
from tabular_pipeline.monitoring.thresholds import drop_rule

if TYPE_CHECKING:
    from tabular_pipeline.monitoring.drift import ColumnDrift
    from tabular_pipeline.monitoring.performance import PerformanceFigures

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2933}
table{border-collapse:collapse;font-size:.9rem;margin-bottom:1rem}
td,th{border:1px solid #d9e2ec;padding:.25rem .6rem;text-align:left}
th{background:#f0f4f8}.drifted,.degraded{color:#b42318;font-weight:600}
.pair{display:flex;gap:2rem;margin:.5rem 0 1.5rem}
.bars{min-width:420px}.bar{display:flex;align-items:center;gap:.4rem;font-size:.8rem;margin:1px 0}
.bar span{width:9rem;text-align:right;overflow:hidden;white-space:nowrap}
.bar i{display:inline-block;height:.8rem}.train i{background:#3b75af}.now i{background:#d9822b}
.verdict{font-size:1.05rem}.note{color:#52606d;font-size:.85rem;max-width:60rem}figcaption{font-size:.85rem;color:#52606d}
"""


def _bars(labels: list[str], shares: list[float], css: str, title: str) -> str:
    rows = "".join(
        f'<div class="bar"><span title="{html.escape(label)}">{html.escape(label)}</span>'
        f'<i style="width:{max(share, 0) * 300:.1f}px"></i>{share:.1%}</div>'
        for label, share in zip(labels, shares, strict=True)
    )
    return f'<div class="bars {css}"><b>{title}</b>{rows}</div>'


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def performance_section(figures: PerformanceFigures | None, label_column: str | None, drop: float) -> str:
    """The performance table and what its figures assume."""
    if figures is None:
        return (
            "<h2>Performance</h2><p class='note'>The model carries no performance calibration (logged before "
            "performance monitoring): realized and estimated figures are not computed.</p>"
        )
    names = list(dict.fromkeys([*figures.recorded, *figures.realized, *figures.estimated]))
    rows = []
    for name in names:
        cells = []
        for kind, values in (("realized", figures.realized), ("estimated", figures.estimated)):
            bad = name == figures.primary and kind in figures.degraded
            cells.append(f'<td class="{"degraded" if bad else ""}">{_number(values.get(name))}</td>')
        label = f"<b>{html.escape(name)}</b> (primary)" if name == figures.primary else html.escape(name)
        rows.append(f"<tr><td>{label}</td><td>{_number(figures.recorded.get(name))}</td>{''.join(cells)}</tr>")
    header = "<tr><th>metric</th><th>recorded (test split)</th><th>realized (this table)</th><th>estimated</th></tr>"
    notes = [
        f"A figure counts as degraded when the primary metric is {drop_rule(figures.greater_is_better, drop)} "
        f"(drop={drop:g}).",
        f"Realized on {figures.labeled:,} labelled rows"
        + ("." if figures.labeled else f": this table has no values in the label column '{label_column}'."),
    ]
    if figures.estimated:
        notes.append(
            f"Estimated on all {figures.rows:,} rows with CBPE (confidence-based performance estimation): the "
            "model's probabilities, calibrated on its test split at training time, give the expected confusion "
            "counts. It is an estimate, and it assumes the relation between the features and the label is the "
            "one the test split showed: a changed relation (concept shift) does not show here, only in realized "
            "figures once labels arrive."
        )
    elif "test_rmse" in figures.recorded:
        notes.append("Regression performance is not estimated without labels (see docs/batch-prediction.md).")
    for kind in figures.unjudged:
        notes.append(f"The {kind} figures come from fewer than 100 rows: shown, not judged.")
    return f"<h2>Performance</h2><table>{header}{''.join(rows)}</table>" + "".join(
        f"<p class='note'>{html.escape(note)}</p>" for note in notes
    )


def history_section(points: list[ScoringPoint], figures: PerformanceFigures | None, note: str, drop: float) -> str:
    """This model's scoring runs over time, read from the tracking server."""
    if not points:
        return f"<h2>Since when?</h2><p class='note'>{html.escape(note or 'No scoring runs recorded yet.')}</p>"
    charts = drift_chart(points)
    if figures is not None:
        recorded = figures.recorded.get(figures.primary)
        limit = None
        if recorded is not None:
            limit = recorded - drop if figures.greater_is_better else recorded * (1 + drop)
        charts = performance_chart(points, recorded, limit, figures.primary) + charts
    caption = f"This model's last {len(points)} scoring run(s), this one last, from the tracking server."
    return f"<h2>Since when?</h2><p class='note'>{html.escape(caption)}</p>{charts}"


def columns_section(drifts: list[ColumnDrift]) -> str:
    """Every column, drifted ones first, then the drifted columns' histograms."""
    header = [
        "column",
        "kind",
        "PSI",
        "distance",
        "missing (training → now)",
        "other values, above training",
        "drifted",
    ]
    body = "".join(
        f'<tr class="{"drifted" if d.drifted else ""}"><td>{html.escape(d.column)}</td><td>{d.kind}</td>'
        f"<td>{d.psi:.3f}</td><td>{d.distance:.3f} ({'JS' if d.distance_name == 'js' else 'Wasserstein/σ'})</td>"
        f"<td>{d.missing_train:.1%} → {d.missing_now:.1%}</td><td>{d.other_share_excess:.1%}</td>"
        f"<td>{'yes' if d.drifted else 'no' if d.judged else 'too few rows to tell'}</td></tr>"
        for d in drifts
    )
    table = "<table><tr>" + "".join(f"<th>{h}</th>" for h in header) + f"</tr>{body}</table>"
    pairs = "".join(
        f'<h3>{html.escape(d.column)}</h3><div class="pair">'
        + _bars(d.labels, d.train_shares, "train", "training")
        + _bars(d.labels, d.now_shares, "now", "this table")
        + f"</div><p>Missing values: {d.missing_train:.1%} in training, {d.missing_now:.1%} here "
        + "(the bars share out the values present).</p>"
        for d in drifts
        if d.drifted
    )
    return f"<h2>Columns</h2>{table}" + (f"<h2>Drifted columns: training and this table</h2>{pairs}" if pairs else "")


def render_report(findings, model_uri: str, data: str, rows: int, history: list[ScoringPoint], note: str = "") -> str:
    """The whole page for one scoring run (`findings`: `report.Findings`)."""
    thresholds, figures = findings.thresholds, findings.performance
    drifted = [d for d in findings.drifts if d.drifted]
    summary = (
        f"{len(drifted)} of {len(findings.drifts)} columns drifted (PSI ≥ {thresholds['psi']:g}, or missing share up "
        f"by ≥ {thresholds['missing']:g}"
        + "".join(f", or {name} ≥ {thresholds[name]:g}" for name in ("js", "wasserstein") if name in thresholds)
        + f"); {findings.drifted_share:.0%} of the columns, so the table "
        + ("has drifted" if findings.dataset_drifted else "has not drifted")
        + f" (share ≥ {thresholds['share']:g}). {rows:,} scored rows of {data}, against the training profile of "
        f"{model_uri}."
    )
    verdict = "Performance: not measured."
    if figures is not None:
        shown = [
            f"{kind} {figures.primary} {values[figures.primary]:.4f}"
            for kind, values in (("realized", figures.realized), ("estimated", figures.estimated))
            if figures.primary in values
        ]
        recorded = figures.recorded.get(figures.primary)
        state = "degraded" if figures.degraded else "holding"
        verdict = f"Performance {state}: {', '.join(shown) or 'nothing measurable'}" + (
            f" (recorded on the test split: {recorded:.4f})." if recorded is not None else "."
        )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>Drift and performance report</title>'
        f"<style>{STYLE}</style></head><body><h1>Drift and performance report</h1>"
        f'<p class="verdict {"degraded" if figures is not None and figures.degraded else ""}">'
        f"{html.escape(verdict)}</p><p>{html.escape(summary)}</p>"
        + performance_section(figures, findings.label_column, thresholds["drop"])
        + history_section(history, figures, note, thresholds["drop"])
        + columns_section(findings.drifts)
        + "</body></html>"
    )
