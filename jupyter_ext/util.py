"""Small shared helpers: atomic writes, private files and directories, content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

# What cellpipe creates for one user (store, cache, run records, MLflow database, logs) is private to that
# user: parameters, data and signing keys live there. Shared stores opt out explicitly (snapshot/config.py).
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: str | Path, *, shared: bool = False) -> Path:
    """Create ``path`` and its missing parents as 0700 directories (0777 minus the umask when ``shared``).

    Directories that already exist keep their mode: they may be shared on purpose.
    """
    path = Path(path)
    missing = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o777 if shared else PRIVATE_DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
    return path


def open_private(path: str | Path, mode: str = "wb", *, shared: bool = False, buffering: int = -1) -> IO[Any]:
    """``open(path, mode)``, a new file being created 0600 (0666 minus the umask when ``shared``).

    ``mode`` is one of the writing modes ("w", "wb", "a", "ab", "x", "xb"); an existing file keeps its mode.
    """
    flags = {"w": os.O_TRUNC, "a": os.O_APPEND, "x": os.O_EXCL}[mode[0]]
    perms = 0o666 if shared else PRIVATE_FILE_MODE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags | getattr(os, "O_CLOEXEC", 0), perms)
    return os.fdopen(fd, mode, buffering=buffering)


# Temporary files and directories are named with the process that writes them (``<pid>@<host>~``), so that
# the next start can tell a killed writer's leftovers from a live one's work in progress.
_WRITER = re.compile(r"(\d+)@([^~/]+)~")
FOREIGN_LEFTOVER_AGE_S = 86_400  # written from another host: removed only when this old


def writer_tag() -> str:
    """``<pid>@<host>~``: put into a temporary name, it lets :func:`abandoned` recognise leftovers."""
    return f"{os.getpid()}@{socket.gethostname()}~"


def writer_unique_name(prefix: str = "") -> str:
    """A new temporary name: ``prefix``, the :func:`writer_tag`, and a random part."""
    return f"{prefix}{writer_tag()}{uuid.uuid4().hex}"


def abandoned(name: str, modified: float | None) -> bool:
    """Whether a temporary ``name`` (from :func:`writer_tag`) was left by a process that is gone: one of
    this host that no longer runs, or one of any host (or unnamed) not modified for a day."""
    match = _WRITER.search(name)
    if match and match.group(2) == socket.gethostname():
        return not pid_running(int(match.group(1)))
    return modified is not None and time.time() - modified > FOREIGN_LEFTOVER_AGE_S


def remove_abandoned(
    paths: Iterable[Path], remove: Callable[[Path], object], *, dry_run: bool = False
) -> list[Path]:
    """Call ``remove`` on each of ``paths`` that is :func:`abandoned` (none with ``dry_run``); returns them.
    A path gone meanwhile (another cleaner, or its writer finishing) is passed over."""
    removed = []
    for path in paths:
        try:
            modified = path.stat().st_mtime
        except OSError:
            continue
        if abandoned(path.name, modified):
            if not dry_run:
                remove(path)
            removed.append(path)
    return removed


def pid_running(pid: int) -> bool:
    """Whether some process of this host has ``pid`` (signal 0; a process of another user counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except OverflowError:
        return False
    return True


def user_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file: 0666 less the umask.

    For files a user asked for by name (``compile -o``, ``--svg``, exported manifests), which they expect to
    share like any other; cellpipe's own data stays private (0600, what :func:`write_atomic` does by default).
    """
    with _UMASK_LOCK:  # the umask can only be read by setting it
        umask = os.umask(0o077)
        os.umask(umask)
    return 0o666 & ~umask


_UMASK_LOCK = threading.Lock()


def write_atomic(path: str | Path, data: bytes, *, durable: bool = True, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part.

    ``durable=False`` skips the fsync: still atomic if the process dies, not if the machine loses power.
    ``mode``: the file's permissions (default 0600, private); :func:`user_file_mode` for a user's file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fsync_file(path: str | Path) -> None:
    """Persist a file written and closed earlier (its data, before a rename makes it visible)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: str | Path, data: Any, *, durable: bool = True) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    write_atomic(path, text.encode(), durable=durable)


def sha256_text(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def sha256_file(path: str | Path, chunk: int = 4 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def end_with_parent(parent: int, signum: int) -> None:
    """In a child just forked from ``parent``: have the kernel send it ``signum`` when the parent's forking
    thread ends, and end now (exit 1) if the parent has already gone, which a signal set too late would
    never report. The signal is Linux's (elsewhere only the check holds)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent:
        os._exit(1)


IDLE_AUTOGROUP_NICE = 19  # a session that should get only CPU time nobody else wants (~1.5% of a busy core)


def set_autogroup_nice(pid: int, nice: int) -> bool:
    """Rank the scheduling group of process ``pid``'s session (Linux autogroups: each session shares the CPU
    equally with the other sessions, whatever the nice values inside it); False where the kernel has no
    autogroups. Any value from 0 to 19 needs no privilege. Only for a process that leads a session of its
    own: the group is its whole session's."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError:
        return False
    return True
