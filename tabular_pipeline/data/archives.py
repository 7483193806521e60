"""Unpacking zip and tar archives safely: every entry is checked before anything is written."""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tabular_pipeline.errors import PipelineError, one_line

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
# The default cap on what a download or an archive may bring in (set -P max_mb on `download`).
DEFAULT_MAX_BYTES = 1 << 30


def is_archive(path: Path) -> bool:
    """Whether `path` names a zip or tar archive, by its suffix."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _checked_member_path(name: str, destination: Path) -> Path:
    """Refuse archive entries that are absolute or climb out of `destination` (zip slip)."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
        raise PipelineError(
            f"archive entry '{name}' points outside the extraction folder; expected relative paths without '..'"
        )
    target = (destination / pure).resolve()
    if destination.resolve() not in (target, *target.parents):
        raise PipelineError(
            f"archive entry '{name}' points outside the extraction folder; expected relative paths without '..'"
        )
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
            raise PipelineError(
                f"archive {archive.name} unpacks to {total} bytes; expected at most {max_bytes} (set -P max_mb)"
            )
        shutil.unpack_archive(archive, destination, **({} if is_zip else {"filter": "data"}))
    except (zipfile.BadZipFile, tarfile.TarError, shutil.ReadError, EOFError, zlib.error, OSError) as error:
        reason = one_line(error, 200)
        raise PipelineError(
            f"archive {archive.name} is corrupt or unreadable ({reason}); expected a valid zip or tar archive"
        ) from None
    return destination
