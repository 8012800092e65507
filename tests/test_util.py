"""util: private files and directories are created 0700/0600 whatever the umask allows, shared ones follow it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_ext.util import open_private, pid_running, private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask():
    """The usual 022, as on a shared machine: without our modes, files come out world-readable."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_private_dir_creates_every_missing_parent_0700(tmp_path: Path) -> None:
    made = private_dir(tmp_path / "a" / "b" / "c")
    assert made.is_dir()
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700] * 3
    private_dir(made)  # idempotent


def test_private_dir_leaves_an_existing_directory_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    private_dir(shared / "inner")
    assert (mode(shared), mode(shared / "inner")) == (0o755, 0o700)


def test_private_dir_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        private_dir(tmp_path / "file" / "sub")


def test_shared_dir_follows_the_umask(tmp_path: Path) -> None:
    private_dir(tmp_path / "s", shared=True)
    assert mode(tmp_path / "s") == 0o755


@pytest.mark.parametrize("how", ["wb", "ab", "xb", "w", "a"])
def test_open_private_creates_0600(tmp_path: Path, how: str) -> None:
    path = tmp_path / f"f-{how}"
    with open_private(path, how) as handle:
        handle.write(b"secret" if "b" in how else "secret")
    assert mode(path) == 0o600
    assert path.read_text() == "secret"


def test_open_private_shared_follows_the_umask(tmp_path: Path) -> None:
    with open_private(tmp_path / "f", "wb", shared=True) as handle:
        handle.write(b"x")
    assert mode(tmp_path / "f") == 0o644


def test_remove_abandoned_removes_only_leftovers_of_gone_writers(tmp_path):
    from jupyter_ext.util import FOREIGN_LEFTOVER_AGE_S, remove_abandoned, writer_tag

    mine = tmp_path / f"staging-{writer_tag()}a"  # this process still runs: kept
    foreign_old = tmp_path / "staging-1@elsewhere~b"  # another host's, untouched for too long: removed
    foreign_new = tmp_path / "staging-1@elsewhere~c"  # another host's, recent: kept
    for path in (mine, foreign_old, foreign_new):
        path.write_text("x")
    old = time.time() - FOREIGN_LEFTOVER_AGE_S - 60
    os.utime(foreign_old, (old, old))
    paths = [mine, foreign_old, foreign_new, tmp_path / "gone~d"]
    assert remove_abandoned(paths, Path.unlink, dry_run=True) == [foreign_old] and foreign_old.exists()
    assert remove_abandoned(paths, Path.unlink) == [foreign_old]
    assert not foreign_old.exists() and mine.exists() and foreign_new.exists()


def test_pid_running_tells_a_live_process_from_a_gone_one() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no process now (unless reused at once, which Linux avoids)
    assert pid_running(os.getpid()) and pid_running(1)  # pid 1 may be another user's: still running
    assert not pid_running(child.pid)
    assert not pid_running(2**62)  # a pid no kernel hands out (too large for kill)
