"""take_snapshot on real files: what is captured, skipped, deduplicated, cached, and refused."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

import jupyter_ext.snapshot.store as store_module
from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot import SnapshotStore, take_snapshot


def paths(snapshot) -> list[str]:
    return [entry["path"] for entry in snapshot.manifest["files"]]


def skipped(snapshot) -> dict[str, str]:
    return {item.path: item.reason for item in snapshot.skipped}


def test_captures_declared_and_detected_data(notebook: Path, store: SnapshotStore) -> None:
    snapshot = take_snapshot(notebook, store=store)

    assert paths(snapshot) == ["config.yaml", "data/images/cat.png", "data/train.csv"]
    by_path = {entry["path"]: entry for entry in snapshot.manifest["files"]}
    assert by_path["config.yaml"]["origin"] == "declared"
    assert by_path["config.yaml"]["cell"] == 3  # the markdown cell counts
    assert by_path["data/train.csv"]["origin"] == "detected"
    assert snapshot.detected == ["data/images/cat.png", "data/train.csv"]
    assert snapshot.manifest["notebook"]["path"] == "train.ipynb"
    assert snapshot.manifest["notebook"]["size"] == notebook.stat().st_size
    assert store.list()[0].id == snapshot.id


def test_environment_is_recorded(
    notebook: Path, store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLPIPE_IMAGE", "registry.example/team/train:1.2")
    environment = take_snapshot(notebook, store=store).manifest["environment"]
    assert environment["image"] == "registry.example/team/train:1.2"
    assert environment["kernel"]["name"] == "python3"
    assert environment["python"]["version"].count(".") == 2
    assert any(line.startswith("nbformat==") for line in environment["packages"])
    assert environment["git"] is None  # not a repository


def test_unsaved_notebook_bytes_are_what_is_stored(notebook: Path, store: SnapshotStore) -> None:
    edited = notebook.read_bytes().replace(b"data/train.csv", b"data/test.csv")
    snapshot = take_snapshot(notebook, store=store, notebook_bytes=edited)
    assert snapshot.manifest["notebook"]["unsaved_edits"] is True
    with store.open_object(snapshot.manifest["notebook"]["hash"]) as stream:
        assert stream.read() == edited
    assert "data/test.csv" in paths(snapshot)  # detection read the edited cells
    assert "data/train.csv" not in paths(snapshot)


def test_identical_data_is_stored_once_across_snapshots(notebook: Path, store: SnapshotStore) -> None:
    first = take_snapshot(notebook, store=store)
    second = take_snapshot(notebook, store=store)

    assert first.id == second.id  # the same content is the same snapshot, listed once ...
    assert [info.id for info in store.list()] == [first.id]
    assert second.taken > first.taken and store.taken(first.id) == {
        "first": first.taken,
        "last": second.taken,
    }
    assert "created" not in second.manifest  # when it was taken is kept beside the manifest, not in it
    assert [info.created for info in store.list()] == [second.taken]
    assert second.new_bytes == 0  # ... and every object
    assert second.deduplicated_bytes == second.bytes == first.bytes
    objects = [p for p in (store.local_root / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 4  # notebook + 3 data files


def test_stat_cache_skips_rehashing_unchanged_files(notebook: Path, tmp_path: Path) -> None:
    take_snapshot(notebook, store=tmp_path / "store")

    fresh = SnapshotStore.open(tmp_path / "store")  # a new process: only the persisted cache helps
    snapshot = take_snapshot(notebook, store=fresh)

    assert fresh.counters.hashed_files == 0
    assert fresh.counters.hashed_bytes == 0
    assert snapshot.hashed_bytes == 0
    assert snapshot.files == 3


def test_one_changed_file_is_the_only_one_hashed_and_stored(
    project: Path, notebook: Path, tmp_path: Path, settle
) -> None:
    take_snapshot(notebook, store=tmp_path / "store")
    (project / "data" / "train.csv").write_text("a,b\n9,9\n")
    settle()

    store = SnapshotStore.open(tmp_path / "store")
    snapshot = take_snapshot(notebook, store=store)

    assert (store.counters.hashed_files, store.counters.hashed_bytes) == (1, 8)
    assert (store.counters.stored_files, store.counters.stored_bytes) == (1, 8)
    assert snapshot.new_bytes == 8


def test_a_file_written_just_before_the_snapshot_is_not_trusted_to_the_cache(
    project: Path, notebook: Path, tmp_path: Path
) -> None:
    fresh = project / "data" / "train.csv"
    fresh.write_text("fresh")
    future = time.time_ns() + 10**9  # mtime not older than the read: it could still change unseen
    os.utime(fresh, ns=(future, future))
    take_snapshot(notebook, store=tmp_path / "store")
    store = SnapshotStore.open(tmp_path / "store")
    take_snapshot(notebook, store=store)
    assert store.counters.hashed_files == 1  # re-read once, to be sure it did not change unseen


def test_missing_declared_file_names_cell_and_path(project: Path, store: SnapshotStore, write_nb) -> None:
    notebook = write_nb(
        project / "bad.ipynb",
        [("markdown", "intro"), ("code", "x = 1"), ("code", "y = 2", ["data:data/nope.csv"])],
    )
    with pytest.raises(SnapshotError) as caught:
        take_snapshot(notebook, store=store)
    message = str(caught.value)
    assert message.startswith(
        f"{notebook}: cell 3: tag 'data:data/nope.csv': declared data 'data/nope.csv' not found"
    )
    assert str(project / "data" / "nope.csv") in message
    assert "relative to the notebook's directory" in message
    assert store.list() == []


def test_missing_metadata_declared_file_and_empty_glob(project: Path, store: SnapshotStore, write_nb) -> None:
    notebook = write_nb(project / "meta.ipynb", [("code", "x = 1")], data=["models/"])
    with pytest.raises(SnapshotError, match="metadata.cellpipe.data: declared data 'models/' not found"):
        take_snapshot(notebook, store=store)
    notebook = write_nb(project / "glob.ipynb", [("code", "x = 1", ["data:data/*.parquet"])])
    with pytest.raises(SnapshotError, match="cell 1: .*'data/\\*.parquet' matches no files"):
        take_snapshot(notebook, store=store)


def test_declared_globs_and_directories(project: Path, store: SnapshotStore, write_nb) -> None:
    notebook = write_nb(
        project / "globs.ipynb", [("code", "x = 1", ["data:data/*.csv"])], data=["data/images"]
    )
    assert paths(take_snapshot(notebook, store=store)) == [
        "data/images/cat.png",
        "data/test.csv",
        "data/train.csv",
    ]


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root reads files whatever their mode, so chmod 000 cannot make one unreadable"
)
def test_unreadable_declared_file_chmod_000(project: Path, store: SnapshotStore) -> None:
    (project / "config.yaml").chmod(0)
    try:
        with pytest.raises(
            SnapshotError, match="cell 3: tag 'data:config.yaml': cannot read declared data 'config.yaml'"
        ):
            take_snapshot(project / "train.ipynb", store=store)
    finally:
        (project / "config.yaml").chmod(0o644)


def _deny(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make opening one file fail as chmod 000 would for a non-root user (works as root too)."""
    real_open = open

    def guarded_open(file, *args, **kwargs):
        if str(file).endswith(name):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(store_module, "open", guarded_open, raising=False)


