"""Outputs written beside their target under a hidden name and moved into place only when complete.

Whatever happens while a step writes (a bad row in a late batch, a failed Spark job, SIGKILL), the
file or folder that was at the target before stays as it was; readers never see half a table. And
only an earlier output of predict is ever replaced (`scoring.ownership`), unless the user says so.
Spark and pandas readers skip names starting with `.`, so a leftover staging entry from a killed
process is ignored by them too.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.scoring.ownership import written_by_predict

STAGING_MARK = ".partial-"


def check_output_path(output_text: str, input_path: Path | None, overwrite: bool = False) -> Path:
    """The absolute output path, refusing relative paths, any overlap with the input, and an
    existing file or folder that predict did not write (`scoring.ownership`) unless `overwrite`.

    Args:
        output_text: the user's `output` parameter.
        input_path: the local input file or folder, if the input is local.
        overwrite: replace whatever is at the path (`-P overwrite=true`).

    Returns:
        The resolved output path.
    """
    if "://" in output_text or output_text.startswith(("s3a:", "hdfs:", "gs:", "dbfs:")):
        raise PipelineError(
            f"output {output_text!r} is a remote URI; expected a local or mounted absolute path "
            "(outputs are staged beside the target and renamed into place, which needs a filesystem)"
        )
    path = Path(output_text).expanduser()
    if not path.is_absolute():
        raise PipelineError(
            f"output {output_text!r} is a relative path; expected an absolute path (MLflow runs the step in the "
            "project folder, or in a temporary clone for a git URL, so a relative path would land there)"
        )
    output = path.resolve()
    if input_path is not None:
        source = input_path.expanduser().resolve()
        if output == source or source in output.parents or output in source.parents:
            raise PipelineError(
                f"output {output} overlaps the input {source}; expected a path outside the input so the input is "
                "never written over"
            )
    confirm_replaceable(output, overwrite)
    return output


def confirm_replaceable(target: Path, overwrite: bool) -> None:
    """Refuse, in one line, to replace what is at `target` unless it is an earlier output of predict,
    or `overwrite` is set and it is a file or a table's folder (part and marker files only: never a
    folder of anything else, such as a home folder given as `output` by mistake).

    Called when the output is chosen and again just before the move, since a long run leaves time
    for someone to put a file there.
    """
    if not target.exists() or written_by_predict(target):
        return
    kind = "folder" if target.is_dir() else "file"
    if not overwrite:
        raise PipelineError(
            f"output {target} is a {kind} predict did not write; expected a new path or an earlier predict output "
            "(-P overwrite=true replaces it anyway)"
        )
    if target.is_dir() and not is_table_folder(target):
        raise PipelineError(
            f"output {target} is a folder holding more than a table's part files; expected a file, a new path or "
            "a folder of part files (overwrite=true never replaces other folders)"
        )


def is_table_folder(path: Path) -> bool:
    """Whether a folder holds only what a Spark or pyarrow table folder holds: part files and markers."""
    return all(
        entry.is_file() and not entry.is_symlink() and entry.name.startswith(("part-", "_", "."))
        for entry in path.iterdir()
    )


def staging_path(target: Path) -> Path:
    """A hidden sibling of `target` on the same filesystem, so the final move is a rename."""
    return target.with_name(f".{target.name}{STAGING_MARK}{uuid.uuid4().hex[:12]}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def discard(staged: Path) -> None:
    """Remove a staging file or folder (the target is not touched)."""
    _remove(staged)


def publish(staged: Path, target: Path) -> None:
    """Move a complete staging file or folder to `target`, replacing what was there.

    A file over a file (or nothing) is one atomic rename. Otherwise the old entry is first renamed
    aside, then removed once the new one is in place.
    """
    if not target.exists() or (target.is_file() and staged.is_file()):
        os.replace(staged, target)
        return
    aside = target.with_name(f".{target.name}.replaced-{uuid.uuid4().hex[:12]}")
    os.replace(target, aside)
    try:
        os.replace(staged, target)
    except OSError:
        os.replace(aside, target)
        raise
    _remove(aside)
