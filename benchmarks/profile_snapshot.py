"""Where a first snapshot's time goes: per phase, per kind of thread, the disk, and the cores left idle.

Generates the same data as bench_snapshot.py (``--mb``, 16 large files and 64 KiB ones), reads it into the
page cache, syncs, and takes first snapshots into an empty store (``--repeat`` times, deleting the store
between them, as the benchmark does), printing for each:

    phases        wall and process CPU (user/system) at each step of take_snapshot: storing the data (hash,
                  copy, background fsync+link), the notebook, the environment, the directory fsyncs and
                  the manifest
    threads       CPU time of the hashing/copying workers (large and small files apart) and of the fsync
                  pool (fsync then link of each object), and how long the pool spent waiting in fsync
    disk          pages dirtied and written (/proc/vmstat) during the snapshot, and how many were still
                  dirty or under writeback when the objects were done
    idle          wall x cores - CPU: core time nobody used (waiting for the disk, or for the GIL)
    --background  as a local run takes it: the time take_snapshot returned (ready) and the durable end
    create probe  the CPU of creating as many empty files in a fresh directory right after: the per-file
                  cost of the filesystem at that moment (on ext4 without a journal it grows with the
                  inodes deleted nearby in the last minutes)

For system calls run it under ``strace -f -c -o FILE`` (slows it down; counts, not times, are the point).

    python benchmarks/profile_snapshot.py --mb 1024 --repeat 3
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import common  # puts this checkout first on sys.path
from bench_snapshot import MIB, cached_share, create_empty, data_arguments, fresh_store, generate, read_all

from jupyter_ext.snapshot import backends, capture, take_snapshot
from jupyter_ext.snapshot.statcache import RACY_MARGIN_NS
from jupyter_ext.snapshot.store import SnapshotStore

VMSTAT = ("nr_dirty", "nr_writeback", "nr_dirtied", "nr_written")


def vmstat() -> dict[str, int]:
    values = {}
    with open("/proc/vmstat") as stream:
        for line in stream:
            name, value = line.split()
            if name in VMSTAT:
                values[name] = int(value)
    return values


class Probe:
    """Wraps functions of the snapshot code to record phases and per-thread CPU, restoring them after."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.start_cpu = os.times()
        self.marks: list[tuple[float, str, float, float]] = []  # (wall, label, user, system)
        self.thread_cpu: dict[str, float] = defaultdict(float)
        self.thread_wall: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        self.vm_done: dict[str, int] = {}
        self._undo: list[Callable[[], None]] = []

    def mark(self, label: str) -> None:
        now = os.times()
        self.marks.append(
            (
                time.perf_counter() - self.start,
                label,
                now.user - self.start_cpu.user,
                now.system - self.start_cpu.system,
            )
        )

    def phase(self, owner: Any, name: str, label: str | None = None) -> None:
        """Mark entering and leaving ``owner.name``."""
        real = getattr(owner, name)
        label = label or name

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.mark(f"{label} starts")
            try:
                return real(*args, **kwargs)
            finally:
                self.mark(f"{label} ends")

        self._patch(owner, name, wrapper)

    def per_thread(self, owner: Any, name: str, classify: Callable[..., str]) -> None:
        """Add the thread CPU and wall time of every call of ``owner.name`` under ``classify(*args)``."""
        real = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kind = classify(*args)
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return real(*args, **kwargs)
            finally:
                with self.lock:
                    self.thread_cpu[kind] += time.thread_time() - cpu
                    self.thread_wall[kind] += time.perf_counter() - wall
                    self.counts[kind] += 1

        self._patch(owner, name, wrapper)

    def _patch(self, owner: Any, name: str, wrapper: Callable[..., Any]) -> None:
        real = getattr(owner, name)
        setattr(owner, name, wrapper)
        self._undo.append(lambda: setattr(owner, name, real))

    def undo(self) -> None:
        for restore in reversed(self._undo):
            restore()

    def print_times(self, wall: float, user: float, system: float) -> None:
        """The run's wall and CPU time, the cores left idle, each phase mark and each kind of thread work."""
        cores = os.cpu_count() or 1
        print(
            f"  wall {wall:.3f} s, CPU {user + system:.2f} s (user {user:.2f}, system {system:.2f}), "
            f"idle core time {max(0.0, wall * cores - user - system):.2f} s of {wall * cores:.2f}; "
            f"load {os.getloadavg()[0]:.1f}"
        )
        print("  phases (wall s, process CPU user/system s at that moment):")
        for at, label, mark_user, mark_system in self.marks:
            print(f"    {at:7.3f}  {mark_user:5.2f} {mark_system:5.2f}  {label}")
        print("  threads (calls, thread CPU s, wall s summed over calls):")
        for kind in sorted(self.counts, key=lambda kind: -self.thread_cpu.get(kind, 0.0)):
            print(
                f"    {kind:<36} {self.counts[kind]:>6}  {self.thread_cpu.get(kind, 0.0):6.2f}  "
                f"{self.thread_wall[kind]:7.2f}"
            )


