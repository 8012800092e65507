"""Take a snapshot: the notebook's bytes, the data it names, and its environment, in a store.

Unchanged files are recognised by the stat cache and not read again; new files are read once, hashing and
copying into the store in the same pass, on a few threads (the hash releases the GIL). The manifest is
written last: a failure at any point before leaves no snapshot, only unreferenced objects.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat as stat_module
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot import config
from jupyter_ext.snapshot.collect import Collector, DataFile, Skipped
from jupyter_ext.snapshot.copying import default_workers
from jupyter_ext.snapshot.detect import DeclaredPath, declared_paths, parse_notebook, path_literals
from jupyter_ext.snapshot.durability import Durability
from jupyter_ext.snapshot.environment import PACKAGES_CACHE_KEY, cached_packages, capture_environment
from jupyter_ext.snapshot.manifest import FORMAT, manifest_id, short_id
from jupyter_ext.snapshot.project import find_project_root
from jupyter_ext.snapshot.statcache import StatCache
from jupyter_ext.snapshot.store import STAT_CACHE_KEY, PutResult, SnapshotStore, open_store


class Progress(Protocol):
    """Told how many bytes are about to be hashed, then of each chunk as it is done (from any thread)."""

    def start(self, total_bytes: int, files: int) -> None: ...

    def advance(self, count: int) -> None: ...

    def finish(self) -> None: ...


@dataclass
class Snapshot:
    id: str
    manifest: dict[str, Any]
    store_url: str
    files: int  # data files, the notebook not counted
    bytes: int  # notebook + data
    new_bytes: int  # written to the store by this snapshot
    deduplicated_bytes: int  # already in the store (from this or an earlier snapshot)
    hashed_bytes: int  # read and hashed now; the rest was known from the stat cache
    hashed_files: int
    detected: list[str] = field(default_factory=list)  # captured paths that came from code literals
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    taken: str = ""  # when (ISO 8601, UTC); not part of the id
    # the manifest's write, which may finish in the background (see durability.py)
    completion: Durability | None = field(default=None, repr=False, compare=False)

    @property
    def short_id(self) -> str:
        return short_id(self.id)

    @property
    def is_durable(self) -> bool:
        """Whether the snapshot is in the store (its manifest written, durably with fsync on). False while
        the background part runs, and for good when it failed (:meth:`wait_durable` says why)."""
        return self.completion is None or (self.completion.finished and self.completion.error is None)

    def wait_durable(self, timeout: float | None = None) -> bool:
        """Wait until the snapshot is in the store; False when ``timeout`` (seconds) ran out first. Raises
        what stopped it from being stored (a SnapshotError for a full disk or a write error): then only
        objects that no snapshot names are left, for ``cellpipe gc``."""
        if self.completion is None:
            return True
        if not self.completion.wait(timeout):
            return False
        if self.completion.error is not None:
            raise self.completion.error
        return True


def take_snapshot(
    notebook_path: str | Path,
    *,
    store: SnapshotStore | str | Path | None = None,
    notebook_bytes: bytes | None = None,
    extra_data: Iterable[str] = (),
    max_detected_bytes: int | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    allow_outside_root: bool = False,
    confine_to: str | Path | None = None,
    durable: Literal["wait", "background"] = "wait",
) -> Snapshot:
    """Snapshot a notebook (``notebook_bytes``: unsaved content from the editor, else the file on disk).

    ``store``: a store, a URL or path; default $CELLPIPE_STORE, else ``<project>/.cellpipe/store``.
    ``extra_data``: more declared paths, relative to the notebook's directory.
    ``allow_outside_root``: capture declared data outside the project root too (under ``_external/``).
    Only for a user's own command line (``--allow-outside-root``): a server must never set it, since it
    would let a request read any file the server can.
    ``confine_to``: a server's root directory; data outside it is refused even inside the project (a
    server root below a git repository's top must not reach the rest of the repository).
    ``durable``: "wait" returns once the snapshot is in the store (durably, with fsync on); "background"
    returns as soon as the data is captured (every file read, hashed and copied into the store's temporary
    files, the id known) and finishes the fsyncs, the objects' names and the manifest on a thread: call
    :meth:`Snapshot.wait_durable` before anything needs the snapshot to exist (see durability.py).
    """
    if durable not in ("wait", "background"):
        raise ValueError(f"durable must be 'wait' or 'background', not {durable!r}")
    label = str(notebook_path)
    path = Path(notebook_path).expanduser().absolute()
    content = _read_notebook(path, label) if notebook_bytes is None else notebook_bytes
    notebook = parse_notebook(content, notebook=label)
    path = path.resolve()
    root = find_project_root(path)
    store = store if isinstance(store, SnapshotStore) else open_store(store, notebook_path=path)

    with contextlib.ExitStack() as held:
        # 'cellpipe gc' waits: our objects are not garbage yet (held until the manifest names them)
        held.enter_context(store.backend.lock(exclusive=False))
        store.clean_temp()  # what a killed snapshot left behind
        collector = Collector(
            path,
            root,
            notebook_label=label,
            max_detected_bytes=config.max_detected_bytes()
            if max_detected_bytes is None
            else max_detected_bytes,
            exclude=(store.local_root,) if store.local_root else (),
            allow_outside_root=allow_outside_root,
            confine_to=Path(confine_to) if confine_to else None,
        )
        declared = declared_paths(notebook, notebook_label=label)
        declared += [DeclaredPath(spec, None, "--data") for spec in extra_data]
        for item in declared:
            collector.add_declared(item)
        literals, unparsed = path_literals(notebook)
        for literal in literals:
            collector.add_detected(literal)
        collection = collector.result
        notes = collection.notes + [
            f"cell {index}: not valid Python, no paths detected in it" for index in unparsed
        ]
        if collection.limit_exceeded:
            notes.append(
                f"detected data exceeded {config.human_bytes(collector.max_detected_bytes)}: some paths were skipped "
                f"(raise {config.MAX_DETECTED_ENV} or declare them with data: tags)"
            )

        # With fsync on, each new object is synced and then named by background threads while we go on
        # hashing (in the background mode only once the data is captured: the disk's work does not compete
        # with ours); leaving this batch waits for all of them (see _make_durable).
        batch = held.enter_context(contextlib.ExitStack())
        batch.enter_context(store.writing(defer_syncs=durable == "background"))
        stored = _store_data(store, collection.files, label, collection.skipped, notes, progress, workers)
        notebook_put = store.put_bytes(content)
        # Listed while the last objects are still being synced: the disk works meanwhile, not the CPU.
        packages, packages_cache = cached_packages(store.load_meta(PACKAGES_CACHE_KEY))
        environment = capture_environment(notebook, root, packages=packages)
        # this run's repairs of the store: reported to the caller, but not content, so not in the manifest
        replaced = _replaced_notes(store, stored, notebook_put, path.name)

        files = sorted((data_file.to_entry(put) for data_file, put in stored.items), key=lambda e: e["path"])
        manifest = {
            "format": FORMAT,
            "project_root": str(root),
            "notebook": {
                "path": path.relative_to(root).as_posix(),
                "hash": notebook_put.hash,
                "size": notebook_put.size,
                "mode": _mode(path),
                "unsaved_edits": notebook_bytes is not None,
            },
            "files": files,
            "environment": environment,
            "report": {
                "skipped": [item.to_dict() for item in collection.skipped],
                "notes": notes,
                "detected_bytes": collection.detected_bytes,
                "max_detected_bytes": collector.max_detected_bytes,
                "limit_exceeded": collection.limit_exceeded,
            },
        }
        # The id is a function of the content alone (notebook, data, environment): an unchanged notebook
        # snapshotted again is the same snapshot. When it was taken is kept beside it, not in it.
        snapshot_id = manifest_id(manifest)
        taken = datetime.now(UTC).isoformat(timespec="microseconds")
        metadata = [(PACKAGES_CACHE_KEY, packages_cache), (STAT_CACHE_KEY, stored.stat_cache)]
        completion = Durability(snapshot_id, store.identity)
        finish = functools.partial(
            _make_durable, store, manifest, taken, metadata, batch, held.pop_all(), completion
        )

    puts = [put for _, put in stored.items] + [notebook_put]
    total = sum(put.size for put in puts)
    new = sum(put.size for put in puts if put.new)
    snapshot = Snapshot(
        id=snapshot_id,
        manifest=manifest,
        store_url=store.url,
        files=len(files),
        bytes=total,
        new_bytes=new,
        deduplicated_bytes=total - new,
        hashed_bytes=stored.hashed_bytes,
        hashed_files=stored.hashed_files,
        detected=[entry["path"] for entry in files if entry["origin"] == "detected"],
        skipped=collection.skipped,
        notes=notes + replaced,
        taken=taken,
        completion=completion,
    )
    if durable == "background":
        completion.start(finish)
    else:
        finish()
        snapshot.wait_durable()
    return snapshot


def _make_durable(
    store: SnapshotStore,
    manifest: dict[str, Any],
    taken: str,
    metadata: list[tuple[str, bytes | None]],
    batch: contextlib.ExitStack,
    held: contextlib.ExitStack,
    completion: Durability,
) -> None:
    """The part of a snapshot that waits for the disk, in the order that keeps the store's promise: every
    new object synced and named (the batch ends), their names synced, then the manifest, durably (only now
    does the snapshot exist). The caches are saved after the objects they name are durable, so that a
    later snapshot never trusts an object a crash could lose. ``held`` (the store's shared lock) is released
    last: 'cellpipe gc' must not collect our objects before the manifest names them."""
    try:
        with held:
            batch.close()  # waits for every background publish; raises the first failure
            for key, data in metadata:
                if data is not None:
                    with contextlib.suppress(SnapshotError):  # a lost cache costs time later, nothing else
                        store.save_meta(key, data)
            store.write_manifest(manifest)  # last: only now does the snapshot exist
            store.record_taken(completion.snapshot_id, taken)
    except BaseException as exc:
        completion.fail(exc)
        if not isinstance(exc, Exception):
            raise
    else:
        completion.done()


@dataclass
class _Stored:
    items: list[tuple[DataFile, PutResult]] = field(default_factory=list)
    hashed_files: int = 0
    hashed_bytes: int = 0
    stat_cache: bytes | None = None  # to save once the objects it names are durable (None: unchanged)


def _store_data(
    store: SnapshotStore,
    files: list[DataFile],
    label: str,
    skipped: list[Skipped],
    notes: list[str],
    progress: Progress | None,
    workers: int | None,
) -> _Stored:
    """Put every file in the store, skipping the ones the stat cache knows and the store still has."""
    cache = StatCache.from_bytes(store.load_meta(STAT_CACHE_KEY), algorithm=store.algorithm)
    stored = _Stored()
    known = {data_file.path: cache.lookup(data_file.path, data_file.stat) for data_file in files}
    present = store.has_many(digest for digest in known.values() if digest is not None)
    pending = []
    for data_file in files:
        digest = known[data_file.path]
        if digest in present and store.size_matches(digest, data_file.stat.st_size):
            # unchanged since it was hashed, and the store still holds its bytes
            stored.items.append((data_file, PutResult(digest, data_file.stat.st_size, new=False)))
        else:
            pending.append(data_file)
    if pending and progress is not None:
        progress.start(sum(data_file.stat.st_size for data_file in pending), len(pending))
    try:
        for data_file, put, read_started_ns, error in _put_all(store, pending, progress, workers):
            if error is not None:
                if data_file.origin == "declared":
                    raise _unreadable(data_file, error, label)
                skipped.append(
                    Skipped(data_file.name, f"unreadable ({error.strerror or error})", data_file.cell)
                )
                continue
            if _unchanged(data_file):
                cache.record(data_file.path, data_file.stat, put.hash, read_started_ns=read_started_ns)
            else:
                notes.append(
                    f"{data_file.name} changed while it was captured: the snapshot holds what was read"
                )
            stored.items.append((data_file, put))
            stored.hashed_files += 1
            stored.hashed_bytes += put.size
    finally:
        if pending and progress is not None:
            progress.finish()
    if cache.changed:
        stored.stat_cache = cache.to_bytes()
    return stored


def _put_all(
    store: SnapshotStore, files: Sequence[DataFile], progress: Progress | None, workers: int | None
) -> Iterator[tuple[DataFile, PutResult | None, int, OSError | None]]:
    """Store files on a few threads, biggest first so that the threads finish together."""
    advance = progress.advance if progress is not None else None

    def put(data_file: DataFile) -> tuple[DataFile, PutResult | None, int, OSError | None]:
        started = time.time_ns()
        try:
            return data_file, store.put_file(data_file.path, on_bytes=advance), started, None
        except OSError as exc:  # reading the source; store write errors arrive as SnapshotError
            return data_file, None, started, exc

    ordered = sorted(files, key=lambda data_file: data_file.stat.st_size, reverse=True)
    count = workers or default_workers()
    if count <= 1 or len(ordered) <= 1:
        yield from map(put, ordered)
        return
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="cellpipe-snapshot") as pool:
        futures = [pool.submit(put, data_file) for data_file in ordered]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:  # on failure: stop starting new files, let running ones end
                future.cancel()


def _replaced_notes(
    store: SnapshotStore, stored: _Stored, notebook_put: PutResult, notebook: str
) -> list[str]:
    """Objects found corrupt in the store while snapshotting, now rewritten from the files just read."""
    replaced = set(store.replaced)
    names = [data_file.name for data_file, put in stored.items if put.hash in replaced]
    if notebook_put.hash in replaced:
        names.append(notebook)
    return [
        f"{name}: the store's copy of this content was corrupt; it was replaced with the bytes read now "
        "(run 'cellpipe snapshots verify' to check earlier snapshots)"
        for name in names
    ]


def _unchanged(data_file: DataFile) -> bool:
    try:
        after = os.stat(data_file.path)
    except OSError:
        return False
    before = data_file.stat
    return (after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
        before.st_ino,
    )


def _unreadable(data_file: DataFile, error: OSError, label: str) -> SnapshotError:
    return SnapshotError(
        f"cannot read declared data '{data_file.named_as}' ({data_file.path}): {error.strerror or error}",
        notebook=label,
        cell=data_file.cell,
        field=data_file.declared_in,
        hint="Make it readable by the user running cellpipe, or remove it from the declared data.",
    )


def _read_notebook(path: Path, label: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SnapshotError("notebook not found", notebook=label, hint="Check the path.") from None
    except OSError as exc:
        raise SnapshotError(
            f"cannot read the notebook: {exc.strerror or exc}", notebook=label, hint="Check its permissions."
        ) from None


def _mode(path: Path) -> int:
    try:
        return stat_module.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o644  # unsaved notebook not yet on disk
