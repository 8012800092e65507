"""How fast snapshots are: first capture, unchanged re-snapshot, one changed file, restore.

Generates a project with 16 large files and many 64 KiB ones (``--mb`` in all), then times, in one
process:

    read          plain sequential read of every data file (what `cat` does), after a warm-up read so the
                  page cache is as warm as for the snapshot
    sha256 only   hashing every file on one thread, no copy: a floor for any content-addressed snapshot
    copy only     copying every file into a new directory (`cp`), no hashing: the other floor
    first         take_snapshot into an empty store: read, hash, copy, fsync (unless --no-fsync), manifest
    unchanged     take_snapshot again, as a new process would (fresh store object, in-process caches
                  cleared): the persisted stat cache must make this near-instant
    one changed   one large file rewritten: only it may be hashed and stored
    restore       restore into an empty directory (re-hashing everything on the way out)

    python benchmarks/bench_snapshot.py             # 1 GiB
    python benchmarks/bench_snapshot.py --mb 64     # quick
    python benchmarks/bench_snapshot.py --mb 8192 --dir /big/disk

Disk: about 3x --mb (data, store, restored copy). With a warm page cache the read runs at memory speed,
so the first snapshot is bounded by sha256 (about 1.5 GB/s per core with SHA extensions), not the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from jupyter_ext.snapshot import SnapshotStore, restore, take_snapshot
from jupyter_ext.snapshot import environment as environment_module
from jupyter_ext.snapshot.hashing import CHUNK_SIZE, copy_hashing
from jupyter_ext.snapshot.statcache import RACY_MARGIN_NS

MIB = 1 << 20
BIG_FILES = 16
SMALL_FILE = 64 * 1024


def generate(root: Path, mb: int, small_share: float) -> list[Path]:
    """``mb`` MiB of distinct incompressible files under root/data, plus a notebook declaring them."""
    data = root / "data"
    (data / "small").mkdir(parents=True)
    small_bytes = int(mb * MIB * small_share)
    big_size = (mb * MIB - small_bytes) // BIG_FILES
    pool = os.urandom(8 * MIB)  # rotated through, with a unique prefix per file so that no two are equal
    files = []
    for index in range(BIG_FILES):
        path = data / f"part-{index:02d}.bin"
        with open(path, "wb") as out:
            out.write(os.urandom(32))
            left, offset = big_size - 32, index * 4096
            while left > 0:
                chunk = pool[offset % len(pool) :][: min(left, 4 * MIB)]
                out.write(chunk)
                left -= len(chunk)
                offset += len(chunk)
        files.append(path)
    for index in range(small_bytes // SMALL_FILE):
        path = data / "small" / f"s{index:05d}.bin"
        path.write_bytes(os.urandom(32) + pool[index * 64 : index * 64 + SMALL_FILE - 32])
        files.append(path)
    notebook = {
        "cells": [
            {"cell_type": "code", "source": "import numpy as np", "metadata": {"tags": ["data:data"]}},
            {"cell_type": "code", "source": "x = np.fromfile('data/part-00.bin')", "metadata": {}},
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (root / "bench.ipynb").write_text(json.dumps(notebook))
    return files


def read_all(files: list[Path]) -> int:
    buffer = bytearray(CHUNK_SIZE)
    total = 0
    for path in files:
        with open(path, "rb", buffering=0) as stream:
            while count := stream.readinto(buffer):
                total += count
    return total


def hash_all(files: list[Path]) -> None:
    for path in files:
        with open(path, "rb", buffering=0) as stream:
            copy_hashing(stream)


def prefault_memory(size: int) -> None:
    """Touch ``size`` bytes of memory once and free them. In a VM, the first touch of a page costs the host
    a fault; a long-running machine has long paid it. Without this, whichever step first writes new
    files (cp, the snapshot's copy into the store) pays it and the comparison is about the VM, not us."""
    size = min(size, available_memory() // 2)  # never push the machine towards the OOM killer
    block = bytearray(64 * MIB)
    chunks = []
    for _ in range(size // len(block)):
        chunk = bytearray(len(block))
        chunk[:] = block  # a real write of every page
        chunks.append(chunk)
    del chunks


def available_memory() -> int:
    """MemAvailable from /proc/meminfo (Linux); elsewhere 0, which turns prefaulting off."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def copy_all(files: list[Path], target: Path) -> None:
    """``cp``: the kernel copies (copy_file_range), no hashing."""
    target.mkdir()
    for index, path in enumerate(files):
        shutil.copyfile(path, target / f"{index}-{path.name}")


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def fresh_store(path: Path, fsync: bool) -> SnapshotStore:
    """A store object as a new process would have it: nothing cached in memory."""
    environment_module._memo.clear()
    return SnapshotStore.open(path, fsync=fsync)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=1024, help="total data size in MiB (default 1024)")
    parser.add_argument("--small-share", type=float, default=1 / 16, help="share of --mb in 64 KiB files")
    parser.add_argument("--dir", type=Path, default=None, help="where to work (default: a temp directory)")
    parser.add_argument("--no-fsync", action="store_true", help="do not fsync objects before the manifest")
    parser.add_argument(
        "--cold-memory", action="store_true", help="skip pre-touching memory (see prefault_memory)"
    )
    parser.add_argument("--workers", type=int, default=None, help="hashing threads (default: cores, max 4)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-snapshot-", dir=args.dir))
    fsync = not args.no_fsync
    try:
        project, store_dir = work / "project", work / "store"
        gen_s, files = timed(lambda: generate(project, args.mb, args.small_share))
        notebook = project / "bench.ipynb"
        total = sum(path.stat().st_size for path in files)
        time.sleep(RACY_MARGIN_NS / 1e9 * 2)  # the freshest files must age past the stat cache's racy window

        if not args.cold_memory:
            prefault_memory(3 * args.mb * MIB)
        read_all(files)  # warm-up: the snapshot and the timed read both find the data in the page cache
        read_s, _ = timed(lambda: read_all(files))
        hash_s, _ = timed(lambda: hash_all(files))
        # Writing new files is the other floor. A first pass, deleted, lets the timed copy and the snapshot
        # both write into recycled page-cache memory (a VM's first touch of fresh memory is much slower).
        copy_all(files, work / "copy")
        shutil.rmtree(work / "copy")
        copy_s, _ = timed(lambda: copy_all(files, work / "copy"))
        shutil.rmtree(work / "copy")

        store = fresh_store(store_dir, fsync)
        first_s, first = timed(lambda: take_snapshot(notebook, store=store, workers=args.workers))

        store = fresh_store(store_dir, fsync)
        again_s, again = timed(lambda: take_snapshot(notebook, store=store, workers=args.workers))
        again_counters = store.counters

        with open(files[3], "r+b") as stream:
            stream.write(os.urandom(4096))
        time.sleep(RACY_MARGIN_NS / 1e9 * 2)
        store = fresh_store(store_dir, fsync)
        changed_s, changed = timed(lambda: take_snapshot(notebook, store=store, workers=args.workers))
        changed_counters = store.counters

        restore_s, _ = timed(lambda: restore(store_dir, changed.id, work / "restored", workers=args.workers))
        verify_s, verified = timed(lambda: SnapshotStore.open(store_dir).verify(changed.id))
        assert verified.ok, verified.problems
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mb = total / MIB
    rows = [
        ("generate data", gen_s, f"{len(files)} files, {mb:.0f} MiB"),
        ("read (cat)", read_s, f"{mb / read_s:,.0f} MiB/s"),
        ("sha256 only, 1 thread", hash_s, f"{mb / hash_s:,.0f} MiB/s"),
        ("copy only (cp)", copy_s, f"{mb / copy_s:,.0f} MiB/s"),
        (
            "first snapshot",
            first_s,
            f"{mb / first_s:,.0f} MiB/s; {first_s / read_s:.1f}x read, {first_s / hash_s:.2f}x sha256-only, "
            f"{first_s / copy_s:.2f}x cp; {first.new_bytes / MIB:.0f} MiB stored",
        ),
        (
            "re-snapshot unchanged",
            again_s,
            f"{again_counters.hashed_files} files hashed, {again.new_bytes} B stored "
            f"({'meets' if again_s < 0.1 else 'misses'} < 0.1 s)",
        ),
        (
            "one file changed",
            changed_s,
            f"{changed_counters.hashed_files} file hashed ({changed_counters.hashed_bytes / MIB:.0f} MiB), "
            f"{changed_counters.stored_bytes / MIB:.0f} MiB stored",
        ),
        ("restore", restore_s, f"{mb / restore_s:,.0f} MiB/s"),
        ("verify", verify_s, f"{mb / verify_s:,.0f} MiB/s"),
    ]
    print(
        f"cellpipe snapshot benchmark: {mb:.0f} MiB ({BIG_FILES} x {(total - len(files[BIG_FILES:]) * SMALL_FILE) / BIG_FILES / MIB:.0f} MiB"
        f" + {len(files) - BIG_FILES} x 64 KiB), fsync {'on' if fsync else 'off'}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    width = max(len(name) for name, _, _ in rows)
    print(f"{'step':<{width}}  {'seconds':>8}  result")
    for name, seconds, result in rows:
        print(f"{name:<{width}}  {seconds:>8.3f}  {result}")


if __name__ == "__main__":
    main()
