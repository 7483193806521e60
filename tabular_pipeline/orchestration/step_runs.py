"""The MLflow run around every step: logging set-up, tags, and turning errors into a FAILED run
with one clear line instead of a bare traceback."""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable

from tabular_pipeline.errors import PipelineError, one_line
from tabular_pipeline.orchestration.caller_watch import watching_caller
from tabular_pipeline.orchestration.processes import end_process_tree
from tabular_pipeline.orchestration.run_names import mark_experiment_kind, run_name_or_entry_point, run_name_tag

TAG_ENTRY_POINT = "pipeline.entry_point"
TAG_OUTPUT_URI = "pipeline.output_uri"
TAG_OUTPUT_DIGEST = "pipeline.output_digest"
TAG_INPUT_DIGEST = "pipeline.input_digest"
TAG_CACHE_KEY = "pipeline.cache_key"
TAG_CODE_VERSION = "pipeline.code_version"
TAG_ERROR = "pipeline.error"
# Set by main for its steps: main prints a failed step's message (from TAG_ERROR) with the run's
# link in its own `error:` line, so the step does not print a second one.
STEP_OF_MAIN_ENV = "TABULAR_PIPELINE_STEP_OF_MAIN"
TAG_TASK = "pipeline.task"
# Logged on every step's run; `main` does not copy them from the training step.
STEP_RESOURCE_METRICS = ("step_seconds", "peak_memory_mb")

EXIT_USER_ERROR = 2
EXIT_BUG = 1
EXIT_TERMINATED = 143
EXIT_INTERRUPTED = 130

_QUIET_LOGGERS = ("mlflow", "urllib3", "alembic", "git", "matplotlib", "py.warnings")


def configure_logging() -> None:
    """One timestamped line per event on stderr; MLflow's own chatter at warning level."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # MLflow's advice for signatures it infers from integer columns; the project declares its own
    # model signatures, and dataset records (a Spark split's schema, inferred when logged) need none.
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")


# MLflow 3.17's UI starts a new visitor in its GenAI workflow; this query opens model training.
UI_VIEW = "?workflowType=machine_learning"


def has_credentials(uri: str) -> bool:
    """Whether a URI carries a user name or password (`postgresql://user:pw@db/mlflow`)."""
    from urllib.parse import urlsplit

    return "@" in urlsplit(uri).netloc


def shown_uri(uri: str) -> str:
    """A URI as it may be printed or recorded: without its user name and password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit((parts.scheme, "***@" + parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, ""))


# The port of the UI over a local store (`make ui`, `mlflow ui`): `make run UI_PORT=...` sets it.
UI_PORT_ENV = "TABULAR_PIPELINE_UI_PORT"
DEFAULT_UI_PORT = 5000


def ui_port() -> int:
    """The UI's port for links to a local store: $TABULAR_PIPELINE_UI_PORT, else 5000."""
    text = os.environ.get(UI_PORT_ENV, "").strip()
    if not text:
        return DEFAULT_UI_PORT
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise PipelineError(f"{UI_PORT_ENV}={text!r} is not a port; expected a number from 1 to 65535")
    return int(text)


def _ui_base(tracking_uri: str) -> str:
    if tracking_uri.startswith(("http://", "https://")):
        return shown_uri(tracking_uri).replace("***@", "").rstrip("/")
    try:
        return f"http://127.0.0.1:{ui_port()}"
    except PipelineError:  # a link is not worth failing for: main refuses the setting before any step
        return f"http://127.0.0.1:{DEFAULT_UI_PORT}"


def experiment_page_url(tracking_uri: str, experiment_id: str) -> str:
    """A link to the experiment's runs in the MLflow UI (for a local store, `make ui` on `ui_port()`)."""
    return f"{_ui_base(tracking_uri)}/#/experiments/{experiment_id}{UI_VIEW}"


def run_page_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """A link to the run in the MLflow UI (for a local store, `make ui` on `ui_port()`)."""
    return f"{_ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}{UI_VIEW}"


def model_version_page_url(tracking_uri: str, name: str, version: str) -> str:
    """A link to a registered model version's page in the MLflow UI."""
    from urllib.parse import quote

    return f"{_ui_base(tracking_uri)}/#/models/{quote(name, safe='')}/versions/{version}"


