"""The content-addressed store on its own: objects, manifests, ids, verification, URLs, failures."""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import os
import shutil
import uuid
from pathlib import Path

import fsspec
import pytest

from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot import SnapshotStore, copying, open_store
from jupyter_ext.snapshot.manifest import canonical_json
from tests.support.stores import reference_digest


def manifest_for(store: SnapshotStore, files: dict[str, bytes], created: str = "2026-01-01T00:00:00") -> dict:
    notebook = store.put_bytes(b'{"cells": []}')
    entries = []
    for name, data in files.items():
        put = store.put_bytes(data)
        entries.append({"path": name, "hash": put.hash, "size": put.size, "mode": 0o644})
    return {
        "created": created,
        "notebook": {"path": "nb.ipynb", "hash": notebook.hash, "size": notebook.size, "mode": 0o644},
        "files": entries,
    }


def test_put_file_stores_once_under_its_hash(tmp_path: Path, any_store: SnapshotStore) -> None:
    store = any_store
    data = os.urandom(3 << 20)  # spans several read chunks
    source = tmp_path / "blob.bin"
    source.write_bytes(data)

    first = store.put_file(source)
    second = store.put_file(source)

    digest = reference_digest(data, store.algorithm)
    assert (first.hash, first.size, first.new) == (digest, len(data), True)
    assert (second.hash, second.new) == (digest, False)
    assert (store.local_root / "objects" / digest[:2] / digest[2:]).read_bytes() == data
    assert store.counters.stored_files == 1
    assert list((store.local_root / "tmp").iterdir()) == []  # the second copy's temp was dropped
    with store.open_object(digest) as stream:
        assert stream.read() == data


def test_manifest_id_is_the_hash_of_its_canonical_bytes(store: SnapshotStore) -> None:
    manifest = manifest_for(store, {"a.txt": b"a"})
    snapshot_id = store.write_manifest(manifest)
    assert snapshot_id == hashlib.sha256(canonical_json(manifest)).hexdigest()
    assert store.read_manifest(snapshot_id[:8]) == manifest
    assert [info.id for info in store.list()] == [snapshot_id]


def test_resolve_accepts_unique_prefixes_only(store: SnapshotStore) -> None:
    ids = [store.write_manifest(manifest_for(store, {}, created=str(n))) for n in range(40)]
    assert all(store.resolve(i[:12]) == i for i in ids)
    by_first = {}
    for i in ids:
        by_first.setdefault(i[0], []).append(i)
    shared = next(prefix for prefix, group in by_first.items() if len(group) > 1)  # 40 ids, 16 digits
    with pytest.raises(SnapshotError, match=f"'{shared}' matches .* snapshots.*Give more characters"):
        store.resolve(shared)
    with pytest.raises(SnapshotError, match="no snapshot 'ffffffffffff' in the store"):
        store.resolve("ffffffffffff")
    with pytest.raises(SnapshotError, match="'xyz' is not a snapshot id"):
        store.resolve("xyz")


def test_verify_detects_a_corrupted_object(any_store: SnapshotStore) -> None:
    store = any_store
    snapshot_id = store.write_manifest(manifest_for(store, {"data/a.csv": b"1,2,3\n" * 100, "b.txt": b"b"}))
    assert store.verify(snapshot_id).ok

    digest = reference_digest(b"1,2,3\n" * 100, store.algorithm)
    obj = store.local_root / "objects" / digest[:2] / digest[2:]
    obj.write_bytes(b"1,2,3\n" * 99 + b"1,2,4\n")  # same size, one byte differs

    result = store.verify(snapshot_id)
    assert not result.ok
    assert result.problems == [f"data/a.csv: object {digest[:12]} is corrupt (its bytes hash to "
                               f"{reference_digest(obj.read_bytes(), store.algorithm)[:12]})"]  # fmt: skip


def test_verify_reports_a_missing_object_and_an_altered_manifest(any_store: SnapshotStore) -> None:
    store = any_store
    snapshot_id = store.write_manifest(manifest_for(store, {"a.txt": b"gone"}))
    digest = reference_digest(b"gone", store.algorithm)
    (store.local_root / "objects" / digest[:2] / digest[2:]).unlink()
    assert store.verify(snapshot_id).problems == [f"a.txt: object {digest[:12]} is missing"]

    manifest_path = store.local_root / "snapshots" / f"{snapshot_id}.json"
    manifest_path.write_bytes(manifest_path.read_bytes().replace(b"a.txt", b"b.txt"))
    assert "does not match its id" in store.verify(snapshot_id).problems[0]
    assert store.list() == []  # an altered manifest is not a snapshot


def test_memory_store_round_trip() -> None:
    url = f"memory://cellpipe-test-{uuid.uuid4().hex}/store"
    store = open_store(url)
    snapshot_id = store.write_manifest(manifest_for(store, {"x.bin": b"\0" * 10_000}))
    again = SnapshotStore.open(url)  # a second client sees what the first wrote
    assert again.resolve(snapshot_id[:10]) == snapshot_id
    assert again.verify(snapshot_id).ok
    assert not again.backend.list_names("tmp")  # temps were moved into place, none left


