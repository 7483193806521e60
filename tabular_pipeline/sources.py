"""Fetching a raw table from wherever the user keeps it: a local path, HTTP(S), or an MLflow URI.

HTTP downloads have a time limit and a size cap; archives are extracted only after every entry
has been checked to stay inside the destination folder.
"""

from __future__ import annotations

import stat
import tarfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from tabular_pipeline.errors import PipelineError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
DEFAULT_MAX_BYTES = 1 << 30
_CHUNK = 1 << 16


def is_archive(path: Path) -> bool:
    """Whether `path` names a zip or tar archive, by its suffix."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def source_kind(source: str) -> str:
    """Classify a source string: "local", "http" or "mlflow" (anything MLflow's artifact layer reads)."""
    scheme = urlparse(source).scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and source[1:3] in (":\\", ":/")):
        return "local"
    if scheme in ("http", "https"):
        return "http"
    return "mlflow"


def local_path(source: str, base_dir: Path) -> Path:
    """Turn a local source (a path, relative to `base_dir`, or a file:// URI) into a Path."""
    if source.lower().startswith("file:"):
        return Path(unquote(urlparse(source).path))
    path = Path(source).expanduser()
    return path if path.is_absolute() else base_dir / path


def _checked_member_path(name: str, destination: Path) -> Path:
    """Refuse archive entries that are absolute or climb out of `destination` (zip slip)."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
        raise PipelineError(f"archive entry '{name}' points outside the extraction folder; expected relative paths without '..'")
    target = (destination / pure).resolve()
    if destination.resolve() not in (target, *target.parents):
        raise PipelineError(f"archive entry '{name}' points outside the extraction folder; expected relative paths without '..'")
    return target


def extract_archive(archive: Path, destination: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """Extract a zip or tar archive after checking every entry; refuse links and oversize content.

    Args:
        archive: the archive file.
        destination: an empty folder to extract into.
        max_bytes: the cap on the total uncompressed size.

    Returns:
        `destination`.
    """
    destination.mkdir(parents=True, exist_ok=True)
    total = 0
    if archive.name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            for member in members:
                _checked_member_path(member.filename, destination)
                if stat.S_ISLNK(member.external_attr >> 16):
                    raise PipelineError(f"archive entry '{member.filename}' is a symbolic link; expected plain files")
                total += member.file_size
            if total > max_bytes:
                raise PipelineError(f"archive {archive.name} unpacks to {total} bytes; the cap is {max_bytes}")
            bundle.extractall(destination)
        return destination
    try:
        with tarfile.open(archive) as bundle:
            members = bundle.getmembers()
            for member in members:
                _checked_member_path(member.name, destination)
                if not (member.isfile() or member.isdir()):
                    raise PipelineError(f"archive entry '{member.name}' is a link or device; expected plain files")
                total += member.size
            if total > max_bytes:
                raise PipelineError(f"archive {archive.name} unpacks to {total} bytes; the cap is {max_bytes}")
            bundle.extractall(destination, members=members, filter="data")
    except tarfile.TarError as error:
        raise PipelineError(f"archive {archive.name} could not be read ({error}); expected a valid tar archive") from None
    return destination


def _file_name_for(url: str, content_type: str) -> str:
    name = PurePosixPath(unquote(urlparse(url).path)).name
    if name and "." in name:
        return name
    return "data.parquet" if "parquet" in content_type else "data.csv"


def download_http(url: str, destination: Path, timeout_s: float, max_bytes: int) -> Path:
    """Stream an HTTP(S) file to `destination`, with a total time limit and a size cap.

    Args:
        url: the http:// or https:// address.
        destination: the folder to write into.
        timeout_s: the limit for connecting, for each read, and for the whole download.
        max_bytes: the largest body accepted.

    Returns:
        The downloaded file.
    """
    import requests

    deadline = time.monotonic() + timeout_s
    try:
        with requests.get(url, stream=True, timeout=(timeout_s, timeout_s), allow_redirects=True) as response:
            if response.status_code >= 400:
                raise PipelineError(f"download of {url} failed with HTTP {response.status_code} {response.reason}; expected a reachable file")
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > max_bytes:
                raise PipelineError(f"download of {url} is {declared} bytes; the cap is {max_bytes} (set -P max_mb)")
            target = destination / _file_name_for(response.url, response.headers.get("Content-Type", ""))
            received = 0
            with target.open("wb") as handle:
                for chunk in response.iter_content(_CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise PipelineError(f"download of {url} exceeded the cap of {max_bytes} bytes (set -P max_mb)")
                    if time.monotonic() > deadline:
                        raise PipelineError(f"download of {url} took longer than {timeout_s:g} s; expected a faster source or a larger -P timeout_s")
                    handle.write(chunk)
            return target
    except requests.Timeout:
        raise PipelineError(f"download of {url} timed out after {timeout_s:g} s; expected a reachable server") from None
    except requests.RequestException as error:
        reason = str(error).splitlines()[0][:200]
        raise PipelineError(f"download of {url} failed ({reason}); expected a reachable http(s) URL") from None


def download_mlflow_uri(uri: str, destination: Path) -> Path:
    """Fetch anything MLflow's artifact layer reads (runs:/, mlflow-artifacts:/, s3://, models:/...)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination)))
    except MlflowException as error:
        reason = error.message.splitlines()[0][:300]
        raise PipelineError(f"could not fetch {uri} ({reason}); expected an existing artifact URI") from None
    except Exception as error:  # noqa: BLE001 - any storage client may fail; report it in one line
        reason = (str(error).splitlines() or [type(error).__name__])[0][:300]
        raise PipelineError(f"could not fetch {uri} ({type(error).__name__}: {reason}); expected an existing, readable URI") from None


def fetch_source(source: str, workdir: Path, base_dir: Path, timeout_s: float, max_bytes: int) -> Path:
    """Bring a source to local disk and unpack it if it is an archive.

    Args:
        source: a path, file:// URI, http(s) URL, or MLflow-readable URI.
        workdir: a scratch folder for downloads and extraction.
        base_dir: the folder relative local paths are resolved against.
        timeout_s: the HTTP time limit.
        max_bytes: the HTTP and archive size cap.

    Returns:
        A local file or folder holding the table.
    """
    kind = source_kind(source)
    if kind == "local":
        fetched = local_path(source, base_dir)
        if not fetched.exists():
            raise PipelineError(f"data path {fetched} does not exist; expected a .csv file or a folder with train.csv and test.csv")
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
    from tabular_pipeline.tables import locate_table

    if not data_path or not data_path.strip():
        raise PipelineError("data_path is empty; expected a .csv file, a folder with train.csv and test.csv, or a run URI")
    return locate_table(fetch_source(data_path.strip(), workdir, Path.cwd(), timeout_s, max_bytes))
