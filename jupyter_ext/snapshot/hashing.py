"""Content hashes of objects (by the store's algorithm) over bytes and streams, in large chunks, optionally
copying in the same pass.

A store names its objects by one algorithm, recorded in the store (see store.py, ``store.json``): BLAKE3 for
stores created now, sha256 for stores created before the marker existed. Both give 64 hex digits, so object
keys, manifests and prefixes look the same. BLAKE3 (the ``blake3`` package: the reference Rust
implementation with SIMD) costs about 0.25 CPU s per GiB on one core here against 0.6-0.7 s for sha256 with
SHA extensions, and a snapshot or a restore hashes every byte it copies (issue 12). Both release the GIL for
inputs of 2 KiB and more, so threads hashing different files use different cores.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO, Protocol

from jupyter_ext.errors import SnapshotError

# 1 MiB: large enough that syscall overhead vanishes, small enough that the chunk stays in a core's L2
# cache between the read, the hash and the write (measured faster than 4 MiB on 2 cores).
CHUNK_SIZE = 1 << 20

SHA256 = "sha256"
BLAKE3 = "blake3"
NEW_STORE_ALGORITHM = BLAKE3  # what a store created now names its objects by


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> object: ...

    def hexdigest(self) -> str: ...


def _sha256() -> Callable[[], Hasher]:
    return hashlib.sha256


def _blake3() -> Callable[[], Hasher]:
    try:
        from blake3 import blake3  # imported on first use: a sha256 store never needs it
    except ImportError:
        raise SnapshotError(
            "this snapshot store names its objects by BLAKE3, but the 'blake3' package is not installed",
            field="store",
            hint="Install it (pip install blake3); it is a dependency of cellpipe, so reinstalling cellpipe "
            "also brings it.",
        ) from None
    return blake3  # single-threaded (max_threads=1): snapshots and restores spread files over threads


# The algorithms a store may name its objects by (its store.json "object_hash"), each a loader of its
# hasher class. Every one must give 64 hex digits: object keys and manifests depend on that length.
ALGORITHMS: dict[str, Callable[[], Callable[[], Hasher]]] = {SHA256: _sha256, BLAKE3: _blake3}


@functools.cache
def hasher(algorithm: str) -> Callable[[], Hasher]:
    """The constructor of a new hasher for ``algorithm`` (one of :data:`ALGORITHMS`)."""
    return ALGORITHMS[algorithm]()


_buffers = threading.local()


@contextlib.contextmanager
def read_buffer() -> Iterator[memoryview]:
    """A CHUNK_SIZE buffer reused by this thread from file to file: a fresh one per file is a 1 MiB
    allocation zeroed each time (1 GiB of memset for 1,000 small files). A nested use gets its own."""
    buffer = getattr(_buffers, "free", None) or memoryview(bytearray(CHUNK_SIZE))
    _buffers.free = None
    try:
        yield buffer
    finally:
        _buffers.free = buffer


def hash_bytes(data: bytes, algorithm: str) -> str:
    digest = hasher(algorithm)()
    digest.update(data)
    return digest.hexdigest()


def copy_hashing(
    source: BinaryIO,
    write: Callable[[memoryview], object] | None = None,
    *,
    algorithm: str,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[str, int]:
    """Read ``source`` to the end once, hashing it and handing each chunk to ``write``.

    Returns (hex digest by ``algorithm``, byte count). ``source`` should be unbuffered (``buffering=0``)
    so that ``readinto`` fills our buffer straight from the kernel.
    """
    digest = hasher(algorithm)()
    total = 0
    with read_buffer() as buffer:
        while True:
            count = source.readinto(buffer)
            if not count:
                break
            chunk = buffer[:count]
            digest.update(chunk)  # releases the GIL: other threads hash other files meanwhile
            if write is not None:
                write(chunk)
            total += count
            if on_bytes is not None:
                on_bytes(count)
    return digest.hexdigest(), total


def write_all(target: BinaryIO, chunk: memoryview) -> None:
    """Write every byte; a raw file may accept fewer than asked."""
    while chunk:
        written = target.write(chunk)
        if written is None:  # non-blocking stream that would block: not expected for files
            continue
        chunk = chunk[written:]
