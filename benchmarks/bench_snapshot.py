"""How fast snapshots are: first capture, unchanged re-snapshot, one changed file, restore.

Generates a project with 16 large files and many 64 KiB ones (``--mb`` in all), then times, in one
process, each step's wall time and CPU time (user + system, all threads) and its ratio to `cp` measured
in the same run (the machine may be loaded: compare ratios, not seconds):

    read          plain sequential read of every data file (what `cat` does), after a warm-up read so the
                  page cache is as warm as for the snapshot
    hash          hashing every file by the store's hash (--hash, default BLAKE3, as new stores), no copy,
                  on 1 thread and on as many as the snapshot uses (two threads must use two cores: the
                  hash releases the GIL; the speed-up and each thread's CPU are printed): the floor of any
                  content-addressed snapshot; sha256 on 1 thread beside it (stores created before
                  store.json, and what the floors were)
    cp            copying every file into a new directory (the kernel copies), no hashing, no fsync
    cp + fsync    the same, then every file and the directory fsynced (as durable as a snapshot)
    floor         (hash CPU + cp CPU) / cores: a snapshot on idle cores cannot beat this; with fsync
                  on, (hash CPU + cp + fsync CPU) / cores: the kernel's writeback work (which a plain
                  `cp` leaves to the flusher threads, after its clock stopped) is done by the snapshot
    first         take_snapshot into an empty store: read, hash, copy, fsync (unless --no-fsync), manifest.
                  Twice: as a local run takes it (durable="background") with two clocks, "ready for
                  the run" (take_snapshot returned: every byte read, hashed and copied into the store's
                  temporary files, the id known; what a run waits for before its first step) and
                  "durable" (wait_durable returned: objects fsynced and named, the manifest written;
                  what a run waits for before it ends); and as `cellpipe snapshot` takes it
                  (durable="wait", one clock). The CPU of "ready" is the whole process's until then,
                  the background threads' included. cp, cp + fsync and both firsts run alternately,
                  each after deleting the previous one's output (the same deletions nearby: see
                  "create files"), with the data just read (in the page cache; its share is printed)
                  and nothing left dirty from before (sync)
    unchanged     take_snapshot again, as a new process would (fresh store object, in-process caches
                  cleared): the persisted stat cache must make this near-instant
    one changed   one large file rewritten: only it may be hashed and stored
    restore       restore into an empty directory (re-hashing everything on the way out), against `cp` of
                  the store's objects of that snapshot (the same bytes, the same files) into an empty
                  directory, alternating, from the same cache state: "cached" (the objects read just
                  before) and "not cached" (synced, then dropped with POSIX_FADV_DONTNEED); the share of
                  the objects' pages in the page cache before each is printed (mincore)
    create files  creating as many empty files: the per-file cost both pay, which on ext4 without a
                  journal grows with the files deleted nearby in the last minutes (printed to explain
                  an erratic system time)
    verify        re-hash every object of the snapshot

With ``--repeat N`` every step runs N times and the fastest run counts (least disturbed by the load).

    python benchmarks/bench_snapshot.py             # 1 GiB
    python benchmarks/bench_snapshot.py --mb 64     # quick
    python benchmarks/bench_snapshot.py --mb 8192 --dir /big/disk
    python benchmarks/bench_snapshot.py --hash sha256   # a store naming objects by sha256 (older stores)

Disk: about 3x --mb (data, store, restored copy). With a warm page cache the read runs at memory speed,
so the first snapshot is bounded by the hash (BLAKE3 ~4 GB/s per core with AVX2, sha256 ~1.6 GB/s with
SHA extensions) and the copy, not the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common  # puts this checkout first on sys.path

from jupyter_ext.snapshot import SnapshotStore, restore, take_snapshot
from jupyter_ext.snapshot import environment as environment_module
from jupyter_ext.snapshot.copying import default_workers
from jupyter_ext.snapshot.hashing import ALGORITHMS, CHUNK_SIZE, NEW_STORE_ALGORITHM, SHA256, copy_hashing
from jupyter_ext.snapshot.statcache import RACY_MARGIN_NS
from jupyter_ext.snapshot.store import FORMAT_KEY, STORE_FORMAT

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


def hash_one(path: Path, algorithm: str) -> None:
    with open(path, "rb", buffering=0) as stream:
        copy_hashing(stream, algorithm=algorithm)


def hash_all(files: list[Path], threads: int, algorithm: str) -> list[float]:
    """Hash every file on ``threads`` threads; returns each thread's CPU time (one thread per core in
    use means the hash runs outside the GIL)."""
    ordered = sorted(files, key=lambda path: path.stat().st_size, reverse=True)
    queue = iter(ordered)
    lock = threading.Lock()

    def worker() -> float:
        start = time.thread_time()
        while True:
            with lock:
                path = next(queue, None)
            if path is None:
                return time.thread_time() - start
            hash_one(path, algorithm)

    if threads <= 1:
        return [worker()]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda _: worker(), range(threads)))


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


def copy_all(files: list[Path], target: Path, *, durable: bool = False) -> None:
    """``cp``: the kernel copies (sendfile/copy_file_range), no hashing; ``durable``: then fsync every file
    (16 at once, as the store does) and the directory."""
    target.mkdir()
    copies = [target / f"{index}-{path.name}" for index, path in enumerate(files)]
    for path, copy in zip(files, copies, strict=True):
        shutil.copyfile(path, copy)
    if durable:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(fsync_path, copies + [target]))


def object_files(store_dir: Path, snapshot_id: str) -> list[Path]:
    """The store's objects of one snapshot: what a restore reads (the fair `cp` baseline copies these)."""
    manifest = SnapshotStore.open(store_dir).read_manifest(snapshot_id)
    digests = {entry["hash"] for entry in [manifest["notebook"], *manifest["files"]]}
    return [store_dir / "objects" / digest[:2] / digest[2:] for digest in sorted(digests)]


