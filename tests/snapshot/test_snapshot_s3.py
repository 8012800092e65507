"""Snapshot stores on S3, through a real S3 API on loopback (``moto_server`` + s3fs; see conftest's
``s3_bucket``): what is stored where, restore and its integrity check, cheap re-snapshots, verify."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from jupyter_ext.cli.main import main
from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot import SnapshotStore, restore, take_snapshot
from jupyter_ext.snapshot.manifest import canonical_json
from tests.support.s3_server import forget_cached_clients


def tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def object_key(snapshot, path: str) -> str:
    digest = next(entry["hash"] for entry in snapshot.manifest["files"] if entry["path"] == path)
    return f"store/objects/{digest[:2]}/{digest[2:]}"


def test_snapshot_to_s3_and_restore_from_a_second_client(
    s3_bucket, project: Path, notebook: Path, tmp_path: Path
) -> None:
    snapshot = take_snapshot(notebook, store=SnapshotStore.open(s3_bucket.url()))

    keys = s3_bucket.keys()
    assert f"store/snapshots/{snapshot.id}.json" in keys
    assert object_key(snapshot, "data/train.csv") in keys
    assert not [key for key in keys if key.startswith("store/tmp/")]  # every upload moved into place
    body = s3_bucket.client().get_object(Bucket=s3_bucket.name, Key=f"store/snapshots/{snapshot.id}.json")
    assert hashlib.sha256(body["Body"].read()).hexdigest() == snapshot.id  # the id is the manifest's hash

    forget_cached_clients()  # a new client: nothing comes from the first one's caches
    again = SnapshotStore.open(s3_bucket.url())
    assert [info.id for info in again.list()] == [snapshot.id]
    assert again.verify(snapshot.short_id).ok
    restored = restore(again, snapshot.short_id, tmp_path / "out")
    assert restored.files == 3
    assert tree(tmp_path / "out") == {
        name: (project / name).read_bytes()
        for name in ["train.ipynb", "config.yaml", "data/train.csv", "data/images/cat.png"]
    }


def test_unchanged_resnapshot_uploads_nothing(s3_bucket, notebook: Path) -> None:
    first = take_snapshot(notebook, store=SnapshotStore.open(s3_bucket.url()))
    keys = s3_bucket.keys("store/objects/")
    store = SnapshotStore.open(s3_bucket.url())

    second = take_snapshot(notebook, store=store)

    assert second.id == first.id
    assert store.counters.stored_files == 0 and store.counters.stored_bytes == 0
    assert s3_bucket.keys("store/objects/") == keys


def test_a_corrupt_object_is_detected_by_restore_and_verify(
    s3_bucket, notebook: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SnapshotStore.open(s3_bucket.url())
    snapshot = take_snapshot(notebook, store=store)
    key = object_key(snapshot, "data/train.csv")
    client = s3_bucket.client()
    data = bytearray(client.get_object(Bucket=s3_bucket.name, Key=key)["Body"].read())
    data[-2] ^= 1  # same size, one byte changed: only the hash can tell
    client.put_object(Bucket=s3_bucket.name, Key=key, Body=bytes(data))
    forget_cached_clients()
    store = SnapshotStore.open(s3_bucket.url())

    with pytest.raises(SnapshotError, match="object for data/train.csv is corrupt"):
        restore(store, snapshot.id, tmp_path / "out")
    assert not (tmp_path / "out" / "data" / "train.csv").exists()
    result = store.verify(snapshot.id)
    assert not result.ok and [entry["path"] for entry in result.damaged] == ["data/train.csv"]

    assert main(["snapshots", "verify", "--store", s3_bucket.url()]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "data/train.csv" in out and "1 of 1 snapshots failed verification" in out


def test_snapshot_list_and_verify_commands_on_s3(
    s3_bucket, notebook: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["snapshot", str(notebook), "--store", s3_bucket.url()]) == 0
    assert main(["snapshots", "list", "--store", s3_bucket.url()]) == 0
    short = capsys.readouterr().out.splitlines()[-1].split()[0]
    assert main(["snapshots", "verify", "--store", s3_bucket.url()]) == 0
    assert capsys.readouterr().out.startswith(f"ok      {short}")


@pytest.mark.parametrize("command", ["list", "snapshot", "restore"])
def test_a_missing_bucket_is_one_clear_error_and_is_never_created(
    s3_bucket, notebook: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    url = f"s3://{s3_bucket.name}-typo/store"
    argv = {
        "list": ["snapshots", "list", "--store", url],
        "snapshot": ["snapshot", str(notebook), "--store", url],
        "restore": ["restore", "abc", str(tmp_path / "out"), "--store", url],
    }[command]

    assert main(argv) == 1

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"the bucket '{s3_bucket.name}-typo' of the snapshot store {url} does not exist" in err
    assert "Create it" in err and "cellpipe does not create buckets" in err
    buckets = [entry["Name"] for entry in s3_bucket.client().list_buckets()["Buckets"]]
    assert f"{s3_bucket.name}-typo" not in buckets and s3_bucket.name in buckets


def test_an_unreachable_endpoint_is_one_clear_error(
    s3_bucket, notebook: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.loopback import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries only make the test slower
    forget_cached_clients()

    for argv in (["snapshots", "list"], ["snapshot", str(notebook)]):
        assert main([*argv, "--store", s3_bucket.url()]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"cannot reach the snapshot store {s3_bucket.url()}: EndpointConnectionError" in err
        assert "AWS_ENDPOINT_URL" in err


def test_a_long_lived_store_sees_what_other_processes_write(s3_bucket, notebook: Path) -> None:
    """The server keeps its store open while pods and ``cellpipe`` commands add snapshots and runs."""
    server_side = SnapshotStore.open(s3_bucket.url())
    first = take_snapshot(notebook, store=server_side)
    put_record(s3_bucket, "r1")
    assert server_side.ids() == [first.id] and server_side.backend.list_names("runs") == ["r1"]

    other = s3_bucket.client()  # another process's uploads, behind this client's back
    manifest = canonical_json({**first.manifest, "created": "later"})
    second = hashlib.sha256(manifest).hexdigest()
    other.put_object(Bucket=s3_bucket.name, Key=f"store/snapshots/{second}.json", Body=manifest)
    put_record(s3_bucket, "r2")

    assert server_side.ids() == sorted([first.id, second])
    assert server_side.read_manifest(second)["created"] == "later"
    assert sorted(server_side.backend.list_names("runs")) == ["r1", "r2"]


def put_record(s3_bucket, run_id: str) -> None:
    key = f"store/runs/{run_id}/record.json"
    s3_bucket.client().put_object(Bucket=s3_bucket.name, Key=key, Body=b"{}")


def test_an_object_larger_than_one_upload_block_goes_up_in_parts_and_restores(
    s3_bucket, project: Path, notebook: Path, tmp_path: Path
) -> None:
    import os

    big = project / "data" / "train.csv"
    big.write_bytes(
        os.urandom(52 << 20)
    )  # over s3fs's 50 MiB block: uploaded to tmp/ in parts, then copied into place
    snapshot = take_snapshot(notebook, store=SnapshotStore.open(s3_bucket.url()))
    head = s3_bucket.client().head_object(Bucket=s3_bucket.name, Key=object_key(snapshot, "data/train.csv"))
    assert head["ContentLength"] == 52 << 20

    forget_cached_clients()
    restore(SnapshotStore.open(s3_bucket.url()), snapshot.id, tmp_path / "out")
    assert (tmp_path / "out" / "data" / "train.csv").read_bytes() == big.read_bytes()


def test_gc_removes_only_what_no_snapshot_names(s3_bucket, project: Path, notebook: Path) -> None:
    from jupyter_ext.snapshot.gc import collect_garbage

    store = SnapshotStore.open(s3_bucket.url())
    old = take_snapshot(notebook, store=store)
    (project / "config.yaml").write_text("lr: 0.2\n")
    kept = take_snapshot(notebook, store=store)
    s3_bucket.client().delete_object(Bucket=s3_bucket.name, Key=f"store/snapshots/{old.id}.json")
    gone = object_key(old, "config.yaml")

    report = collect_garbage(SnapshotStore.open(s3_bucket.url()))

    assert report.snapshots == 1 and len(report.removed_objects) == 1
    keys = s3_bucket.keys("store/objects/")
    assert gone not in keys
    assert all(object_key(kept, entry["path"]) in keys for entry in kept.manifest["files"])
    assert SnapshotStore.open(s3_bucket.url()).verify(kept.id).ok