def test_unreadable_declared_file_is_an_error(
    project: Path, store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _deny(monkeypatch, "config.yaml")
    with pytest.raises(SnapshotError) as caught:
        take_snapshot(project / "train.ipynb", store=store)
    assert "cell 3: tag 'data:config.yaml': cannot read declared data 'config.yaml'" in str(caught.value)
    assert "Permission denied" in str(caught.value)
    assert store.list() == []


def test_unreadable_detected_file_is_skipped(
    project: Path, store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _deny(monkeypatch, "train.csv")
    snapshot = take_snapshot(project / "train.ipynb", store=store)
    assert skipped(snapshot)["data/train.csv"] == "unreadable (Permission denied)"
    assert "data/train.csv" not in paths(snapshot)


def test_detected_path_outside_the_root_is_skipped_declared_is_captured(
    tmp_path: Path, project: Path, store: SnapshotStore, write_nb, write_data
) -> None:
    write_data(tmp_path / "shared" / "lookup.csv", "k,v\n")
    write_data(tmp_path / "shared" / "other.csv", "x\n")
    notebook = write_nb(
        project / "outside.ipynb",
        [
            (
                "code",
                "a = open('../shared/lookup.csv')\nb = open('../shared/other.csv')",
                ["data:../shared/lookup.csv"],
            )
        ],
    )
    snapshot = take_snapshot(notebook, store=store, allow_outside_root=True)

    external = f"_external{(tmp_path / 'shared' / 'lookup.csv').resolve()}"
    assert paths(snapshot) == [external]
    entry = snapshot.manifest["files"][0]
    assert entry["source"] == str((tmp_path / "shared" / "lookup.csv").resolve())
    assert skipped(snapshot)["../shared/other.csv"].startswith(
        f"outside the project root {project.resolve()}"
    )
    assert any("stored as _external/" in note for note in snapshot.notes)


def test_detected_symlink_is_skipped_declared_symlink_is_followed(
    project: Path, store: SnapshotStore, write_nb
) -> None:
    os.symlink(project / "data" / "test.csv", project / "link.csv")
    os.symlink(project / "data", project / "linkdir")
    notebook = write_nb(
        project / "links.ipynb",
        [("code", "a = 'link.csv'\nb = 'linkdir/test.csv'"), ("code", "c = 1", ["data:link.csv"])],
    )
    snapshot = take_snapshot(notebook, store=store)
    assert paths(snapshot) == ["link.csv"]  # declared: stored under the link's name, with the target's bytes
    with store.open_object(snapshot.manifest["files"][0]["hash"]) as stream:
        assert stream.read() == (project / "data" / "test.csv").read_bytes()
    assert skipped(snapshot) == {
        "linkdir/test.csv": "symlink (linkdir) not followed; declare it with a data:PATH tag to capture it"
    }


def test_symlinks_inside_a_captured_directory_are_not_followed(
    project: Path, store: SnapshotStore, write_nb
) -> None:
    os.symlink("/etc/hostname", project / "data" / "images" / "escape")
    notebook = write_nb(project / "dir.ipynb", [("code", "d = 'data/images'")])
    snapshot = take_snapshot(notebook, store=store)
    assert paths(snapshot) == ["data/images/cat.png"]
    assert "symlink not followed" in skipped(snapshot)[os.path.join("data", "images", "escape")]


def test_detected_data_over_the_limit_is_skipped_with_a_reason(
    notebook: Path, store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLPIPE_MAX_DETECTED_BYTES", "20KiB")
    snapshot = take_snapshot(notebook, store=store)
    # train.csv (8 KB) fits; the images directory (50 KB) does not; declared config.yaml is not limited
    assert paths(snapshot) == ["config.yaml", "data/train.csv"]
    assert skipped(snapshot)["data/images"].startswith(
        "too large: 48.8 KiB would take detected data over the 20.0 KiB limit"
    )
    assert snapshot.manifest["report"]["limit_exceeded"] is True
    assert any("CELLPIPE_MAX_DETECTED_BYTES" in note for note in snapshot.notes)


def test_ordinary_strings_are_not_reported_but_missing_paths_are(
    project: Path, store: SnapshotStore, write_nb
) -> None:
    notebook = write_nb(
        project / "strings.ipynb",
        [
            (
                "code",
                "cols = ['mean', 'x']\nfmt = '%d/%m/%Y'\nurl = 'https://x.org/a.csv'\nout = open('results/out.csv')",
            )
        ],
    )
    assert skipped(take_snapshot(notebook, store=store)) == {"results/out.csv": "not found"}


def test_crash_during_the_nth_put_leaves_no_snapshot(
    notebook: Path, store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_put = SnapshotStore.put_file
    calls = {"n": 0}

    def crash_on_second(self, path, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash")
        return real_put(self, path, **kwargs)

    monkeypatch.setattr(SnapshotStore, "put_file", crash_on_second)
    with pytest.raises(RuntimeError, match="simulated crash"):
        take_snapshot(notebook, store=store, workers=1)

    assert store.list() == []
    assert store.ids() == []
    assert not (store.local_root / "snapshots").exists()
    assert list((store.local_root / "tmp").iterdir()) == []


def test_crash_on_a_worker_thread_leaves_no_snapshot(
    notebook: Path, store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(self, path, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(SnapshotStore, "put_file", crash)
    with pytest.raises(RuntimeError, match="disk on fire"):
        take_snapshot(notebook, store=store, workers=2)
    assert store.list() == []


def test_git_repository_is_the_project_root(tmp_path: Path, write_nb, write_data, settle) -> None:
    repo = tmp_path / "repo"
    write_data(repo / "data" / "x.csv", "1\n")
    notebook = write_nb(repo / "notebooks" / "nb.ipynb", [("code", "x = open('../data/x.csv')")])

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
            cwd=repo, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "init")
    settle()

    snapshot = take_snapshot(notebook)  # default store: <repo>/.cellpipe/store
    assert (repo / ".cellpipe" / "store" / "snapshots" / f"{snapshot.id}.json").is_file()
    assert snapshot.manifest["notebook"]["path"] == "notebooks/nb.ipynb"
    assert paths(snapshot) == ["data/x.csv"]  # inside the repository, though outside the notebook's directory
    state = snapshot.manifest["environment"]["git"]
    assert state["commit"] == git("rev-parse", "HEAD")
    assert state["dirty"] is False

    (repo / "data" / "x.csv").write_text("2\n")
    assert take_snapshot(notebook).manifest["environment"]["git"]["dirty"] is True


def test_unreadable_notebook_json(tmp_path: Path, store: SnapshotStore) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    with pytest.raises(SnapshotError, match="bad.ipynb: not a readable notebook"):
        take_snapshot(bad, store=store)
    with pytest.raises(SnapshotError, match="missing.ipynb: notebook not found"):
        take_snapshot(tmp_path / "missing.ipynb", store=store)
