"""What a snapshot guarantees when it is killed or the disk fails (docs/snapshots.md, "Durability"):
no manifest unless every object it names is stored, and no object ever visible with bytes other than
those its name hashes to; objects are named only after their bytes were synced."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot import SnapshotStore, take_snapshot
from jupyter_ext.snapshot import backends as backends_module
from tests.support.stores import reference_digest

BIG = 4 << 20  # kernel-copied in windows (over ONE_PASS_MAX)
SMALL = 64 << 10


@pytest.fixture
def many_files(tmp_path: Path, write_nb, write_data, settle) -> Path:
    """A notebook declaring 4 large and 40 small files (distinct contents)."""
    root = tmp_path / "project"
    for index in range(4):
        write_data(root / "data" / f"big-{index}.bin", os.urandom(BIG))
    for index in range(40):
        write_data(root / "data" / "small" / f"s{index:02d}.bin", os.urandom(SMALL))
    notebook = write_nb(root / "nb.ipynb", [("code", "x = 1", ["data:data"])])
    settle()
    return notebook


def object_files(store_root: Path) -> list[Path]:
    objects = store_root / "objects"
    return [path for path in objects.glob("*/*") if path.is_file()] if objects.exists() else []


def assert_every_object_is_whole(store_root: Path) -> None:
    for path in object_files(store_root):
        assert reference_digest(path.read_bytes(), "blake3") == path.parent.name + path.name  # a new store


def test_a_killed_snapshot_leaves_no_manifest_no_temporary_file_and_no_partial_object(
    many_files: Path, tmp_path: Path
) -> None:
    """SIGKILL in the middle of a real snapshot process (one thread, stopped while it copies a large file,
    objects finished before it still being synced and named in the background)."""
    store_root = tmp_path / "store"
    code = f"""
import sys, time
from jupyter_ext.snapshot import take_snapshot

