"""End to end: the README as a new user follows it, top to bottom, in a fresh copy of the project,
from a plain shell and a plain Python with a stock Debian PATH (/usr/bin:/bin: `python3`, no
`python`, no project environment). `make run`; the serve and UI lines its report prints, as printed;
the README's `make serve` and request; its batch-scoring line; its orchestrator line, against the
`make ui` server, and the serve line that run prints; its notebook recipe on the same store, and
the serve line that prints. The README's entry-point table matches MLproject."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from conftest import BIN_DIR, PROJECT_DIR, wait_until_healthy
from helpers import runs_of
from readme import readme_block_containing

from tabular_pipeline.parameters.entry_points import declared_parameters

pytestmark = pytest.mark.e2e
# A plain shell on a stock Debian machine: `python3` without the project's packages, no `python`.
PLAIN_PATH = "/usr/bin:/bin"


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


def group_alive(process: subprocess.Popen) -> bool:
    """Whether any process of the line's group still runs (the leader reaped first). Read from
    /proc, not `killpg(pgid, 0)`: that counts zombies, which stay when no init process reaps
    orphans (a container whose first process is not one), though they hold no port."""
    process.poll()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == process.pid and fields[0] != "Z":
            return True
    return False


def stop(process: subprocess.Popen) -> None:
    """End the whole process group and wait until every member is gone, not only `bash`.

    `bash` dies at once on SIGTERM while the server it started still answers for a moment:
    the next line's health check then reached the old server and its request found the port
    closed (a CI failure, `Connection refused` on /invocations right after /ping said 200)."""
    for sig, grace_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        if not group_alive(process):
            break
        os.killpg(process.pid, sig)
        deadline = time.monotonic() + grace_s
        while group_alive(process) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert not group_alive(process), f"process group {process.pid} outlived SIGKILL"


def assert_port_free(port: int) -> None:
    """A server's health check must reach the server just started, not one still going."""
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is still taken before a serve line starts"


def run_as_printed(line: str, cwd: Path, env: dict[str, str], timeout_s: float = 900) -> str:
    """Run a line in bash, as a user pastes it; return its output after checking it succeeded."""
    done = subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    output = done.stdout + done.stderr
    print(output[-5000:])
    assert done.returncode == 0, output[-5000:]
    assert "Traceback" not in output
    return output


def report_line(output: str, label: str) -> str:
    """The text after `label` on the report's line that starts with it."""
    return re.search(rf"^{re.escape(label)}\s*(.+)$", output, re.M).group(1)


def check_served(line: str, env: dict[str, str], log: Path) -> None:
    """Start a printed serve line from another folder, ask it for the README's two rows, stop it."""
    assert_port_free(5001)
    serving = start(line, log.parent, env, log)
    try:
        wait_until_healthy("http://127.0.0.1:5001", serving, 300, path="/ping")
        request = json.loads((PROJECT_DIR / "data" / "request.json").read_text())
        answer = requests.post("http://127.0.0.1:5001/invocations", json=request, timeout=60)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == 2
    finally:
        stop(serving)
    assert "Warning" not in log.read_text(errors="replace"), f"{line} printed a warning"
    assert "%|" not in log.read_text(errors="replace"), "no progress bar per file while it fetches the model"


