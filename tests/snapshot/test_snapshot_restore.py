"""restore/materialize: byte-identical files at their relative paths, and the refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot import SnapshotStore, copying, materialize, restore, take_snapshot
from tests.support.stores import reference_digest


def tree(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_restore_is_byte_identical_with_modes(
    project: Path, notebook: Path, store: SnapshotStore, tmp_path: Path
) -> None:
    (project / "config.yaml").chmod(0o600)
    snapshot = take_snapshot(notebook, store=store)
    target = tmp_path / "restored"

    restored = restore(store, snapshot.short_id, target)

    expected = {
        name: (project / name).read_bytes()
        for name in ["train.ipynb", "config.yaml", "data/train.csv", "data/images/cat.png"]
    }
    assert tree(target) == expected
    assert restored.notebook == target / "train.ipynb"
    assert (restored.files, restored.bytes) == (3, snapshot.bytes)
    assert (target / "config.yaml").stat().st_mode & 0o777 == 0o600


def test_restore_reproduces_unsaved_edits_and_external_data(
    tmp_path: Path, project: Path, store: SnapshotStore, write_nb, write_data
) -> None:
    outside = write_data(tmp_path / "elsewhere" / "big.bin", os.urandom(10_000))
    notebook = write_nb(project / "ext.ipynb", [("code", "x = 1", ["data:../elsewhere/big.bin"])])
    edited = notebook.read_bytes().replace(b"x = 1", b"x = 2")
    snapshot = take_snapshot(notebook, store=store, notebook_bytes=edited, allow_outside_root=True)

    restored = materialize(store, snapshot.id)  # a fresh temporary directory
    try:
        assert restored.notebook.read_bytes() == edited
        external = restored.external[str(outside.resolve())]
        assert external.read_bytes() == outside.read_bytes()
        assert external.is_relative_to(restored.directory / "_external")
    finally:
        import shutil

        shutil.rmtree(restored.directory)


def test_restore_refuses_a_non_empty_directory(notebook: Path, store: SnapshotStore, tmp_path: Path) -> None:
    snapshot = take_snapshot(notebook, store=store)
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")

    with pytest.raises(SnapshotError, match=f"{target} is not empty.*pass --force"):
        restore(store, snapshot.id, target)
    assert tree(target) == {"keep.txt": b"mine"}

    (target / "config.yaml").write_text("stale")
    restore(store, snapshot.id, target, force=True)
    assert (target / "keep.txt").read_text() == "mine"  # untouched
    assert (target / "config.yaml").read_text() == "lr: 0.1\n"  # replaced by the snapshot's


@pytest.mark.parametrize("size", ["small", "large"])  # one pass / hashed, then copied by the kernel
def test_restore_detects_a_corrupted_object_and_leaves_no_partial_file(
    notebook: Path, project: Path, store: SnapshotStore, tmp_path: Path, settle, size: str
) -> None:
    if size == "large":
        (project / "data" / "train.csv").write_bytes(os.urandom(3 * copying.WINDOW + 5))
    snapshot = take_snapshot(notebook, store=store)
    entry = next(e for e in snapshot.manifest["files"] if e["path"] == "data/train.csv")
    obj = store.local_root / "objects" / entry["hash"][:2] / entry["hash"][2:]
    with open(obj, "r+b") as stream:  # same size, one byte changed in the last window
        stream.seek(entry["size"] - 2)
        last = stream.read(1)
        stream.seek(entry["size"] - 2)
        stream.write(bytes([last[0] ^ 1]))
    settle()  # old enough for the kernel copy to trust its timestamps

    with pytest.raises(SnapshotError, match="object for data/train.csv is corrupt"):
        restore(store, snapshot.id, tmp_path / "out")
    assert not (tmp_path / "out" / "data" / "train.csv").exists()
    assert not [p for p in (tmp_path / "out").rglob("*cellpipe-*")]  # no temp left behind


def test_a_corrupt_object_stops_the_restore_before_the_other_files_are_copied(
    store: SnapshotStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = [store.put_bytes(os.urandom(100 + index)) for index in range(20)]
    bad = store.put_bytes(os.urandom(5000))  # the largest file: restored first
    files = [{"path": f"f{index}.bin", "hash": put.hash, "size": put.size} for index, put in enumerate(good)]
    files.append({"path": "big.bin", "hash": bad.hash, "size": bad.size})
    snapshot_id = store.write_manifest({"created": "x", "notebook": files[0], "files": files[1:]})
    obj = store.local_root / "objects" / bad.hash[:2] / bad.hash[2:]
    obj.write_bytes(b"x" * bad.size)
    copied: list[str] = []
    copy_out = store.copy_out
    monkeypatch.setattr(store, "copy_out", lambda digest, out: copied.append(digest) or copy_out(digest, out))

    with pytest.raises(SnapshotError, match="object for big.bin is corrupt"):
        restore(store, snapshot_id, tmp_path / "out", workers=1)
    assert copied == [bad.hash]  # the 20 small files queued behind it were cancelled
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["store"]  # no staging directory left


def test_a_manifest_naming_one_path_twice_is_one_clear_error(store: SnapshotStore, tmp_path: Path) -> None:
    first, second = store.put_bytes(b"one"), store.put_bytes(b"two")
    entry = {"path": "data/x.txt", "hash": first.hash, "size": 3, "mode": 0o644}
    snapshot_id = store.write_manifest(
        {
            "created": "x",
            "notebook": dict(entry, path="nb.ipynb"),
            "files": [entry, dict(entry, path="data//x.txt", hash=second.hash)],
        }
    )
    with pytest.raises(
        SnapshotError, match=f"cannot write {tmp_path / 'out' / 'data' / 'x.txt'}: File exists"
    ):
        restore(store, snapshot_id, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_restore_refuses_a_manifest_path_that_climbs_out(store: SnapshotStore, tmp_path: Path) -> None:
    put = store.put_bytes(b"evil")
    entry = {"path": "../escape.txt", "hash": put.hash, "size": 4, "mode": 0o644}
    snapshot_id = store.write_manifest(
        {"created": "x", "notebook": dict(entry, path="nb.ipynb"), "files": [entry]}
    )
    with pytest.raises(SnapshotError, match="unsafe path '../escape.txt'"):
        restore(store, snapshot_id, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_restore_from_a_memory_store(notebook: Path, tmp_path: Path) -> None:
    import uuid

    store = SnapshotStore.open(f"memory://cellpipe-test-{uuid.uuid4().hex}")
    snapshot = take_snapshot(notebook, store=store)
    restored = restore(store, snapshot.id, tmp_path / "out")
    digest = reference_digest((tmp_path / "out" / "data" / "train.csv").read_bytes(), "blake3")  # a new store
    assert digest == next(e["hash"] for e in snapshot.manifest["files"] if e["path"] == "data/train.csv")
    assert restored.files == 3


def test_restore_where_a_directory_blocks_a_file_is_one_clear_error(
    notebook: Path, store: SnapshotStore, tmp_path: Path
) -> None:
    snapshot = take_snapshot(notebook, store=store)
    target = tmp_path / "out"
    (target / "config.yaml").mkdir(parents=True)  # a directory where the snapshot has a file
    with pytest.raises(SnapshotError, match="cannot restore config.yaml: .* is a directory"):
        restore(store, snapshot.id, target, force=True)


def test_restore_into_a_path_under_a_file(notebook: Path, store: SnapshotStore, tmp_path: Path) -> None:
    snapshot = take_snapshot(notebook, store=store)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SnapshotError, match="cannot create .*file/out"):
        restore(store, snapshot.id, tmp_path / "file" / "out")
