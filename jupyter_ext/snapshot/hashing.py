"""sha256 of bytes and streams, reading in large chunks and optionally copying in the same pass."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO

# 1 MiB: large enough that syscall overhead vanishes, small enough that the chunk stays in a core's L2
# cache between the read, the hash and the write (measured faster than 4 MiB on 2 cores).
CHUNK_SIZE = 1 << 20


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


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def copy_hashing(
    source: BinaryIO,
    write: Callable[[memoryview], object] | None = None,
    *,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[str, int]:
    """Read ``source`` to the end once, hashing it and handing each chunk to ``write``.

    Returns (sha256 hex digest, byte count). ``source`` should be unbuffered (``buffering=0``) so that
    ``readinto`` fills our buffer straight from the kernel.
    """
    digest = hashlib.sha256()
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