def test_memory_store_uploads_only_missing_objects(tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(100_000))
    store = SnapshotStore.open(f"memory://cellpipe-test-{uuid.uuid4().hex}")
    assert store.put_file(source).new
    assert not store.put_file(source).new
    assert store.counters.stored_files == 1


def test_file_url_and_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert SnapshotStore.open(f"file://{tmp_path}/s").local_root == tmp_path / "s"
    monkeypatch.setenv("CELLPIPE_STORE", str(tmp_path / "from-env"))
    assert open_store(notebook_path=tmp_path / "nb.ipynb").local_root == tmp_path / "from-env"
    assert open_store(tmp_path / "explicit").local_root == tmp_path / "explicit"


def test_unknown_scheme_names_the_url_and_the_known_schemes() -> None:
    with pytest.raises(SnapshotError) as caught:
        SnapshotStore.open("nosuch://bucket/store")
    message = str(caught.value)
    assert "unknown store URL scheme 'nosuch://' in 'nosuch://bucket/store'" in message
    assert "file://, memory://, s3://, gs://" in message


def test_missing_backend_package_says_what_to_install() -> None:
    fsspec.register_implementation(
        "cellpipetest", "cellpipe_no_such_package.FS", errtxt="Install cellpipe_no_such_package", clobber=True
    )
    with pytest.raises(
        SnapshotError, match="needs a package that is not installed.*cellpipe_no_such_package"
    ):
        SnapshotStore.open("cellpipetest://bucket/store")


def test_s3_without_s3fs_says_to_install_it_and_configure_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    registry = importlib.import_module("fsspec.registry")  # the module (fsspec.registry is a mapping too)
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if not installed: importing it fails
    monkeypatch.delitem(registry._registry, "s3", raising=False)  # not already imported by an earlier test
    with pytest.raises(SnapshotError) as caught:
        SnapshotStore.open("s3://bucket/cellpipe")
    assert "pip install s3fs" in str(caught.value)
    assert "AWS_ACCESS_KEY_ID" in str(caught.value)


@pytest.mark.parametrize("copy", ["kernel", "user space"])
def test_full_disk_leaves_no_object_and_no_temp(
    tmp_path: Path, store: SnapshotStore, monkeypatch: pytest.MonkeyPatch, copy: str, settle
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(3 << 20))
    settle()  # else it is too fresh for the kernel copy and is written in one pass
    calls = {"n": 0}

    def full_on_second_call(real):  # the second write finds the disk full
        def write(*args):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(*args)

        return write

    if copy == "kernel":
        real = copying.KERNEL_METHODS["copy_file_range"]
        monkeypatch.setattr(copying, "KERNEL_METHODS", {"copy_file_range": full_on_second_call(real)})
        monkeypatch.setattr(copying, "WINDOW", 1 << 20)
    else:
        monkeypatch.setattr(copying, "KERNEL_METHODS", {})
        monkeypatch.setattr(copying.os, "pwrite", full_on_second_call(os.pwrite))
    with pytest.raises(SnapshotError, match="is full .No space left on device.; no snapshot was recorded"):
        store.put_file(source)
    assert calls["n"] == 2
    assert not (store.local_root / "objects").exists()
    assert list((store.local_root / "tmp").iterdir()) == []


def test_store_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(SnapshotError, match="is a file, not a directory"):
        SnapshotStore.open(tmp_path / "f")


class NoCredentialsError(Exception):
    """Named like botocore's: the store recognises a credentials failure by the exception's name."""


def test_missing_credentials_become_one_clear_error() -> None:
    from fsspec.implementations.memory import MemoryFileSystem

    class LockedFileSystem(MemoryFileSystem):
        protocol = "lockedtest"

        def ls(self, path, detail=True, **kwargs):
            raise NoCredentialsError("Unable to locate credentials")

        def cat_file(self, path, start=None, end=None, **kwargs):
            raise PermissionError(13, "Access Denied")

    fsspec.register_implementation("lockedtest", LockedFileSystem, clobber=True)
    store = SnapshotStore.open("lockedtest://bucket/store")
    with pytest.raises(
        SnapshotError, match="cannot access the snapshot store lockedtest://bucket/store: PermissionError"
    ):
        store.list()  # reading its store.json (the format) comes first
    store._algorithm = "blake3"  # as if store.json had been read: the listing itself fails next
    with pytest.raises(
        SnapshotError, match="cannot access the snapshot store lockedtest://bucket/store: NoCredentialsError"
    ):
        store.list()
    with pytest.raises(
        SnapshotError, match="cannot access the snapshot store .*Configure the filesystem's credentials"
    ):
        store.load_meta("cache/stat.json")


def test_a_store_directory_removed_meanwhile_is_made_again(store: SnapshotStore) -> None:
    """The local backend remembers the directories it made; one removed by hand since is made again."""
    first = store.put_bytes(b"first")
    shutil.rmtree(store.local_root / "tmp")
    shutil.rmtree(store.local_root / "objects")
    again = store.put_bytes(b"first")
    assert again.new and again.hash == first.hash
    assert (store.local_root / store.object_key(first.hash)).read_bytes() == b"first"
