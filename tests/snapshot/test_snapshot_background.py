"""``take_snapshot(durable="background")``: it returns once the data is captured and the id is known; the
fsyncs, the objects' names and the manifest follow on a thread (docs/snapshots.md, "A run's snapshot").
The store's promises are those of a snapshot that waits: checked here while that thread is held back,
when it fails, when two such snapshots of the same data run at once, and when the process is killed or
simply ends meanwhile."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot import SnapshotStore, durability, restore, take_snapshot
from jupyter_ext.snapshot.backends import PACED_WINDOW
from jupyter_ext.snapshot.gc import collect_garbage
from tests.snapshot.test_snapshot_durability import BIG, assert_every_object_is_whole, object_files

BACKGROUND_THREADS = ("cellpipe-fsync", durability.THREAD_NAME)


@pytest.fixture
def big_files(tmp_path: Path, write_nb, write_data, settle) -> Path:
    """A notebook declaring 3 large files (kernel-copied; the first written out in paced windows) and a
    small one."""
    root = tmp_path / "project"
    for index in range(3):
        size = PACED_WINDOW * 2 + 12345 if index == 0 else BIG
        write_data(root / "data" / f"big-{index}.bin", os.urandom(size))
    write_data(root / "data" / "small.txt", "small\n")
    notebook = write_nb(root / "nb.ipynb", [("code", "x = 1", ["data:data"])])
    settle()
    return notebook


class HeldSyncs:
    """Every fsync of a snapshot's background threads waits until released: the disk part of the snapshot
    is held back, whatever the machine's speed, while the test looks at the store."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.released = threading.Event()
        self.waiting = threading.Event()  # some background fsync is held
        real_fsync = os.fsync

        self.niceness: set[int] = set()  # of the background threads that synced

        def fsync(fd: int) -> None:
            if threading.current_thread().name.startswith(BACKGROUND_THREADS):
                self.niceness.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
                self.waiting.set()
                self.released.wait(60)
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)


