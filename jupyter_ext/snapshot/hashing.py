"""sha256 of bytes and streams, reading in large chunks and optionally copying in the same pass."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import BinaryIO

# 1 MiB: large enough that syscall overhead vanishes, small enough that the chunk stays in a core's L2
# cache between the read, the hash and the write (measured faster than 4 MiB on 2 cores).
CHUNK_SIZE = 1 << 20


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def copy_hashing(
    source: BinaryIO,
    write: Callable[[memoryview], object] | None = None,
    *,
    on_bytes: Callable[[int], None] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[str, int]:
    """Read ``source`` to the end once, hashing it and handing each chunk to ``write``.

    Returns (sha256 hex digest, byte count). ``source`` should be unbuffered (``buffering=0``) so that
    ``readinto`` fills our buffer straight from the kernel.
    """
    digest = hashlib.sha256()
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    total = 0
    while True:
        count = source.readinto(buffer)
        if not count:
            break
        chunk = view[:count]
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
