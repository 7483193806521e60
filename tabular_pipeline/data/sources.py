"""Fetching a raw table from wherever the user keeps it: a local path, HTTP(S), or an MLflow URI.

HTTP downloads have a time limit and a size cap; archives are extracted only after every entry
has been checked to stay inside the destination folder.
"""

from __future__ import annotations

from pathlib import Path

from tabular_pipeline.data.archives import DEFAULT_MAX_BYTES, extract_archive, is_archive
from tabular_pipeline.data.downloads import download_http
from tabular_pipeline.data.uris import check_no_credentials, local_path, source_kind
from tabular_pipeline.errors import PipelineError, one_line


def download_mlflow_uri(uri: str, destination: Path) -> Path:
    """Fetch anything MLflow's artifact layer reads (runs:/, mlflow-artifacts:/, s3://, models:/...)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination)))
    except MlflowException as error:
        reason = one_line(error)
        raise PipelineError(f"could not fetch {uri} ({reason}); expected an existing artifact URI") from None
    except Exception as error:  # noqa: BLE001 - any storage client may fail; report it in one line
        reason = one_line(error)
        raise PipelineError(
            f"could not fetch {uri} ({type(error).__name__}: {reason}); expected an existing, readable URI"
        ) from None


# What a missing local path should have been, for a step that trains on it.
TRAINING_TABLE = "a .csv file or a folder with train.csv and test.csv"


def fetch_source(
    source: str, workdir: Path, base_dir: Path, timeout_s: float, max_bytes: int, expected: str = TRAINING_TABLE
) -> Path:
    """Bring a source to local disk and unpack it if it is an archive.

    Args:
        source: a path, file:// URI, http(s) URL, or MLflow-readable URI.
        workdir: a scratch folder for downloads and extraction.
        base_dir: the folder relative local paths are resolved against.
        timeout_s: the HTTP time limit.
        max_bytes: the HTTP and archive size cap.
        expected: what the step takes, for the error on a local path that does not exist.

    Returns:
        A local file or folder holding the table.
    """
    check_no_credentials(source)
    kind = source_kind(source)
    if kind == "local":
        fetched = local_path(source, base_dir)
        if not fetched.exists():
            raise PipelineError(f"data path {fetched} does not exist; expected {expected}")
    elif kind == "http":
        fetched = download_http(source, workdir, timeout_s, max_bytes)
    else:
        fetched = download_mlflow_uri(source, workdir / "fetched")
    if fetched.is_file() and is_archive(fetched):
        return extract_archive(fetched, workdir / "extracted", max_bytes)
    return fetched


def fetch_table(data_path: str, workdir: Path, timeout_s: float = 60.0, max_bytes: int = DEFAULT_MAX_BYTES):
    """Fetch `data_path` (a path or any supported URI) and locate the table in it.

    Args:
        data_path: a .csv/.parquet file, a folder with train and test files, or a URI to either.
        workdir: a scratch folder.
        timeout_s: the HTTP time limit.
        max_bytes: the HTTP and archive size cap.

    Returns:
        A `tables.TableLocation`.
    """
    from tabular_pipeline.data.tables import locate_table

    if not data_path or not data_path.strip():
        raise PipelineError(
            "data_path is empty; expected a .csv file, a folder with train.csv and test.csv, or a run URI"
        )
    return locate_table(fetch_source(data_path.strip(), workdir, Path.cwd(), timeout_s, max_bytes))