def test_it_returns_with_the_data_captured_before_the_disk_part_and_readers_wait_for_it(
    big_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldSyncs(monkeypatch)
    store_root = tmp_path / "store"
    original = (big_files.parent / "data" / "big-0.bin").read_bytes()
    assert len(original) > PACED_WINDOW

    snapshot = take_snapshot(big_files, store=SnapshotStore.open(store_root), durable="background")

    assert held.waiting.wait(30)  # the objects' fsyncs had started, and are held
    assert not snapshot.is_durable and snapshot.wait_durable(timeout=0.01) is False
    assert SnapshotStore.open(store_root).ids() == []  # not a snapshot yet: no manifest
    assert object_files(store_root) == []  # nor any object named before its bytes are synced
    # a step changes its data now: the snapshot already holds what was read
    (big_files.parent / "data" / "big-0.bin").write_bytes(os.urandom(BIG))
    # another reader of the store (a rerun, a restore) waits for the snapshot instead of not finding it
    looked_up: list[str] = []
    reader = threading.Thread(
        target=lambda: looked_up.append(SnapshotStore.open(store_root).resolve(snapshot.id))
    )
    reader.start()
    reader.join(0.2)
    assert looked_up == []

    held.released.set()
    assert snapshot.wait_durable(timeout=60) and snapshot.is_durable
    reader.join(60)
    assert looked_up == [snapshot.id]
    own = os.getpriority(os.PRIO_PROCESS, os.getpid())  # the main thread's
    assert held.niceness == {min(19, own + durability.BACKGROUND_NICENESS)}  # they give way to the run
    store = SnapshotStore.open(store_root)
    assert store.ids() == [snapshot.id] and store.verify(snapshot.id).ok
    restore(store, snapshot.id, tmp_path / "copy")
    assert (tmp_path / "copy" / "data" / "big-0.bin").read_bytes() == original
    assert durability.pending_count() == 0


def test_the_same_notebook_gives_the_same_id_waiting_or_not(big_files: Path, tmp_path: Path) -> None:
    waited = take_snapshot(big_files, store=SnapshotStore.open(tmp_path / "a"))
    background = take_snapshot(big_files, store=SnapshotStore.open(tmp_path / "b"), durable="background")
    assert background.wait_durable()
    assert background.id == waited.id and background.manifest == waited.manifest
    assert SnapshotStore.open(tmp_path / "b").ids() == [waited.id]


def test_a_failure_of_the_disk_part_is_raised_by_wait_durable_and_leaves_no_snapshot(
    big_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode) and threading.current_thread().name.startswith(
            BACKGROUND_THREADS
        ):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    store = SnapshotStore.open(tmp_path / "store", fsync=True)
    snapshot = take_snapshot(big_files, store=store, durable="background")  # the data was captured
    with pytest.raises(
        SnapshotError, match="cannot write to the snapshot store .*: Input/output error"
    ) as caught:
        snapshot.wait_durable(timeout=60)
    assert "\n" not in str(caught.value)
    assert not snapshot.is_durable
    assert store.ids() == [] and object_files(store.local_root) == []
    assert durability.pending_count() == 0
    monkeypatch.setattr(os, "fsync", real_fsync)
    again = take_snapshot(big_files, store=SnapshotStore.open(tmp_path / "store"))  # the store is fine
    assert again.id == snapshot.id and store.verify(again.id).ok


def test_a_manifest_that_cannot_be_written_fails_wait_durable_and_gc_removes_the_objects(
    big_files: Path, tmp_path: Path
) -> None:
    """A real failure, no patch: the store's snapshots/ is a file, so the manifest cannot be written."""
    store_root = tmp_path / "store"
    store = SnapshotStore.open(store_root)
    assert store.algorithm == "blake3"  # a new store: decided before snapshots/ appears (as a file)
    store_root.mkdir()
    (store_root / "snapshots").write_text("not a directory")
    snapshot = take_snapshot(big_files, store=store, durable="background")
    with pytest.raises(SnapshotError, match="cannot write to the snapshot store"):
        snapshot.wait_durable(timeout=60)
    assert len(object_files(store_root)) == 5  # 4 data files and the notebook: durable, named by no snapshot
    assert_every_object_is_whole(store_root)
    (store_root / "snapshots").unlink()
    report = collect_garbage(SnapshotStore.open(store_root))
    assert len(report.removed_objects) == 5 and object_files(store_root) == []


def test_concurrent_snapshots_of_the_same_data_store_each_object_once_and_lose_none(
    big_files: Path, tmp_path: Path
) -> None:
    """Four at once (separate store objects, as the server's concurrent runs have), all in the background."""
    store_root = tmp_path / "store"
    snapshots: list = []
    barrier = threading.Barrier(4)

    def snapshot_it() -> None:
        barrier.wait()
        snapshots.append(take_snapshot(big_files, store=SnapshotStore.open(store_root), durable="background"))

    threads = [threading.Thread(target=snapshot_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(snapshots) == 4 and all(snapshot.wait_durable(timeout=60) for snapshot in snapshots)
    assert len({snapshot.id for snapshot in snapshots}) == 1
    store = SnapshotStore.open(store_root)
    assert store.ids() == [snapshots[0].id] and store.verify(snapshots[0].id).ok
    assert len(object_files(store_root)) == 5  # each content once
    assert_every_object_is_whole(store_root)
    assert [path for path in (store_root / "tmp").iterdir()] == []


def test_a_process_that_ends_meanwhile_waits_for_the_disk_part(big_files: Path, tmp_path: Path) -> None:
    """A script (or `cellpipe run`) that returns right after the snapshot: the interpreter's exit waits."""
    store_root = tmp_path / "store"
    code = f"""
from jupyter_ext.snapshot import take_snapshot
print(take_snapshot({str(big_files)!r}, store={str(store_root)!r}, durable="background").id, flush=True)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    snapshot_id = done.stdout.strip()
    store = SnapshotStore.open(store_root)
    assert store.ids() == [snapshot_id] and store.verify(snapshot_id).ok


@pytest.mark.parametrize("moment", ["objects", "manifest"])
@pytest.mark.parametrize("anonymous", [True, False], ids=["anonymous-temps", "named-temps"])
def test_a_process_killed_before_its_snapshot_is_durable_leaves_only_what_cleanup_removes(
    big_files: Path, tmp_path: Path, moment: str, anonymous: bool
) -> None:
    """SIGKILL after take_snapshot returned, with the disk part stopped at a given moment: while the objects
    are synced (none named yet), or at the manifest (every object named, the manifest in a temporary
    file). The store then has no snapshot, every object in it is whole, and the next snapshot's clean-up
    and `gc` leave it as if the killed one had never started."""
    store_root = tmp_path / "store"
    # which fsync stops: an object's (a publishing thread), or the manifest's (the snapshot's own thread)
    stop_in = "cellpipe-fsync" if moment == "objects" else durability.THREAD_NAME
    code = f"""
import os, stat, sys, threading, time
from jupyter_ext.snapshot import SnapshotStore, take_snapshot

real_fsync, stopped = os.fsync, threading.Lock()
def fsync(fd):
    if threading.current_thread().name.startswith({stop_in!r}) and stat.S_ISREG(os.fstat(fd).st_mode):
        if stopped.acquire(blocking=False):
            os.write(1, b"stopped\\n")  # one write: the main thread prints the id meanwhile
        time.sleep(600)
    real_fsync(fd)
os.fsync = fsync

store = SnapshotStore.open({str(store_root)!r})
store.backend._anonymous = {anonymous!r}  # as on a filesystem without O_TMPFILE: named temporary files
snapshot_id = take_snapshot({str(big_files)!r}, store=store, durable="background").id
os.write(1, snapshot_id.encode() + b"\\n")
time.sleep(600)  # a run's steps execute meanwhile
"""
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = {process.stdout.readline().strip(), process.stdout.readline().strip()}
        assert "stopped" in lines and any(len(line) == 64 for line in lines)  # take_snapshot had returned
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    store = SnapshotStore.open(store_root)
    assert store.ids() == []
    assert_every_object_is_whole(store_root)
    leftovers = list((store_root / "tmp").iterdir())
    if moment == "objects":
        assert object_files(store_root) == []
    else:
        assert len(object_files(store_root)) == 5
    assert bool(leftovers) == (not anonymous or moment == "manifest")  # the manifest's temp has a name

    snapshot = take_snapshot(big_files, store=store)  # cleans the dead writer's temporary files first
    assert list((store_root / "tmp").iterdir()) == []
    assert store.verify(snapshot.id).ok
    assert collect_garbage(store).removed_objects == []  # nothing of the killed snapshot was left over


def test_held_back_syncs_start_early_when_too_many_objects_wait(big_files: Path, tmp_path: Path) -> None:
    """Each held-back object is an open file: past the limit (here 2, as if the process could open only
    a few files) the batch starts syncing them during the capture; the snapshot is the same."""
    store = SnapshotStore.open(tmp_path / "store")
    store.backend._deferred_limit = 2
    snapshot = take_snapshot(big_files, store=store, durable="background")
    assert snapshot.wait_durable(timeout=60)
    assert store.verify(snapshot.id).ok and len(object_files(store.local_root)) == 5
    assert list((store.local_root / "tmp").iterdir()) == []