@contextmanager
def probing() -> Iterator[Probe]:
    probe = Probe()
    probe.phase(capture, "_store_data", "data: hash, copy, background fsync+link")
    probe.phase(SnapshotStore, "put_bytes", "notebook")
    probe.phase(capture, "capture_environment", "environment")
    probe.phase(SnapshotStore, "sync", "directory fsyncs")
    probe.phase(SnapshotStore, "write_manifest", "manifest (with the directory fsyncs)")

    def by_size(store: Any, path: Any, *rest: Any) -> str:
        return "worker: large file" if os.path.getsize(path) > 1 << 20 else "worker: small file"

    probe.per_thread(SnapshotStore, "put_file", by_size)
    probe.per_thread(backends.LocalBackend, "_publish_now", lambda *args: "fsync pool: fsync + link")
    real_writing = SnapshotStore.writing

    @contextmanager
    def writing(store: Any, **options: Any) -> Iterator[None]:
        with real_writing(store, **options):
            yield
            probe.mark("all objects hashed and copied; waiting for the fsync pool")
            probe.vm_done = vmstat()
        probe.mark("every object synced and named")

    probe._patch(SnapshotStore, "writing", writing)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        started = time.perf_counter()
        try:
            real_fsync(fd)
        finally:
            with probe.lock:
                probe.thread_wall["fsync calls (any thread)"] += time.perf_counter() - started
                probe.counts["fsync calls (any thread)"] += 1

    probe._patch(os, "fsync", fsync)
    try:
        yield probe
    finally:
        probe.undo()


def report(
    probe: Probe, wall: float, cpu: os.times_result, vm_before: dict[str, int], create_cpu: float
) -> None:
    probe.print_times(wall, cpu.user, cpu.system)
    after = probe.vm_done or vm_before
    print(
        "  disk: pages dirtied {:,}, written {:,} during the snapshot; when the last object was copied "
        "{:,} dirty and {:,} under writeback".format(
            after.get("nr_dirtied", 0) - vm_before["nr_dirtied"],
            after.get("nr_written", 0) - vm_before["nr_written"],
            after.get("nr_dirty", 0),
            after.get("nr_writeback", 0),
        )
    )
    print(f"  create probe: {create_cpu:.2f} s CPU to create as many empty files right after")


def main() -> None:
    parser = data_arguments(__doc__, workers="snapshot threads (default: one per core, at most 4)")
    parser.add_argument("--no-fsync", action="store_true", help="do not fsync objects before the manifest")
    parser.add_argument("--repeat", type=int, default=1, help="snapshots to profile (default 1)")
    parser.add_argument(
        "--background",
        action="store_true",
        help="as a local run takes it (durable='background'): marks when take_snapshot returns, then waits",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="profile-snapshot-", dir=args.dir))
    try:
        project, store_dir = work / "project", work / "store"
        files = generate(project, args.mb, args.small_share)
        time.sleep(RACY_MARGIN_NS / 1e9 * 2)
        print(
            f"profile of a first snapshot: {sum(p.stat().st_size for p in files) / MIB:.0f} MiB, "
            f"{len(files)} files, fsync {'off' if args.no_fsync else 'on'}, {os.cpu_count()} cores, "
            f"{args.hash} store, {common.load_average()}"
        )
        for run in range(max(1, args.repeat)):
            shutil.rmtree(store_dir, ignore_errors=True)
            read_all(files)
            os.sync()
            share = cached_share(files)
            print(
                f"run {run + 1}: data {'?' if share is None else f'{share:.0%}'} in the page cache, nothing dirty"
            )
            store = fresh_store(store_dir, not args.no_fsync, args.hash)
            vm_before = vmstat()
            with probing() as probe:
                started_cpu = os.times()
                snapshot = take_snapshot(
                    project / "bench.ipynb",
                    store=store,
                    workers=args.workers,
                    durable="background" if args.background else "wait",
                )
                if args.background:
                    probe.mark("take_snapshot returned: ready for the run")
                    snapshot.wait_durable()
                    probe.mark("durable (wait_durable returned)")
                wall = time.perf_counter() - probe.start
                ended_cpu = os.times()
            spent = os.times_result(
                (ended_cpu.user - started_cpu.user, ended_cpu.system - started_cpu.system, 0, 0, 0)
            )
            probe_dir = work / f"probe-{run}"
            before = os.times()
            create_empty(probe_dir, len(files))
            after = os.times()
            shutil.rmtree(probe_dir)
            report(probe, wall, spent, vm_before, after.user + after.system - before.user - before.system)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
