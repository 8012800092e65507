"""Snapshots on a shared machine: a private store, safe restores, data only from inside the project,
corrupt objects found and repaired, leftovers and unreferenced objects removed."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot import SnapshotStore, restore, take_snapshot


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


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
    data = path.read_bytes()
    path.write_bytes(bytes([data[0] ^ 1]) + data[1:])  # always a change (b"X" was none when it began with X)
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


# -- data from outside the project -----------------------------------------------------------------------


@pytest.fixture
def fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME with a private key in it, next to (not inside) the project."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.mark.parametrize(
    "declared",
    ["~/.ssh/id_rsa", "~/.ssh", "/etc/hostname", "../home/.ssh/id_rsa", "../home/.ssh/*", "key-link"],
)
def test_declared_data_outside_the_project_is_refused(
    declared: str, fake_home: Path, project: Path, store: SnapshotStore, write_nb
) -> None:
    os.symlink(fake_home / ".ssh" / "id_rsa", project / "key-link")
    notebook = write_nb(project / "steal.ipynb", [("code", "x = 1", [f"data:{declared}"])])
    with pytest.raises(SnapshotError, match="outside the project root.*--allow-outside-root") as caught:
        take_snapshot(notebook, store=store)
    assert caught.value.cell == 1
    assert not (store.local_root / "snapshots").exists()


def test_metadata_and_extra_data_outside_the_project_are_refused(
    fake_home: Path, project: Path, store: SnapshotStore, write_nb
) -> None:
    notebook = write_nb(project / "meta.ipynb", [("code", "x = 1")], data=["~/.ssh/id_rsa"])
    with pytest.raises(SnapshotError, match="metadata.cellpipe.data: declared data '~/.ssh/id_rsa'"):
        take_snapshot(notebook, store=store)
    plain = write_nb(project / "plain.ipynb", [("code", "x = 1")])
    with pytest.raises(SnapshotError, match="--data: declared data '/etc/hostname'"):
        take_snapshot(plain, store=store, extra_data=["/etc/hostname"])


def test_detected_paths_outside_the_project_are_skipped(
    fake_home: Path, project: Path, store: SnapshotStore, write_nb
) -> None:
    notebook = write_nb(
        project / "detect.ipynb", [("code", "k = open('~/.ssh/id_rsa').read()\nh = open('/etc/hostname')")]
    )
    snapshot = take_snapshot(notebook, store=store)
    assert snapshot.files == 0
    assert {item.path for item in snapshot.skipped} == {"~/.ssh/id_rsa", "/etc/hostname"}


def test_outside_data_only_with_the_explicit_flag(
    fake_home: Path, project: Path, store: SnapshotStore, write_nb
) -> None:
    notebook = write_nb(project / "shared.ipynb", [("code", "x = 1", ["data:~/.ssh/id_rsa"])])
    snapshot = take_snapshot(notebook, store=store, allow_outside_root=True)
    assert [entry["path"] for entry in snapshot.manifest["files"]] == [
        f"_external{(fake_home / '.ssh' / 'id_rsa').resolve()}"
    ]


def test_cli_refuses_outside_data_unless_flagged(
    fake_home: Path, project: Path, tmp_path: Path, write_nb, capsys: pytest.CaptureFixture
) -> None:
    from jupyter_ext.cli.main import main

    notebook = write_nb(project / "cli.ipynb", [("code", "x = 1", ["data:/etc/hostname"])])
    store_dir = str(tmp_path / "cli-store")
    assert main(["snapshot", str(notebook), "--store", store_dir]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cellpipe: error: ") and "cell 1" in err[0]
    assert main(["snapshot", str(notebook), "--store", store_dir, "--allow-outside-root"]) == 0


# -- corrupt objects -------------------------------------------------------------------------------------


def object_path(store: SnapshotStore, digest: str) -> Path:
    return store.local_root / "objects" / digest[:2] / digest[2:]


def entry_for(snapshot, name: str) -> dict:
    return next(e for e in snapshot.manifest["files"] if e["path"] == name)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_the_next_snapshot_of_changed_data_replaces_a_corrupt_object(
    damage: str, project: Path, notebook: Path, store: SnapshotStore, write_data, settle
) -> None:
    first = take_snapshot(notebook, store=store)
    digest = entry_for(first, "data/train.csv")["hash"]
    original = object_path(store, digest).read_bytes()
    if damage == "flip":
        corrupt(store, digest)
    else:
        object_path(store, digest).write_bytes(original[:10])
    # the same content under another name: hashed now, deduplicated against the stored object
    write_data(project / "data" / "copy.csv", (project / "data" / "train.csv").read_bytes())
    (project / "data" / "train.csv").touch()  # and a stat-cache miss for the original
    settle()

    second = take_snapshot(notebook, store=store)
    assert object_path(store, digest).read_bytes() == original
    assert store.verify(second.id).ok and store.verify(first.id).ok
    assert any("data/train.csv: the store's copy of this content was corrupt" in n for n in second.notes)


def test_a_truncated_object_is_not_reused_on_a_stat_cache_hit(
    notebook: Path, store: SnapshotStore, settle
) -> None:
    first = take_snapshot(notebook, store=store)
    digest = entry_for(first, "data/train.csv")["hash"]
    original = object_path(store, digest).read_bytes()
    object_path(store, digest).write_bytes(b"")
    second = take_snapshot(notebook, store=store)  # train.csv unchanged: known to the stat cache
    assert object_path(store, digest).read_bytes() == original
    assert second.hashed_files == 1 and store.verify(second.id).ok


def test_a_corrupt_notebook_object_is_replaced(notebook: Path, store: SnapshotStore) -> None:
    first = take_snapshot(notebook, store=store)
    corrupt(store, first.manifest["notebook"]["hash"])
    take_snapshot(notebook, store=store)
    assert store.verify(first.id).ok


def run_cli(*argv: str) -> tuple[int, str]:
    import contextlib
    import io

    from jupyter_ext.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


def test_verify_repair_rewrites_objects_from_the_unchanged_working_copy(
    project: Path, notebook: Path, store: SnapshotStore
) -> None:
    snapshot = take_snapshot(notebook, store=store)
    train = entry_for(snapshot, "data/train.csv")["hash"]
    cat = entry_for(snapshot, "data/images/cat.png")["hash"]
    corrupt(store, train)
    object_path(store, cat).unlink()
    url = str(store.local_root)

    code, out = run_cli("snapshots", "verify", "--store", url)
    assert code == 1 and "data/train.csv: object" in out and "is missing" in out and "--repair" in out

    code, out = run_cli("snapshots", "verify", "--store", url, "--repair")
    assert code == 0, out
    assert f"repaired data/train.csv from {project.resolve() / 'data' / 'train.csv'}" in out
    assert "repaired data/images/cat.png" in out and "verifies now" in out
    assert store.verify(snapshot.id).ok


def test_verify_repair_never_uses_a_changed_file(
    project: Path, notebook: Path, store: SnapshotStore, tmp_path: Path
) -> None:
    snapshot = take_snapshot(notebook, store=store)
    digest = entry_for(snapshot, "data/train.csv")["hash"]
    corrupt(store, digest)
    damaged = object_path(store, digest).read_bytes()
    (project / "data" / "train.csv").write_text("edited since\n")

    code, out = run_cli("snapshots", "verify", "--store", str(store.local_root), "--repair")
    assert code == 1
    assert "cannot repair data/train.csv" in out and "changed since the snapshot" in out
    assert object_path(store, digest).read_bytes() == damaged
    assert not list((store.local_root / "tmp").iterdir())

    # --from: another checkout that still holds the snapshot's bytes
    other = tmp_path / "checkout"
    (other / "data").mkdir(parents=True)
    (other / "data" / "train.csv").write_text("a,b\n1,2\n" * 1000)
    code, out = run_cli(
        "snapshots", "verify", "--store", str(store.local_root), "--repair", "--from", str(other)
    )
    assert code == 0, out


# -- leftovers and garbage collection --------------------------------------------------------------------


def killed_writer(code: str) -> None:
    """Run ``code`` in a fresh interpreter that prints 'ready' and then waits, and kill it with SIGKILL."""
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-c", code + "\nprint('ready', flush=True)\nimport time; time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "ready"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)


def test_a_killed_snapshots_temp_file_is_removed_by_the_next_snapshot(
    notebook: Path, store: SnapshotStore
) -> None:
    killed_writer(
        f"from jupyter_ext.snapshot import SnapshotStore\n"
        f"temp = SnapshotStore.open({str(store.local_root)!r}).backend.open_temp()\n"
        f"temp.file.write(b'half an object')"
    )
    assert len(list((store.local_root / "tmp").iterdir())) == 1
    live = store.backend.open_temp()  # a writer still at work (this process) keeps its file
    take_snapshot(notebook, store=store)
    assert [p.name for p in (store.local_root / "tmp").iterdir()] == [live.temp_key.split("/")[1]]
    live.discard()


def test_killed_runs_kernel_connection_files_and_cache_staging_are_recognised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_ext.runtime.kernel import clean_connection_files, new_connection_file
    from jupyter_ext.targets.local.cache import StepCache

    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    cache_root = tmp_path / "cache"
    killed_writer(
        "from jupyter_ext.runtime.kernel import new_connection_file\n"
        'new_connection_file().write_text(\'{"key": "signing key"}\')\n'
        f"from jupyter_ext.targets.local.cache import StepCache\nStepCache({str(cache_root)!r}).staging_dir()"
    )
    mine = new_connection_file()
    mine.write_text("{}")
    (tmp_path / "runtime" / "kernel-other-tool.json").write_text("{}")  # not ours: left alone
    assert mode(tmp_path / "runtime") == 0o700
    assert len(clean_connection_files(dry_run=True)) == 1
    assert len(clean_connection_files()) == 1
    assert sorted(p.name for p in (tmp_path / "runtime").iterdir()) == sorted(
        [mine.name, "kernel-other-tool.json"]
    )
    live = StepCache(cache_root).staging_dir()
    assert len(StepCache(cache_root).clean_leftovers()) == 1
    assert [p.name for p in cache_root.iterdir()] == [live.name]


def test_gc_removes_only_unreferenced_objects(
    project: Path, notebook: Path, store: SnapshotStore, write_nb
) -> None:

    kept = take_snapshot(notebook, store=store)
    other = write_nb(project / "other.ipynb", [("code", "x = 1", ["data:config.yaml"])])
    (project / "extra.bin").write_bytes(os.urandom(5000))
    dropped = take_snapshot(other, store=store, extra_data=["extra.bin"])
    (store.local_root / "snapshots" / f"{dropped.id}.json").unlink()
    before = set(store.object_digests())

    code, out = run_cli("gc", "--dry-run", "--store", str(store.local_root))
    assert code == 0 and "would remove 2 unreferenced objects" in out
    assert set(store.object_digests()) == before

    code, out = run_cli("gc", "--store", str(store.local_root))
    assert code == 0 and "removed 2 unreferenced objects" in out
    gone = before - set(store.object_digests())
    assert gone == {dropped.manifest["notebook"]["hash"], entry_for(dropped, "extra.bin")["hash"]}
    assert store.verify(kept.id).ok


def test_gc_keeps_everything_when_a_manifest_is_unreadable(
    notebook: Path, store: SnapshotStore, capsys: pytest.CaptureFixture
) -> None:
    from jupyter_ext.cli.main import main

    snapshot = take_snapshot(notebook, store=store)
    (store.local_root / "snapshots" / f"{snapshot.id}.json").write_bytes(b"not json")
    before = set(store.object_digests())
    assert main(["gc", "--store", str(store.local_root)]) == 1
    assert "cannot be read" in capsys.readouterr().err
    assert set(store.object_digests()) == before


def test_gc_waits_for_a_snapshot_in_progress(notebook: Path, store: SnapshotStore) -> None:
    import threading

    from jupyter_ext.snapshot.gc import collect_garbage

    orphan = store.put_bytes(b"written by a snapshot whose manifest is not there yet")
    with store.backend.lock(exclusive=False):
        collector = threading.Thread(target=collect_garbage, args=(store,))
        collector.start()
        collector.join(0.5)
        assert collector.is_alive() and store.has(orphan.hash)
    collector.join(10)
    assert not store.has(orphan.hash)


def test_a_killed_restores_staging_directory_is_removed_by_the_next_restore(
    notebook: Path, store: SnapshotStore, tmp_path: Path
) -> None:
    snapshot = take_snapshot(notebook, store=store)
    target = tmp_path / "restored"
    killed_writer(
        "import os, tempfile\n"
        "from jupyter_ext.util import writer_tag\n"
        f"tempfile.mkdtemp(prefix='.restored.cellpipe-restore-' + writer_tag(), dir={str(tmp_path)!r})"
    )
    assert len(list(tmp_path.glob(".restored.cellpipe-restore-*"))) == 1
    restore(store, snapshot.id, target)
    assert list(tmp_path.glob(".restored.cellpipe-restore-*")) == []


def test_verify_repair_on_a_remote_store(notebook: Path, project: Path) -> None:
    import uuid

    store = SnapshotStore.open(f"memory://cellpipe-repair-{uuid.uuid4().hex}")
    snapshot = take_snapshot(notebook, store=store)
    digest = entry_for(snapshot, "data/train.csv")["hash"]
    fs, key = store.backend.fs, store.backend.path(store.object_key(digest))
    fs.pipe_file(key, b"X" + fs.cat_file(key)[1:])
    result = store.verify(snapshot.id)
    assert not result.ok
    repairs = store.repair(result)
    assert [(r.path, r.repaired) for r in repairs] == [("data/train.csv", True)]
    assert store.verify(snapshot.id).ok


def test_a_server_root_below_the_project_root_confines_the_data(
    project: Path, store: SnapshotStore, write_nb, write_data
) -> None:
    """A Jupyter server serving a sub-directory of a repository must not read the rest of it."""
    subprocess.run(["git", "init", "-q", str(project)], check=True)  # the project root is the repository
    served = project / "served"
    served.mkdir()
    write_data(project / "private.csv", "a,b\n1,2\n")
    write_data(served / "mine.csv", "c\n3\n")
    declared = write_nb(served / "declared.ipynb", [("code", "x = 1", ["data:../private.csv"])])
    with pytest.raises(SnapshotError, match="outside the server's root directory") as caught:
        take_snapshot(declared, store=store, confine_to=served, allow_outside_root=True)
    assert caught.value.cell == 1
    detected = write_nb(
        served / "detected.ipynb", [("code", "p = open('../private.csv')\nm = open('mine.csv')")]
    )
    snapshot = take_snapshot(detected, store=store, confine_to=served)
    assert [entry["path"] for entry in snapshot.manifest["files"]] == ["served/mine.csv"]
    assert [item.path for item in snapshot.skipped] == ["../private.csv"]
    # without a server root the same data is inside the project and captured
    assert take_snapshot(declared, store=store).files == 1
