"""HTTP(S) downloads with a time limit, a size cap, and checked redirects (no cloud metadata or link-local hosts)."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urljoin, urlparse, urlsplit

from tabular_pipeline.data.uris import redact_source, scrub
from tabular_pipeline.errors import PipelineError, one_line

_CHUNK = 1 << 16


def _file_name_for(url: str, content_type: str) -> str:
    name = PurePosixPath(unquote(urlparse(url).path)).name
    if name and "." in name:
        return name
    return "data.parquet" if "parquet" in content_type else "data.csv"


# Cloud metadata services: a redirect there would hand the worker's own credentials to the table.
METADATA_HOSTS = ("metadata.google.internal", "metadata", "metadata.azure.internal")
# Metadata services that are not link-local: AWS's IPv6 endpoint and Alibaba Cloud's.
METADATA_ADDRESSES = tuple(ipaddress.ip_address(text) for text in ("fd00:ec2::254", "100.100.100.200"))
MAX_REDIRECTS = 5


def is_metadata_address(text: str) -> bool:
    """Whether an IP address is link-local or a cloud metadata service, however it is written
    (an IPv4-mapped or 6to4 IPv6 address is checked as the IPv4 address it carries)."""
    import ipaddress

    address = ipaddress.ip_address(text.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address):
        address = address.ipv4_mapped or address.sixtofour or address
    return address.is_link_local or address in METADATA_ADDRESSES


def check_fetchable_host(url: str) -> None:
    """Refuse URLs whose host is a cloud metadata service, by name or address, or resolves to a
    link-local address (169.254.0.0/16, fe80::/10), before any connection is made."""
    import socket

    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    refused = (
        f"download from {redact_source(url)} refused: its host is a cloud metadata or link-local address; "
        "expected a data server"
    )
    if host in METADATA_HOSTS:
        raise PipelineError(refused)
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        return  # requests reports the unknown host in its own words
    if any(is_metadata_address(address) for address in addresses):
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
            raise PipelineError(
                f"download of {redact_source(url)} redirects to a non-HTTP address; expected an http(s) file"
            )
        url = target
    raise PipelineError(
        f"download of {redact_source(url)} redirects more than {MAX_REDIRECTS} times; expected the file's address"
    )


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
                raise PipelineError(
                    f"download of {shown} failed with HTTP {response.status_code} {response.reason}; expected a "
                    "reachable file"
                )
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > max_bytes:
                raise PipelineError(f"download of {shown} is {declared} bytes; the cap is {max_bytes} (set -P max_mb)")
            target = destination / _file_name_for(response.url, response.headers.get("Content-Type", ""))
            received = 0
            with target.open("wb") as handle:
                for chunk in response.iter_content(_CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise PipelineError(
                            f"download of {shown} exceeded the cap of {max_bytes} bytes (set -P max_mb)"
                        )
                    if time.monotonic() > deadline:
                        raise PipelineError(
                            f"download of {shown} took longer than {timeout_s:g} s; expected a faster source or a "
                            "larger -P timeout_s"
                        )
                    handle.write(chunk)
            return target
    except requests.Timeout:
        raise PipelineError(
            f"download of {shown} timed out after {timeout_s:g} s; expected a reachable server"
        ) from None
    except requests.RequestException as error:
        reason = scrub(one_line(error, 200), url)
        raise PipelineError(f"download of {shown} failed ({reason}); expected a reachable http(s) URL") from None
