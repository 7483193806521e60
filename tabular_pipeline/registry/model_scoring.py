"""Scoring a model the way serving loads it: downloaded from the artifact store, loaded in a fresh
Python that sees nothing of this project but what the model carries (as `mlflow models serve
--env-manager local` does), or in the model's own environment when it records another Python.

The libraries a model's pipeline file holds types of must also be in its recorded requirements: a
model that only loads here because this environment happens to hold a package would fail where it
is served from those requirements.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pandas as pd

from tabular_pipeline.errors import one_line
from tabular_pipeline.orchestration.processes import end_process_tree

# Longest a model may take to load and score the gate's rows (an AutoGluon ensemble on 200,000 rows
# takes about a minute here).
SCORING_TIMEOUT_S = 1800
# Loads the model from a folder and scores a Parquet file of rows; writes the answer as Parquet and
# prints, as its last line, the answer's kind. Run with `python -I` from an empty folder: only the
# model's own code is importable.
SCORER = r"""
import json, sys
model_dir, rows_path, params, answer_path = sys.argv[1:5]
import mlflow.pyfunc, numpy as np, pandas as pd
try:
    model = mlflow.pyfunc.load_model(model_dir, suppress_warnings=True)
    output = model.predict(pd.read_parquet(rows_path), params=json.loads(params) or None)
except Exception as error:
    text = " ".join(str(error).split())[:300]
    print(f"scoring failed: {type(error).__name__}: {text}", file=sys.stderr)
    sys.exit(3)
if isinstance(output, pd.DataFrame):
    kind, frame = "frame", output
else:
    kind, frame = "values", pd.DataFrame({"prediction": np.asarray(output).ravel()})
frame.columns = [str(column) for column in frame.columns]
frame.to_parquet(answer_path, index=False)
print(json.dumps({"kind": kind}))
import gc
gc.freeze()  # the answer is written: exit without collecting the heap (tabular_pipeline/process_exit.py)
"""


class ModelUnusable(Exception):
    """The model could not be loaded or scored as it will be served; the message says why in one line.

    `killed` is true when its scorer was ended by SIGKILL, which is what the kernel's out-of-memory
    killer sends: most likely a fact about the machine at that moment, not about the model.
    """

    def __init__(self, message: str, killed: bool = False):
        super().__init__(message)
        self.killed = killed


def python_version() -> str:
    """This interpreter's major.minor version."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def recorded_python(model_dir: Path) -> str:
    """The major.minor Python version a downloaded model was saved with."""
    from mlflow.models import Model

    flavor = Model.load(str(model_dir / "MLmodel")).flavors.get("python_function", {})
    return ".".join(str(flavor.get("python_version", python_version())).split(".")[:2])


def fetch_failure(error: BaseException) -> str:
    """Why a model's files could not be fetched, in one line; files kept by a tracking server's
    artifact proxy (`mlflow-artifacts:/`) need that server's http(s) URI as the tracking URI."""
    text = one_line(error, 200)
    if "mlflow-artifacts" in text and "http or https" in text:
        return (
            "its files are kept by a tracking server (mlflow-artifacts:/...), which this run's store cannot reach; "
            "run register with MLFLOW_TRACKING_URI set to that server's http(s) URI"
        )
    return f"its artifacts could not be fetched ({type(error).__name__}: {text})"


class PendingAnswer:
    """A model's answer being computed as served: `answer()` waits for it, `stop()` ends a scorer
    still running (the gate starts the candidate's and the champion's at once)."""

    def __init__(self, wait: Callable[[], object], stop: Callable[[], None] | None = None, beside: bool = False):
        self._wait, self._stop = wait, stop
        # Whether it runs in a process of its own while the caller goes on (else at `answer()`).
        self.beside = beside

    def answer(self):
        """The answer: a frame (`prediction` and `probability_<class>` columns) or a list of
        predictions. Raises `ModelUnusable`."""
        return self._wait()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()


def failed(error: ModelUnusable) -> PendingAnswer:
    """An answer that will never come, for `error`'s reason."""

    def wait():
        raise error

    return PendingAnswer(wait)


