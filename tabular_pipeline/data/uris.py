"""Source strings: what kind of source they name, and what of them may be recorded (no credentials, no signatures)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse, urlsplit, urlunsplit

from tabular_pipeline.errors import PipelineError


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


def check_no_credentials(source: str, what: str = "data_path") -> None:
    """Refuse a URI that carries a user name or password: it would be recorded and printed.

    Credentials belong in the environment: `~/.netrc` for HTTP (requests reads it by itself), the
    cloud SDKs' own variables and files for s3:// and gs://.
    """
    parts = urlsplit(source)
    if parts.scheme and parts.netloc and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        raise PipelineError(
            f"{what} {parts.scheme}://***@{host}{parts.path} carries credentials in the URL; expected a URL without "
            "them "
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