def set_cached(files: list[Path], cached: bool) -> None:
    """Put ``files`` in the page cache (read them) or take them out (sync, then POSIX_FADV_DONTNEED), so
    that a restore and its `cp` baseline start from the same, named cache state. (On this kind of VM a
    kernel scheme pages out file pages idle for ~60 s, so "in the store" does not mean "in memory".)"""
    if cached:
        read_all(files)
        return
    os.sync()  # dirty pages cannot be dropped
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def cached_share(files: list[Path]) -> float | None:
    """The share of ``files``' pages in the page cache (mincore), None where that cannot be asked."""
    try:
        import ctypes
        import mmap

        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, *[ctypes.c_int] * 3, ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        page = mmap.PAGESIZE
        resident = total = 0
        for path in files:
            size = path.stat().st_size
            if not size:
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
                pages = (ctypes.c_ubyte * ((size + page - 1) // page))()
                if libc.mincore(address, size, pages) != 0:
                    return None
                libc.munmap(address, size)
            finally:
                os.close(fd)
            resident += sum(byte & 1 for byte in bytes(pages))
            total += len(pages)
        return resident / total if total else None
    except (OSError, AttributeError, ImportError):
        return None


def create_empty(directory: Path, count: int) -> None:
    """Create ``count`` empty files: the per-file cost that a restore and `cp` both pay. On ext4 without a
    journal (this VM) each new inode skips every inode of its group deleted in the last 60-360 s, so
    this cost depends on what anyone on the machine deleted lately: the benchmark prints it."""
    directory.mkdir()
    for index in range(count):
        os.close(os.open(directory / f"{index}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Timing:
    wall: float
    cpu: float  # user + system time of this process, all threads
    system: float = 0.0  # the kernel's share of cpu


def timed(
    action: Callable[[], Any], repeat: int = 1, *, before: Callable[[], Any] | None = None
) -> tuple[Timing, Any]:
    """The fastest of ``repeat`` runs of ``action`` (``before`` runs untimed ahead of each: clean-up)."""
    best, result = None, None
    for _ in range(repeat):
        if before is not None:
            before()
        start_cpu, start = os.times(), time.perf_counter()
        result = action()
        end_cpu, wall = os.times(), time.perf_counter() - start
        system = end_cpu.system - start_cpu.system
        cpu = (end_cpu.user - start_cpu.user) + system
        if best is None or wall < best.wall:
            best = Timing(wall, cpu, system)
    assert best is not None
    return best, result


def time_first_copies(
    actions: dict[str, Callable[[], Any]],
    files: list[Path],
    *,
    repeat: int,
    clean: Callable[[], Any],
) -> dict[str, tuple[Timing, Any, float | None]]:
    """`cp`, `cp` + fsync and the first snapshot, alternating, each from the same state: the previous
    step's output deleted (so each creates its files after the same deletions nearby, see create_empty),
    the data read into the page cache, and no dirty pages left to write back meanwhile (sync). Returns
    each one's fastest run, its result and the data's share in the page cache before it (mincore)."""
    best: dict[str, tuple[Timing, Any, float | None]] = {}
    for _ in range(repeat):
        for name, action in actions.items():
            clean()
            read_all(files)
            os.sync()
            share = cached_share(files)
            timing, result = timed(action)
            if name not in best or timing.wall < best[name][0].wall:
                best[name] = (timing, result, share)
    return best


@dataclass
class RestoreTimings:
    restore: Timing
    cp: Timing  # `cp` of the store's objects of the same snapshot, into a fresh directory
    share: tuple[float | None, float | None]  # objects' share in the page cache before (cp, restore)


def time_restore(
    restore_action: Callable[[], Any],
    cp_action: Callable[[], Any],
    objects: list[Path],
    *,
    cached: bool,
    repeat: int,
    clean: Callable[[], Any],
) -> RestoreTimings:
    """Restore and `cp` of the same objects, alternating, each from the same cache state (``cached``:
    objects in the page cache or not) into a fresh directory after a sync; the fastest of ``repeat``
    (at least 2) runs of each counts. The order flips every round (cp, restore, restore, cp, ...):
    each run deletes the previous run's files first, and on ext4 without a journal a file created
    soon after others were deleted costs more, so neither may always come second."""
    best: dict[str, Timing] = {}
    shares: dict[str, float | None] = {}
    actions = [("cp", cp_action), ("restore", restore_action)]
    for round_ in range(max(2, repeat)):
        for name, action in actions if round_ % 2 == 0 else actions[::-1]:
            clean()
            set_cached(objects, cached)
            os.sync()  # no dirty pages from the previous run left to write back meanwhile
            shares[name] = cached_share(objects)
            timing, _ = timed(action)
            if name not in best or timing.wall < best[name].wall:
                best[name] = timing
    clean()
    return RestoreTimings(best["restore"], best["cp"], (shares["cp"], shares["restore"]))


def restore_rows(
    restores: dict[str, RestoreTimings], speed: Callable[[Timing], str]
) -> list[tuple[str, Timing, str]]:
    def share(value: float | None) -> str:
        return "cache state unknown" if value is None else f"objects {value:.0%} in the page cache"

    rows = []
    for state, timings in restores.items():
        rows.append((f"cp objects, {state}", timings.cp, f"{speed(timings.cp)}; {share(timings.share[0])}"))
        rows.append(
            (
                f"restore, {state}",
                timings.restore,
                f"{speed(timings.restore)}; {timings.restore.wall / timings.cp.wall:.2f}x cp objects; "
                f"{share(timings.share[1])}",
            )
        )
    return rows


def snapshot_for_a_run(notebook: Path, store: SnapshotStore, workers: int | None) -> tuple[Any, Timing]:
    """A first snapshot as a local run takes it: (the snapshot, the time until take_snapshot returned);
    this returns when it is durable (``timed`` around it measures that)."""
    start_cpu, start = os.times(), time.perf_counter()
    snapshot = take_snapshot(notebook, store=store, workers=workers, durable="background")
    ready_cpu, ready = os.times(), time.perf_counter() - start
    snapshot.wait_durable()
    system = ready_cpu.system - start_cpu.system
    return snapshot, Timing(ready, (ready_cpu.user - start_cpu.user) + system, system)


def cache_state(share: float | None) -> str:
    return "data cache state unknown" if share is None else f"data {share:.0%} in the page cache"


def fresh_store(path: Path, fsync: bool, algorithm: str = NEW_STORE_ALGORITHM) -> SnapshotStore:
    """A store object as a new process would have it: nothing cached in memory. A new store names its
    objects by ``algorithm``: a store.json saying so is written first when it is not the default."""
    environment_module._memo.clear()
    if algorithm != NEW_STORE_ALGORITHM and not (path / FORMAT_KEY).exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        (path / FORMAT_KEY).write_text(json.dumps({"format": STORE_FORMAT, "object_hash": algorithm}))
    return SnapshotStore.open(path, fsync=fsync)


def remove(*paths: Path) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def data_arguments(description: str | None, *, workers: str) -> argparse.ArgumentParser:
    """A parser with the options of the generated data (``--mb``, ``--small-share``), where to work
    (``--dir``), ``--workers`` and the store's ``--hash``: shared by this benchmark and the profiles."""
    parser = common.arguments(description)
    parser.add_argument("--mb", type=int, default=1024, help="total data size in MiB (default 1024)")
    parser.add_argument("--small-share", type=float, default=1 / 16, help="share of --mb in 64 KiB files")
    parser.add_argument("--dir", type=Path, default=None, help="where to work (default: a temp directory)")
    parser.add_argument("--workers", type=int, default=None, help=workers)
    parser.add_argument(
        "--hash",
        choices=sorted(ALGORITHMS),
        default=NEW_STORE_ALGORITHM,
        help=f"the store's object hash (default {NEW_STORE_ALGORITHM}, as a new store; sha256: as stores "
        "created before store.json)",
    )
    return parser


def main() -> None:
    parser = data_arguments(__doc__, workers="snapshot threads (default: one per core, at most 4)")
    parser.add_argument("--no-fsync", action="store_true", help="do not fsync objects before the manifest")
    parser.add_argument(
        "--cold-memory", action="store_true", help="skip pre-touching memory (see prefault_memory)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per step; the fastest counts (default 1)")
    args = parser.parse_args()
    algorithm = args.hash

    work = Path(tempfile.mkdtemp(prefix="bench-snapshot-", dir=args.dir))
    fsync = not args.no_fsync
    threads = args.workers or default_workers()
    repeat = max(1, args.repeat)
    load_before = common.load_average()
    try:
        project, store_dir, copy_dir = work / "project", work / "store", work / "copy"
        gen, files = timed(lambda: generate(project, args.mb, args.small_share))
        notebook = project / "bench.ipynb"
        total = sum(path.stat().st_size for path in files)
        time.sleep(RACY_MARGIN_NS / 1e9 * 2)  # the freshest files must age past the stat cache's racy window

        if not args.cold_memory:
            prefault_memory(3 * args.mb * MIB)
        read_all(files)  # warm-up: the snapshot and the timed read both find the data in the page cache
        read, _ = timed(lambda: read_all(files), repeat)
        hash1, _ = timed(lambda: hash_all(files, 1, algorithm), repeat)
        hashn, thread_cpu = timed(lambda: hash_all(files, threads, algorithm), repeat)
        sha1, _ = timed(lambda: hash_all(files, 1, SHA256), repeat) if algorithm != SHA256 else (hash1, None)
        # Writing new files is the other floor. A first pass, deleted, lets the timed copy and the snapshot
        # both write into recycled page-cache memory (a VM's first touch of fresh memory is much slower).
        copy_all(files, copy_dir)
        firsts = time_first_copies(
            {
                "cp": lambda: copy_all(files, copy_dir),
                "cp + fsync": lambda: copy_all(files, copy_dir, durable=True),
                "first": lambda: take_snapshot(
                    notebook, store=fresh_store(store_dir, fsync, algorithm), workers=args.workers
                ),
                "first, background": lambda: snapshot_for_a_run(
                    notebook, fresh_store(store_dir, fsync, algorithm), args.workers
                ),
            },
            files,
            repeat=repeat,
            clean=lambda: remove(copy_dir, store_dir),
        )
        (cp, _, _), (cp_sync, _, _) = firsts["cp"], firsts["cp + fsync"]
        first_t, first, data_share = firsts["first"]
        durable_t, (background, ready_t), background_share = firsts["first, background"]
        assert background.id == first.id

        stores: list[SnapshotStore] = []

        def again_snapshot() -> Any:
            stores.append(fresh_store(store_dir, fsync))
            return take_snapshot(notebook, store=stores[-1], workers=args.workers)

        again_t, again = timed(again_snapshot, repeat)
        again_counters = stores[-1].counters

        with open(files[3], "r+b") as stream:
            stream.write(os.urandom(4096))
        time.sleep(RACY_MARGIN_NS / 1e9 * 2)
        store = fresh_store(store_dir, fsync)
        changed_t, changed = timed(lambda: take_snapshot(notebook, store=store, workers=args.workers))
        changed_counters = store.counters

        restored, objects_copy = work / "restored", work / "objects-copy"
        objects = object_files(store_dir, changed.id)
        restores: dict[str, RestoreTimings] = {}
        for state, cached in (("cached", True), ("not cached", False)):
            restores[state] = time_restore(
                lambda: restore(store_dir, changed.id, restored, workers=args.workers),
                lambda: copy_all(objects, objects_copy),
                objects,
                cached=cached,
                repeat=repeat,
                clean=lambda: remove(restored, objects_copy),
            )
        probe_dir = work / "probe"
        create_t, _ = timed(lambda: create_empty(probe_dir, len(objects)))
        remove(probe_dir)
        verify_t, verified = timed(lambda: SnapshotStore.open(store_dir).verify(changed.id), repeat)
        assert verified.ok, verified.problems
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mb = total / MIB
    cores = os.cpu_count() or 1
    floor = Timing((hash1.cpu + cp.cpu) / cores, hash1.cpu + cp.cpu)
    durable_floor = Timing((hash1.cpu + cp_sync.cpu) / cores, hash1.cpu + cp_sync.cpu)
    sha_durable_floor = (sha1.cpu + cp_sync.cpu) / cores  # what the durable floor was with sha256
    per_thread = ", ".join(f"{cpu:.2f}" for cpu in thread_cpu)

    def speed(timing: Timing) -> str:
        return f"{mb / timing.wall:,.0f} MiB/s"

    rows = [
        ("generate data", gen, f"{len(files)} files, {mb:.0f} MiB"),
        ("read (cat)", read, speed(read)),
        (f"{algorithm}, 1 thread", hash1, speed(hash1)),
        (
            f"{algorithm}, {threads} threads",
            hashn,
            f"{speed(hashn)}; {hash1.wall / hashn.wall:.2f}x 1 thread's speed; CPU s per thread {per_thread}",
        ),
        *(
            [("sha256, 1 thread", sha1, f"{speed(sha1)} (stores created before store.json)")]
            if sha1 is not hash1
            else []
        ),
        ("cp", cp, speed(cp)),
        ("cp + fsync", cp_sync, speed(cp_sync)),
        (f"floor (CPU / {cores} cores)", floor, f"{algorithm} + cp CPU time spread over every core"),
        (
            f"durable floor (/ {cores} cores)",
            durable_floor,
            f"{algorithm} + cp + fsync CPU time over every core"
            + (
                f" (with sha256: {sha_durable_floor:.3f} s, {sha_durable_floor / cp.wall:.2f}x cp)"
                if algorithm != SHA256
                else ""
            ),
        ),
        (
            "first snapshot, ready for the run",
            ready_t,
            f"{speed(ready_t)}; durable='background' returned (data captured); {cache_state(background_share)}",
        ),
        (
            "first snapshot, durable",
            durable_t,
            f"{speed(durable_t)}; ... and wait_durable() returned (the same run)",
        ),
        (
            "first snapshot, waiting",
            first_t,
            f"{speed(first_t)}; durable='wait' (cellpipe snapshot); {first.new_bytes / MIB:.0f} MiB stored; "
            + cache_state(data_share),
        ),
        (
            "re-snapshot unchanged",
            again_t,
            f"{again_counters.hashed_files} files hashed, {again.new_bytes} B stored "
            f"({'meets' if again_t.wall < 0.2 else 'misses'} < 0.2 s)",
        ),
        (
            "one file changed",
            changed_t,
            f"{changed_counters.hashed_files} file hashed ({changed_counters.hashed_bytes / MIB:.0f} MiB), "
            f"{changed_counters.stored_bytes / MIB:.0f} MiB stored",
        ),
        *restore_rows(restores, speed),
        (f"create {len(objects)} empty files", create_t, "per-file cost that restore and cp both pay"),
        ("verify", verify_t, speed(verify_t)),
    ]
    print(
        f"cellpipe snapshot benchmark ({algorithm} store): {mb:.0f} MiB ({BIG_FILES} x {(total - len(files[BIG_FILES:]) * SMALL_FILE) / BIG_FILES / MIB:.0f} MiB"
        f" + {len(files) - BIG_FILES} x 64 KiB), fsync {'on' if fsync else 'off'}, {threads} threads, "
        f"{cores} cores, Python {platform.python_version()}, fastest of {repeat}"
    )
    print(f"before: {load_before}; after: {common.load_average()}")
    width = max(len(name) for name, _, _ in rows)
    print(
        f"{'step':<{width}}  {'wall s':>7}  {'CPU s':>6}  {'sys s':>6}  {'x cp':>6}  {'x cp+fsync':>10}  result"
    )
    for name, timing, result in rows:
        print(
            f"{name:<{width}}  {timing.wall:>7.3f}  {timing.cpu:>6.2f}  {timing.system:>6.2f}"
            f"  {timing.wall / cp.wall:>6.2f}  {timing.wall / cp_sync.wall:>10.2f}  {result}"
        )
    hot = restores["cached"]
    restore_floor = (hash1.cpu + hot.cp.cpu) / cores
    print(
        f"first snapshot ready for the run (what a run waits for; the goal is read against it): "
        f"{ready_t.wall / cp.wall:.2f}x cp (goal <= 1.5x), {ready_t.wall / cp_sync.wall:.2f}x cp + fsync; "
        f"durable {durable_t.wall / cp.wall:.2f}x cp, {durable_t.wall / cp_sync.wall:.2f}x cp + fsync "
        f"(CPU {durable_t.cpu / cp_sync.cpu:.2f}x cp + fsync's)"
    )
    print(
        f"first snapshot waiting: {first_t.wall / cp.wall:.2f}x cp, {first_t.wall / cp_sync.wall:.2f}x "
        f"cp + fsync, {first_t.wall / (durable_floor if fsync else floor).wall:.2f}x its floor "
        f"({(durable_floor if fsync else floor).wall / cp.wall:.2f}x cp)"
        f"{' (the durable one)' if fsync else ''}; CPU {first_t.cpu / cp.cpu:.2f}x cp's, "
        f"{first_t.cpu / cp_sync.cpu:.2f}x cp + fsync's"
    )
    print(
        "restore / cp of the same objects in the same cache state: "
        + "; ".join(
            f"{state} {t.restore.wall / t.cp.wall:.2f}x wall, {t.restore.cpu / t.cp.cpu:.2f}x CPU"
            for state, t in restores.items()
        )
        + f"; restore (cached) / its floor ({algorithm} + cp objects CPU over {cores} cores, "
        f"{restore_floor:.3f} s): {hot.restore.wall / restore_floor:.2f}x"
    )
    # Creating the files costs both the same, but varies with recent deletions nearby (see create_empty).
    print(
        f"creating {len(objects)} empty files just after: {create_t.cpu:.2f} s CPU "
        f"({create_t.cpu / len(objects) * 1e6:.0f} us each)"
    )


if __name__ == "__main__":
    main()