@contextmanager
def started_scoring(model_uri: str, features: pd.DataFrame, params: dict | None) -> Iterator[PendingAnswer]:
    """Start scoring `model_uri` on `features` as served, and yield its pending answer. The model
    is fetched here, then scored in a fresh Python of its own while the caller goes on; leaving the
    block ends that process (and anything it started) if it is still running, and removes the
    model's files. A model saved under another Python is scored in its own environment only when
    its answer is asked for, not beside anything."""
    import mlflow

    with tempfile.TemporaryDirectory() as scratch:
        try:
            model_dir = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(Path(scratch) / "model")))
            recorded = recorded_python(model_dir)
        except Exception as error:  # noqa: BLE001 - any failure to fetch it means it cannot be served
            pending = failed(ModelUnusable(fetch_failure(error)))
        else:
            if recorded != python_version():
                # The copy fetched here: given a URI, MLflow would fetch another it never removes.
                pending = PendingAnswer(lambda: predict_in_model_environment(str(model_dir), features, params))
            else:
                pending = start_in_fresh_python(model_dir, features, params, Path(scratch))
        try:
            yield pending
        finally:
            pending.stop()


def served_output(model_uri: str, features: pd.DataFrame, params: dict | None):
    """The model's answer on `features`, as a served model gives it: a frame (`prediction` and
    `probability_<class>` columns) or a list of predictions.

    Raises:
        ModelUnusable: it cannot be downloaded, loaded or scored, or it imports a package its
            requirements do not name.
    """
    with started_scoring(model_uri, features, params) as pending:
        return pending.answer()


def start_in_fresh_python(model_dir: Path, features: pd.DataFrame, params: dict | None, scratch: Path) -> PendingAnswer:
    """Start loading and scoring the model in a new `python -I` in an empty folder (`SCORER`), and
    check that its requirements name the libraries its pipeline file needs; if they do not, the
    scorer is ended and the answer is that failure. The check runs while the scorer imports MLflow
    (reading every installed distribution's metadata takes about 0.6 s, once per process). The
    scorer's output goes to files, not pipes: a second scorer running beside it never waits on a
    full pipe."""
    rows, answer, empty = scratch / "rows.parquet", scratch / "answer.parquet", scratch / "cwd"
    empty.mkdir()
    features.to_parquet(rows, index=False)
    command = [sys.executable, "-I", "-c", SCORER, str(model_dir), str(rows), json.dumps(params or {}), str(answer)]
    deadline = time.monotonic() + SCORING_TIMEOUT_S
    process: subprocess.Popen | None = None

    def stop():
        if process is not None and process.poll() is None:
            # The scorer and whatever it started: a process it left would outlive the step.
            end_process_tree(process.pid, include_root=True, grace_s=5)
            process.wait()

    def wait():
        try:
            returncode = process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop()
            raise ModelUnusable(f"it did not answer within {SCORING_TIMEOUT_S} s") from None
        said = (scratch / "stderr").read_text(errors="replace")
        if returncode == -signal.SIGKILL:
            raise ModelUnusable("its scorer was killed (SIGKILL: out of memory?)", killed=True)
        if returncode != 0:
            reported = [line for line in said.splitlines() if line.startswith("scoring failed: ")]
            why = reported[-1][len("scoring failed: ") :] if reported else one_line(said.strip() or "no output", 300)
            if returncode < 0:
                why = f"ended by {signal.Signals(-returncode).name}; {why}"
            raise ModelUnusable(f"it failed to load or predict ({why})")
        report = json.loads((scratch / "stdout").read_text().strip().splitlines()[-1])
        frame = pd.read_parquet(answer)
        return frame if report["kind"] == "frame" else frame["prediction"].tolist()

    try:
        with open(scratch / "stdout", "wb") as stdout, open(scratch / "stderr", "wb") as stderr:
            process = subprocess.Popen(command, cwd=empty, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
        unservable = requirements_problem(model_dir)
    except BaseException:
        stop()
        raise
    if unservable is not None:
        stop()
        return failed(unservable)
    return PendingAnswer(wait, stop, beside=True)


def requirements_problem(model_dir: Path) -> ModelUnusable | None:
    """Why the model would not load where it is served from its requirements.txt, if it would not:
    its pipeline file holds objects of a library those requirements do not name, or the files
    that say so cannot be read."""
    try:
        missing = missing_requirements(pipeline_modules(model_dir), model_dir / "requirements.txt")
    except (OSError, ValueError) as error:  # an unreadable trusted_types.json or requirements.txt
        return ModelUnusable(f"its files could not be read ({type(error).__name__}: {one_line(error, 200)})")
    if missing:
        return ModelUnusable(
            f"it holds {', '.join(missing)} objects, which its requirements.txt does not name, so it would not "
            "load where it is served from them"
        )
    return None


def pipeline_modules(model_dir: Path) -> list[str]:
    """The top-level modules a scikit-learn pipeline model needs to load: scikit-learn and skops,
    and those of the types it told skops to trust (a booster's, numpy's). Empty for other models."""
    trusted = model_dir / "artifacts" / "trusted_types.json"
    if not trusted.is_file():
        return []
    return sorted({"sklearn", "skops"} | {name.split(".")[0] for name in json.loads(trusted.read_text())})


def missing_requirements(modules: list[str], requirements_file: Path) -> list[str]:
    """The installed distributions behind `modules` that neither `requirements_file` names nor any
    of the named ones requires (directly or not): what a served environment built from it would lack.

    Modules no installed distribution provides (the standard library, the model's own code) do not count.
    """
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    named = set()
    lines = requirements_file.read_text().splitlines() if requirements_file.is_file() else []
    for line in lines:
        try:
            named.add(canonicalize_name(Requirement(line.split("#", 1)[0].strip()).name))
        except InvalidRequirement:
            continue
    closure, pending = set(), list(named)
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        closure.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            # Extras' dependencies are only there when asked for; environment markers are checked here.
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonicalize_name(requirement.name))
    providers = installed_providers()
    missing = set()
    for module in modules:
        distributions = {canonicalize_name(name) for name in providers.get(module, [])}
        if distributions and not distributions & closure:
            missing.add(sorted(distributions)[0])
    return sorted(missing)


