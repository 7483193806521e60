"""This model's earlier scoring runs, read from the tracking server, drawn as a time series (inline
SVG, so the report opens anywhere without a network or a script)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime

# The tag that names the model a `predict` run scored with (its logged model id).
MODEL_TAG = "monitoring.model"
HISTORY_RUNS = 50
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 900, 230, 60, 20, 30, 40
COLOURS = {"realized": "#b42318", "estimated": "#3b75af", "recorded": "#52606d"}


@dataclass(frozen=True)
class ScoringPoint:
    """One scoring run of the model: when, and what it measured."""

    run_id: str
    started: datetime
    realized: float | None
    estimated: float | None
    drifted: float | None


def earlier_runs(model_key: str, primary: str | None, limit: int = HISTORY_RUNS) -> list[ScoringPoint]:
    """The model's latest `limit` scoring runs in any experiment (this one included), oldest first."""
    import mlflow

    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`{MODEL_TAG}` = '{model_key}'",
        order_by=["attributes.start_time DESC"],
        max_results=limit,
        output_format="list",
    )
    points = []
    for run in runs:
        metrics = run.data.metrics
        points.append(
            ScoringPoint(
                run.info.run_id,
                datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC),
                metrics.get(f"realized.{primary}") if primary else None,
                metrics.get(f"estimated.{primary}") if primary else None,
                metrics.get("drifted_columns"),
            )
        )
    return sorted(points, key=lambda point: point.started)


def _scale(low: float, high: float):
    """The y position of a value on a chart whose axis runs from `low` (bottom) to `high`."""
    span = (high - low) or 1.0
    return lambda value: TOP + (HEIGHT - TOP - BOTTOM) * (1 - (value - low) / span)


def _x_positions(count: int) -> list[float]:
    """Where each run sits, oldest at the left, clear of the axis labels."""
    pad = 24
    inner = WIDTH - LEFT - RIGHT - 2 * pad
    return [LEFT + pad + inner / 2] if count == 1 else [LEFT + pad + inner * i / (count - 1) for i in range(count)]


def _axis(points: list[ScoringPoint], y_labels: list[tuple[float, str]]) -> str:
    xs = _x_positions(len(points))
    ticks = sorted({0, len(points) - 1, *range(0, len(points), max(1, len(points) // 6))})
    parts = [f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" stroke="#9aa5b1"/>']
    anchors = {0: "start", len(points) - 1: "end"} if len(points) > 1 else {}
    parts += [
        f'<text x="{xs[i]:.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="11" text-anchor="{anchors.get(i, "middle")}">'
        f"{points[i].started:%Y-%m-%d %H:%M:%S}</text>"  # seconds: runs minutes apart stay apart
        for i in ticks
    ]
    parts += [
        f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{html.escape(text)}</text>'
        f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#eef2f6"/>'
        for y, text in y_labels
    ]
    return "".join(parts)


def performance_chart(points: list[ScoringPoint], recorded: float | None, limit: float | None, primary: str) -> str:
    """Realized and estimated primary metric per run, the recorded test score and the degradation limit."""
    values = [v for p in points for v in (p.realized, p.estimated) if v is not None]
    values += [v for v in (recorded, limit) if v is not None]
    if not values:
        return ""
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or 0.01
    y = _scale(low - pad, high + pad)
    xs = _x_positions(len(points))
    parts = [_axis(points, [(y(v), f"{v:.3f}") for v in (low, (low + high) / 2, high)])]
    for name, value, dash in (("recorded", recorded, "6 4"), ("recorded", limit, "2 3")):
        if value is not None:
            parts.append(
                f'<line x1="{LEFT}" y1="{y(value):.1f}" x2="{WIDTH - RIGHT}" y2="{y(value):.1f}" '
                f'stroke="{COLOURS[name]}" stroke-dasharray="{dash}"/>'
            )
    for kind in ("estimated", "realized"):
        series = [(x, getattr(p, kind)) for x, p in zip(xs, points, strict=True) if getattr(p, kind) is not None]
        if len(series) > 1:
            path = " ".join(f"{x:.1f},{y(v):.1f}" for x, v in series)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{COLOURS[kind]}" stroke-width="2"/>')
        parts += [
            f'<circle cx="{x:.1f}" cy="{y(v):.1f}" r="4" fill="{COLOURS[kind]}"><title>{kind} {v:.4f}</title></circle>'
            for x, v in series
        ]
    legend = [
        ("realized", "realized (labels)", ""),
        ("estimated", "estimated (CBPE)", ""),
        ("recorded", "recorded test score", "6 4"),
        ("recorded", "degraded beyond", "2 3"),
    ]
    for index, (kind, text, dash) in enumerate(legend):
        x = LEFT + 10 + index * 190
        parts.append(
            f'<line x1="{x}" y1="8" x2="{x + 24}" y2="8" stroke="{COLOURS[kind]}" stroke-width="2" '
            f'stroke-dasharray="{dash}"/><text x="{x + 30}" y="12" font-size="11">{text}</text>'
        )
    return _svg("performance", f"{primary} per scoring run", "".join(parts))


def drift_chart(points: list[ScoringPoint]) -> str:
    """Drifted columns per run, as bars."""
    counts = [p.drifted or 0.0 for p in points]
    top = max(max(counts), 1.0)
    y = _scale(0.0, top)
    xs = _x_positions(len(points))
    width = max(4.0, min(30.0, (WIDTH - LEFT - RIGHT) / max(len(points), 1) * 0.6))
    parts = [_axis(points, [(y(0.0), "0"), (y(top), f"{top:g}")])]
    parts += [
        f'<rect x="{x - width / 2:.1f}" y="{y(c):.1f}" width="{width:.1f}" height="{y(0.0) - y(c):.1f}" '
        f'fill="#d9822b"><title>{c:g} drifted column(s)</title></rect>'
        for x, c in zip(xs, counts, strict=True)
    ]
    return _svg("drift", "Drifted columns per scoring run", "".join(parts))


def _svg(name: str, title: str, body: str) -> str:
    return (
        f'<figure class="chart" id="{name}-history"><figcaption>{html.escape(title)}</figcaption>'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img">{body}</svg></figure>'
    )