class StopHalfway:
    done = 0
    def start(self, total, files): pass
    def finish(self): pass
    def advance(self, count):
        self.done += count
        if self.done > {2 * BIG + BIG // 2}:  # inside the third large file
            print("ready", flush=True)
            time.sleep(60)

take_snapshot({str(many_files)!r}, store={str(store_root)!r}, workers=1, progress=StopHalfway())
"""
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    assert not (store_root / "snapshots").exists() or list((store_root / "snapshots").iterdir()) == []
    assert SnapshotStore.open(store_root).ids() == []
    leftovers = list((store_root / "tmp").iterdir()) if (store_root / "tmp").exists() else []
    assert leftovers == []  # anonymous files vanish with the process; nothing for the next run to clean
    stored = object_files(store_root)
    assert len(stored) <= 2  # killed before the third large file: at most the first two were named
    assert_every_object_is_whole(store_root)

    store = SnapshotStore.open(store_root)
    snapshot = take_snapshot(many_files, store=store)
    assert snapshot.files == 44 and store.verify(snapshot.id).ok


def test_an_object_is_named_only_after_its_bytes_are_synced(
    many_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Watched at the two ways a file gets its object name: link (an anonymous file) and rename."""
    synced: set[int] = set()  # inodes fsynced so far
    named: list[tuple[str, bool]] = []  # (object name, synced before)
    real_fsync, real_link, real_replace = os.fsync, os.link, os.replace

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.add(os.fstat(fd).st_ino)

    def note(source, target, source_dir: int | None) -> None:
        if "/objects/" in str(target):
            named.append((str(target), os.stat(source, dir_fd=source_dir).st_ino in synced))

    def link(source, target, **kwargs) -> None:
        note(source, target, kwargs.get("src_dir_fd"))
        real_link(source, target, **kwargs)

    def replace(source, target, **kwargs) -> None:
        note(source, target, kwargs.get("src_dir_fd"))
        real_replace(source, target, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "replace", replace)
    store = SnapshotStore.open(tmp_path / "store", fsync=True)
    snapshot = take_snapshot(many_files, store=store)

    assert len(object_files(store.local_root)) == len(named) == 45  # 44 data files and the notebook
    assert [name for name, was_synced in named if not was_synced] == []
    assert store.verify(snapshot.id).ok


def test_a_manifest_is_durable_when_written_and_its_directory_synced_once(
    tmp_path: Path, write_nb, settle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its name is synced before the snapshot returns (nothing written later would sync it), and only then:
    the next snapshot through the same store object does not sync that directory for it again."""
    notebooks = [
        write_nb(tmp_path / f"p{index}" / "nb.ipynb", [("code", f"x = {index}")]) for index in (1, 2)
    ]
    settle()
    synced: list[int] = []  # inodes, in order
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.fstat(fd).st_ino)

    monkeypatch.setattr(os, "fsync", fsync)
    store = SnapshotStore.open(tmp_path / "store", fsync=True)
    take_snapshot(notebooks[0], store=store)
    manifests, root = (os.stat(path).st_ino for path in (store.local_root / "snapshots", store.local_root))
    # the root twice: for the new store's store.json (durable before any object, or a crash could leave
    # BLAKE3 objects in a store read as sha256) and for the new directory snapshots/
    assert synced.count(manifests) == 1 and synced.count(root) == 2
    take_snapshot(notebooks[1], store=store)
    assert synced.count(manifests) == 2 and synced.count(root) == 2  # once a manifest


def test_a_failed_sync_fails_the_snapshot_in_one_line_and_names_no_object(
    many_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    store = SnapshotStore.open(tmp_path / "store", fsync=True)
    with pytest.raises(
        SnapshotError, match="cannot write to the snapshot store .*: Input/output error"
    ) as caught:
        take_snapshot(many_files, store=store)
    assert "\n" not in str(caught.value)
    assert store.ids() == []
    assert object_files(store.local_root) == []  # none was named: its bytes never reached the disk


def test_without_anonymous_files_named_temporary_files_are_used_and_renamed(
    many_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where O_TMPFILE is missing (macOS, some filesystems) objects go through a temporary name."""
    monkeypatch.delattr(backends_module.os, "O_TMPFILE", raising=False)
    store = SnapshotStore.open(tmp_path / "store", fsync=True)
    assert not store.backend._anonymous
    snapshot = take_snapshot(many_files, store=store)
    assert len(object_files(store.local_root)) == 45
    assert list((store.local_root / "tmp").iterdir()) == []
    assert store.verify(snapshot.id).ok


def test_a_filesystem_refusing_anonymous_files_falls_back_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open
    refused = []

    def open_without_tmpfile(path, flags, *args, **kwargs):
        if flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
            refused.append(path)
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_without_tmpfile)
    store = SnapshotStore.open(tmp_path / "store", fsync=False)
    first, second = store.put_bytes(b"one"), store.put_bytes(b"two")
    assert len(refused) == (1 if hasattr(os, "O_TMPFILE") else 0)
    for put, data in ((first, b"one"), (second, b"two")):
        assert put.new and (store.local_root / store.object_key(put.hash)).read_bytes() == data


def test_two_snapshots_at_once_through_one_store_both_complete(
    many_files: Path, tmp_path: Path, write_nb, write_data, settle
) -> None:
    """A server may share one store object between requests: each snapshot waits for its own objects'
    background syncs (and perhaps the other's), and the fsync pool lives until the last one ends."""
    from concurrent.futures import ThreadPoolExecutor

    other_root = tmp_path / "other"
    for index in range(20):
        write_data(other_root / "data" / f"o{index}.bin", os.urandom(SMALL))
    other = write_nb(other_root / "nb.ipynb", [("code", "y = 2", ["data:data"])])
    settle()
    store = SnapshotStore.open(tmp_path / "store", fsync=True)
    with ThreadPoolExecutor(2) as pool:
        snapshots = list(pool.map(lambda notebook: take_snapshot(notebook, store=store), [many_files, other]))
    assert [snapshot.files for snapshot in snapshots] == [44, 20]
    assert all(store.verify(snapshot.id).ok for snapshot in snapshots)
    assert store.backend._publisher is None  # the pool's threads ended with the last batch


def test_a_failed_sync_during_two_snapshots_through_one_store_fails_the_one_it_concerns(
    many_files: Path, tmp_path: Path, write_nb, write_data, settle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which batch a background sync belongs to is not tracked: a failure must reach the snapshot whose
    object it was (maybe the other one too), never let a manifest name an object that was not stored."""
    from concurrent.futures import ThreadPoolExecutor

    odd_size = 12_345  # only the second project's files have it
    other_root = tmp_path / "other"
    for index in range(20):
        write_data(other_root / "data" / f"o{index}.bin", os.urandom(odd_size))
    other = write_nb(other_root / "nb.ipynb", [("code", "y = 2", ["data:data"])])
    settle()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.fstat(fd).st_size == odd_size:
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store = SnapshotStore.open(tmp_path / "store", fsync=True)

    def attempt(notebook: Path) -> str | SnapshotError:
        try:
            return take_snapshot(notebook, store=store).id
        except SnapshotError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(attempt, [many_files, other])
    assert isinstance(second, SnapshotError) and "Input/output error" in str(second)
    for snapshot_id in store.ids():  # whatever completed names only stored, whole objects
        assert snapshot_id == first and store.verify(snapshot_id).ok
    assert store.backend._pending == [] and store.backend._publisher is None
