"""Garbage collection of a snapshot store: objects that no snapshot names, and killed writers' temp files.

Every manifest is read, even one whose bytes no longer match its id (its objects are kept: deleting data
because a manifest is damaged would make things worse). A manifest that is not JSON at all stops the
collection. On a local store the collection holds the store's lock exclusively while snapshots hold it
shared, so an object written for a snapshot still in progress is never taken for garbage; remote stores
have no lock, so collect them when no snapshot is being taken.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot.manifest import manifest_files, short_id
from jupyter_ext.snapshot.store import SnapshotStore


@dataclass
class GarbageReport:
    snapshots: int = 0
    kept_objects: int = 0
    removed_objects: list[str] = field(default_factory=list)
    removed_bytes: int = 0
    removed_temp: list[str] = field(default_factory=list)
    dry_run: bool = False


def collect_garbage(store: SnapshotStore, *, dry_run: bool = False) -> GarbageReport:
    """Remove (or with ``dry_run`` only list) unreferenced objects and abandoned temporary files."""
    report = GarbageReport(dry_run=dry_run)
    with store.backend.lock(exclusive=True):
        referenced = _referenced(store, report)
        for digest in store.object_digests():
            if digest in referenced:
                report.kept_objects += 1
                continue
            report.removed_bytes += store.object_size(digest) or 0
            report.removed_objects.append(digest)
            if not dry_run:
                store.backend.remove(store.object_key(digest))
        report.removed_temp = store.clean_temp(dry_run=dry_run)
    return report


def _referenced(store: SnapshotStore, report: GarbageReport) -> set[str]:
    referenced: set[str] = set()
    for snapshot_id in store.ids():
        data = store.backend.read_bytes(f"snapshots/{snapshot_id}.json")
        try:
            manifest = json.loads(data)
            digests = {entry["hash"] for entry in manifest_files(manifest)}
        except (ValueError, TypeError, KeyError, AttributeError):
            raise SnapshotError(
                f"the manifest of snapshot {short_id(snapshot_id)} cannot be read, so what it references is "
                "unknown; nothing was removed",
                hint=f"Remove snapshots/{snapshot_id}.json from the store {store.url} if it is of no use, "
                "then run gc again.",
            ) from None
        referenced |= digests
        report.snapshots += 1
    return referenced
