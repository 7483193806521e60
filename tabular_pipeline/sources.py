"""Fetching a raw table from wherever the user keeps it: a local path, HTTP(S), or an MLflow URI.

HTTP downloads have a time limit and a size cap; archives are extracted only after every entry
has been checked to stay inside the destination folder.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urljoin, urlparse, urlsplit, urlunsplit

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


def _checked_zip_size(archive: Path, destination: Path) -> int:
    with zipfile.ZipFile(archive) as bundle:
        total = 0
        for member in bundle.infolist():
            _checked_member_path(member.filename, destination)
            if stat.S_ISLNK(member.external_attr >> 16):
                raise PipelineError(f"archive entry '{member.filename}' is a symbolic link; expected plain files")
            total += member.file_size
        return total


def _checked_tar_size(archive: Path, destination: Path) -> int:
    with tarfile.open(archive) as bundle:
        total = 0
        for member in bundle.getmembers():
            _checked_member_path(member.name, destination)
            if not (member.isfile() or member.isdir()):
                raise PipelineError(f"archive entry '{member.name}' is a link or device; expected plain files")
            total += member.size
        return total


def extract_archive(archive: Path, destination: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """Extract a zip or tar archive after checking every entry; refuse links and oversize content.

    The entries are checked first (paths, links, total size); `shutil.unpack_archive` then extracts
    them, with tarfile's "data" filter for tar archives as a second guard.

    Args:
        archive: the archive file.
        destination: an empty folder to extract into.
        max_bytes: the cap on the total uncompressed size.

    Returns:
        `destination`.
    """
    destination.mkdir(parents=True, exist_ok=True)
    is_zip = archive.name.lower().endswith(".zip")
    try:
        total = _checked_zip_size(archive, destination) if is_zip else _checked_tar_size(archive, destination)
        if total > max_bytes:
            raise PipelineError(f"archive {archive.name} unpacks to {total} bytes; the cap is {max_bytes}")
        shutil.unpack_archive(archive, destination, **({} if is_zip else {"filter": "data"}))
    except (zipfile.BadZipFile, tarfile.TarError, shutil.ReadError, EOFError, zlib.error, OSError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise PipelineError(f"archive {archive.name} is corrupt or unreadable ({reason}); expected a valid zip or tar archive") from None
    return destination


def _file_name_for(url: str, content_type: str) -> str:
    name = PurePosixPath(unquote(urlparse(url).path)).name
    if name and "." in name:
        return name
    return "data.parquet" if "parquet" in content_type else "data.csv"


def check_no_credentials(source: str, what: str = "data_path") -> None:
    """Refuse a URI that carries a user name or password: it would be recorded and printed.

    Credentials belong in the environment: `~/.netrc` for HTTP (requests reads it by itself), the
    cloud SDKs' own variables and files for s3:// and gs://.
    """
    parts = urlsplit(source)
    if parts.scheme and parts.netloc and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        raise PipelineError(
            f"{what} {parts.scheme}://***@{host}{parts.path} carries credentials in the URL; expected a URL without them "
            "(HTTP: put them in ~/.netrc; cloud storage: the SDK's environment variables)"
        )


def redact_source(source: str) -> str:
    """The source as it may be recorded: an http(s) URL without its query string (a presigned URL's
    signature) or fragment; anything else unchanged."""
    parts = urlsplit(source)
    if parts.scheme.lower() not in ("http", "https") or not (parts.query or parts.fragment):
        return source
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def scrub(text: str, source: str) -> str:
    """`text` with the source's query string (and fragment) cut out, for messages and tags."""
    parts = urlsplit(source)
    for secret in (parts.query, parts.fragment):
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


# Where `main` puts a presigned URL for its download step, which gets the URL without its query.
SIGNED_SOURCE_ENV = "TABULAR_PIPELINE_SIGNED_SOURCE"


def signed_source_for(source: str) -> str:
    """The full presigned URL behind a redacted `source`, when the orchestrating `main` left it in
    `SIGNED_SOURCE_ENV`; otherwise `source` itself."""
    import os

    signed = os.environ.get(SIGNED_SOURCE_ENV, "")
    return signed if signed and redact_source(signed) == source else source


# Cloud metadata services: a redirect there would hand the worker's own credentials to the table.
METADATA_HOSTS = ("metadata.google.internal", "metadata", "metadata.azure.internal")
MAX_REDIRECTS = 5


def check_fetchable_host(url: str) -> None:
    """Refuse URLs whose host is a cloud metadata name or resolves to a link-local address
    (169.254.0.0/16, fe80::/10), before any connection is made."""
    import ipaddress
    import socket

    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    refused = f"download from {redact_source(url)} refused: its host is a cloud metadata or link-local address; expected a data server"
    if host in METADATA_HOSTS:
        raise PipelineError(refused)
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        return  # requests reports the unknown host in its own words
    if any(ipaddress.ip_address(address.split("%")[0]).is_link_local for address in addresses):
        raise PipelineError(refused)


def _open_following_redirects(url: str, timeout_s: float):
    """GET `url`, following up to `MAX_REDIRECTS` http(s) redirects, each target checked first."""
    import requests

    for _ in range(MAX_REDIRECTS + 1):
        check_fetchable_host(url)
        response = requests.get(url, stream=True, timeout=(timeout_s, timeout_s), allow_redirects=False)
        if not response.is_redirect:
            return response
        target = urljoin(url, response.headers["Location"])
        response.close()
        if urlsplit(target).scheme.lower() not in ("http", "https"):
            raise PipelineError(f"download of {redact_source(url)} redirects to a non-HTTP address; expected an http(s) file")
        url = target
    raise PipelineError(f"download of {redact_source(url)} redirects more than {MAX_REDIRECTS} times; expected the file's address")


def download_http(url: str, destination: Path, timeout_s: float, max_bytes: int) -> Path:
    """Stream an HTTP(S) file to `destination`, with a total time limit and a size cap.

    Redirects are followed by hand so that every target host is checked; messages show the URL
    without its query string.

    Args:
        url: the http:// or https:// address.
        destination: the folder to write into.
        timeout_s: the limit for connecting, for each read, and for the whole download.
        max_bytes: the largest body accepted.

    Returns:
        The downloaded file.
    """
    import requests

    shown = redact_source(url)
    deadline = time.monotonic() + timeout_s
    try:
        with _open_following_redirects(url, timeout_s) as response:
            if response.status_code >= 400:
                raise PipelineError(f"download of {shown} failed with HTTP {response.status_code} {response.reason}; expected a reachable file")
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > max_bytes:
                raise PipelineError(f"download of {shown} is {declared} bytes; the cap is {max_bytes} (set -P max_mb)")
            target = destination / _file_name_for(response.url, response.headers.get("Content-Type", ""))
            received = 0
            with target.open("wb") as handle:
                for chunk in response.iter_content(_CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise PipelineError(f"download of {shown} exceeded the cap of {max_bytes} bytes (set -P max_mb)")
                    if time.monotonic() > deadline:
                        raise PipelineError(f"download of {shown} took longer than {timeout_s:g} s; expected a faster source or a larger -P timeout_s")
                    handle.write(chunk)
            return target
    except requests.Timeout:
        raise PipelineError(f"download of {shown} timed out after {timeout_s:g} s; expected a reachable server") from None
    except requests.RequestException as error:
        reason = scrub(str(error).splitlines()[0][:200], url)
        raise PipelineError(f"download of {shown} failed ({reason}); expected a reachable http(s) URL") from None


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
    check_no_credentials(source)
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
