"""Entry point `download`: fetch the raw table, and log a typed copy of it (Parquet) under `raw/`
with the raw file's digest as its lineage."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import click

from tabular_pipeline.data.archives import is_archive
from tabular_pipeline.data.sources import fetch_source
from tabular_pipeline.data.tables import locate_table, read_table
from tabular_pipeline.data.uris import local_path, redact_source, signed_source_for, source_kind
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.orchestration.fingerprints import TAG_RAW_DIGEST, TAG_SOURCE_DIGEST, digest_path
from tabular_pipeline.orchestration.step_runs import TAG_OUTPUT_DIGEST, TAG_OUTPUT_URI, run_step
from tabular_pipeline.parameters.entry_points import entry_point_options
from tabular_pipeline.registry.lineage import TAG_DATA_SOURCE

RAW_ARTIFACT_PATH = "raw"
log = logging.getLogger("download")


def typed_copy(table, file: Path, staging: Path) -> Path:
    """Store the table read from `file` as compressed Parquet under `staging` (what `process`
    reads: the types are settled once, and the hand-off is a fraction of a CSV's size). A Parquet
    file is copied as it is; a table Parquet cannot hold (mixed types in one column) is kept raw."""
    target = staging / f"{file.stem}.parquet"
    if file.suffix.lower() == ".parquet":
        shutil.copyfile(file, target)
        return target
    try:
        table.to_parquet(target, index=False, compression="zstd")
    except (ValueError, TypeError, ArithmeticError) as error:  # pyarrow's conversion errors derive from these
        target.unlink(missing_ok=True)
        target = staging / file.name
        shutil.copyfile(file, target)
        log.info("%s kept as CSV: it cannot be stored as Parquet (%s)", file.name, str(error).splitlines()[0][:200])
    return target


def download_table(source: str, timeout_s: float, max_mb: float, run) -> None:
    """Fetch `source`, check it is a table, and log it as the run's `raw/` artifacts.

    Only the source without its query string is recorded; `main` hands a presigned URL over in
    `SIGNED_SOURCE_ENV` so that its signature never becomes a run parameter.
    """
    import mlflow

    # Imported here: it imports MLflow's dataset classes (seconds), which `--help` does not need.
    from tabular_pipeline.registry.datasets import log_dataset, pandas_dataset

    if not timeout_s > 0 or not max_mb > 0:
        raise PipelineError(f"timeout_s is {timeout_s:g} and max_mb {max_mb:g}; expected both above 0")
    source = signed_source_for(source)
    recorded = redact_source(source)
    given = local_path(source, Path.cwd()) if source_kind(source) == "local" else None
    with tempfile.TemporaryDirectory() as scratch:
        staging = Path(scratch) / RAW_ARTIFACT_PATH
        staging.mkdir()
        # A local folder or archive as given, before it is read or unpacked: what main's cache key
        # names (a single table file's is its raw digest, below, not read twice).
        given_digest = (
            digest_path(given)
            if given is not None and (given.is_dir() or (given.is_file() and is_archive(given)))
            else None
        )
        fetched = fetch_source(source, Path(scratch), Path.cwd(), timeout_s, int(max_mb * 2**20))
        location = locate_table(fetched)
        files = [location.train, location.test] if location.is_split else [location.single]
        raw_digests = []
        for file in files:
            table = read_table(file)
            digest = digest_path(file)
            raw_digests.append(digest)
            typed_copy(table, file, staging)
            dataset = pandas_dataset(table, source=recorded, name=file.stem, digest=digest[7:39])
            log_dataset(dataset, context="raw")
            log.info("%s: %d rows x %d columns, %s", file.name, table.shape[0], table.shape[1], digest)
        output_digest = digest_path(staging)
        mlflow.log_artifacts(str(staging), RAW_ARTIFACT_PATH)
    output_uri = f"runs:/{run.info.run_id}/{RAW_ARTIFACT_PATH}"
    tags = {
        TAG_OUTPUT_URI: output_uri,
        TAG_OUTPUT_DIGEST: output_digest,
        TAG_DATA_SOURCE: recorded,
        TAG_RAW_DIGEST: ",".join(raw_digests),
    }
    if given is not None:
        tags[TAG_SOURCE_DIGEST] = given_digest or raw_digests[0]
    mlflow.set_tags(tags)
    log.info("raw table logged at %s", output_uri)


# Help lines for `--help`; names, types and defaults come from MLproject.
HELP = {
    "source": "Path, file://, http(s):// or MLflow artifact URI.",
    "timeout_s": "HTTP time limit in seconds.",
    "max_mb": "Size cap for downloads and archives.",
}


@click.command()
@entry_point_options("download", HELP)
def download(source: str, timeout_s: float, max_mb: float) -> None:
    """Fetch a raw table and log it as an artifact and an MLflow dataset input."""
    run_step("download", lambda run: download_table(source, timeout_s, max_mb, run))


if __name__ == "__main__":
    download()
