"""The model card: one self-contained HTML page per training run (`card.html`), opened from the
run's artifacts in the MLflow UI.

It is built from what the run recorded (parameters, metrics, tags, datasets, the evaluation plots
and the feature files), so `register` can rebuild it with the gate's decision added.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path

CARD_FILE = "card.html"
PROFILE_FILE = "features/profile.json"
DROPPED_FILE = "features/dropped_columns.json"
REQUEST_FILE = "features/request_example.json"
PLOT_TITLES = {
    "confusion_matrix.png": "Confusion matrix",
    "roc_curve.png": "ROC curve",
    "pr_curve.png": "Precision-recall curve",
    "residuals.png": "Residuals",
    "feature_importance.png": "Permutation importance",
}
# Parameter families shown on the card, besides the step's own parameters.
SHOWN_PARAMS = ("hp.", "automl.", "best.")
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2933}
h1{font-size:1.6rem;margin-bottom:.2rem}
h2{font-size:1.15rem;border-bottom:1px solid #d9e2ec;padding-bottom:.3rem;margin-top:2rem}
.sub{color:#52606d;margin-top:0}table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}
td,th{border:1px solid #d9e2ec;padding:.25rem .6rem;text-align:left;vertical-align:top}th{background:#f0f4f8}
.metric{display:inline-block;background:#f0f4f8;border-radius:6px;padding:.5rem .9rem;margin:.25rem;min-width:8rem}
.metric b{display:block;font-size:1.3rem}.promoted{color:#0b7a3e}.rejected{color:#b42318}
.plots{display:flex;flex-wrap:wrap;gap:1rem}.plots figure{margin:0}.plots img{max-width:520px;border:1px solid #d9e2ec}
pre{background:#f0f4f8;padding:.7rem;overflow-x:auto;font-size:.85rem}
"""


def _table(rows: list[list[object]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _shown(value: object) -> str:
    """A figure as a person reads it: scores to four decimals, nothing as a dash."""
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _section(title: str, content: str) -> str:
    return f"<h2>{html.escape(title)}</h2>{content}"


def render_card(card: dict) -> str:
    """The card as one HTML page; `card` is what `card_contents` returns (plus `gate` if judged)."""
    metrics = "".join(
        f'<span class="metric">{html.escape(name)}<b>{value:.4f}</b></span>' for name, value in card["metrics"].items()
    )
    parts = [
        f"<h1>{html.escape(card['title'])}</h1>",
        f'<p class="sub">{html.escape(card["subtitle"])}</p>',
        _section("Test metrics", metrics or "<p>none recorded</p>"),
    ]
    gate = card.get("gate")
    if gate:
        verdict = "promoted" if gate["decision"] == "promoted" else "rejected"
        parts.append(
            _section(
                "Registry and gate",
                f'<p class="{verdict}"><b>{html.escape(gate["headline"])}</b></p><p>{html.escape(gate["reason"])}</p>'
                + _table([[k, _shown(v)] for k, v in gate["details"].items()], ["figure", "value"]),
            )
        )
    plots = "".join(
        f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}"><figcaption>'
        f"{html.escape(title)}</figcaption></figure>"
        for title, data in card["plots"].items()
    )
    parts.append(_section("Plots (test split)", f'<div class="plots">{plots}</div>' if plots else "<p>none</p>"))
    profile = card.get("profile") or {}
    columns = profile.get("columns", {})
    rows = [
        [name, info["dtype"], f"{info['missing_fraction']:.1%}", info["distinct"]] for name, info in columns.items()
    ]
    dropped = card.get("dropped") or {}
    parts.append(
        _section(
            "Data",
            f"<p>{profile.get('rows', '?')} training rows, {len(columns)} columns; label counts: "
            f"{html.escape(json.dumps(profile.get('label_counts', {})))}</p>"
            + _table(rows, ["column", "type", "missing", "distinct"])
            + (
                "<p>Dropped columns:</p>" + _table([[k, v] for k, v in dropped.items()], ["column", "reason"])
                if dropped
                else ""
            ),
        )
    )
    parts.append(_section("Parameters", _table([[k, v] for k, v in card["params"].items()], ["name", "value"])))
    parts.append(_section("Lineage", _table([[k, v] for k, v in card["lineage"].items()], ["record", "value"])))
    parts.append(
        _section(
            "Serve and call it",
            f"<pre>{html.escape(card['serve'])}</pre><p>Then send raw rows (add "
            '<code>"params": {"return_probabilities": true}</code> for class probabilities):</p>'
            f"<pre>{html.escape(card['request'])}</pre>",
        )
    )
    head = f'<meta charset="utf-8"><title>{html.escape(card["title"])}</title><style>{STYLE}</style>'
    return f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>"


def card_contents(client, run_id: str) -> dict:
    """Everything the card shows, read from the training run's records."""
    from mlflow.exceptions import MlflowException

    run = client.get_run(run_id)
    params, tags = run.data.params, run.data.tags
    metrics = {name: value for name, value in sorted(run.data.metrics.items()) if name.startswith("test_")}
    model_uri = tags.get("pipeline.output_uri", "")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        try:
            local = Path(client.download_artifacts(run_id, "evaluation", str(folder)))
            plots = {
                title: base64.b64encode((local / name).read_bytes()).decode()
                for name, title in PLOT_TITLES.items()
                if (local / name).is_file()
            }
        except (MlflowException, OSError):
            plots = {}
        extras = {}
        for key, path in (("profile", PROFILE_FILE), ("dropped", DROPPED_FILE), ("request", REQUEST_FILE)):
            try:
                extras[key] = json.loads(Path(client.download_artifacts(run_id, path, str(folder))).read_text())
            except (MlflowException, OSError, ValueError):
                extras[key] = None
    algorithm = tags.get("pipeline.algorithm", "model")
    source = tags.get("pipeline.data_source", params.get("data_path", ""))
    digests = {i.dataset.name: i.dataset.digest for i in (run.inputs.dataset_inputs if run.inputs else [])}
    request = extras["request"] or {"dataframe_records": []}
    return {
        "title": f"{algorithm} on {Path(source).name or source} ({tags.get('pipeline.task', '?')})",
        "subtitle": f"training run {run_id} · model {model_uri}",
        "metrics": metrics,
        "plots": plots,
        "profile": extras["profile"],
        "dropped": extras["dropped"],
        "params": {
            k: v for k, v in sorted(params.items()) if k.startswith(("hp.", "automl.", "best.")) or "." not in k
        },
        "lineage": {
            "training run": run_id,
            "entry point": tags.get("pipeline.entry_point", ""),
            "code version": tags.get("pipeline.code_version", ""),
            "data": source,
            "train digest": digests.get("train", ""),
            "test digest": digests.get("test", ""),
        },
        "serve": f"mlflow models serve -m {model_uri} --port 5001",
        "request": "curl -s localhost:5001/invocations -H 'Content-Type: application/json' -d '"
        + json.dumps(request)
        + "'",
    }


def log_card(client, run_id: str, gate: dict | None = None, also_to: str | None = None) -> None:
    """Build the card of training run `run_id` and log it there as `card.html` (and to `also_to`)."""
    card = card_contents(client, run_id)
    if gate:
        card["gate"] = gate
        card["serve"] = f"mlflow models serve -m {gate['model_uri']} --port 5001"
    page = render_card(card)
    for target in filter(None, (run_id, also_to)):
        client.log_text(target, page, CARD_FILE)
