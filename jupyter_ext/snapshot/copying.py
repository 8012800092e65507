"""Copy one local file into another while hashing it, with the copy done by the kernel.

Measured on 2 cores (issue 12): a ``read()``/``write()`` copy through Python costs about twice the CPU of
an in-kernel copy (``copy_file_range``, else ``sendfile``), and writing from user space was the largest
cost of a first snapshot. So each window of the source is read into a small buffer and hashed (the hash
reads it from the CPU cache), then the kernel copies the same window from the page cache, still hot, into
the target. The file is thus read twice, and a writer could change it in between: the copy is trusted
only when the source's size, mtime and ctime did not move and its last change is older than the copy by
more than the kernel clock's granularity. Otherwise, and for small files, the bytes are written from the
buffer that was hashed, in one pass, so the target always holds exactly the bytes whose digest is
returned.

Where the kernel cannot copy (another filesystem, another OS, an old kernel) the next method is used,
ending with plain ``pwrite`` of the hashed buffer.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import time
from collections.abc import Callable

from jupyter_ext.snapshot.hashing import CHUNK_SIZE, Hasher, hasher, read_buffer
from jupyter_ext.snapshot.statcache import RACY_MARGIN_NS

# Hashed, then copied, in windows of this size: the window is still in the page cache and mostly in the
# CPU's last-level cache when the kernel copies it; large enough that the copy's syscall cost vanishes.
WINDOW = 8 * CHUNK_SIZE
# Up to this size a file is read in one buffer, hashed and written from that buffer: one pass, no checks.
ONE_PASS_MAX = CHUNK_SIZE
# What a kernel copy method answers when it cannot copy between these two files (rather than failing).
UNSUPPORTED = {
    errno.EXDEV,  # copy_file_range across filesystems (kernels >= 5.19 refuse most of them again)
    errno.ENOSYS,
    errno.EOPNOTSUPP,
    errno.ENOTSUP,
    errno.EINVAL,  # e.g. a filesystem without splice support
    errno.ENOTSOCK,  # sendfile on systems where it only writes to sockets (macOS)
    errno.EBADF,
}


def default_workers() -> int:
    """How many files a snapshot or a restore copies at once: one per core (hashing keeps a core busy), at
    most 4."""
    return min(4, os.cpu_count() or 1)


class WriteFailed(Exception):
    """Writing the target failed (the source was readable): the caller reports it as a store error."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _copy_file_range(source: int, target: int, offset: int, count: int) -> int:
    return os.copy_file_range(source, target, count, offset, offset)


def _sendfile(source: int, target: int, offset: int, count: int) -> int:
    os.lseek(target, offset, os.SEEK_SET)  # sendfile writes at the target's position
    return os.sendfile(target, source, offset, count)


# from <fcntl.h>: wait for writes of the range already in flight / start writing its dirty pages / wait
# for those writes to end
SYNC_FILE_RANGE_WAIT_BEFORE, SYNC_FILE_RANGE_WRITE, SYNC_FILE_RANGE_WAIT_AFTER = 1, 2, 4


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range(2) through ctypes (Python's os has no binding), None where unavailable."""
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError, ImportError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # a CDLL call releases the GIL


def start_writeback(fd: int, offset: int, count: int) -> None:
    """Ask the kernel to start writing a range just written to the disk, without waiting: a later fsync
    then finds it written or in flight instead of writing all of it at once. Only a hint: no-op where
    unsupported, and it promises no durability (fsync does)."""
    sync_file_range = _sync_file_range()
    if sync_file_range is not None:
        sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE)


def write_out(fd: int, offset: int, count: int) -> bool:
    """Write a range's dirty pages to the disk and wait until they are written (the data only: an fsync
    must follow for the file's size and the disk's cache). False where unsupported (nothing was done)."""
    sync_file_range = _sync_file_range()
    if sync_file_range is None:
        return False
    flags = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER
    return sync_file_range(fd, offset, count, flags) == 0


# In the order tried; a method that answers "unsupported" is not asked again for the same copy.
KERNEL_METHODS: dict[str, Callable[..., int]] = {}
if hasattr(os, "copy_file_range"):
    KERNEL_METHODS["copy_file_range"] = _copy_file_range
if hasattr(os, "sendfile"):
    KERNEL_METHODS["sendfile"] = _sendfile


# Methods found unable to copy between two filesystems (by device pair), not tried again for them.
_unsupported: dict[tuple[int, int], set[str]] = {}


