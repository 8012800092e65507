"""Snapshots: exactly what ran (the notebook's bytes, the data it names, its environment), stored
content-addressed so identical data is kept once, and restorable byte for byte.

    snap = take_snapshot("train.ipynb")            # -> Snapshot (id, manifest, sizes, skipped paths)
    store = open_store(notebook_path="train.ipynb")
    store.list(); store.verify(snap.id)
    restore(store, snap.id[:12], "/tmp/copy")       # or materialize(store, id) into a fresh directory
"""

from jupyter_ext.snapshot.capture import Progress, Snapshot, take_snapshot
from jupyter_ext.snapshot.collect import Skipped
from jupyter_ext.snapshot.manifest import short_id
from jupyter_ext.snapshot.restore import Restored, materialize, restore
from jupyter_ext.snapshot.store import (
    PutResult,
    SnapshotInfo,
    SnapshotStore,
    VerifyResult,
    default_store_url,
    open_store,
)

__all__ = [
    "Progress",
    "PutResult",
    "Restored",
    "Skipped",
    "Snapshot",
    "SnapshotInfo",
    "SnapshotStore",
    "VerifyResult",
    "default_store_url",
    "materialize",
    "open_store",
    "restore",
    "short_id",
    "take_snapshot",
]
