"""Where a store keeps its bytes: a local directory, or any fsspec filesystem.

Both write a temporary file and give it its name only when it is complete, so a reader never sees half
an object or half a manifest. Keys are '/'-separated paths relative to the store root.

On Linux a local object is written into an anonymous file (``O_TMPFILE``) and linked under its name:
no temporary name to create, rename or clean up, and a killed writer leaves nothing behind. With
durability on, its bytes are fsynced before the link, on a small pool of threads that wait for the disk
while the snapshot's threads go on hashing (see :meth:`LocalBackend.publishing`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from jupyter_ext.snapshot.copying import write_out
from jupyter_ext.snapshot.durability import lower_priority
from jupyter_ext.snapshot.hashing import write_all
from jupyter_ext.util import PRIVATE_FILE_MODE, open_private, private_dir, writer_unique_name

T = TypeVar("T")
TEMP_DIR = "tmp"
LOCK_FILE = "lock"
# Object stores whose first path component is a bucket. They have no directories, and making one would
# create a missing bucket (s3fs's makedirs does): a mistyped bucket name would quietly become a new bucket.
BUCKET_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
# Threads that fsync and publish objects in the background: they mostly wait for the disk, and several
# syncs in flight let the disk (and the filesystem) work on them together.
PUBLISH_THREADS = 8
# Objects waiting for their fsync at most (each holds an open file); more make the writers wait.
PUBLISH_BACKLOG = 256
# A deferred batch's syncs run while a run starts, whose own small fsyncs (its record) queue behind every
# write in flight on the disk (mq-deadline keeps one FIFO for writes): so large objects are written out in
# windows of this size, by at most PACED_WRITERS threads at once, each window waited for before the next
# (measured: a 2 KiB fsync right after a 1 GiB snapshot's unpaced syncs waited 0.1-0.5 s).
PACED_WINDOW = 4 << 20
PACED_WRITERS = 2


def deferred_limit() -> int:
    """How many complete objects a batch that defers its syncs holds back (each an open file) before it
    starts syncing them anyway: a quarter of the process's open-file limit, at least PUBLISH_BACKLOG."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return PUBLISH_BACKLOG
    return PUBLISH_BACKLOG if soft == resource.RLIM_INFINITY else max(PUBLISH_BACKLOG, soft // 4)


class TempObject:
    """A file being written under a temporary name (``temp_key``), or under none (an anonymous local
    file, ``temp_key`` None); ``commit`` gives it its name, leaving it unused discards it."""

    def __init__(self, backend: Backend, temp_key: str | None, file: BinaryIO) -> None:
        self.backend = backend
        self.temp_key = temp_key
        self.file = file
        self.committed = False

    def commit(self, key: str) -> bool:
        """Move into place under ``key``; False when ``key`` already existed (the temp is dropped)."""
        if self.temp_key is not None:
            self.file.close()  # a remote file is uploaded on close
        try:
            created = self.backend.rename_into_place(self, key)
        finally:
            self.file.close()
        self.committed = True
        return created

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.file.close()  # an anonymous file is gone with its last descriptor
        if self.temp_key is not None:
            with contextlib.suppress(OSError, FileNotFoundError):
                self.backend.remove(self.temp_key)


class Backend:
    """The operations a :class:`~jupyter_ext.snapshot.store.SnapshotStore` needs from its storage."""

    url: str
    local: bool

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def size(self, key: str) -> int | None:
        raise NotImplementedError

    def open_read(self, key: str) -> BinaryIO:
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def write_bytes(self, key: str, data: bytes, *, durable: bool = False) -> None:
        """Write ``key`` whole or not at all, replacing what was there."""
        with self.temp_object() as temp:
            write_all(temp.file, memoryview(data))
            self.replace(temp, key)

    def replace(self, temp: TempObject, key: str, *, durable: bool = False) -> None:
        """Move ``temp`` to ``key`` even if ``key`` exists (``durable``: its bytes synced first)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def temp_object(self, *, anonymous: bool = False) -> Iterator[TempObject]:
        temp = self.open_temp(anonymous=anonymous)
        try:
            yield temp
        finally:
            if not temp.committed:
                temp.discard()

    def open_temp(self, *, anonymous: bool = False) -> TempObject:
        """A new temporary file; ``anonymous``: without a name where the system allows (meant for
        :meth:`publish`; :meth:`replace` must give such a file a temporary name first)."""
        raise NotImplementedError

    def rename_into_place(self, temp: TempObject, key: str) -> bool:
        raise NotImplementedError

    def publish(self, temp: TempObject, key: str, *, durable: bool) -> bool:
        """Give a complete temporary object its name ``key``; False when ``key`` already existed.
        ``durable``: its bytes reach stable storage before it is visible under ``key``. Inside
        :meth:`publishing` that may complete in the background (then True is returned)."""
        return temp.commit(key)

    @contextlib.contextmanager
    def publishing(self, *, defer: bool = False) -> Iterator[None]:
        """A batch of writes: durable publishes may complete in the background meanwhile; on leaving,
        every one has completed (the first failure is raised). ``defer``: hold the syncs back until the
        batch ends (at most :func:`deferred_limit` objects at a time), so that the disk's work does not compete
        with the batch's own (a snapshot whose durable part finishes while a run starts)."""
        yield

    @property
    def deferring(self) -> bool:
        """Whether a batch that holds its syncs back is open (then there is no point starting writeback)."""
        return False

    def note_named(self, key: str) -> None:
        """``key`` is named now: :meth:`sync_directories` makes its name durable (where names need it)."""

    def sync_directories(self) -> None:
        """Make the names given since the last call durable (after every pending publish completed), so
        that a manifest written next never names an object a crash could lose."""

    def remove(self, key: str) -> None:
        raise NotImplementedError

    def list_names(self, directory: str) -> list[str]:
        """Names directly inside ``directory`` (empty when it does not exist)."""
        raise NotImplementedError

    def modified(self, key: str) -> float | None:
        """When ``key`` was last written (unix time), None when unknown."""
        raise NotImplementedError

    @contextlib.contextmanager
    def lock(self, *, exclusive: bool) -> Iterator[None]:
        """Snapshots hold the store shared, garbage collection exclusively (a no-op where unsupported)."""
        yield


class LocalBackend(Backend):
    """A directory on this machine; what it creates is private (0700/0600) unless the store is ``shared``."""

    local = True

    def __init__(self, root: Path, url: str, *, shared: bool = False) -> None:
        self.root = root
        self.url = url
        self.shared = shared
        # Keys become paths by string joins, not pathlib: several per file per snapshot (measured ~15% of
        # a first snapshot's CPU time in Path parsing).
        self._prefix = f"{root}{os.sep}"
        self._known_dirs: set[str] = set()  # created or found by this object: not checked again
        self._anonymous = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
        self._lock = threading.Lock()
        self._unsynced_dirs: set[str] = set()  # directories with durable objects newly named in them
        self._publisher: ThreadPoolExecutor | None = None
        self._batches = 0  # publishing() blocks open now (several threads may share this backend)
        self._pending: list[Future[bool]] = []
        self._backlog = threading.BoundedSemaphore(PUBLISH_BACKLOG)
        self._deferring = 0  # open batches that hold their syncs back until they end (see publishing)
        self._deferred: list[tuple[TempObject, str]] = []  # complete objects whose sync is held back
        self._deferred_limit = deferred_limit()
        self._paced = threading.BoundedSemaphore(PACED_WRITERS)

    def path(self, key: str) -> Path:
        return self.root / key

    def exists(self, key: str) -> bool:
        return os.path.exists(self._prefix + key)

    def size(self, key: str) -> int | None:
        try:
            return os.stat(self._prefix + key).st_size
        except FileNotFoundError:
            return None

    def open_read(self, key: str) -> BinaryIO:
        return open(self._prefix + key, "rb", buffering=0)

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def open_temp(self, *, anonymous: bool = False) -> TempObject:
        if anonymous and self._anonymous:
            try:
                fd = self._in_directory(
                    self._prefix + TEMP_DIR,
                    lambda: os.open(
                        self._prefix + TEMP_DIR,
                        os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC,
                        0o666 if self.shared else PRIVATE_FILE_MODE,
                    ),
                )
                return TempObject(self, None, os.fdopen(fd, "wb", buffering=0))
            except OSError as exc:
                if exc.errno not in NO_ANONYMOUS_FILES:
                    raise
                self._anonymous = False  # this filesystem has none: named temporary files from now on
        temp_key = _temp_key()
        file = self._in_directory(
            self._prefix + TEMP_DIR,
            lambda: open_private(self._prefix + temp_key, "xb", shared=self.shared, buffering=0),
        )
        return TempObject(self, temp_key, file)

    def rename_into_place(self, temp: TempObject, key: str) -> bool:
        # Identical content under a content address, so a concurrent writer of the same key is harmless.
        if temp.temp_key is None:
            target = self._prefix + key
            try:
                self._in_directory(os.path.dirname(target), lambda: _link_open_file(temp.file, target))
            except FileExistsError:
                return False
            return True
        if self.exists(key):
            self.remove(temp.temp_key)
            return False
        self._move(temp.temp_key, key)
        return True

    def replace(self, temp: TempObject, key: str, *, durable: bool = False) -> None:
        self._replace(temp, key, durable=durable)
        if durable:  # its name is synced with the others' before the next manifest (sync_directories)
            self.note_named(key)

    def _replace(self, temp: TempObject, key: str, *, durable: bool) -> None:
        if durable:
            os.fsync(temp.file.fileno())
        if temp.temp_key is None:  # an anonymous file gets a temporary name first: rename replaces
            temp_key = _temp_key()
            _link_open_file(temp.file, self._prefix + temp_key)
            temp.temp_key = temp_key
        temp.file.close()
        self._move(temp.temp_key, key)
        temp.committed = True

    def publish(self, temp: TempObject, key: str, *, durable: bool) -> bool:
        if not durable:
            return temp.commit(key)
        temp.committed = True  # from here on _publish_now owns it (and discards it on failure)
        with self._lock:
            publisher = self._publisher
            if publisher is not None and self._deferring:
                self._deferred.append((temp, key))
                if len(self._deferred) < self._deferred_limit:
                    return True
                held, self._deferred = self._deferred, []  # too many open files held: start on these
                paced = True
            else:
                held, paced = [(temp, key)], False
        if publisher is None:
            return self._publish_now(temp, key)
        for item in held:
            self._submit(publisher, *item, paced=paced)
        return True

    def _submit(self, publisher: ThreadPoolExecutor, temp: TempObject, key: str, *, paced: bool) -> None:
        self._backlog.acquire()  # the disk is behind: wait rather than hold ever more open files
        try:
            future = publisher.submit(self._publish_now, temp, key, paced=paced)
        except RuntimeError:  # every batch ended meanwhile (a put outside one): publish it here
            self._backlog.release()
            self._publish_now(temp, key, paced=paced)
            return
        future.add_done_callback(lambda _: self._backlog.release())
        with self._lock:
            self._pending.append(future)

    def _submit_deferred(self) -> None:
        """Start the syncs that a deferring batch held back (every one: publishing a complete object is
        always safe, and another batch may need it)."""
        with self._lock:
            held, self._deferred = self._deferred, []
            publisher = self._publisher
        for temp, key in held:
            if publisher is None:
                self._publish_now(temp, key, paced=True)
            else:
                self._submit(publisher, temp, key, paced=True)

    @property
    def deferring(self) -> bool:
        return bool(self._deferring)

    def _publish_now(self, temp: TempObject, key: str, *, paced: bool = False) -> bool:
        """fsync, then name: an object is never visible with bytes a crash could still lose. ``paced``:
        written out window by window first (see PACED_WINDOW)."""
        try:
            if paced:
                self._write_out_paced(temp.file.fileno())
            os.fsync(temp.file.fileno())
            created = temp.commit(key)
        except BaseException:
            temp.discard()
            raise
        if created:
            self.note_named(key)
        return created

    def _write_out_paced(self, fd: int) -> None:
        """Write a large file's data to the disk a window at a time, never more than PACED_WRITERS windows
        in flight from this store: little for another process's fsync to wait behind. Only pacing: the
        fsync that follows is what makes the file durable."""
        size = os.fstat(fd).st_size
        if size <= PACED_WINDOW:
            return
        with self._paced:
            for offset in range(0, size, PACED_WINDOW):
                if not write_out(fd, offset, PACED_WINDOW):
                    return  # not supported here: the fsync writes it all

    def note_named(self, key: str) -> None:
        with self._lock:
            self._unsynced_dirs.add(os.path.dirname(self._prefix + key))

    @contextlib.contextmanager
    def publishing(self, *, defer: bool = False) -> Iterator[None]:
        with self._lock:
            self._batches += 1
            self._deferring += defer
            if self._publisher is None:
                # a deferring batch's syncs run beside a starting run: they give way to it (durability.py)
                self._publisher = ThreadPoolExecutor(
                    PUBLISH_THREADS,
                    thread_name_prefix="cellpipe-fsync",
                    initializer=lower_priority if defer else None,
                )
        try:
            yield
            self._wait_pending(raise_errors=True)
        except BaseException:
            self._wait_pending(raise_errors=False)  # nothing keeps running after we return
            raise
        finally:
            with self._lock:
                self._deferring -= defer
                self._batches -= 1
                publisher = self._publisher if not self._batches else None
                if publisher is not None:
                    self._publisher = None
                    self._pending = []  # the failures were raised to every batch open when they happened
            if publisher is not None:
                publisher.shutdown(wait=True)

    def _wait_pending(self, *, raise_errors: bool) -> None:
        """Wait for every background publish started so far, also another batch's (which of them belongs
        to which batch is not known: waiting for more is harmless). A failed one stays listed until no
        batch is open, so that every batch open meanwhile raises it (the one whose object it was must)."""
        self._submit_deferred()
        with self._lock:
            pending = list(self._pending)
        errors = [future.exception() for future in pending]
        with self._lock:
            self._pending = [
                future for future in self._pending if not future.done() or future.exception() is not None
            ]
        first = next((error for error in errors if error is not None), None)
        if raise_errors and first is not None:
            raise first

    def sync_directories(self) -> None:
        """fsync the directories that name new objects, and their parents (a new fan-out directory is
        itself a new name in ``objects/``), many at once (concurrent fsyncs are written together)."""
        self._wait_pending(raise_errors=True)
        with self._lock:
            directories, self._unsynced_dirs = self._unsynced_dirs, set()
        if directories:
            parents = {os.path.dirname(directory) for directory in directories}
            _in_parallel(_fsync_directory, sorted(directories | parents))

    def _move(self, temp_key: str, key: str) -> None:
        target = self._prefix + key
        self._in_directory(os.path.dirname(target), lambda: os.replace(self._prefix + temp_key, target))

    def _in_directory(self, directory: str, action: Callable[[], T]) -> T:
        """``action`` (which creates an entry in ``directory``), the directory made first if this object
        has not seen it; made again if it was removed since (by hand: cellpipe never removes them)."""
        if directory not in self._known_dirs:
            private_dir(directory, shared=self.shared)
            self._known_dirs.add(directory)
        try:
            return action()
        except FileNotFoundError:
            if os.path.isdir(directory):
                raise  # the source is missing, not the directory
            self._known_dirs.discard(directory)
            private_dir(directory, shared=self.shared)
            self._known_dirs.add(directory)
            return action()

    def write_bytes(self, key: str, data: bytes, *, durable: bool = False) -> None:
        """``durable``: on stable storage under its name when this returns (a manifest: nothing written after
        it would sync its name), so its directory is synced here, once, and not again by the next
        :meth:`sync_directories`; so is the directory above when this write created the directory."""
        directory = os.path.dirname(self._prefix + key)
        new_directory = durable and not os.path.isdir(directory)
        with self.temp_object() as temp:
            write_all(temp.file, memoryview(data))
            self._replace(temp, key, durable=durable)
        if durable:
            _fsync_directory(directory)
        if new_directory:
            _fsync_directory(os.path.dirname(directory))

    def remove(self, key: str) -> None:
        os.unlink(self._prefix + key)

    def modified(self, key: str) -> float | None:
        try:
            return os.stat(self.path(key)).st_mtime
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def lock(self, *, exclusive: bool) -> Iterator[None]:
        import fcntl

        private_dir(self.root, shared=self.shared)
        with open_private(self.root / LOCK_FILE, "ab", shared=self.shared) as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def list_names(self, directory: str) -> list[str]:
        try:
            return os.listdir(self.path(directory))
        except FileNotFoundError:
            return []


def _temp_key() -> str:
    """A new temporary object's key, naming its writer (so an abandoned one can be told and removed)."""
    return writer_unique_name(f"{TEMP_DIR}/")


# What opening an anonymous file answers where the filesystem or the system has none.
NO_ANONYMOUS_FILES = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL, errno.ENOENT}


