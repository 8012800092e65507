"""Snapshots on a shared machine: a private store, safe restores, data only from inside the project,
corrupt objects found and repaired, leftovers and unreferenced objects removed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot import SnapshotStore, restore, take_snapshot


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_local_store_is_private_to_its_user(
    project: Path, notebook: Path, tmp_path: Path, umask_022, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CELLPIPE_STORE_SHARED", raising=False)
    root = tmp_path / "home" / "store"
    take_snapshot(notebook, store=SnapshotStore.open(root))
    created = [root.parent, *root.rglob("*")]
    assert {oct(mode(p)) for p in created if p.is_dir()} == {oct(0o700)}
    assert {oct(mode(p)) for p in created if p.is_file()} == {oct(0o600)}


def test_a_shared_store_follows_the_umask(
    project: Path, notebook: Path, tmp_path: Path, umask_022, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLPIPE_STORE_SHARED", "1")
    root = tmp_path / "shared-store"
    take_snapshot(notebook, store=SnapshotStore.open(root))
    objects = [p for p in (root / "objects").rglob("*") if p.is_file()]
    assert objects and {mode(p) for p in objects} == {0o644}
    assert mode(root / "objects") == 0o755


# -- restore ---------------------------------------------------------------------------------------------


def crafted_snapshot(store: SnapshotStore, files: dict[str, tuple[bytes, object]]) -> str:
    """A manifest as an attacker with write access to a shared store could write it."""
    entries = []
    for name, (data, file_mode) in files.items():
        put = store.put_bytes(data)
        entries.append({"path": name, "hash": put.hash, "size": len(data), "mode": file_mode})
    notebook = store.put_bytes(b"{}")
    return store.write_manifest(
        {
            "created": "2026-01-01T00:00:00",
            "notebook": {"path": "nb.ipynb", "hash": notebook.hash, "size": 2, "mode": 0o644},
            "files": entries,
        }
    )


def test_restore_drops_setuid_setgid_sticky_and_write_for_others(
    store: SnapshotStore, tmp_path: Path
) -> None:
    snapshot_id = crafted_snapshot(
        store,
        {
            "suid.sh": (b"#!/bin/sh\n", 0o7777),
            "group-writable.txt": (b"g", 0o664),
            "script.py": (b"print()", 0o750),
            "unreadable.txt": (b"u", 0o000),
            "not-a-number.txt": (b"n", "4777"),
        },
    )
    restore(store, snapshot_id, tmp_path / "out")
    modes = {p.name: oct(mode(p)) for p in (tmp_path / "out").iterdir() if p.name != "nb.ipynb"}
    assert modes == {
        "suid.sh": oct(0o755),
        "group-writable.txt": oct(0o644),
        "script.py": oct(0o750),
        "unreadable.txt": oct(0o400),
        "not-a-number.txt": oct(0o644),
    }


def corrupt(store: SnapshotStore, digest: str) -> Path:
    path = store.local_root / "objects" / digest[:2] / digest[2:]
    path.chmod(0o600)
    path.write_bytes(b"X" + path.read_bytes()[1:])
    return path


def test_a_failed_restore_leaves_no_directory_behind(
    notebook: Path, store: SnapshotStore, tmp_path: Path
) -> None:

    snapshot = take_snapshot(notebook, store=store)
    entry = next(e for e in snapshot.manifest["files"] if e["path"] == "data/images/cat.png")
    corrupt(store, entry["hash"])
    with pytest.raises(SnapshotError, match="corrupt"):
        restore(store, snapshot.id, tmp_path / "out", workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project", "store"]  # no out/, no staging sibling


def test_a_failed_forced_restore_changes_no_file(
    notebook: Path, store: SnapshotStore, tmp_path: Path
) -> None:

    snapshot = take_snapshot(notebook, store=store)
    target = tmp_path / "work"
    (target / "data").mkdir(parents=True)
    (target / "config.yaml").write_text("mine")
    (target / "data" / "train.csv").write_text("mine too")
    entry = next(e for e in snapshot.manifest["files"] if e["path"] == "data/images/cat.png")
    corrupt(store, entry["hash"])
    with pytest.raises(SnapshotError, match="corrupt"):
        restore(store, snapshot.id, target, force=True)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [
        "config.yaml",
        "data",
        "data/train.csv",
    ]
    assert (target / "config.yaml").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if "cellpipe-restore" in p.name] == []


def test_restore_into_an_existing_empty_directory(
    notebook: Path, store: SnapshotStore, tmp_path: Path
) -> None:

    snapshot = take_snapshot(notebook, store=store)
    (tmp_path / "empty").mkdir()
    restored = restore(store, snapshot.id, tmp_path / "empty")
    assert restored.notebook.read_bytes() == notebook.read_bytes()
