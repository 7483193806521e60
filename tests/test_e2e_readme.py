"""End to end: the README as a new user follows it. A fresh copy of the project runs `make run`;
the serve and UI lines the report prints run as printed from a plain shell without the project's
environment on PATH; the README's request example gets its answer. The notebook recipe runs with
and without the environment on PATH. The README's entry-point table matches MLproject."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from conftest import BIN_DIR, PROJECT_DIR, wait_until_healthy
from helpers import runs_of
from readme import readme_block_containing

from tabular_pipeline.parameters.entry_points import declared_parameters

pytestmark = pytest.mark.e2e
# A plain shell: the machine's own tools, no project environment (pyenv's python has no pandas).
PLAIN_PATH = os.pathsep.join(
    [str(Path.home() / ".pyenv" / "versions" / "3.11.7" / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]
)


def plain_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "VIRTUAL_ENV", "PYTHON"))}
    return {**env, "PATH": PLAIN_PATH, **extra}


def fresh_copy(root: Path) -> Path:
    """The project's files (committed or not, ignored ones left out), with this session's
    environment as its `.venv` so `make` finds it installed instead of installing it again."""
    copy = root / "repo"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=PROJECT_DIR, capture_output=True, check=True
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (PROJECT_DIR / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_DIR / name, copy / name)
    (copy / ".venv").symlink_to(BIN_DIR.parent)
    for requirements in ("requirements.txt", "requirements-dev.txt"):
        os.utime(copy / requirements, (0, 0))  # older than .venv/bin/.installed: make installs nothing
    return copy


def start(line: str, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as output:
        return subprocess.Popen(
            ["bash", "-c", line], cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def test_a_new_user_runs_the_readme_from_a_fresh_copy(tmp_path):
    copy = fresh_copy(tmp_path)
    env = plain_env(HOME=str(Path.home()))
    done = subprocess.run(["make", "run"], cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    print(output[-5000:])
    assert done.returncode == 0, output[-5000:]
    assert "Traceback" not in output and "Warning" not in output, "one line per step, the report, real problems"
    serve_line = re.search(r"^Serve it:\s+(.+)$", output, re.M).group(1)
    ui_line = re.search(r"^Open the UI: (.+)$", output, re.M).group(1)
    experiment_page = re.search(r"# then open (\S+)$", ui_line).group(1)
    assert serve_line.startswith(f"make -C {copy} serve MODEL_URI=models:/breast-cancer-classifier@production")

    logs = {"serve": tmp_path / "serve.log", "ui": tmp_path / "ui.log"}
    serving = start(serve_line, tmp_path, env, logs["serve"])  # from another folder: the printed line says where
    ui = start(ui_line, tmp_path, env, logs["ui"])
    try:
        wait_until_healthy("http://127.0.0.1:5001", serving, 180, path="/ping")
        # The README's request, as written, from the project folder (it names data/request.json).
        request = readme_block_containing("bash", "curl -s localhost:5001/invocations")
        curl = next(line for line in request.splitlines() if line.startswith("curl "))
        answer = subprocess.run(
            ["bash", "-c", curl + " -w '\\n%{http_code}'"],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        body, status = answer.stdout.rsplit("\n", 1)
        assert status == "200", body
        predictions = json.loads(body)["predictions"]
        assert len(predictions) == 2 and {"prediction", "probability_0", "probability_1"} <= set(predictions[0])
        # The README's batch-scoring example, as written, from a plain shell in the project folder.
        scoring = readme_block_containing("bash", "-e predict")
        Path("/tmp/scored.parquet").unlink(missing_ok=True)
        scored = subprocess.run(["bash", "-c", scoring], cwd=copy, env=env, capture_output=True, text=True, timeout=600)
        assert scored.returncode == 0, (scored.stdout + scored.stderr)[-3000:]
        assert "no drift in 30 columns" in scored.stderr, "the training table does not drift from itself"
        assert Path("/tmp/scored.parquet").is_file()
        wait_until_healthy("http://127.0.0.1:5000", ui, 180, path="/")
        look_at_the_ui_and_the_card(copy, experiment_page, shots_folder(tmp_path))
    finally:
        stop(serving)
        stop(ui)
    for name, log in logs.items():
        assert "Warning" not in log.read_text(errors="replace"), f"make {name} printed a warning"


def shots_folder(tmp_path: Path) -> Path:
    """Where screenshots go: $BROWSER_SHOTS_DIR to keep them for a person, else the test's folder."""
    folder = Path(os.environ.get("BROWSER_SHOTS_DIR") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


CARD_CHECK = """<script>window.addEventListener("load", () => {
  const images = [...document.images];
  document.title = images.filter(image => image.complete && image.naturalWidth > 100).length + " of " + images.length;
});</script>"""


def look_at_the_ui_and_the_card(copy: Path, page: str, shots: Path) -> None:
    """The experiment opens on its runs, named after the pipeline and its steps; the model card
    renders its plots. Screenshots of both are kept for a person to look at."""
    from browser import inked_share, rendered_dom, screenshot

    search = requests.get(
        "http://127.0.0.1:5000/ajax-api/2.0/mlflow/experiments/get-by-name?experiment_name=tabular-pipeline", timeout=30
    ).json()["experiment"]
    tags = {tag["key"]: tag["value"] for tag in search.get("tags", [])}
    assert tags.get("mlflow.experimentKind") == "custom_model_development", "the UI opens it on runs, not GenAI traces"
    assert page == f"http://127.0.0.1:5000/#/experiments/{search['experiment_id']}?workflowType=machine_learning"
    dom = rendered_dom(page, budget_ms=20_000)
    assert "main: lightgbm on breast_cancer.csv" in dom, "the pipeline's run is listed under its name"
    assert ">Runs<" in dom and ">Overview<" not in dom, "the model-training view, not the GenAI overview"
    assert inked_share(screenshot(page, shots / "experiment.png", budget_ms=20_000)) > 0.005, "not a blank page"

    cards = sorted((copy / "mlruns").rglob("card.html"))
    assert len(cards) == 2, "the training run's card, rebuilt with the gate's decision, and the register run's copy"
    card = cards[0]
    checked = shots / "card_checked.html"
    checked.write_text(card.read_text().replace("</body>", CARD_CHECK + "</body>"))
    title = re.search(r"<title>(.*?)</title>", rendered_dom(checked.as_uri(), budget_ms=5_000)).group(1)
    shown, total = (int(number) for number in title.split(" of "))
    assert total >= 4 and shown == total, f"{shown} of {total} plots rendered"
    html = card.read_text()
    for section in ("Test metrics", "Registry and gate", "promoted to production", "Data", "Parameters", "Lineage"):
        assert section in html, section
    assert inked_share(screenshot(card.as_uri(), shots / "card.png", height=3000, budget_ms=5_000)) > 0.02


def test_the_notebook_recipe_runs_without_the_environment_on_path(tracking_uri, client, tmp_path):
    """The README's notebook lines, run by the environment's Python called by its full path, as a
    Jupyter kernel does, with a PATH whose `python` lacks the packages (every other e2e test runs
    steps with the environment first on PATH)."""
    block = readme_block_containing("python", "mlflow.projects.run(")
    experiment = f"notebook-{uuid.uuid4().hex[:6]}"
    script = block.replace('"sqlite:////abs/path/to/repo/mlflow.db"', repr(tracking_uri))
    script = script.replace('"/abs/path/to/repo"', repr(str(PROJECT_DIR))).replace(
        'experiment_name="demo"', f"experiment_name={experiment!r}"
    )
    script = script.replace('"model_name": "demo"', '"model_name": ""')
    assert str(PROJECT_DIR) in script and tracking_uri in script, "the README's placeholders changed"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=plain_env(PATH=PLAIN_PATH),
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = done.stdout + done.stderr
    print(output[-4000:])
    assert done.returncode == 0, output[-4000:]
    assert "FINISHED" in done.stdout and "Traceback" not in output
    statuses = {r.data.tags["mlflow.project.entryPoint"]: r.info.status for r in runs_of(client, experiment)}
    assert statuses == {"main": "FINISHED", "download": "FINISHED", "process": "FINISHED", "train_basic": "FINISHED"}


def test_a_python_without_the_packages_gets_one_line():
    """With no Python to fall back on (the rerun marker says one was tried already), a step on a
    Python without the project's packages says what is wrong and the two ways out, in one line."""
    from tabular_pipeline.interpreter import REEXEC_ENV

    command = ["bash", "-c", f"cd {PROJECT_DIR} && python -m steps.download"]
    done = subprocess.run(command, env=plain_env(**{REEXEC_ENV: "1"}), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    [line] = (done.stdout + done.stderr).strip().splitlines()
    assert line.startswith("error: download: the Python on PATH") and "put its bin folder first on PATH" in line
    assert 'env_manager="virtualenv"' in line


def readme_table() -> dict[str, dict[str, str | None]]:
    """entry point -> {parameter: default or None} from the README's entry-point table."""
    table = {}
    for row in (PROJECT_DIR / "README.md").read_text().splitlines():
        match = re.match(r"^\| `(\w+)` \| (.*?) \| .* \|$", row)
        if match:
            parameters = re.findall(r"`(\w+)`(?: \(([^)]*)\))?", match.group(2))
            table[match.group(1)] = {
                name: (default if f"`{name}` (" in match.group(2) else None) for name, default in parameters
            }
    return table


def test_the_readme_and_mlproject_declare_the_same_parameters_and_defaults():
    """MLproject is the contract; click options are built from it, and the README's table must say the same."""
    import yaml

    mlproject = yaml.safe_load((PROJECT_DIR / "MLproject").read_text())
    table = readme_table()
    assert set(table) == set(mlproject["entry_points"]), "every entry point has a row"
    for entry_point, documented in table.items():
        declared = declared_parameters(entry_point)
        assert list(documented) == list(declared), f"{entry_point}: names or order differ"
        for name, parameter in declared.items():
            expected = None if parameter.required else str(parameter.default)
            assert documented[name] == expected, (
                f"{entry_point}.{name}: README says {documented[name]!r}, MLproject {expected!r}"
            )


def test_click_options_follow_mlproject():
    import importlib

    for entry_point in yaml_entry_points():
        module = importlib.import_module("main" if entry_point == "main" else f"steps.{entry_point}")
        command = getattr(module, entry_point)
        options = {p.name: p for p in command.params}
        declared = declared_parameters(entry_point)
        assert list(options) == list(declared), entry_point
        for name, parameter in declared.items():
            option = options[name]
            assert option.required == parameter.required, (entry_point, name)
            if not parameter.required:
                assert str(option.type.convert(str(parameter.default), option, None)) == str(option.default), (
                    entry_point,
                    name,
                )


def yaml_entry_points() -> list[str]:
    import yaml

    return list(yaml.safe_load((PROJECT_DIR / "MLproject").read_text())["entry_points"])


def test_the_preset_projects_pass_only_parameters_main_declares():
    import yaml

    declared = declared_parameters("main")
    for preset in ("Project-BasicAlgorithm", "Project-AutoML"):
        spec = yaml.safe_load((PROJECT_DIR / preset / "MLproject").read_text())
        names = set(spec["entry_points"]["main"]["parameters"])
        assert names <= set(declared), (preset, names - set(declared))
