"""Copying a file while hashing it (copying.py): the kernel copies, user space hashes, and the bytes
stored always hash to the digest returned, also when the file changes in between or the kernel cannot
copy (another filesystem, no copy_file_range)."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jupyter_ext.snapshot import SnapshotStore, copying
from jupyter_ext.snapshot.copying import KernelCopier, copy_file_hashing
from tests.support.stores import reference_digest

SIZE = 3 * copying.WINDOW + 12_345  # several windows and a partial one


@pytest.fixture(params=["blake3", "sha256"])
def algorithm(request: pytest.FixtureRequest) -> str:
    """Both object hashes a store may use (new stores BLAKE3, older ones sha256)."""
    return request.param


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without remembered unsupported methods."""
    monkeypatch.setattr(copying, "_unsupported", {})


def write(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def copy(algorithm: str, source: Path, target: Path, **kwargs) -> tuple[str, int]:
    with open(source, "rb", buffering=0) as src, open(target, "xb", buffering=0) as out:
        return copy_file_hashing(src.fileno(), out.fileno(), algorithm=algorithm, **kwargs)


def counting(method: Callable[..., int], calls: list[int]) -> Callable[..., int]:
    def copy_method(source: int, target: int, offset: int, count: int) -> int:
        calls.append(count)
        return method(source, target, offset, count)

    return copy_method


def check(algorithm: str, target: Path, result: tuple[str, int], expected: bytes) -> None:
    assert target.read_bytes() == expected
    assert result == (reference_digest(expected, algorithm), len(expected))


@pytest.mark.skipif(not hasattr(os, "copy_file_range"), reason="no copy_file_range on this system")
def test_the_kernel_copies_a_settled_file_window_by_window(tmp_path: Path, settle, algorithm: str) -> None:
    data = write(tmp_path / "a", SIZE)
    settle()
    calls: list[int] = []
    methods = {"copy_file_range": counting(copying.KERNEL_METHODS["copy_file_range"], calls)}
    check(algorithm, tmp_path / "b", copy(algorithm, tmp_path / "a", tmp_path / "b", methods=methods), data)
    assert sum(calls) == SIZE and len(calls) == 4


def test_small_fresh_and_empty_files_are_written_in_one_pass(tmp_path: Path, settle, algorithm: str) -> None:
    calls: list[int] = []
    methods = {"copy_file_range": counting(copying._copy_file_range, calls)}
    small = write(tmp_path / "small", copying.ONE_PASS_MAX)
    empty = write(tmp_path / "empty", 0)
    settle()
    fresh = write(tmp_path / "fresh", SIZE)
    # changed "now" as far as the copy can tell (mtime ahead, as after a write within the clock's tick):
    # its timestamps cannot prove it steady
    future = time.time_ns() + 3_600 * 10**9
    os.utime(tmp_path / "fresh", ns=(future, future))
    for name, data in (("small", small), ("empty", empty), ("fresh", fresh)):
        check(
            algorithm,
            tmp_path / f"{name}.copy",
            copy(algorithm, tmp_path / name, tmp_path / f"{name}.copy", methods=methods),
            data,
        )
    assert calls == []


def test_a_file_changed_between_hash_and_copy_is_copied_again_in_one_pass(
    tmp_path: Path, settle, algorithm: str
) -> None:
    source = tmp_path / "a"
    write(source, SIZE)
    settle()

    def change_then_copy(src: int, target: int, offset: int, count: int) -> int:
        if offset == 0:  # the first window was hashed; now a writer changes it
            with open(source, "r+b") as stream:
                stream.write(b"changed!")
        return copying._sendfile(src, target, offset, count)

    result = copy(algorithm, source, tmp_path / "b", methods={"sendfile": change_then_copy})
    check(algorithm, tmp_path / "b", result, source.read_bytes())  # the digest is that of the bytes stored
    assert source.read_bytes().startswith(b"changed!")


def test_a_truncated_source_is_copied_again_as_it_is_now(tmp_path: Path, settle, algorithm: str) -> None:
    source = tmp_path / "a"
    data = write(source, SIZE)
    settle()

    def truncate_then_copy(src: int, target: int, offset: int, count: int) -> int:
        if offset == copying.WINDOW:
            os.truncate(source, copying.WINDOW + 10)
        return copying._copy_file_range(src, target, offset, count)

    result = copy(algorithm, source, tmp_path / "b", methods={"copy_file_range": truncate_then_copy})
    check(algorithm, tmp_path / "b", result, data[: copying.WINDOW + 10])


def test_an_unsupported_method_falls_back_to_the_next_and_is_remembered(
    tmp_path: Path, settle, algorithm: str
) -> None:
    data = write(tmp_path / "a", SIZE)
    settle()
    refused: list[int] = []

    def old_kernel(src: int, target: int, offset: int, count: int) -> int:
        refused.append(count)
        raise OSError(errno.ENOSYS, "Function not implemented")

    methods = {"copy_file_range": old_kernel, "sendfile": copying._sendfile}
    check(algorithm, tmp_path / "b", copy(algorithm, tmp_path / "a", tmp_path / "b", methods=methods), data)
    check(algorithm, tmp_path / "c", copy(algorithm, tmp_path / "a", tmp_path / "c", methods=methods), data)
    assert len(refused) == 1  # not asked again between the same filesystems
    device = os.stat(tmp_path).st_dev
    assert KernelCopier((device, device), methods).method == "sendfile"


def test_without_any_kernel_method_the_hashed_buffer_is_written(
    tmp_path: Path, settle, algorithm: str
) -> None:
    data = write(tmp_path / "a", SIZE)
    settle()
    check(algorithm, tmp_path / "b", copy(algorithm, tmp_path / "a", tmp_path / "b", methods={}), data)


def test_a_write_error_in_the_kernel_copy_is_a_write_failure(tmp_path: Path, settle, algorithm: str) -> None:
    write(tmp_path / "a", SIZE)
    settle()

    def full(src: int, target: int, offset: int, count: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(copying.WriteFailed) as caught:
        copy(algorithm, tmp_path / "a", tmp_path / "b", methods={"copy_file_range": full})
    assert caught.value.error.errno == errno.ENOSPC


def other_filesystem(tmp_path: Path) -> Path:
    """A directory on a filesystem other than tmp_path's (/dev/shm is a tmpfs on Linux)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK) or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no writable second filesystem (/dev/shm) here")
    return shm


def test_across_filesystems_the_copy_falls_back_and_stays_exact(tmp_path: Path, settle) -> None:
    """copy_file_range refuses most cross-filesystem copies (EXDEV on Linux >= 5.19): a data file on a
    tmpfs snapshotted into a store on disk still arrives whole, and restores whole."""
    source = other_filesystem(tmp_path) / f"cellpipe-test-{os.getpid()}-{tmp_path.name}"
    try:
        data = write(source, SIZE)
        settle()
        store = SnapshotStore.open(tmp_path / "store", fsync=True)
        put = store.put_file(source)
        assert put.new and put.hash == reference_digest(data, "blake3") and put.size == SIZE  # a new store
        assert (store.local_root / store.object_key(put.hash)).read_bytes() == data
        restored = source.with_name(source.name + ".restored")
        with open(restored, "xb", buffering=0) as out:
            assert store.copy_out(put.hash, out) == (put.hash, SIZE)
        assert restored.read_bytes() == data
        used = copying._unsupported.get((source.stat().st_dev, tmp_path.stat().st_dev), set())
        assert used <= {"copy_file_range"}  # refused at most that one; sendfile crosses filesystems
    finally:
        source.unlink(missing_ok=True)
        source.with_name(source.name + ".restored").unlink(missing_ok=True)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="sync_file_range is Linux's")
def test_write_out_writes_a_range_and_says_when_it_cannot(tmp_path: Path) -> None:
    """The paced writer of a snapshot's deferred syncs (backends.PACED_WINDOW) relies on it."""
    data = write(tmp_path / "file", SIZE)
    with open(tmp_path / "file", "r+b", buffering=0) as stream:
        stream.write(b"changed")  # a dirty page to write
        assert copying.write_out(stream.fileno(), 0, SIZE) is True
    assert (tmp_path / "file").read_bytes() == b"changed" + data[7:]
    reader, writer = os.pipe()
    try:
        assert copying.write_out(writer, 0, 4096) is False  # not a file: nothing done, nothing raised
    finally:
        os.close(reader)
        os.close(writer)