@pytest.mark.usefixtures("project_virtualenv")  # the orchestrators' line builds it otherwise (once per machine)
def test_a_new_user_walks_the_readme_from_a_fresh_copy(tmp_path):
    from mlflow import MlflowClient

    copy = fresh_copy(tmp_path)
    env = plain_env(HOME=str(Path.home()))
    store = MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")

    # The two commands: `make run`, and the serve and UI lines its report prints.
    output = run_as_printed("make run", copy, env)
    assert "Warning" not in output, "one line per step, the report, real problems"
    serve_line, ui_line = report_line(output, "Serve it:"), report_line(output, "Open the UI:")
    experiment_page = re.search(r"# then open (\S+)$", ui_line).group(1)
    assert serve_line.startswith(f"make -C {copy} serve MODEL_URI=models:/breast-cancer-classifier@production")
    assert report_line(output, "Model page:") == "http://127.0.0.1:5000/#/models/breast-cancer-classifier/versions/1"
    assert "Pipeline finished.\n" in output and "Pipeline finished in" not in output, "one time: main's own"
    assert len(re.findall(r"\[main\] finished in [\d.]+ s$", output, re.M)) == 1
    ui = start(ui_line, tmp_path, env, tmp_path / "ui.log")
    processes = [ui]
    try:
        # Serve the model and call it: the README's lines, from the project folder (they name data/request.json).
        serve_block = readme_block_containing("bash", "curl -s localhost:5001/invocations")
        make_serve, curl = (line.split("#")[0].strip() for line in serve_block.strip().splitlines())
        assert make_serve == "make serve &"
        assert_port_free(5001)
        serving = start(make_serve.removesuffix("&").strip(), copy, env, tmp_path / "make-serve.log")
        processes.append(serving)
        wait_until_healthy("http://127.0.0.1:5001", serving, 180, path="/ping")
        body, status = run_as_printed(curl + " -w '\\n%{http_code}'", copy, env).rsplit("\n", 1)
        assert status == "200", body
        predictions = json.loads(body)["predictions"]
        assert len(predictions) == 2 and {"prediction", "probability_0", "probability_1"} <= set(predictions[0])
        stop(serving)
        check_served(serve_line, env, tmp_path / "serve.log")  # the report's line, from another folder

        # Score new tables: the README's line, as written, in the project folder.
        # Its output goes into the project folder, never to a shared path such as /tmp's.
        shared = Path("/tmp/scored.parquet")
        shared_before = shared.stat().st_mtime_ns if shared.exists() else None
        scored = run_as_printed(readme_block_containing("bash", "-e predict"), copy, env, 600)
        assert "no drift in 30 columns" in scored, "the training table does not drift from itself"
        scored_rows = len(pd.read_parquet(copy / "scored.parquet"))
        assert scored_rows == len(pd.read_csv(copy / "data" / "breast_cancer.csv")), "every row, in the project folder"
        shared_after = shared.stat().st_mtime_ns if shared.exists() else None
        assert shared_after == shared_before, "/tmp/scored.parquet untouched"
        for name in ("scored.parquet", ".scored.parquet.partial-0a1b"):  # the output, and its staged copy
            ignored = subprocess.run(
                ["git", "-c", "core.excludesFile=/dev/null", "check-ignore", "-q", name], cwd=PROJECT_DIR, check=False
            )
            assert ignored.returncode == 0, f"{name} leaves `git status` clean (the project's .gitignore)"
        wait_until_healthy("http://127.0.0.1:5000", ui, 180, path="/")
        look_at_the_ui_and_the_card(copy, experiment_page, shots_folder(tmp_path))

        # The orchestrators' line, on a worker with MLflow (and pyenv) installed, against `make ui`.
        worker = plain_env(
            HOME=str(Path.home()),
            PATH=os.pathsep.join([str(copy / ".venv" / "bin"), str(Path.home() / ".pyenv" / "bin"), PLAIN_PATH]),
        )
        orchestrated = readme_block_containing("bash", "export MLFLOW_TRACKING_URI").replace(
            "/abs/path/file.csv", str(copy / "data" / "breast_cancer.csv")
        )
        output = run_as_printed(orchestrated, copy, worker)
        check_served(report_line(output, "Serve it:"), env, tmp_path / "orchestrated-serve.log")
        assert requests.get(report_line(output, "Open the UI:"), timeout=30).status_code == 200

        # The notebook recipe, from the environment's Python called by its full path, as a kernel is.
        notebook = readme_block_containing("python", "mlflow.projects.run(").replace("/abs/path/to/repo", str(copy))
        assert str(copy / "mlflow.db") in notebook, "the README's placeholders changed"
        output = run_as_printed(f"{copy / '.venv' / 'bin' / 'python'} -c {shlex.quote(notebook)}", copy, env)
        assert "FINISHED" in output and "python: command not found" not in output
        statuses = {r.data.tags["mlflow.project.entryPoint"]: r.info.status for r in runs_of(store, "notebook-demo")}
        assert set(statuses) == {"main", "download", "process", "train_basic", "register"}
        assert set(statuses.values()) == {"FINISHED"}
        notebook_ui = report_line(output, "Open the UI:")
        assert notebook_ui.split("#")[0] == ui_line.split("#")[0], "the UI already running shows the notebook's runs"
        assert requests.get(notebook_ui.split("# then open ")[1], timeout=30).status_code == 200
        check_served(report_line(output, "Serve it:"), env, tmp_path / "notebook-serve.log")
    finally:
        for process in processes:
            stop(process)
    assert "Warning" not in (tmp_path / "ui.log").read_text(errors="replace"), "make ui printed a warning"


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


def test_a_python_without_the_packages_gets_one_line():
    """With no Python to fall back on (the rerun marker says one was tried already), a step on a
    Python without the project's packages says what is wrong and the two ways out, in one line."""
    from tabular_pipeline.interpreter import REEXEC_ENV

    command = ["bash", "-c", f"cd {PROJECT_DIR} && python3 -m steps.download"]
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
