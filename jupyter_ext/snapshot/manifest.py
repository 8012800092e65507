"""The snapshot manifest: its canonical bytes, its id, and the checks a manifest read back must pass.

The id of a snapshot is the sha256 of its canonical JSON, so the stored manifest is exactly those bytes and
re-hashing a manifest proves it was not altered. Paths inside a manifest are POSIX, relative, and may not
climb out of the directory they are restored into (a tampered manifest must not write outside it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePosixPath
from typing import Any

from jupyter_ext.errors import SnapshotError

FORMAT = "cellpipe-snapshot/1"
SHORT_ID_LENGTH = 12  # shown to users; any unique prefix is accepted back
EXTERNAL_DIR = "_external"  # where declared paths outside the project root are stored


def canonical_json(manifest: dict[str, Any]) -> bytes:
    """The one byte representation a manifest is hashed and stored as."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def manifest_id(manifest: dict[str, Any]) -> str:
    return id_of_manifest_bytes(canonical_json(manifest))


def id_of_manifest_bytes(data: bytes) -> str:
    """A snapshot's id: the sha256 of its canonical manifest, whatever hash the store names its objects by.
    Ids appear in run records, MLflow tags, Kubernetes labels and users' notes, so they keep one scheme in
    stores of either format (and an unchanged re-snapshot into an older store keeps its id); a manifest is a
    few KiB, so its hash costs nothing next to the data's."""
    return hashlib.sha256(data).hexdigest()


def short_id(snapshot_id: str) -> str:
    return snapshot_id[:SHORT_ID_LENGTH]


def is_hex_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def check_relative_path(path: str, *, snapshot_id: str | None = None) -> PurePosixPath:
    """A manifest path, refused if it is absolute or climbs out with '..'."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise SnapshotError(
            f"manifest lists an unsafe path '{path}'",
            field=f"snapshot {short_id(snapshot_id)}" if snapshot_id else None,
            hint="The manifest was altered or is corrupt; run 'cellpipe snapshots verify'.",
        )
    return pure


def manifest_files(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file a snapshot holds, the notebook first, as dicts with path, hash, size and mode."""
    return [manifest["notebook"], *manifest.get("files", [])]
