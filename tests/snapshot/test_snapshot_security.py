"""Snapshots on a shared machine: a private store, safe restores, data only from inside the project,
corrupt objects found and repaired, leftovers and unreferenced objects removed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from jupyter_ext.snapshot import SnapshotStore, take_snapshot


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