class StepTerminated(BaseException):
    """Raised in the step's process when it receives SIGTERM, so the run ends as KILLED."""


# How the step was asked to stop, once it was: whatever the body raises afterwards (a Spark job
# failing because the stop cancelled it) is that stop, not a failure of its own.
_STOP_REQUESTED: list[str] = []


# A step stopping because its caller went away may find the tracking server gone too (an
# orchestrator ending everything): MLflow's default retries would hold it for minutes on each
# call. While stopping, each call gets a few seconds, then the step ends without the server.
STOPPING_HTTP_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


def _stopping(how: str) -> None:
    # Once stopping, stop quietly: a second SIGTERM or Ctrl-C must not cut the clean-up short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(STOPPING_HTTP_SETTINGS)
    _STOP_REQUESTED.append(how)


def _raise_terminated(_signum, _frame):
    _stopping("terminated")
    raise StepTerminated()


def _raise_interrupted(_signum, _frame):
    # The same for Ctrl-C: the first one stops the step, later ones cannot cut its clean-up short.
    _stopping("interrupted")
    raise KeyboardInterrupt


# The caller's pid, once it ended and the step stopped because of it.
CALLER_GONE: list[int] = []


def _caller_ended(pid: int) -> None:
    # Already stopping (main's SIGTERM came first): that stays the reason.
    if _STOP_REQUESTED:
        return
    CALLER_GONE.append(pid)
    _raise_terminated(signal.SIGTERM, None)


def stopped_outcome(how: str) -> tuple[str, int, str]:
    """The run's status, the exit code and the message of a step stopped by SIGTERM or Ctrl-C."""
    if how == "terminated":
        return "KILLED", EXIT_TERMINATED, terminated_message()
    return "KILLED", EXIT_INTERRUPTED, "interrupted (Ctrl-C)"


def stop_message() -> str | None:
    """Why this process is stopping, once a SIGTERM, Ctrl-C or its caller's end stopped it."""
    if not _STOP_REQUESTED:
        return None
    return stopped_outcome(_STOP_REQUESTED[0])[2]


def terminated_message() -> str:
    """Why SIGTERM stopped the step: someone sent it, or the caller waiting on it ended first."""
    if CALLER_GONE:
        return f"stopped because the process that started it (pid {CALLER_GONE[0]}) ended"
    return "terminated by SIGTERM"


def failure_message(error: BaseException) -> str:
    """The error's first line; unexpected errors (bugs) are prefixed with their type."""
    return (
        one_line(error) if isinstance(error, PipelineError) else f"unexpected {type(error).__name__}: {one_line(error)}"
    )


def peak_memory_mb() -> float:
    """The peak resident memory of this process so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def log_step_resources(client, run_id: str, seconds: float) -> None:
    """Log the step's wall time and peak memory in one call; a failure here must not fail the step."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric("step_seconds", seconds, now, 0), Metric("peak_memory_mb", peak_memory_mb(), now, 0)]
    try:
        client.log_batch(run_id, metrics=metrics)
    except Exception:  # noqa: BLE001 - the figures are informative; the step's outcome stands
        logging.getLogger("step").warning("could not log step_seconds and peak_memory_mb")


