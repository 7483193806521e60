"""The multistep workflow: which steps run, with what parameters, and when a finished one is reused.

`main.py` wires these together; everything that talks to MLflow takes a client or works inside
the active run, and everything else is a pure function.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tabular_pipeline.data.uris import local_path, source_kind
from tabular_pipeline.errors import PipelineError, one_line
from tabular_pipeline.orchestration.fingerprints import TAG_SOURCE_DIGEST, cache_key, digest_path
from tabular_pipeline.orchestration.processes import end_process_tree
from tabular_pipeline.orchestration.step_cache import find_reusable_run
from tabular_pipeline.orchestration.step_runs import (
    STEP_OF_MAIN_ENV,
    TAG_CACHE_KEY,
    TAG_CODE_VERSION,
    TAG_ERROR,
    TAG_INPUT_DIGEST,
    TAG_OUTPUT_DIGEST,
    TAG_OUTPUT_URI,
    failure_message,
    run_page_url,
    stop_message,
)

log = logging.getLogger("main")
TAG_PROJECT_ENV = "mlflow.project.env"


@dataclass(frozen=True)
class StepSpec:
    """One step to run: its entry point, parameters, and what its cache key is made of.

    `key_params` leaves out parameters that only point at the input (a run URI differs on every
    run); the input's content digest stands in for them.
    """

    entry_point: str
    params: dict[str, object]
    key_params: dict[str, object]
    input_digest: str | None
    cacheable: bool = True
    # For steps whose effect lives outside their run (register): is a matching run's effect still in place?
    still_valid: Callable[[object], bool] | None = None
    # For a step that reads main's input itself (download): did its finished run read what main hashed?
    read_as_hashed: Callable[[object], bool] | None = None


def read_digest_is(input_digest: str | None, run) -> bool:
    """Whether a download run read the bytes main hashed: its local source's digest, as it read
    it, is `input_digest`."""
    return run.data.tags.get(TAG_SOURCE_DIGEST) == input_digest


@dataclass
class StepResult:
    """What a finished (or reused) step left behind."""

    entry_point: str
    run_id: str
    experiment_id: str
    output_uri: str
    output_digest: str | None
    reused: bool
    seconds: float
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def source_digest(source: str, project_dir: Path) -> str | None:
    """The content digest of a local source, the URI itself for an immutable run artifact, else None.

    None means "cannot tell whether it changed", so the download step always runs.
    """
    kind = source_kind(source)
    if kind == "local":
        path = local_path(source, project_dir)
        return digest_path(path) if path.exists() else None
    if source.startswith("runs:/"):
        return "uri:" + source
    return None


class BackgroundDigest:
    """`source_digest(source, project_dir)`; for a local file, computed on a thread from the
    moment this is made.

    `main` makes it before it imports MLflow (about a second), so hashing a large local table
    overlaps that import instead of following it (0.08 s for 110 MB here: hashlib lets the import
    run while it hashes a piece, see `digest_file`). Anything else (a folder, a URI, an empty or
    missing path) is left for `result`, which main calls after its checks, as before.
    A daemon thread, not a `ThreadPoolExecutor`, whose thread the interpreter waits for at exit:
    main refused on its options must not first finish hashing.
    """

    def __init__(self, source: str, project_dir: Path):
        self.source, self.project_dir = source, project_dir
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._done = False
        self._thread = threading.Thread(target=self._compute, name="input-digest", daemon=True)
        try:
            self.hashed_file = (
                source_kind(source) == "local" and bool(source) and local_path(source, project_dir).is_file()
            )
        except Exception:  # noqa: BLE001 - an odd path (`~nobody/t.csv`) is main's checks' to refuse, in one line
            self.hashed_file = False
        if self.hashed_file:
            self._thread.start()

    def _compute(self) -> None:
        try:
            self._digest = source_digest(self.source, self.project_dir)
        except BaseException as error:  # noqa: BLE001 - raised again in the caller by `result`
            self._error = error
        self._done = True

    def result(self) -> str | None:
        """The digest (see `source_digest`); an error computing it is raised here."""
        if self.hashed_file:
            self._thread.join()
        elif not self._done:
            self._compute()  # not a local file: computed now, after main's checks, as before
        if self._error is not None:
            raise self._error
        return self._digest


def stopped_by(stop: BaseException) -> str:
    """Why main stopped, for an exception that no stop handler of main's recorded."""
    if isinstance(stop, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return failure_message(stop)


def parent_env_manager(run_tags: dict[str, str]) -> str:
    """The env manager `mlflow run` used for main, so the children use the same one.

    MLflow records it as the run's `mlflow.project.env` tag for virtualenv, uv and conda; a run
    without the tag ran with the local environment.
    """
    return run_tags.get(TAG_PROJECT_ENV) or "local"


_FAILED_RUN_ID = re.compile(r"Run \(ID '([0-9a-f]+)'\)")


def failed_run_id(message: str) -> str | None:
    """The run id inside MLflow's "Run (ID '...') failed" message."""
    match = _FAILED_RUN_ID.search(message)
    return match.group(1) if match else None


def step_run_name(spec: StepSpec) -> str:
    """A step run's name: its entry point, and where it runs when that is Spark (`process on Spark`)."""
    return f"{spec.entry_point} on Spark" if spec.params.get("engine") == "spark" else spec.entry_point


def stop_children(grace_s: float = 60.0) -> None:
    """End every process below this one: SIGTERM first, so a step can end its run KILLED, then
    SIGKILL whatever is left after `grace_s`."""
    import os

    for leftover in end_process_tree(os.getpid(), include_root=False, grace_s=grace_s):
        log.warning("killed %s of the stopped step", leftover)


class StepRunner:
    """Runs steps as child MLflow project runs, reusing finished ones when their key matches."""

    def __init__(self, client, project_dir: Path, experiment_id: str, env_manager: str, code: str, use_cache: bool):
        self.client = client
        self.project_dir = project_dir
        self.experiment_id = experiment_id
        self.env_manager = env_manager
        self.code = code
        self.use_cache = use_cache

    def key_for(self, spec: StepSpec) -> str | None:
        if not spec.cacheable or spec.input_digest is None:
            return None
        return cache_key(spec.entry_point, spec.key_params, self.code, spec.input_digest)

    def _result(self, spec: StepSpec, run, reused: bool, seconds: float) -> StepResult:
        tags = run.data.tags
        return StepResult(
            entry_point=spec.entry_point,
            run_id=run.info.run_id,
            experiment_id=run.info.experiment_id,
            output_uri=tags.get(TAG_OUTPUT_URI, ""),
            output_digest=tags.get(TAG_OUTPUT_DIGEST),
            reused=reused,
            seconds=seconds,
            tags=dict(tags),
            metrics=dict(run.data.metrics),
        )

    def run(self, spec: StepSpec) -> StepResult:
        """Reuse a matching finished run or launch the step; raise `PipelineError` if it fails."""
        import mlflow
        from mlflow.entities import RunTag
        from mlflow.exceptions import ExecutionException

        started = time.monotonic()
        key = self.key_for(spec)
        if key and self.use_cache:
            found = find_reusable_run(self.client, self.experiment_id, key)
            if (
                found is not None
                and found.data.tags.get(TAG_OUTPUT_URI)
                and (spec.still_valid is None or spec.still_valid(found))
            ):
                result = self._result(spec, found, reused=True, seconds=time.monotonic() - started)
                log.info(
                    "%-12s reused   run %s (same parameters, code and input) in %.1f s -> %s",
                    spec.entry_point,
                    result.run_id,
                    result.seconds,
                    result.output_uri,
                )
                return result
        if not self.use_cache:
            reason = "cache off"
        elif key:
            reason = "no earlier run matches"
        else:
            reason = "its input is fetched anew each time" if spec.cacheable else "never reused"
        log.info("%-12s started  (%s)", spec.entry_point, reason)
        os.environ[STEP_OF_MAIN_ENV] = "1"  # main says why a step failed, in one line
        try:
            # MLflow makes a folder for every project run (for `path` parameters, which this project
            # has none of) and never removes it: here it is made inside one that goes with the step.
            with tempfile.TemporaryDirectory(prefix="mlflow-run-", ignore_cleanup_errors=True) as storage:
                submitted = mlflow.projects.run(
                    uri=str(self.project_dir),
                    entry_point=spec.entry_point,
                    parameters={name: str(value) for name, value in spec.params.items()},
                    experiment_id=self.experiment_id,
                    env_manager=self.env_manager,
                    run_name=step_run_name(spec),
                    synchronous=True,
                    storage_dir=storage,
                )
        except ExecutionException as error:
            raise self._step_failure(spec, str(error), time.monotonic() - started) from None
        except BaseException as stop:
            # main was stopped (SIGTERM, Ctrl-C) while the step ran: stop the step's whole tree
            # (main has no other children) and give it time to end its run.
            stop_children()
            try:
                self._end_running_steps(stop_message() or stopped_by(stop))
            except Exception as error:  # noqa: BLE001 - the stop itself is what main reports
                log.warning("could not end the step runs main stopped: %s", one_line(error))
            raise
        run = self.client.get_run(submitted.run_id)
        tags = {TAG_CODE_VERSION: self.code}
        if spec.read_as_hashed is not None and not spec.read_as_hashed(run):
            # What it read is in its own lineage; main's digest and key would name other bytes.
            log.warning(
                "%-12s read its input after it changed (main had hashed it as it started): run %s is used "
                "now and will not be reused",
                spec.entry_point,
                run.info.run_id,
            )
            key = None
        elif spec.input_digest:
            tags[TAG_INPUT_DIGEST] = spec.input_digest
        if key:
            # Tagged only once the step has FINISHED, so a failed or killed run is never reused.
            tags[TAG_CACHE_KEY] = key
        self.client.log_batch(run.info.run_id, tags=[RunTag(name, value) for name, value in tags.items()])
        result = self._result(spec, run, reused=False, seconds=time.monotonic() - started)
        log.info(
            "%-12s finished run %s in %.1f s -> %s", spec.entry_point, result.run_id, result.seconds, result.output_uri
        )
        return result

    def _end_running_steps(self, main_stopped: str) -> None:
        """End this pipeline's step runs that main's stop left without an outcome of their own.

        A run still RUNNING (its process was killed, or main's stop reached it before its own
        handlers were in place) ends FAILED; one MLflow's runner marked FAILED on Ctrl-C has no
        reason yet. Each gets the error tag `stopped with main (<main_stopped>)`. A reason or a
        status that a step recorded itself is kept.
        """
        import mlflow

        main_run = mlflow.active_run()
        if main_run is None:
            return
        steps = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{main_run.info.run_id}'"
        )
        for run in steps:
            status = run.info.status
            if status not in ("RUNNING", "FAILED"):
                continue
            if TAG_ERROR not in run.data.tags:
                try:
                    self.client.set_tag(run.info.run_id, TAG_ERROR, f"stopped with main ({main_stopped})")
                except Exception:  # noqa: BLE001 - ending the run matters more than saying why
                    log.warning("could not record why step run %s stopped", run.info.run_id)
            if status == "RUNNING":
                self.client.set_terminated(run.info.run_id, "FAILED")

    def _step_failure(self, spec: StepSpec, message: str, seconds: float) -> PipelineError:
        run_id = failed_run_id(message)
        # Without a run the step printed its own error line; with one, main prints it from the run.
        detail = "see the step's output above"
        if run_id:
            detail = "its message could not be read back from its run"
            try:
                detail = self.client.get_run(run_id).data.tags.get(TAG_ERROR) or detail
            except Exception:  # noqa: BLE001 - the step's own output already shows the cause
                pass
        where = f" (run {run_page_url(self.client.tracking_uri, self.experiment_id, run_id)})" if run_id else ""
        log.info("%-12s FAILED after %.1f s", spec.entry_point, seconds)
        return PipelineError(f"step {spec.entry_point} failed: {detail}{where}")
