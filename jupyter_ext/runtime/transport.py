"""Where a local kernel listens: Unix sockets in a directory only its user can enter, not loopback TCP.

On loopback TCP any local user can connect to a kernel's ports (the connection key still guards the
shell), jupyter_client picks free ports before the kernel binds them (a process starting kernels at the
same moment can take one first), and ipykernel warns about unencrypted TCP in every kernel's log. With
ZeroMQ's IPC transport the five channels are sockets in a new 0700 directory per kernel: nobody else can
reach them, nothing can take their names, and a message costs a little less.

A socket's path must fit ``sockaddr_un`` (107 bytes on Linux, 103 on macOS), whatever the user's home or
Jupyter data directory is: the directory goes in ``$XDG_RUNTIME_DIR`` (per user, 0700, a tmpfs) when that
is usable and short enough, else in the temporary directory, else in ``/tmp``. Its name carries the
starting process's :func:`~jupyter_ext.util.writer_tag`, so that :func:`clean_socket_dirs` can remove the
directories of a killed process. Only where no such directory can be made, or ZeroMQ was built without
IPC (Windows before 10), do kernels listen on loopback TCP, and the log says so once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import socket
import stat
import sys
import tempfile
from pathlib import Path

from jupyter_ext.runtime.kernel_launcher import PIPE_SUFFIX
from jupyter_ext.util import remove_abandoned, writer_tag

SOCKET_DIR_PREFIX = "cellpipe-ipc-"
SOCKET_NAME = "k"  # jupyter_client names a channel's socket "<ip>-<N>", N = 1..5 in a new directory
LONGEST_SUFFIX = f"/{SOCKET_NAME}{PIPE_SUFFIX}"  # the longest socket name in it: the subprocess pipe's
MAX_SOCKET_PATH = 103 if sys.platform == "darwin" else 107  # sizeof(sun_path) less the terminating NUL

log = logging.getLogger(__name__)


def new_socket_dir() -> Path | None:
    """A new private directory for one kernel's sockets, or None where kernels must use TCP."""
    if not ipc_supported():
        _warn_tcp("this ZeroMQ has no IPC transport")
        return None
    for base in filter(fits, candidate_bases()):
        with contextlib.suppress(OSError):  # mkdtemp creates it 0700, failing rather than reusing one
            return Path(tempfile.mkdtemp(prefix=f"{SOCKET_DIR_PREFIX}{writer_tag()}", dir=base))
    _warn_tcp(f"no writable directory with a path short enough for a Unix socket among {candidate_bases()}")
    return None


def fits(base: str) -> bool:
    """Whether the sockets of a directory made in ``base`` fit ``sockaddr_un`` (mkdtemp adds 8 characters)."""
    name = f"{SOCKET_DIR_PREFIX}{writer_tag()}{'x' * 8}{LONGEST_SUFFIX}"
    return len(os.path.join(base, name).encode()) <= MAX_SOCKET_PATH


def socket_prefix(directory: Path) -> str:
    """The ``ip`` a kernel manager takes for the IPC transport: its sockets are ``<ip>-<N>``."""
    return str(directory / SOCKET_NAME)


def remove_socket_dir(directory: Path | None) -> None:
    """Remove a kernel's socket directory and whatever its (killed) kernel left in it."""
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def candidate_bases() -> list[str]:
    """Where socket directories may go, best first: ``$XDG_RUNTIME_DIR`` when it is the user's own private
    directory (as the XDG spec requires; anything else is not trusted), the temporary directory, ``/tmp``."""
    bases = []
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime) and _private_to_me(runtime):
        bases.append(runtime)
    for base in (tempfile.gettempdir(), "/tmp"):
        if base not in bases and os.path.isdir(base):
            bases.append(base)
    return bases


def clean_socket_dirs(*, dry_run: bool = False) -> list[Path]:
    """Remove this user's socket directories whose process was killed (their kernels died with it)."""
    if not ipc_supported():
        return []
    mine = [
        path
        for base in candidate_bases()
        for path in Path(base).glob(f"{SOCKET_DIR_PREFIX}*")
        if _private_to_me(path)  # another user's are not ours to judge (nor could we remove them)
    ]
    return remove_abandoned(mine, remove_socket_dir, dry_run=dry_run)


@functools.cache
def ipc_supported() -> bool:
    import zmq

    return os.name == "posix" and hasattr(socket, "AF_UNIX") and bool(zmq.has("ipc"))


def _private_to_me(path: str | Path) -> bool:
    """A real directory (not a link), owned by this user, that nobody else can enter."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


@functools.cache  # once per process: every kernel start would repeat it
def _warn_tcp(reason: str) -> None:
    log.warning("cellpipe: kernels listen on loopback TCP, not on private Unix sockets: %s", reason)
