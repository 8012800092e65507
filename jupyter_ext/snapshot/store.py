"""The content-addressed snapshot store.

Layout (the same on a local disk and behind an fsspec URL)::

    store.json              the store's format: which hash names its objects (see "Store format" below)
    objects/ab/cdef...      each distinct file once, named by its hash (BLAKE3; sha256 in older stores)
    snapshots/<id>.json     one manifest per snapshot; the id is the sha256 of these exact bytes
    taken/<id>.json         when the snapshot was taken, first and last time: not content, so not in the id
    cache/stat.json         the stat cache (see statcache.py)
    tmp/                    files being written; renamed into objects/ or snapshots/ when complete

Objects are written before the manifest that names them and the manifest is renamed into place last, so
a snapshot is listed only once everything it needs is stored.

Store format: ``store.json`` (``{"format": "cellpipe-store/1", "object_hash": "blake3"}``) is written once,
atomically, before a new store's first object, and names the algorithm every object of the store is named
and verified by. A store without it that already holds anything was written before the marker existed: its
objects are named by sha256, and it stays so (nothing is renamed or converted). Snapshot ids are sha256 of
the manifest in both formats (see manifest.py).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot import config, durability
from jupyter_ext.snapshot.backends import (
    BUCKET_SCHEMES,
    TEMP_DIR,
    Backend,
    FsspecBackend,
    LocalBackend,
    is_missing_bucket,
)
from jupyter_ext.snapshot.copying import WriteFailed, copy_file_hashing, default_workers
from jupyter_ext.snapshot.hashing import (
    ALGORITHMS,
    NEW_STORE_ALGORITHM,
    SHA256,
    copy_hashing,
    hash_bytes,
    write_all,
)
from jupyter_ext.snapshot.manifest import (
    canonical_json,
    check_relative_path,
    id_of_manifest_bytes,
    is_hex_digest,
    manifest_files,
    short_id,
)
from jupyter_ext.snapshot.project import data_dir
from jupyter_ext.util import abandoned

STORE_DIR = "store"  # inside the data directory
STAT_CACHE_KEY = "cache/stat.json"
TAKEN_DIR = "taken"  # when each snapshot was taken (see SnapshotStore.record_taken)
LISTING_THRESHOLD = 64  # from this many objects on, has_many lists directories instead of testing each
FORMAT_KEY = "store.json"  # the store's format marker (see "Store format" above)
STORE_FORMAT = "cellpipe-store/1"
# What a store holds once anything was stored in it. A store without FORMAT_KEY that holds any of these
# predates the marker, so its objects are named by sha256; one that holds none of them is new.
STORE_CONTENT = frozenset({"objects", "snapshots", TAKEN_DIR, "cache"})

# What to install and configure for the usual remote stores, shown when opening one fails.
REMOTE_HELP = {
    "s3": ("s3fs", "credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws"),
    "s3a": ("s3fs", "credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws"),
    "gs": (
        "gcsfs",
        "credentials from GOOGLE_APPLICATION_CREDENTIALS or 'gcloud auth application-default login'",
    ),
    "gcs": (
        "gcsfs",
        "credentials from GOOGLE_APPLICATION_CREDENTIALS or 'gcloud auth application-default login'",
    ),
    "az": ("adlfs", "credentials from AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_NAME/KEY"),
    "abfs": ("adlfs", "credentials from AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_NAME/KEY"),
}
COMMON_SCHEMES = ("file", "memory", "s3", "gs", "gcs", "az", "abfs")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class PutResult:
    hash: str
    size: int
    new: bool  # False: the store already had these bytes


@dataclass
class StoreCounters:
    """What this store object did; tests and the benchmark read it to see work that was (not) done."""

    hashed_files: int = 0
    hashed_bytes: int = 0
    stored_files: int = 0
    stored_bytes: int = 0


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    created: str
    notebook: str
    files: int
    bytes: int

    @property
    def short_id(self) -> str:
        return short_id(self.id)


@dataclass
class VerifyResult:
    id: str
    objects: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)
    damaged: list[dict[str, Any]] = field(default_factory=list)  # manifest entries whose object is bad
    manifest: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Repair:
    path: str  # as in the manifest
    source: str | None  # the working-copy file it was repaired from, or looked for
    repaired: bool
    reason: str = ""


def default_store_url(notebook_path: str | Path | None = None) -> str:
    """``<data dir>/store``: ``$CELLPIPE_HOME/store``, else ``.cellpipe/store`` at the project root (the
    notebook's git repository root, else its directory)."""
    return str(data_dir(notebook_path) / STORE_DIR)


def open_store(
    url: str | Path | None = None,
    *,
    notebook_path: str | Path | None = None,
    new_store_hash: str | None = None,
) -> SnapshotStore:
    """The store at ``url``, else $CELLPIPE_STORE, else the default store of the notebook's project
    (of the current directory's project when no notebook is given). ``new_store_hash``: see SnapshotStore."""
    url = url or os.environ.get(config.STORE_ENV) or default_store_url(notebook_path)
    return SnapshotStore.open(url, new_store_hash=new_store_hash)


class SnapshotStore:
    def __init__(
        self, backend: Backend, *, fsync: bool | None = None, new_store_hash: str | None = None
    ) -> None:
        """``new_store_hash``: the object hash to create the store with if it is new (else
        $CELLPIPE_STORE_HASH, else BLAKE3). An existing store keeps its own; storing into one whose hash
        differs from an explicit request is an error (its snapshots would not be what was asked for)."""
        self.backend = backend
        self.new_store_hash = new_store_hash
        self.fsync = config.fsync_enabled() if fsync is None else fsync
        self.counters = StoreCounters()
        self._lock = threading.Lock()  # put_file runs in worker threads
        self.replaced: list[str] = []  # digests whose stored object was corrupt and got rewritten
        self._algorithm: str | None = None  # read from the store when first needed
        self._marked = False  # FORMAT_KEY is in place (or the store predates it: nothing to write)
        self._writable = False  # marked, and in the hash asked for (checked before the first new object)
        self._format_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SnapshotStore({self.url!r})"

    @property
    def url(self) -> str:
        return self.backend.url

    @property
    def identity(self) -> str:
        """What names this store among the snapshots this process is still making durable (durability.py):
        its directory when local, else its URL."""
        return str(self.local_root) if self.local_root is not None else self.url

    @property
    def local_root(self) -> Path | None:
        """The store's directory when it is on the local disk."""
        return self.backend.root if isinstance(self.backend, LocalBackend) else None

    @classmethod
    def open(
        cls, url: str | Path, *, fsync: bool | None = None, new_store_hash: str | None = None
    ) -> SnapshotStore:
        """Open a store by local path, ``file://`` URL or any fsspec URL (``s3://``, ``memory://``...)."""
        return cls(_open_backend(str(url)), fsync=fsync, new_store_hash=new_store_hash)

    # -- format ----------------------------------------------------------------------------------------

    @property
    def algorithm(self) -> str:
        """The hash that names and verifies this store's objects: its ``store.json``'s, sha256 for a store
        written before the marker existed, BLAKE3 for a new (empty or absent) store."""
        if self._algorithm is None:
            with self._format_lock:
                if self._algorithm is None:
                    self._algorithm, self._marked = self._read_format()
        return self._algorithm

    def _read_format(self) -> tuple[str, bool]:
        """(algorithm, whether nothing needs writing)."""
        try:
            with self._remote_errors():
                data = self.backend.read_bytes(FORMAT_KEY)
        except FileNotFoundError:
            with self._remote_errors():
                legacy = bool(STORE_CONTENT.intersection(self.backend.list_names("")))
            return (SHA256, True) if legacy else (self._requested_hash() or NEW_STORE_ALGORITHM, False)
        except OSError as exc:
            raise SnapshotError(
                f"cannot read {FORMAT_KEY} of the snapshot store {self.url}: {exc.strerror or exc}",
                field="store",
                hint="Check the store's permissions.",
            ) from None
        return _parse_format(data, self.url), True

    def _requested_hash(self) -> str | None:
        return config.store_hash(self.new_store_hash)

    def _ensure_marked(self) -> None:
        """Record a new store's algorithm before its first object, so that every later reader (another
        process, a pod, a newer cellpipe) names and verifies objects the same way."""
        if self._writable:
            return
        algorithm = self.algorithm
        with self._format_lock:
            if self._writable:
                return
            requested = self._requested_hash()
            if requested and requested != algorithm:
                raise _hash_mismatch_error(self.url, algorithm, requested)
            if not self._marked:
                marker = json.dumps({"format": STORE_FORMAT, "object_hash": algorithm}, indent=1) + "\n"
                try:
                    with self._remote_errors():
                        self.backend.write_bytes(FORMAT_KEY, marker.encode(), durable=self.fsync)
                except OSError as exc:
                    raise self._write_error(exc) from exc
                self._marked = True
            self._writable = True

    # -- objects ---------------------------------------------------------------------------------------

    @staticmethod
    def object_key(digest: str) -> str:
        return f"objects/{digest[:2]}/{digest[2:]}"

    def has(self, digest: str) -> bool:
        if self.backend.local:
            return self.backend.exists(self.object_key(digest))
        with self._remote_errors():
            return self.backend.exists(self.object_key(digest))

    def has_many(self, digests: Iterable[str]) -> set[str]:
        """The digests the store holds. For many, one listing per fan-out directory beats a stat (or a
        remote request) per object."""
        wanted = set(digests)
        if len(wanted) < LISTING_THRESHOLD:
            return {digest for digest in wanted if self.has(digest)}
        present = set()
        with self._remote_errors():
            for prefix in {digest[:2] for digest in wanted}:
                present.update(prefix + name for name in self.backend.list_names(f"objects/{prefix}"))
        return wanted & present

    def put_bytes(self, data: bytes) -> PutResult:
        self._ensure_marked()
        digest = hash_bytes(data, self.algorithm)
        if self.object_size(digest) == len(data) and self._object_hash(digest) == digest:
            return PutResult(digest, len(data), new=False)  # small (a notebook): checked byte for byte
        with self._remote_errors(), self.backend.temp_object(anonymous=True) as temp:
            self._write_chunk(temp.file)(memoryview(data))
            created = self._commit(temp, digest, len(data))
        return self._stored(digest, len(data), created)

    def put_file(self, path: str | Path, *, on_bytes: Callable[[int], None] | None = None) -> PutResult:
        """Store a file's bytes under their hash, reading the file once.

        Errors opening or reading ``path`` propagate as OSError (the caller knows which cell named it);
        errors writing to the store become SnapshotError.
        """
        self._ensure_marked()
        with open(path, "rb", buffering=0) as source:
            if not self.backend.local:
                with contextlib.suppress(AttributeError, OSError):
                    os.posix_fadvise(source.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
                # Remote: hash first and upload only what the store lacks; re-reading a local file is
                # far cheaper than sending bytes the store already has.
                digest, size = copy_hashing(source, algorithm=self.algorithm)
                self._count_hashed(size)
                if self.object_size(digest) == size:  # a truncated upload is replaced, not trusted
                    return PutResult(digest, size, new=False)
                source.seek(0)
                return self._copy_in(source, on_bytes, count=False)
            return self._copy_in(source, on_bytes, count=True)

    def _copy_in(self, source: BinaryIO, on_bytes: Callable[[int], None] | None, *, count: bool) -> PutResult:
        with self._remote_errors(), self.backend.temp_object(anonymous=True) as temp:
            if self.backend.local:
                digest, size = self._copy_local(source, temp.file, on_bytes)
            else:
                digest, size = copy_hashing(
                    source, self._write_chunk(temp.file), algorithm=self.algorithm, on_bytes=on_bytes
                )
            created = self._commit(temp, digest, size)
        if count:
            self._count_hashed(size)
        return self._stored(digest, size, created)

    def _copy_local(
        self, source: BinaryIO, temp: BinaryIO, on_bytes: Callable[[int], None] | None
    ) -> tuple[str, int]:
        """Hash and copy (in the kernel) into a local temporary object. With fsync on, the disk starts
        writing each window as soon as it is copied, so the fsync before publishing finds little left."""
        try:
            return copy_file_hashing(
                source.fileno(),
                temp.fileno(),
                algorithm=self.algorithm,
                on_bytes=on_bytes,
                start_writeback=self.fsync and not self.backend.deferring,
            )
        except WriteFailed as exc:
            raise self._write_error(exc.error) from exc.error

    def _commit(self, temp: Any, digest: str, size: int) -> bool:
        """Publish the bytes just written under their digest. An object already stored under it is
        trusted only if it is intact (locally re-hashed; remotely its size): deduplicating against a
        corrupt object would poison this snapshot too, so the fresh bytes replace it."""
        key = self.object_key(digest)
        try:
            existing = self.backend.size(key)
            if existing is None:
                return self.backend.publish(temp, key, durable=self.fsync)
            if existing == size and (not self.backend.local or self._object_hash(digest) == digest):
                temp.discard()
                temp.committed = True
                if self.fsync:  # named by another writer, whose directory sync may not have run yet
                    self.backend.note_named(key)
                return False
            self.backend.replace(temp, key, durable=self.fsync)
        except OSError as exc:
            raise self._write_error(exc) from exc
        with self._lock:
            self.replaced.append(digest)
        return True

    def _object_hash(self, digest: str) -> str | None:
        """The hash of the bytes stored under ``digest`` (None when absent)."""
        try:
            with self._remote_errors(), self.backend.open_read(self.object_key(digest)) as stream:
                return copy_hashing(stream, algorithm=self.algorithm)[0]
        except FileNotFoundError:
            return None

    def size_matches(self, digest: str, size: int) -> bool:
        """Cheap check of a stored object before it is reused without reading: on a local store its size
        (a truncated object is re-stored); remote stores are not asked once per file (verify checks)."""
        # once per unchanged file: straight to the local backend, without object_size's error context
        return not self.backend.local or self.backend.size(self.object_key(digest)) == size

    def _write_chunk(self, file: BinaryIO) -> Callable[[memoryview], None]:
        def write(chunk: memoryview) -> None:
            try:
                write_all(file, chunk)
            except OSError as exc:
                raise self._write_error(exc) from exc

        return write

    def _write_error(self, exc: OSError) -> SnapshotError:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return SnapshotError(
                f"the snapshot store {self.url} is full ({exc.strerror}); no snapshot was recorded",
                hint=f"Free some space or point {config.STORE_ENV} at a larger volume.",
            )
        return SnapshotError(
            f"cannot write to the snapshot store {self.url}: {exc.strerror or exc}",
            hint=f"Check its permissions or point {config.STORE_ENV} elsewhere.",
        )

    def _count_hashed(self, size: int) -> None:
        with self._lock:
            self.counters.hashed_files += 1
            self.counters.hashed_bytes += size

    def _stored(self, digest: str, size: int, created: bool) -> PutResult:
        if created:
            with self._lock:
                self.counters.stored_files += 1
                self.counters.stored_bytes += size
        return PutResult(digest, size, new=created)

    def open_object(self, digest: str) -> BinaryIO:
        try:
            with self._remote_errors():
                return self.backend.open_read(self.object_key(digest))
        except FileNotFoundError:
            raise SnapshotError(
                f"object {digest[:12]} is missing from the store {self.url}",
                hint="The store is incomplete; run 'cellpipe snapshots verify'.",
            ) from None

    def copy_out(self, digest: str, target: BinaryIO) -> tuple[str, int]:
        """Copy an object into ``target`` (an unbuffered local file, empty), hashing it on the way: returns
        (hash, size) of exactly the bytes written, for the caller to compare with what it expects.
        Errors reading the store and writing ``target`` propagate as OSError."""
        algorithm = self.algorithm
        with self.open_object(digest) as source:
            if not self.backend.local:
                return copy_hashing(source, lambda chunk: write_all(target, chunk), algorithm=algorithm)
            try:
                return copy_file_hashing(source.fileno(), target.fileno(), algorithm=algorithm)
            except WriteFailed as exc:
                raise exc.error from None

    def object_size(self, digest: str) -> int | None:
        with self._remote_errors():
            return self.backend.size(self.object_key(digest))

    @contextlib.contextmanager
    def writing(self, *, defer_syncs: bool = False) -> Iterator[None]:
        """Store many objects: with fsync on, each is synced and then named in the background, by threads
        that wait for the disk while the callers go on hashing. On leaving, every object stored inside
        is on stable storage under its name, or the first failure is raised. ``defer_syncs``: the syncs
        start only when the batch ends (when its caller no longer waits for it: take_snapshot's
        ``durable="background"``), so that the disk's work does not compete with the copying."""
        try:
            with self.backend.publishing(defer=defer_syncs):
                yield
        except OSError as exc:
            raise self._write_error(exc) from exc

    def sync(self) -> None:
        """Make the names of new objects durable (when fsync is on; their bytes were synced before they
        were named), so a manifest written next never outlives an object it names."""
        try:
            self.backend.sync_directories()
        except OSError as exc:
            raise self._write_error(exc) from exc

    # -- manifests -------------------------------------------------------------------------------------

    def write_manifest(self, manifest: dict[str, Any]) -> str:
        """Store a manifest (after every object it names) and return the snapshot id."""
        data = canonical_json(manifest)
        snapshot_id = id_of_manifest_bytes(data)
        self.sync()
        try:
            with self._remote_errors():
                self.backend.write_bytes(f"snapshots/{snapshot_id}.json", data, durable=self.fsync)
        except OSError as exc:
            raise self._write_error(exc) from exc
        return snapshot_id

    def record_taken(self, snapshot_id: str, when: str) -> None:
        """Note that the snapshot was taken (again) at ``when`` (ISO 8601). The same content taken twice is
        the same snapshot; only this record changes. Best effort: a store that refuses it keeps the snapshot."""
        first = self.taken(snapshot_id).get("first") or when
        with contextlib.suppress(SnapshotError):
            self.save_meta(
                f"{TAKEN_DIR}/{snapshot_id}.json", json.dumps({"first": first, "last": when}).encode()
            )

    def taken(self, snapshot_id: str) -> dict[str, str]:
        """``{"first": ..., "last": ...}`` for a snapshot, ``{}`` when unknown (older stores)."""
        data = self.load_meta(f"{TAKEN_DIR}/{snapshot_id}.json")
        try:
            taken = json.loads(data) if data else {}
        except ValueError:
            return {}
        return taken if isinstance(taken, dict) else {}

    def ids(self) -> list[str]:
        self.algorithm  # noqa: B018 - a store in a format this version does not know fails here, clearly
        with self._remote_errors():
            names = self.backend.list_names("snapshots")
        return sorted(name[:-5] for name in names if name.endswith(".json") and is_hex_digest(name[:-5]))

    def resolve(self, id_or_prefix: str) -> str:
        """The full id for a full id or any unique prefix of one."""
        prefix = id_or_prefix.strip().lower()
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            raise SnapshotError(
                f"'{id_or_prefix}' is not a snapshot id",
                hint="Ids are hexadecimal; 'cellpipe snapshots list' shows them.",
            )
        durability.wait_for(self.identity, prefix)  # a snapshot this process is still writing
        matches = [snapshot_id for snapshot_id in self.ids() if snapshot_id.startswith(prefix)]
        if not matches:
            raise SnapshotError(
                f"no snapshot '{id_or_prefix}' in the store {self.url}",
                hint="'cellpipe snapshots list' shows the snapshots it holds.",
            )
        if len(matches) > 1:
            shown = ", ".join(short_id(m) for m in matches[:5])
            raise SnapshotError(
                f"'{id_or_prefix}' matches {len(matches)} snapshots ({shown})",
                hint="Give more characters of the id.",
            )
        return matches[0]

    def read_manifest(self, id_or_prefix: str) -> dict[str, Any]:
        snapshot_id = self.resolve(id_or_prefix)
        with self._remote_errors():
            data = self.backend.read_bytes(f"snapshots/{snapshot_id}.json")
        if id_of_manifest_bytes(data) != snapshot_id:
            raise SnapshotError(
                f"the manifest of snapshot {short_id(snapshot_id)} does not match its id (altered or corrupt)",
                hint="Take a new snapshot; this one cannot be trusted.",
            )
        return json.loads(data)

    def list(self) -> list[SnapshotInfo]:
        """Every complete snapshot, oldest first."""
        infos = []
        for snapshot_id in self.ids():
            try:
                manifest = self.read_manifest(snapshot_id)
            except (SnapshotError, ValueError):
                continue  # corrupt manifests are reported by verify, not listed as snapshots
            data = manifest.get("files", [])
            infos.append(
                SnapshotInfo(
                    id=snapshot_id,
                    # last taken; manifests written before ids were content-only carried their own time
                    created=self.taken(snapshot_id).get("last") or manifest.get("created", ""),
                    notebook=manifest["notebook"]["path"],
                    files=len(data),
                    bytes=sum(entry["size"] for entry in data),
                )
            )
        return sorted(infos, key=lambda info: (info.created, info.id))

    def verify(self, id_or_prefix: str, *, workers: int | None = None) -> VerifyResult:
        """Re-hash every object a snapshot names, on a few threads; problems are listed, not raised."""
        snapshot_id = self.resolve(id_or_prefix)
        result = VerifyResult(snapshot_id)
        try:
            manifest = self.read_manifest(snapshot_id)
        except (SnapshotError, ValueError) as exc:
            result.problems.append(str(exc))
            return result
        result.manifest = manifest
        entries = manifest_files(manifest)
        expected: dict[str, int] = {}  # digest -> size, each object checked once
        for entry in entries:
            expected.setdefault(entry["hash"], entry["size"])
        biggest_first = sorted(expected, key=expected.__getitem__, reverse=True)
        with ThreadPoolExecutor(workers or default_workers(), thread_name_prefix="cellpipe-verify") as pool:
            checks = dict(zip(biggest_first, pool.map(self._check_object, biggest_first), strict=True))
        result.objects = len(expected)
        result.bytes = sum(size for _, size in checks.values())
        for entry in entries:
            problem = checks[entry["hash"]][0] or _size_problem(checks[entry["hash"]][1], entry["size"])
            if problem is not None:
                result.problems.append(f"{entry['path']}: {problem}")
                result.damaged.append(entry)
        return result

    def _check_object(self, digest: str) -> tuple[str | None, int]:
        """(what is wrong with the stored object or None, bytes read)."""
        try:
            with self._remote_errors(), self.backend.open_read(self.object_key(digest)) as stream:
                actual, size = copy_hashing(stream, algorithm=self.algorithm)
        except FileNotFoundError:
            return f"object {digest[:12]} is missing", 0
        if actual != digest:
            return f"object {digest[:12]} is corrupt (its bytes hash to {actual[:12]})", size
        return None, size

    def repair(self, result: VerifyResult, working_copy: str | Path | None = None) -> list[Repair]:
        """Rewrite the damaged objects of a verified snapshot from the files they were taken from, when
        those still hold exactly the snapshot's bytes (re-hashed while copied; nothing else is trusted).

        ``working_copy``: the project directory to read from; default the snapshot's own project root.
        Data captured from outside the project is read from its recorded absolute path.
        """
        manifest = result.manifest or {}
        root = Path(working_copy or manifest.get("project_root") or ".").expanduser()
        repairs = []
        done: set[str] = set()
        for entry in result.damaged:
            source = entry.get("source") or str(root / check_relative_path(entry["path"]))
            if entry["hash"] in done:
                repairs.append(Repair(entry["path"], source, True))
                continue
            reason = self._repair_object(entry["hash"], source)
            if not reason:
                done.add(entry["hash"])
            repairs.append(Repair(entry["path"], source, not reason, reason))
        return repairs

    def _repair_object(self, digest: str, source: str) -> str:
        """'' when the object was rewritten from ``source``, else why not."""
        try:
            with (
                open(source, "rb", buffering=0) as stream,
                self._remote_errors(),
                self.backend.temp_object() as temp,
            ):
                actual, _ = copy_hashing(stream, self._write_chunk(temp.file), algorithm=self.algorithm)
                if actual != digest:
                    return "the file there has changed since the snapshot (different content)"
                self.backend.replace(temp, self.object_key(digest), durable=self.fsync)
        except FileNotFoundError:
            return "the file is not there any more"
        except OSError as exc:
            return f"cannot read it ({exc.strerror or exc})"
        self.sync()
        return ""

    # -- housekeeping ----------------------------------------------------------------------------------

    def clean_temp(self, *, dry_run: bool = False) -> list[str]:
        """Remove temporary files left in ``tmp/`` by writers that were killed; returns their keys."""
        removed = []
        with self._remote_errors():
            for name in self.backend.list_names(TEMP_DIR):
                key = f"{TEMP_DIR}/{name}"
                if abandoned(name, self.backend.modified(key)):
                    if not dry_run:
                        with contextlib.suppress(OSError):
                            self.backend.remove(key)
                    removed.append(key)
        return removed

    def object_digests(self) -> Iterator[str]:
        """Every object the store holds, by digest."""
        with self._remote_errors():
            for prefix in self.backend.list_names("objects"):
                for name in self.backend.list_names(f"objects/{prefix}"):
                    if is_hex_digest(prefix + name):
                        yield prefix + name

    # -- small metadata files (caches) -----------------------------------------------------------------

    def load_meta(self, key: str) -> bytes | None:
        try:
            with self._remote_errors():
                return self.backend.read_bytes(key)
        except OSError:
            return None  # a missing or unreadable cache is an empty one

    def save_meta(self, key: str, data: bytes) -> None:
        try:
            with self._remote_errors():
                self.backend.write_bytes(key, data)
        except OSError as exc:
            raise self._write_error(exc) from exc

    @contextlib.contextmanager
    def _remote_errors(self) -> Iterator[None]:
        """Turn a remote filesystem's credential/permission failures into one readable error."""
        if self.backend.local:
            yield
            return
        try:
            yield
        except SnapshotError:
            raise
        except FileNotFoundError as exc:
            if is_missing_bucket(exc):
                raise _missing_bucket_error(self.url) from exc
            raise
        except Exception as exc:
            if isinstance(exc, PermissionError) or "credential" in type(exc).__name__.lower():
                raise _access_error(self.url, exc) from exc
            if _is_unreachable(exc):
                raise _unreachable_error(self.url, exc) from exc
            raise


def _parse_format(data: bytes, url: str) -> str:
    """The object hash a store's ``store.json`` names; a clear error for one this version cannot use."""
    try:
        marker = json.loads(data)
        store_format, algorithm = marker["format"], marker["object_hash"]
    except (ValueError, TypeError, KeyError):
        raise SnapshotError(
            f"the format marker {FORMAT_KEY} of the snapshot store {url} is damaged (not the JSON "
            "cellpipe writes)",
            field="store",
            hint=f'It should read {{"format": "{STORE_FORMAT}", "object_hash": "blake3"}} (or "sha256"): '
            "restore it from a copy, or rewrite it naming the hash of the store's objects.",
        ) from None
    if store_format != STORE_FORMAT or not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        known = ", ".join(sorted(ALGORITHMS))
        raise SnapshotError(
            f"the snapshot store {url} is in a format this version of cellpipe does not know "
            f"({FORMAT_KEY}: format {store_format!r}, object hash {algorithm!r}; known: {STORE_FORMAT} "
            f"with {known})",
            field="store",
            hint="Upgrade cellpipe (pip install -U cellpipe) to use this store, or point --store or "
            f"{config.STORE_ENV} at another store.",
        )
    return algorithm


def _hash_mismatch_error(url: str, algorithm: str, requested: str) -> SnapshotError:
    return SnapshotError(
        f"the snapshot store {url} names its objects by {algorithm}, not the {requested} asked for "
        f"(--store-hash or {config.STORE_HASH_ENV}); a store's hash is chosen only when it is created",
        field="store",
        hint=f"Point --store or {config.STORE_ENV} at a new location to create a {requested} store there, "
        f"or drop the request to keep storing into this one.",
    )


def _size_problem(size: int, expected_size: int) -> str | None:
    """An intact object whose size is not the manifest's (the manifest is wrong about it)."""
    return None if size == expected_size else f"size {size} differs from the manifest's {expected_size}"


def _access_error(url: str, exc: BaseException) -> SnapshotError:
    scheme = _scheme(url) or ""
    configure = REMOTE_HELP.get(scheme, ("", "the filesystem's credentials"))[1]
    return SnapshotError(
        f"cannot access the snapshot store {url}: {type(exc).__name__}: {exc}",
        field="store",
        hint=f"Configure {configure}.",
    )


def _is_unreachable(exc: BaseException) -> bool:
    """No answer from the store's endpoint: botocore's EndpointConnectionError/ConnectTimeoutError, aiohttp's
    connector errors, or the built-in connection and timeout errors."""
    name = type(exc).__name__
    return isinstance(exc, (ConnectionError, TimeoutError)) or "Connect" in name or "Timeout" in name


def _unreachable_error(url: str, exc: BaseException) -> SnapshotError:
    s3 = _scheme(url) in ("s3", "s3a")
    endpoint = " (AWS_ENDPOINT_URL or FSSPEC_S3_ENDPOINT_URL for MinIO and other S3 services)" if s3 else ""
    return SnapshotError(
        f"cannot reach the snapshot store {url}: {type(exc).__name__}: {exc}",
        field="store",
        hint=f"Check that its endpoint{endpoint} is right and reachable from here, then retry.",
    )


def _missing_bucket_error(url: str) -> SnapshotError:
    bucket = urlparse(url).netloc
    return SnapshotError(
        f"the bucket '{bucket}' of the snapshot store {url} does not exist",
        field="store",
        hint=f"Create it (e.g. 'aws s3 mb s3://{bucket}' or in the MinIO console) or correct the store URL; "
        "cellpipe does not create buckets.",
    )


def _scheme(url: str) -> str | None:
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else None


def _open_backend(url: str) -> Backend:
    scheme = _scheme(url)
    if scheme is None:
        root = Path(url).expanduser().absolute()
        return _local_backend(root, str(root))
    if scheme == "file":
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise SnapshotError(
                f"file URL '{url}' names a host", field="store", hint="Use file:///absolute/path."
            )
        root = Path(unquote(parsed.path)).expanduser().absolute()
        return _local_backend(root, url)
    return _fsspec_backend(url, scheme)


def _local_backend(root: Path, url: str) -> LocalBackend:
    if root.exists() and not root.is_dir():
        raise SnapshotError(f"snapshot store '{url}' is a file, not a directory", field="store")
    return LocalBackend(root, url, shared=config.store_shared())


def _fsspec_backend(url: str, scheme: str) -> FsspecBackend:
    import fsspec  # imported here: only remote stores need it

    known = set(fsspec.available_protocols()) | set(fsspec.registry)  # built-in and registered at run time
    if scheme not in known:
        listed = ", ".join(f"{name}://" for name in COMMON_SCHEMES)
        raise SnapshotError(
            f"unknown store URL scheme '{scheme}://' in '{url}'",
            field="store",
            hint=f"Use a local path or one of {listed} (or another fsspec protocol).",
        )
    # Other processes (pods, the CLI) write to the same store: a listing cached in a long-lived one (the
    # server) would hide their snapshots and runs for good (s3fs keeps listings with no expiry by default).
    options = {"use_listings_cache": False} if scheme in BUCKET_SCHEMES else {}
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        package, configure = REMOTE_HELP.get(scheme, ("the fsspec implementation for it", "its credentials"))
        raise SnapshotError(
            f"store URL '{url}' needs a package that is not installed ({exc})",
            field="store",
            hint=f"Install {package} (pip install {package}) and configure {configure}.",
        ) from None
    except Exception as exc:  # backends raise their own types for bad URLs and missing credentials
        raise _access_error(url, exc) from None
    return FsspecBackend(fs, root, url, bucketed=scheme in BUCKET_SCHEMES)
