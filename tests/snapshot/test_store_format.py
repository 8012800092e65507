"""The store's format marker (store.json) and its object hash: new stores name objects by BLAKE3, stores an
earlier cellpipe wrote (sha256 names, no marker) keep working as they are, and a marker this version does
not know is one clear error. Local stores and S3 (moto_server on loopback) alike."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from jupyter_ext.cli.main import main
from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot import SnapshotStore, restore, take_snapshot
from jupyter_ext.snapshot.gc import collect_garbage
from jupyter_ext.snapshot.statcache import StatCache
from jupyter_ext.snapshot.store import FORMAT_KEY, STAT_CACHE_KEY
from tests.support.s3_server import forget_cached_clients
from tests.support.stores import reference_digest, write_legacy_store


def tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def object_names(root: Path) -> set[str]:
    return {path.parent.name + path.name for path in (root / "objects").glob("*/*")}


def entries(manifest: dict) -> list[dict]:
    return [manifest["notebook"], *manifest["files"]]


def legacy_store(notebook: Path, tmp_path: Path) -> tuple[Path, str]:
    """A store as cellpipe wrote it before store.json (sha256 names), holding one snapshot of ``notebook``;
    returns its root and the snapshot's id there."""
    current = tmp_path / "current-store"
    snapshot = take_snapshot(notebook, store=SnapshotStore.open(current))
    root = tmp_path / "legacy-store"
    ids = write_legacy_store(current, root)
    return root, ids[snapshot.id]


def assert_s3_objects_named_by(s3_bucket, manifest: dict, algorithm: str) -> None:
    """The S3 store's marker names ``algorithm``, and each of the manifest's objects is stored under that
    hash of its bytes."""
    client = s3_bucket.client()
    marker = client.get_object(Bucket=s3_bucket.name, Key=f"store/{FORMAT_KEY}")["Body"].read()
    assert json.loads(marker)["object_hash"] == algorithm
    for entry in entries(manifest):
        key = f"store/objects/{entry['hash'][:2]}/{entry['hash'][2:]}"
        body = client.get_object(Bucket=s3_bucket.name, Key=key)["Body"].read()
        assert entry["hash"] == reference_digest(body, algorithm)


