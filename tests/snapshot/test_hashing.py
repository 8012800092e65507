"""The object hashes (hashing.py): digests as the libraries give them, and hashing that lets other threads
run, so that a snapshot's threads hash different files on different cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot import hashing
from jupyter_ext.snapshot.hashing import ALGORITHMS, CHUNK_SIZE, copy_hashing, hash_bytes
from tests.support.stores import reference_digest

# Run in a fresh interpreter whose GIL is handed over only when a thread gives it up (a switch interval of
# 100 s): the second thread can then run while the first one hashes only if the hash releases the GIL.
# The first thread hashes CHUNK_SIZE chunks (what snapshots and restores hash) until the second one has
# run, or 1 GiB at most; no timing is measured.
GIL_PROBE = """
import json, sys, threading
from jupyter_ext.snapshot.hashing import CHUNK_SIZE, hasher

sys.setswitchinterval(100)
algorithm = sys.argv[1]
chunk = memoryview(bytes(range(256)) * (CHUNK_SIZE // 256))
hashing_now, seen, go = [False], [], threading.Event()

def other():
    go.wait()  # blocks: gives up the GIL
    seen.append(hashing_now[0])

thread = threading.Thread(target=other)
thread.start()
digest, hashed = hasher(algorithm)(), 0
hashing_now[0] = True
go.set()
while not seen and hashed < 1 << 30:
    digest.update(chunk)
    hashed += len(chunk)
hashing_now[0] = False
thread.join()
print(json.dumps({"other_ran_while_hashing": seen[0], "hashed": hashed}))
"""


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_hashing_a_chunk_releases_the_gil(algorithm: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(GIL_PROBE), algorithm],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    probe = json.loads(result.stdout)
    assert probe["other_ran_while_hashing"], probe
    assert probe["hashed"] < 1 << 30


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_digests_are_the_libraries_own(algorithm: str, tmp_path) -> None:
    data = os.urandom(3 * CHUNK_SIZE + 17)
    path = tmp_path / "data"
    path.write_bytes(data)
    written: list[bytes] = []
    with open(path, "rb", buffering=0) as stream:
        digest, size = copy_hashing(stream, lambda chunk: written.append(bytes(chunk)), algorithm=algorithm)
    assert (digest, size) == (reference_digest(data, algorithm), len(data))
    assert b"".join(written) == data
    assert hash_bytes(data, algorithm) == digest and len(digest) == 64


def test_a_missing_blake3_package_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "blake3", None)  # import blake3 now raises ImportError
    hashing.hasher.cache_clear()
    try:
        with pytest.raises(SnapshotError, match="names its objects by BLAKE3, but the 'blake3' package"):
            hashing.hasher("blake3")
    finally:
        hashing.hasher.cache_clear()
