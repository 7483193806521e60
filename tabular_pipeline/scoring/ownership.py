"""What marks an output as predict's own, so that a later predict replaces it and nothing else.

- A Parquet file carries a key in its footer (`PARQUET_KEY`): it survives any copy of the file.
- A folder of part files (the Spark engine's output) holds `FOLDER_MARKER`, which lists the files
  written with it: it travels with the folder, and any file added since makes the folder someone's.
- A CSV file has nowhere to carry a mark, so a hidden sidecar beside it records the file's size
  and SHA-256: a CSV edited, replaced or copied without its sidecar is no longer predict's.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

PARQUET_KEY = b"tabular_pipeline.predict"
FOLDER_MARKER = "_PREDICT_OUTPUT.json"
WRITER = "tabular-pipeline predict"


def output_record(run_id: str, model_uri: str) -> dict[str, str]:
    """Who wrote an output: this project's predict, in which run, with which model, when."""
    return {
        "written_by": WRITER,
        "run_id": run_id,
        "model_uri": model_uri,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def parquet_metadata(record: dict[str, str]) -> dict[bytes, bytes]:
    """The footer key-value pair a predict Parquet file carries."""
    return {PARQUET_KEY: json.dumps(record).encode()}


def sidecar_of(csv_file: Path) -> Path:
    """The hidden file beside a CSV output that says predict wrote it."""
    return csv_file.with_name(f".{csv_file.name}.predict.json")


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mark_csv(staged: Path, target: Path, record: dict[str, str]) -> None:
    """Write the sidecar of `target` for the complete CSV at `staged` (before it moves there)."""
    content = {**record, "size": staged.stat().st_size, "sha256": file_digest(staged)}
    sidecar = sidecar_of(target)
    partial = sidecar.with_name(sidecar.name + ".partial")
    partial.write_text(json.dumps(content))
    os.replace(partial, sidecar)


def mark_folder(folder: Path, record: dict[str, str]) -> None:
    """Write `FOLDER_MARKER` into a complete output folder, listing the files it holds."""
    files = sorted(entry.name for entry in folder.iterdir())
    (folder / FOLDER_MARKER).write_text(json.dumps({**record, "files": files}))


def written_by_predict(path: Path) -> bool:
    """Whether the file or folder at `path` is an output of predict, unchanged since it was written."""
    try:
        if path.is_dir():
            marker = json.loads((path / FOLDER_MARKER).read_text())
            listed = set(marker.get("files", []))
            present = {entry.name for entry in path.iterdir()} - {FOLDER_MARKER}
            return marker.get("written_by") == WRITER and present <= listed
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            raw = (pq.read_metadata(path).metadata or {}).get(PARQUET_KEY)
            return bool(raw) and json.loads(raw).get("written_by") == WRITER
        sidecar = json.loads(sidecar_of(path).read_text())
        return (
            sidecar.get("written_by") == WRITER
            and sidecar.get("size") == path.stat().st_size
            and sidecar.get("sha256") == file_digest(path)
        )
    except (OSError, ValueError, AttributeError):  # unreadable, not Parquet, no marker: not ours
        return False
