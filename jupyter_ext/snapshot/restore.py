"""Bring a snapshot back as files: the notebook and its data at their paths relative to the project root.

Every object is re-hashed while it is copied out (by the kernel from a local store, see copying.py), so a
restore is byte-identical or fails. The files are written into a temporary sibling of the target
directory, which is renamed into place when all of them are complete: a failed or interrupted restore
leaves no partial directory. Only safe permission bits are applied (see :func:`safe_mode`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import stat
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot.copying import default_workers
from jupyter_ext.snapshot.manifest import check_relative_path, manifest_files, short_id
from jupyter_ext.snapshot.store import SnapshotStore
from jupyter_ext.util import abandoned, writer_tag

SAFE_MODE_BITS = 0o755  # rwx for the owner, r-x for group and others; no setuid, setgid or sticky bit
DEFAULT_MODE = 0o644


@dataclass
class Restored:
    id: str
    directory: Path
    notebook: Path  # the restored notebook, inside ``directory``
    manifest: dict[str, Any]
    files: int = 0  # data files, the notebook not counted
    bytes: int = 0
    external: dict[str, Path] = field(default_factory=dict)  # original absolute path -> restored path


def restore(
    store: SnapshotStore | str | Path,
    snapshot_id: str,
    directory: str | Path,
    *,
    force: bool = False,
    workers: int | None = None,
) -> Restored:
    """Write a snapshot's notebook and data into ``directory``.

    ``directory`` must be empty or absent unless ``force``; with ``force`` the snapshot's files replace
    same-named files there and anything else is left alone. Everything is first written and verified in
    a temporary sibling directory, then moved into place: a failed restore changes nothing.
    """
    store = store if isinstance(store, SnapshotStore) else SnapshotStore.open(store)
    full_id = store.resolve(snapshot_id)
    manifest = store.read_manifest(full_id)
    target = Path(directory).expanduser().absolute()
    _check_target(target, force)
    entries = manifest_files(manifest)
    relative = [check_relative_path(entry["path"], snapshot_id=full_id) for entry in entries]
    for entry, name in zip(entries, relative, strict=True):
        if (target / name).is_dir():
            raise SnapshotError(
                f"cannot restore {entry['path']}: {target / name} is a directory", field="DIR"
            )

    staging = _staging_sibling(target)
    try:
        _restore_files(store, entries, relative, staging, target, full_id, workers)
        _publish(staging, target)
    except OSError as exc:  # creating the staging tree's directories
        raise SnapshotError(f"cannot write {target}: {exc.strerror or exc}", field="DIR") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when it was renamed into place

    data = manifest.get("files", [])
    return Restored(
        id=full_id,
        directory=target,
        notebook=target / relative[0],
        manifest=manifest,
        files=len(data),
        bytes=sum(entry["size"] for entry in entries),
        external={entry["source"]: target / entry["path"] for entry in data if entry.get("source")},
    )


def materialize(
    store: SnapshotStore | str | Path, snapshot_id: str, directory: str | Path | None = None
) -> Restored:
    """A fresh working copy of a snapshot for a re-run: into ``directory`` (empty or absent) or a new
    temporary directory that the caller owns and removes."""
    if directory is None:
        directory = tempfile.mkdtemp(prefix=f"cellpipe-{short_id(snapshot_id)}-")
    return restore(store, snapshot_id, directory)


def _check_target(target: Path, force: bool) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        raise SnapshotError(
            f"{target} exists and is not a directory", field="DIR", hint="Choose a directory."
        )
    if not force and any(target.iterdir()):
        raise SnapshotError(
            f"{target} is not empty",
            field="DIR",
            hint="Restore into an empty or new directory, or pass --force to overwrite the snapshot's files "
            "there (other files are left alone).",
        )


def _staging_sibling(target: Path) -> Path:
    """A new private directory next to ``target`` (same filesystem, so the final rename is atomic); those
    that killed restores into the same target left behind are removed first."""
    prefix = f".{target.name}.cellpipe-restore-"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for leftover in target.parent.glob(f"{glob.escape(prefix)}*"):
            with contextlib.suppress(OSError):
                if abandoned(leftover.name, leftover.stat().st_mtime):
                    shutil.rmtree(leftover, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f"{prefix}{writer_tag()}", dir=target.parent))
    except OSError as exc:
        raise SnapshotError(f"cannot create {target}: {exc.strerror or exc}", field="DIR") from None


def _publish(staging: Path, target: Path) -> None:
    """Move the restored tree into ``target``: one rename when ``target`` is absent or empty, else file by
    file (``--force``), each replacing the same-named file."""
    try:
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        if not target.exists():
            os.rename(staging, target)
            return
    except OSError:
        pass  # a mount point or a racing writer: fall back to moving the files one by one
    for source in sorted(staging.rglob("*")):
        if source.is_dir():
            continue
        destination = target / source.relative_to(staging)
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, destination)
        except OSError as exc:
            raise SnapshotError(
                f"cannot write {destination}: {exc.strerror or exc}",
                field="DIR",
                hint="Check that the directory is writable; the files not yet moved are left as they were.",
            ) from None


def safe_mode(mode: Any) -> int:
    """The permission bits a restore applies: the manifest's, without setuid/setgid/sticky and without
    write access for group and others (a manifest from a shared store is not trusted), readable by the
    owner."""
    if not isinstance(mode, int) or isinstance(mode, bool):
        return DEFAULT_MODE
    return (mode & SAFE_MODE_BITS) | stat.S_IRUSR


def _restore_files(
    store: SnapshotStore,
    entries: list[dict[str, Any]],
    relative: list[PurePosixPath],
    staging: Path,
    target: Path,
    snapshot_id: str,
    workers: int | None,
) -> None:
    """Copy every object to its path in the staging tree, on a few threads; the first failure cancels
    the files not yet started and is raised (errors name the file's place in ``target``)."""
    paths = [staging / name for name in relative]
    for directory in sorted({path.parent for path in paths}):
        directory.mkdir(parents=True, exist_ok=True)  # once per directory, not once per file
    # Largest first: the last files to finish are small, so no thread idles while one copies a big file.
    order = sorted(range(len(entries)), key=lambda index: entries[index]["size"], reverse=True)
    failed = threading.Event()
    creating = threading.Lock()

    def copy(index: int) -> None:
        if failed.is_set():
            return  # another file failed: the restore is lost, copy no more
        try:
            _restore_file(
                store, entries[index], paths[index], target / relative[index], snapshot_id, creating
            )
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(
        max_workers=workers or default_workers(), thread_name_prefix="cellpipe-restore"
    ) as pool:
        for future in as_completed([pool.submit(copy, index) for index in order]):
            future.result()


def _create(path: Path, creating: threading.Lock) -> BinaryIO:
    """A new, empty file, one at a time: creating a file holds its directory's lock, and on ext4 without a
    journal takes up to a millisecond (a new inode skips those deleted in the last minutes); another
    thread creating in the same directory meanwhile spins in the kernel (profiled), while here it sleeps."""
    with creating:
        return open(path, "xb", buffering=0)


def _restore_file(
    store: SnapshotStore,
    entry: dict[str, Any],
    path: Path,
    shown: Path,
    snapshot_id: str,
    creating: threading.Lock,
) -> None:
    """One object to its final name in the private staging tree (removed whole if anything fails, so
    no temporary name and rename per file)."""
    try:
        with _create(path, creating) as out:
            digest, size = store.copy_out(entry["hash"], out)
            if digest != entry["hash"] or size != entry["size"]:
                raise SnapshotError(
                    f"object for {entry['path']} is corrupt in the store {store.url}",
                    field=f"snapshot {short_id(snapshot_id)}",
                    hint="Run 'cellpipe snapshots verify --repair' to see what else is damaged and repair it.",
                )
            os.fchmod(out.fileno(), safe_mode(entry.get("mode")))
    except OSError as exc:
        raise SnapshotError(
            f"cannot write {shown}: {exc.strerror or exc}",
            field="DIR",
            hint="Check that the directory is writable and has space.",
        ) from None
