"""Results of cluster runs, kept in the snapshot store next to the snapshots they ran from.

Layout: ``runs/<run id>/record.json`` (the run record) plus the executed notebooks
(``runs/<run id>/notebook.ipynb`` for a whole notebook, ``runs/<run id>/steps/<step>.ipynb`` per step).
Written through the store's small-file API (``save_meta``/``load_meta``): whole-or-nothing writes on a
local disk and behind fsspec alike, with the store's readable errors. Nothing here is content-addressed:
a record is rewritten as the run progresses.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jupyter_ext.errors import CellpipeError
from jupyter_ext.snapshot.store import SnapshotStore

RUNS_PREFIX = "runs"
RECORD_NAME = "record.json"
# A run id names a directory in the store and a Kubernetes label value: keep it to what both accept.
_RUN_ID = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise CellpipeError(
            f"invalid run id '{run_id}'",
            field="--run-id",
            hint="Use up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        )
    return run_id


def run_key(run_id: str, name: str) -> str:
    """The store key of a run's file; ``name`` is a relative path like ``steps/train.ipynb``."""
    if not _FILE_NAME.match(name) or ".." in name.split("/"):
        raise ValueError(f"not a run file name: {name!r}")
    return f"{RUNS_PREFIX}/{check_run_id(run_id)}/{name}"


def put_run_file(store: SnapshotStore, run_id: str, name: str, data: bytes) -> str:
    """Write one file of a run (replacing it) and return its key."""
    key = run_key(run_id, name)
    store.save_meta(key, data)
    return key


def put_run_record(store: SnapshotStore, record: dict[str, Any]) -> str:
    data = (json.dumps(record, indent=2, sort_keys=True, default=str) + "\n").encode()
    return put_run_file(store, record["id"], RECORD_NAME, data)


def get_run_file(store: SnapshotStore, run_id: str, name: str) -> bytes | None:
    """A run file's bytes, or None when the store does not have it (yet)."""
    return store.load_meta(run_key(run_id, name))


def get_run_record(store: SnapshotStore, run_id: str) -> dict[str, Any] | None:
    data = get_run_file(store, run_id, RECORD_NAME)
    return None if data is None else json.loads(data)