def corrupt(path: Path) -> None:
    """Same size, one byte changed: only the hash can tell."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def test_a_new_store_names_its_objects_by_blake3_and_says_so(
    notebook: Path, project: Path, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    snapshot = take_snapshot(notebook, store=SnapshotStore.open(root))

    marker = root / FORMAT_KEY
    assert json.loads(marker.read_bytes()) == {"format": "cellpipe-store/1", "object_hash": "blake3"}
    assert stat.S_IMODE(marker.stat().st_mode) == 0o600  # private, like everything in a local store
    for entry in entries(snapshot.manifest):
        data = (project / entry["path"]).read_bytes()
        assert entry["hash"] == reference_digest(data, "blake3")
        assert (root / "objects" / entry["hash"][:2] / entry["hash"][2:]).read_bytes() == data
    assert object_names(root) == {entry["hash"] for entry in entries(snapshot.manifest)}

    again = SnapshotStore.open(root)
    assert again.algorithm == "blake3"
    assert again.verify(snapshot.id).ok
    restore(again, snapshot.id, tmp_path / "out")
    assert tree(tmp_path / "out") == {
        name: (project / name).read_bytes()
        for name in ["train.ipynb", "config.yaml", "data/train.csv", "data/images/cat.png"]
    }


def test_reading_an_absent_store_creates_nothing(tmp_path: Path) -> None:
    store = SnapshotStore.open(tmp_path / "store")
    assert store.list() == [] and store.algorithm == "blake3"
    assert not (tmp_path / "store").exists()


def test_an_earlier_sha256_store_keeps_working_unchanged(
    notebook: Path, project: Path, tmp_path: Path, write_data, settle
) -> None:
    root, snapshot_id = legacy_store(notebook, tmp_path)
    before = object_names(root)
    store = SnapshotStore.open(root)
    assert store.algorithm == "sha256"

    # list, verify and restore what the earlier version wrote
    assert [info.id for info in store.list()] == [snapshot_id]
    assert store.verify(snapshot_id).ok
    restored = restore(store, snapshot_id, tmp_path / "out")
    assert (
        restored.files == 3
        and (tmp_path / "out" / "data" / "train.csv").read_bytes()
        == (project / "data" / "train.csv").read_bytes()
    )

    # the same content snapshotted again is the same snapshot, and nothing is stored twice
    same = take_snapshot(notebook, store=store)
    assert same.id == snapshot_id and same.new_bytes == 0
    assert object_names(root) == before

    # new content is stored under its sha256; the store gets no marker (nothing is converted)
    write_data(project / "config.yaml", "lr: 0.5\n")
    settle()
    changed = take_snapshot(notebook, store=SnapshotStore.open(root))
    new_names = object_names(root) - before
    assert new_names == {reference_digest(b"lr: 0.5\n", "sha256")} and changed.new_bytes == len("lr: 0.5\n")
    assert not (root / FORMAT_KEY).exists()
    assert all(SnapshotStore.open(root).verify(i).ok for i in (snapshot_id, changed.id))

    # gc: the old config.yaml object is still named by the first snapshot; nothing is garbage
    report = collect_garbage(SnapshotStore.open(root))
    assert report.removed_objects == [] and report.snapshots == 2
    (root / "snapshots" / f"{snapshot_id}.json").unlink()
    report = collect_garbage(SnapshotStore.open(root))
    assert report.removed_objects == [reference_digest(b"lr: 0.1\n", "sha256")]
    assert object_names(root) == {entry["hash"] for entry in entries(changed.manifest)}
    assert SnapshotStore.open(root).algorithm == "sha256"  # still: it holds objects and snapshots


def test_corruption_is_found_under_either_hash(
    any_store: SnapshotStore, notebook: Path, tmp_path: Path
) -> None:
    snapshot = take_snapshot(notebook, store=any_store)
    assert (any_store.local_root / FORMAT_KEY).exists() == (any_store.algorithm == "blake3")
    digest = next(e["hash"] for e in snapshot.manifest["files"] if e["path"] == "data/train.csv")
    assert digest == reference_digest(
        (notebook.parent / "data" / "train.csv").read_bytes(), any_store.algorithm
    )
    corrupt(any_store.local_root / "objects" / digest[:2] / digest[2:])

    store = SnapshotStore.open(any_store.local_root)
    with pytest.raises(SnapshotError, match="object for data/train.csv is corrupt"):
        restore(store, snapshot.id, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    result = store.verify(snapshot.id)
    assert [entry["path"] for entry in result.damaged] == ["data/train.csv"]
    # the next snapshot reads the file, finds the stored copy corrupt, and replaces it
    os.utime(notebook.parent / "data" / "train.csv")  # not known to the stat cache any more
    again = take_snapshot(notebook, store=store)
    assert any("data/train.csv: the store's copy of this content was corrupt" in note for note in again.notes)
    assert SnapshotStore.open(any_store.local_root).verify(snapshot.id).ok


def test_the_stat_cache_never_mixes_hashes(notebook: Path, tmp_path: Path) -> None:
    """A stat cache entry is a digest of one algorithm: a cache of another one (e.g. an earlier version's,
    which recorded no algorithm and held sha256) is ignored, not looked up as object names."""
    root = tmp_path / "store"
    first = take_snapshot(notebook, store=SnapshotStore.open(root))
    assert first.hashed_files == 3
    cache = json.loads((root / STAT_CACHE_KEY).read_bytes())
    assert cache["hash"] == "blake3" and len(cache["entries"]) == 3
    assert take_snapshot(notebook, store=SnapshotStore.open(root)).hashed_files == 0  # the cache works

    del cache["hash"]  # as an earlier version wrote it: sha256 digests
    (root / STAT_CACHE_KEY).write_text(json.dumps(cache))
    again = take_snapshot(notebook, store=SnapshotStore.open(root))
    assert again.hashed_files == 3 and again.id == first.id

    legacy = json.dumps({"version": 1, "entries": {"/x": [1, 2, 3, 4, "ab" * 32, 5]}}).encode()
    assert StatCache.from_bytes(legacy, algorithm="sha256").entries  # an earlier cache, in an earlier store
    assert not StatCache.from_bytes(legacy, algorithm="blake3").entries


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        (
            b'{"format": "cellpipe-store/1", "object_hash": "k12"}',
            re.escape(
                "is in a format this version of cellpipe does not know (store.json: format "
                "'cellpipe-store/1', object hash 'k12'"
            ),
        ),
        (b'{"format": "cellpipe-store/2", "object_hash": "blake3"}', "format 'cellpipe-store/2'"),
        (b"{not json", "the format marker store.json of the snapshot store .* is damaged"),
    ],
)
def test_an_unknown_or_damaged_marker_is_one_clear_error(
    marker: bytes, expected: str, tmp_path: Path, notebook: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "store"
    take_snapshot(notebook, store=SnapshotStore.open(root))
    (root / FORMAT_KEY).write_bytes(marker)

    store = SnapshotStore.open(root)
    with pytest.raises(SnapshotError, match=expected) as raised:
        store.list()
    assert str(root) in str(raised.value)
    for argv in (["snapshots", "list"], ["snapshot", str(notebook)], ["gc"]):
        assert main([*argv, "--store", str(root)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("cellpipe: error: ") and str(root) in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    assert "Upgrade cellpipe" in err or "rewrite it naming the hash" in err


def test_s3_new_store_is_blake3_with_its_marker(
    s3_bucket, notebook: Path, project: Path, tmp_path: Path
) -> None:
    snapshot = take_snapshot(notebook, store=SnapshotStore.open(s3_bucket.url()))
    assert_s3_objects_named_by(s3_bucket, snapshot.manifest, "blake3")
    for entry in entries(snapshot.manifest):
        assert entry["hash"] == reference_digest((project / entry["path"]).read_bytes(), "blake3")

    forget_cached_clients()
    again = SnapshotStore.open(s3_bucket.url())
    assert again.algorithm == "blake3" and again.verify(snapshot.id).ok
    restore(again, snapshot.id, tmp_path / "out")
    assert (tmp_path / "out" / "data" / "images" / "cat.png").read_bytes() == (
        project / "data" / "images" / "cat.png"
    ).read_bytes()


def test_s3_earlier_sha256_store_keeps_working(
    s3_bucket, notebook: Path, project: Path, tmp_path: Path, write_data, settle
) -> None:
    root, snapshot_id = legacy_store(notebook, tmp_path)
    client = s3_bucket.client()
    for path in root.rglob("*"):
        if path.is_file():
            client.put_object(
                Bucket=s3_bucket.name,
                Key=f"store/{path.relative_to(root).as_posix()}",
                Body=path.read_bytes(),
            )
    before = set(s3_bucket.keys("store/objects/"))
    forget_cached_clients()
    store = SnapshotStore.open(s3_bucket.url())
    assert store.algorithm == "sha256"

    assert store.verify(snapshot_id).ok
    restore(store, snapshot_id, tmp_path / "out")
    assert (tmp_path / "out" / "data" / "train.csv").read_bytes() == (
        project / "data" / "train.csv"
    ).read_bytes()
    same = take_snapshot(notebook, store=store)
    assert same.id == snapshot_id and set(s3_bucket.keys("store/objects/")) == before

    write_data(project / "config.yaml", "lr: 0.2\n")
    settle()
    changed = take_snapshot(notebook, store=SnapshotStore.open(s3_bucket.url()))
    name = reference_digest(b"lr: 0.2\n", "sha256")
    assert set(s3_bucket.keys("store/objects/")) - before == {f"store/objects/{name[:2]}/{name[2:]}"}
    assert f"store/{FORMAT_KEY}" not in s3_bucket.keys("store/")

    key = f"store/objects/{name[:2]}/{name[2:]}"
    client.put_object(Bucket=s3_bucket.name, Key=key, Body=b"lr: 0.3\n")  # same size, other bytes
    forget_cached_clients()
    store = SnapshotStore.open(s3_bucket.url())
    assert [entry["path"] for entry in store.verify(changed.id).damaged] == ["config.yaml"]
    with pytest.raises(SnapshotError, match="object for config.yaml is corrupt"):
        restore(store, changed.id, tmp_path / "out2")
    client.delete_object(Bucket=s3_bucket.name, Key=f"store/snapshots/{changed.id}.json")
    report = collect_garbage(SnapshotStore.open(s3_bucket.url()))
    assert report.removed_objects == [name]


def test_repair_rewrites_a_corrupt_object_under_either_hash(any_store: SnapshotStore, notebook: Path) -> None:
    snapshot = take_snapshot(notebook, store=any_store)
    digest = next(e["hash"] for e in snapshot.manifest["files"] if e["path"] == "config.yaml")
    corrupt(any_store.local_root / "objects" / digest[:2] / digest[2:])
    store = SnapshotStore.open(any_store.local_root)
    result = store.verify(snapshot.id)
    assert [entry["path"] for entry in result.damaged] == ["config.yaml"]

    repairs = store.repair(result)  # from the working copy, re-hashed by the store's hash
    assert [(repair.path, repair.repaired) for repair in repairs] == [("config.yaml", True)]
    assert SnapshotStore.open(any_store.local_root).verify(snapshot.id).ok
    assert store.algorithm == any_store.algorithm


def test_a_store_can_be_created_with_sha256_names_and_keeps_them(
    notebook: Path, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """--store-hash sha256 makes a store that images with a cellpipe from before BLAKE3 can read; the
    choice is made once, at creation: later snapshots keep it, and asking another hash is one clear error."""
    root = tmp_path / "store"
    assert main(["snapshot", str(notebook), "--store", str(root), "--store-hash", "sha256", "--json"]) == 0
    snapshot_id = json.loads(capsys.readouterr().out)["id"]
    assert json.loads((root / FORMAT_KEY).read_bytes())["object_hash"] == "sha256"
    manifest = SnapshotStore.open(root).read_manifest(snapshot_id)
    for entry in entries(manifest):
        assert entry["hash"] == reference_digest((project / entry["path"]).read_bytes(), "sha256")
    assert object_names(root) == {entry["hash"] for entry in entries(manifest)}

    (project / "config.yaml").write_text("lr: 0.2\n")
    changed = take_snapshot(notebook, store=SnapshotStore.open(root))  # no request: the store's own hash
    assert SnapshotStore.open(root).algorithm == "sha256"
    assert reference_digest(b"lr: 0.2\n", "sha256") in object_names(root)

    before = tree(root)
    monkeypatch.setenv("CELLPIPE_STORE_HASH", "blake3")
    assert main(["snapshot", str(notebook), "--store", str(root)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"the snapshot store {root} names its objects by sha256, not the blake3 asked for" in err
    assert tree(root) == before  # nothing stored under the other hash
    # reading needs no particular hash: the request only matters to what is stored
    assert main(["restore", changed.id, str(tmp_path / "out"), "--store", str(root)]) == 0
    assert (tmp_path / "out" / "config.yaml").read_bytes() == b"lr: 0.2\n"


def test_the_store_hash_setting_is_checked_and_an_old_sha256_store_matches_it(
    notebook: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("CELLPIPE_STORE_HASH", "md5")
    assert main(["snapshot", str(notebook), "--store", str(tmp_path / "new")]) == 1
    err = capsys.readouterr().err
    assert "CELLPIPE_STORE_HASH" in err and "'md5' is not a store hash" in err and "blake3, sha256" in err
    assert not (tmp_path / "new" / "objects").exists() and not (tmp_path / "new" / FORMAT_KEY).exists()

    monkeypatch.setenv("CELLPIPE_STORE_HASH", "SHA256")  # case does not matter
    root, _ = legacy_store(notebook, tmp_path)
    take_snapshot(notebook, store=SnapshotStore.open(root))
    assert not (root / FORMAT_KEY).exists()  # an earlier store stays as it was: sha256, no marker


def test_s3_store_created_with_sha256_names(
    s3_bucket, notebook: Path, project: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("CELLPIPE_STORE_HASH", "sha256")
    snapshot = take_snapshot(notebook, store=SnapshotStore.open(s3_bucket.url()))
    assert_s3_objects_named_by(s3_bucket, snapshot.manifest, "sha256")

    monkeypatch.delenv("CELLPIPE_STORE_HASH")
    forget_cached_clients()
    again = SnapshotStore.open(s3_bucket.url())
    assert again.algorithm == "sha256" and again.verify(snapshot.id).ok
    restore(again, snapshot.id, tmp_path / "out")
    assert (tmp_path / "out" / "config.yaml").read_bytes() == (project / "config.yaml").read_bytes()
    with pytest.raises(SnapshotError, match="names its objects by sha256, not the blake3 asked for"):
        take_snapshot(notebook, store=SnapshotStore.open(s3_bucket.url(), new_store_hash="blake3"))