def _link_open_file(file: BinaryIO, target: str) -> None:
    """Give an open file (an anonymous one) the name ``target``: linkat(2) following /proc/self/fd/N to
    the file itself. ``os.link`` follows only with a directory descriptor (without one it calls link(2),
    which would link the /proc symlink and fail with EXDEV)."""
    os.link(str(file.fileno()), target, src_dir_fd=_proc_fd_directory(), follow_symlinks=True)


_proc_fd: tuple[int, int] | None = None  # (pid, descriptor of /proc/self/fd opened by that process)


def _proc_fd_directory() -> int:
    global _proc_fd
    pid = os.getpid()  # a forked child must not use its parent's /proc/<pid>/fd
    if _proc_fd is None or _proc_fd[0] != pid:
        _proc_fd = (pid, os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    return _proc_fd[1]


def _in_parallel(action: Any, items: list[Any]) -> None:
    if len(items) > 1:
        try:
            with ThreadPoolExecutor(min(16, len(items)), thread_name_prefix="cellpipe-fsync") as pool:
                for _ in pool.map(action, items):  # re-raises the first error
                    pass
            return
        except RuntimeError:  # the interpreter is exiting (no new threads): a snapshot finishing meanwhile
            pass
    for item in items:
        action(item)


def _fsync_directory(directory: str | Path) -> None:
    """Persist a rename: the directory entry itself must reach the disk."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the data itself is already synced
    finally:
        os.close(fd)


class FsspecBackend(Backend):
    """Any fsspec filesystem: s3://, gs://, memory://, ...

    Objects go to a temporary key and are moved into place, on every filesystem: an fsspec file that is
    closed while an exception unwinds still uploads what it had, so writing straight to the final key
    could publish half an object.
    """

    local = False

    def __init__(self, fs: Any, root: str, url: str, *, bucketed: bool = False) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url
        self.bucketed = bucketed  # keys live in a bucket that must exist already (BUCKET_SCHEMES)

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def size(self, key: str) -> int | None:
        try:
            return int(self.fs.size(self.path(key)))
        except FileNotFoundError as exc:
            if is_missing_bucket(exc):
                raise
            return None

    def open_read(self, key: str) -> BinaryIO:
        return self.fs.open(self.path(key), "rb")

    def read_bytes(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self.path(key)))

    def open_temp(self, *, anonymous: bool = False) -> TempObject:
        temp_key = _temp_key()
        self._make_directory(self.path(TEMP_DIR))
        return TempObject(self, temp_key, self.fs.open(self.path(temp_key), "wb"))

    def rename_into_place(self, temp: TempObject, key: str) -> bool:
        assert temp.temp_key is not None  # remote temporary files always have a name
        temp_key = temp.temp_key
        # In a bucket, no check: the caller has just found the content-addressed key absent, and a writer
        # that stored it meanwhile stored the same bytes, so a copy over it is harmless (an existence check
        # costs a HEAD and a LIST per stored object).
        if not self.bucketed and self.exists(key):
            self.remove(temp_key)
            return False
        self._move(temp_key, key)
        return True

    def replace(self, temp: TempObject, key: str, *, durable: bool = False) -> None:
        assert temp.temp_key is not None
        temp.file.close()
        self._move(temp.temp_key, key)
        temp.committed = True

    def _move(self, temp_key: str, key: str) -> None:
        if self.bucketed:
            # One object onto another: copy and delete it. ``mv`` first lists both sides to see whether
            # they are directories (two more requests per stored object, measured on the S3 API).
            self.fs.cp_file(self.path(temp_key), self.path(key))
            self.fs.rm_file(self.path(temp_key))
            return
        self._make_directory(self.path(key).rsplit("/", 1)[0])
        self.fs.mv(self.path(temp_key), self.path(key))

    def _make_directory(self, path: str) -> None:
        if not self.bucketed:  # a bucket has no directories (and must not be created here)
            self.fs.makedirs(path, exist_ok=True)

    def remove(self, key: str) -> None:
        self.fs.rm(self.path(key))

    def modified(self, key: str) -> float | None:
        try:
            return self.fs.modified(self.path(key)).timestamp()
        except Exception:  # not every filesystem knows (NotImplementedError), or the key went away
            return None

    def list_names(self, directory: str) -> list[str]:
        try:
            entries = self.fs.ls(self.path(directory), detail=False)
        except FileNotFoundError as exc:
            if is_missing_bucket(exc):
                raise
            return []
        return [entry.rstrip("/").rsplit("/", 1)[-1] for entry in entries]


def is_missing_bucket(exc: BaseException) -> bool:
    """A FileNotFoundError that means the bucket itself is missing, not a key in it (s3fs raises one with
    botocore's NoSuchBucket as its cause; a listing of an absent prefix in an existing bucket is empty)."""
    cause = exc.__cause__
    return (cause is not None and type(cause).__name__ == "NoSuchBucket") or (
        "bucket does not exist" in str(exc).lower()
    )