def run_step(entry_point: str, body: Callable[[object], None], run_name: Callable[[], str] | None = None) -> None:
    """Run `body(run)` inside the step's MLflow run and end it FINISHED, FAILED or KILLED.

    A `PipelineError` is printed as ``error: <entry point>: <message>`` and exits with 2; any other
    exception also prints its traceback and exits with 1. Either way the run is FAILED and the
    message is stored in the run's ``pipeline.error`` tag for the orchestrating `main`.

    Args:
        entry_point: the step's name, used in logs and tags.
        body: the step's work; it receives the active `mlflow.ActiveRun`.
        run_name: the name for a run MLflow named at random (default: the entry point).
    """
    import mlflow

    configure_logging()
    # Each step logs its own run link once; MLflow would print it again on every end_run.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # MLflow draws a progress bar for every artifact copy once tqdm is installed (AutoGluon brings it).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    log = logging.getLogger(entry_point)
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGINT, _raise_interrupted)
    started = time.monotonic()
    try:
        run = mlflow.start_run()
    except Exception as error:  # noqa: BLE001 - the tracking server is the usual culprit
        print(
            f"error: {entry_point}: could not start an MLflow run at {shown_uri(mlflow.get_tracking_uri())} "
            f"({failure_message(error)})",
            file=sys.stderr,
        )
        sys.exit(EXIT_USER_ERROR)
    # The name goes in the same request as the entry point's tag.
    name = run_name_or_entry_point(entry_point, run_name)
    mlflow.set_tags({TAG_ENTRY_POINT: entry_point, **run_name_tag(run.info.run_name, name)})
    mark_experiment_kind(mlflow.MlflowClient(), run.info.experiment_id)
    log.info("started run %s", run_page_url(mlflow.get_tracking_uri(), run.info.experiment_id, run.info.run_id))
    status, code, message = "FINISHED", 0, ""
    try:
        # A caller killed with SIGKILL leaves no step running on its behalf.
        with watching_caller(on_caller_ended=_caller_ended):
            body(run)
    except StepTerminated:
        status, code, message = "KILLED", EXIT_TERMINATED, terminated_message()
    except KeyboardInterrupt:  # ours, or a library's own SIGINT handler's
        if not _STOP_REQUESTED:
            _stopping("interrupted")
        status, code, message = "KILLED", EXIT_INTERRUPTED, "interrupted (Ctrl-C)"
    except Exception as error:  # noqa: BLE001 - report any bug as a FAILED run with one clear line
        if _STOP_REQUESTED:  # what failed did so because the step was stopping
            status, code, message = stopped_outcome(_STOP_REQUESTED[0])
        elif isinstance(error, PipelineError):
            status, code, message = "FAILED", EXIT_USER_ERROR, failure_message(error)
        else:
            traceback.print_exc()
            status, code, message = "FAILED", EXIT_BUG, failure_message(error)
    elapsed = time.monotonic() - started
    try:
        recorded = record_outcome(mlflow.MlflowClient(), run.info.run_id, status, message, elapsed)
    except Exception as error:  # noqa: BLE001 - the tracking server went away: say so once, leave nothing behind
        server_gone(entry_point, run.info.run_id, status, message, error, log)
    # Nothing this step started may outlive it (a library's JVM would hold the caller's output open).
    for leftover in end_process_tree(os.getpid(), include_root=False):
        log.warning("killed %s, which did not end with the step", leftover)
    if code:
        if not (recorded and entry_point != "main" and os.environ.get(STEP_OF_MAIN_ENV)):
            print(f"error: {entry_point}: {message}", file=sys.stderr)
        log.info("%s after %.1f s", status.lower(), elapsed)
        sys.exit(code)
    log.info("finished in %.1f s", elapsed)


def record_outcome(client, run_id: str, status: str, message: str, seconds: float) -> bool:
    """End the step's run with `status` (its error message as a tag, its time and memory as
    metrics); True when the message was recorded. Raises when the tracking server cannot be reached."""
    import mlflow

    recorded = False
    if status != "FINISHED":
        try:
            client.set_tag(run_id, TAG_ERROR, message[:4000])
            recorded = True
        except Exception:  # noqa: BLE001 - the message still reaches stderr; a server that is gone fails below
            pass
    # Libraries may leave runs of their own active (FLAML's does): end every active run with the
    # step's status, then this step's run by id if it was not among them (one request, never RUNNING).
    ended_own = False
    while (active := mlflow.active_run()) is not None:
        ended_own = ended_own or active.info.run_id == run_id
        mlflow.end_run(status)
    log_step_resources(client, run_id, seconds)
    if not ended_own:
        client.set_terminated(run_id, status)
    return recorded


def server_gone(entry_point: str, run_id: str, status: str, message: str, error: BaseException, log) -> None:
    """The tracking server stopped answering as the step ended: one line, every child process
    ended, and an exit that skips MLflow's own attempt to end the run again (minutes of retries)."""
    import mlflow

    where = shown_uri(mlflow.get_tracking_uri())
    gone = f"the tracking server at {where} stopped answering as the step ended ({one_line(error, 200)})"
    line = f"{gone}; run {run_id} could not be marked {status}"
    if status != "FINISHED":
        line = f"{message}; and {line}"
    for leftover in end_process_tree(os.getpid(), include_root=False):
        log.warning("killed %s, which did not end with the step", leftover)
    print(f"error: {entry_point}: {line}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_USER_ERROR)
