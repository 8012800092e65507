"""Where a restore's time goes: per phase, per kind of work in the threads, the disk, and the cores left idle.

Generates the same data as bench_snapshot.py (``--mb``, 16 large files and 64 KiB ones), snapshots it,
then restores it ``--repeat`` times from each cache state of the store's objects ("cached": read just
before; "not cached": synced, then dropped with POSIX_FADV_DONTNEED), each into a fresh directory after
deleting the previous one and a sync, printing for each:

    phases        wall and process CPU (user/system) at each step of restore: the manifest, the staging
                  directory, copying every file (hash + copy), publishing (the final rename)
    threads       thread CPU and wall time summed over the calls of each kind of work: creating the
                  target files, hashing then kernel-copying large objects (and the kernel copy alone),
                  one pass over small ones, opening objects, setting modes
    disk          what this process read from and wrote to the disk (/proc/self/io), its major page
                  faults, and the pages dirtied and written meanwhile (/proc/vmstat, the whole machine)
    idle          wall x cores - CPU: core time nobody used (waiting for the disk, or for the GIL)
    create probe  the CPU of creating as many empty files in a fresh directory right after: the per-file
                  cost of the filesystem at that moment (on ext4 without a journal it grows with the
                  inodes deleted nearby in the last minutes, and restore and `cp` both pay it)

For system calls run it under ``strace -f -c -o FILE``; for the kernel's side ``perf record -e cpu-clock -g``.

    python benchmarks/profile_restore.py --mb 1024 --repeat 2
"""

from __future__ import annotations

import builtins
import importlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import common  # puts this checkout first on sys.path
from bench_snapshot import (
    MIB,
    cached_share,
    create_empty,
    data_arguments,
    fresh_store,
    generate,
    object_files,
    set_cached,
)
from profile_snapshot import Probe, vmstat

from jupyter_ext.snapshot import SnapshotStore, copying, take_snapshot
from jupyter_ext.snapshot.statcache import RACY_MARGIN_NS

# The module, not the function that jupyter_ext.snapshot exports under the same name.
restore_module = importlib.import_module("jupyter_ext.snapshot.restore")


def process_io() -> dict[str, int]:
    """This process's bytes read from and written to the storage layer, and its major faults."""
    values = {}
    with open("/proc/self/io") as stream:
        for line in stream:
            name, value = line.split(":")
            values[name] = int(value)
    with open("/proc/self/stat") as stream:
        values["majflt"] = int(stream.read().rsplit(")", 1)[1].split()[9])
    return values


@contextmanager
def probing() -> Iterator[Probe]:
    probe = Probe()
    probe.phase(SnapshotStore, "read_manifest", "manifest")
    probe.phase(restore_module, "_staging_sibling", "staging directory")
    probe.phase(restore_module, "_restore_files", "every file: create, hash, copy, mode")
    probe.phase(restore_module, "_publish", "publish (rename into place)")
    probe.per_thread(copying, "_hash_then_copy", lambda *args: "large object: hash + kernel copy")
    probe.per_thread(copying.KernelCopier, "copy", lambda *args: "  of which the kernel copy")
    probe.per_thread(copying, "_one_pass", lambda *args: "small object: read, hash, write")
    probe.per_thread(SnapshotStore, "open_object", lambda *args: "open the object")
    probe.per_thread(os, "fchmod", lambda *args: "set the mode")
    restore_module.open = builtins.open  # type: ignore[attr-defined]  # so that it can be wrapped
    probe.per_thread(restore_module, "open", lambda *args: "create the target file")
    try:
        yield probe
    finally:
        probe.undo()
        del restore_module.open  # type: ignore[attr-defined]


def report(
    probe: Probe, wall: float, cpu: tuple[float, float], io: dict[str, int], create_cpu: float
) -> None:
    probe.print_times(wall, *cpu)
    print(
        f"  disk: this process read {io['read_bytes'] / MIB:,.0f} MiB from the disk, had "
        f"{io['majflt']} major faults; the machine dirtied {io['nr_dirtied'] * 4 / 1024:,.0f} MiB and wrote "
        f"{io['nr_written'] * 4 / 1024:,.0f} MiB meanwhile"
    )
    print(f"  create probe: {create_cpu:.2f} s CPU to create as many empty files right after")


def main() -> None:
    parser = data_arguments(__doc__, workers="restore threads (default: one per core)")
    parser.add_argument("--repeat", type=int, default=1, help="restores per cache state (default 1)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="profile-restore-", dir=args.dir))
    try:
        project, store_dir, target = work / "project", work / "store", work / "restored"
        generate(project, args.mb, args.small_share)
        time.sleep(RACY_MARGIN_NS / 1e9 * 2)
        snapshot = take_snapshot(project / "bench.ipynb", store=fresh_store(store_dir, True, args.hash))
        objects = object_files(store_dir, snapshot.id)
        print(
            f"profile of a restore: {snapshot.bytes / MIB:.0f} MiB, {len(objects)} objects, "
            f"{args.workers or copying.default_workers()} threads, {os.cpu_count()} cores, {args.hash} store, "
            f"{common.load_average()}"
        )
        for run in range(max(1, args.repeat)):
            for state, cached in (("cached", True), ("not cached", False)):
                shutil.rmtree(target, ignore_errors=True)
                set_cached(objects, cached)
                os.sync()
                share = cached_share(objects)
                print(
                    f"run {run + 1}, objects {state}: {'?' if share is None else f'{share:.0%}'} "
                    "in the page cache, nothing dirty"
                )
                vm_before, io_before = vmstat(), process_io()
                with probing() as probe:
                    started_cpu = os.times()
                    restore_module.restore(store_dir, snapshot.id, target, workers=args.workers)
                    wall = time.perf_counter() - probe.start
                    ended_cpu = os.times()
                vm_after, io_after = vmstat(), process_io()
                io: dict[str, Any] = {key: io_after[key] - io_before[key] for key in io_after}
                io.update({key: vm_after[key] - vm_before[key] for key in vm_after})
                probe_dir = work / f"probe-{run}-{int(cached)}"
                before = os.times()
                create_empty(probe_dir, len(objects))
                after = os.times()
                shutil.rmtree(probe_dir)
                cpu = (ended_cpu.user - started_cpu.user, ended_cpu.system - started_cpu.system)
                report(probe, wall, cpu, io, after.user + after.system - before.user - before.system)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