class KernelCopier:
    """Copies byte ranges of one file into the same offsets of another, by the first kernel method that
    works between their filesystems; ``method`` says which ("pwrite" when none: the caller writes)."""

    def __init__(
        self, devices: tuple[int, int], methods: dict[str, Callable[..., int]] | None = None
    ) -> None:
        self._devices = devices
        known_bad = _unsupported.get(devices, set())
        available = KERNEL_METHODS if methods is None else methods
        self._methods = [(name, copy) for name, copy in available.items() if name not in known_bad]

    @property
    def method(self) -> str:
        return self._methods[0][0] if self._methods else "pwrite"

    def copy(self, source: int, target: int, offset: int, count: int) -> int:
        """Copy ``count`` bytes at ``offset``; returns how many were copied (fewer: the source ended, or
        no kernel method works and the caller must write them itself)."""
        done = 0
        while done < count and self._methods:
            copy = self._methods[0][1]
            try:
                copied = copy(source, target, offset + done, count - done)
            except OSError as exc:
                if exc.errno in UNSUPPORTED and done == 0:
                    _unsupported.setdefault(self._devices, set()).add(self._methods.pop(0)[0])
                    continue
                raise WriteFailed(exc) from exc
            if copied == 0:
                break  # the source is shorter than it was
            done += copied
        return done


def copy_file_hashing(
    source: int,
    target: int,
    *,
    algorithm: str,
    on_bytes: Callable[[int], None] | None = None,
    methods: dict[str, Callable[..., int]] | None = None,
    start_writeback: bool = False,
) -> tuple[str, int]:
    """Copy the regular file open at ``source`` (from its start) into the empty file ``target``, returning
    (hex digest by ``algorithm``, size) of exactly the bytes now in ``target``.

    ``methods``: the kernel copy methods to try, by name (default :data:`KERNEL_METHODS`).
    ``start_writeback``: have the disk start writing each copied window (for a target fsynced next).
    Errors reading ``source`` propagate as OSError; errors writing ``target`` as :class:`WriteFailed`.
    """
    new_hash = hasher(algorithm)
    started_ns = time.time_ns()
    before = os.fstat(source)
    if before.st_size <= ONE_PASS_MAX or _recently_changed(before, started_ns):
        return _one_pass(source, target, new_hash(), on_bytes)  # a small file: one read, no more calls
    copier = KernelCopier((before.st_dev, os.fstat(target).st_dev), methods)
    if copier.method == "pwrite":
        return _one_pass(source, target, new_hash(), on_bytes)
    with contextlib.suppress(AttributeError, OSError):  # read ahead further (when not in the page cache)
        os.posix_fadvise(source, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    digest, size = _hash_then_copy(source, target, new_hash(), copier, on_bytes, start_writeback)
    if size is not None and _same(before, os.fstat(source)):
        return digest, size
    # Changed while copied: start again in one pass, so the stored bytes are the hashed ones.
    os.lseek(source, 0, os.SEEK_SET)
    _truncate(target)
    return _one_pass(source, target, new_hash(), on_bytes)


def _hash_then_copy(
    source: int,
    target: int,
    digest: Hasher,
    copier: KernelCopier,
    on_bytes: Callable[[int], None] | None,
    writeback: bool = False,
) -> tuple[str, int | None]:
    """Hash each window, then have the kernel copy it; size None when the source ended early."""
    offset = 0
    with read_buffer() as buffer:
        while True:
            window_start = offset
            while offset - window_start < WINDOW:
                count = os.readv(source, [buffer])
                if not count:
                    break
                digest.update(buffer[:count])  # releases the GIL: other threads copy other files meanwhile
                offset += count
                if on_bytes is not None:
                    on_bytes(count)
            length = offset - window_start
            if not length:
                return digest.hexdigest(), offset
            if copier.copy(source, target, window_start, length) != length:
                return digest.hexdigest(), None
            if writeback:
                start_writeback(target, window_start, length)


def _one_pass(
    source: int, target: int, digest: Hasher, on_bytes: Callable[[int], None] | None
) -> tuple[str, int]:
    offset = 0
    with read_buffer() as buffer:
        while count := os.readv(source, [buffer]):
            chunk = buffer[:count]
            digest.update(chunk)
            _pwrite_all(target, chunk, offset)
            offset += count
            if on_bytes is not None:
                on_bytes(count)
    return digest.hexdigest(), offset


def _pwrite_all(target: int, chunk: memoryview, offset: int) -> None:
    try:
        while chunk:
            written = os.pwrite(target, chunk, offset)
            chunk, offset = chunk[written:], offset + written
    except OSError as exc:
        raise WriteFailed(exc) from exc


def _truncate(target: int) -> None:
    try:
        os.ftruncate(target, 0)
    except OSError as exc:
        raise WriteFailed(exc) from exc


def _recently_changed(stat: os.stat_result, now_ns: int) -> bool:
    """Changed so recently that a further change might not move its timestamps (they come from a coarse
    kernel clock): then size, mtime and ctime cannot prove the file steady."""
    return max(stat.st_mtime_ns, stat.st_ctime_ns) >= now_ns - RACY_MARGIN_NS


def _same(before: os.stat_result, after: os.stat_result) -> bool:
    return (before.st_size, before.st_mtime_ns, before.st_ctime_ns, before.st_ino) == (
        after.st_size,
        after.st_mtime_ns,
        after.st_ctime_ns,
        after.st_ino,
    )