@cache
def installed_providers() -> dict[str, list[str]]:
    """Which distributions provide each top-level module; read once per process (about 0.7 s,
    and the gate asks for two models)."""
    from importlib import metadata

    return metadata.packages_distributions()


def predict_in_model_environment(model_uri: str, features: pd.DataFrame, params: dict | None):
    """Predict with a model in the environment it records (an auto-sklearn model needs Python 3.9),
    the way a scoring server would; returns the same shapes as `PyFuncModel.predict`. Pass a local
    folder: for a `models:/` or `runs:/` URI MLflow downloads the model into a temporary folder it
    never removes.

    The one use of a private MLflow API in this project (`get_flavor_backend`): the public
    `mlflow.models.predict` builds a fresh pyenv root and virtualenv on every call, and so downloads
    Python. `test_mlflow_private_api` pins the names and signature used here.
    """
    from mlflow.models.flavor_backend_registry import get_flavor_backend

    try:
        backend = get_flavor_backend(model_uri, env_manager="virtualenv", install_mlflow=False)
        with tempfile.TemporaryDirectory() as scratch:
            request, answer = Path(scratch) / "request.json", Path(scratch) / "answer.json"
            split = json.loads(features.to_json(orient="split", index=False, double_precision=15))
            request.write_text(json.dumps({"dataframe_split": split, **({"params": params} if params else {})}))
            backend.predict(model_uri=model_uri, input_path=str(request), output_path=str(answer), content_type="json")
            predictions = json.loads(answer.read_text())["predictions"]
    except Exception as error:  # noqa: BLE001 - any failure means it would not serve either
        raise ModelUnusable(
            f"it failed in its own environment ({type(error).__name__}: {one_line(error, 200)})"
        ) from None
    return pd.DataFrame(predictions) if predictions and isinstance(predictions[0], dict) else predictions
