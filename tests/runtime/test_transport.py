"""Local kernels listen on Unix sockets in a private directory of their own, never on loopback TCP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from jupyter_ext.runtime import transport
from jupyter_ext.runtime.kernel import start_kernel
from jupyter_ext.runtime.kernel_fork import KernelForkServer
from tests.support.process_sockets import process_sockets

LISTEN = "0A"  # the state /proc/net/tcp gives a listening socket


@contextlib.asynccontextmanager
async def running_kernel(cwd: Path, *, forked: bool = False, log: Path | None = None):
    """A started kernel, forked from a fork server of its own or spawned; stopped (and the server) on exit."""
    forker = KernelForkServer(log=log) if forked else None
    try:
        kernel = await start_kernel("python3", cwd, log=log, forker=forker)
        try:
            yield kernel
        finally:
            await kernel.shutdown()
    finally:
        if forker is not None:
            await asyncio.to_thread(forker.close)


async def _inspect(kernel) -> dict:
    """The kernel's sockets (seen from outside) and whether it runs code, before it is stopped."""
    reply = await kernel.client.execute_interactive("x = 6 * 7", timeout=60)
    return {**process_sockets(kernel.km.provisioner.pid), "status": reply["content"]["status"]}


@pytest.mark.slow
@pytest.mark.parametrize("forked", [False, True], ids=["spawned", "forked"])
def test_a_kernel_listens_only_on_unix_sockets_in_its_own_private_directory(tmp_path, forked):
    log = tmp_path / "kernels.log"

    async def scenario():
        async with running_kernel(tmp_path, forked=forked, log=log) as kernel:
            return kernel.socket_dir, os.stat(kernel.socket_dir), await _inspect(kernel)

    directory, info, seen = asyncio.run(scenario())
    assert seen["status"] == "ok"
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (os.getuid(), 0o700)
    assert seen["tcp"] == []
    bound = {Path(path).parent for path in seen["unix"] if path.startswith("/")}
    assert bound == {directory}  # shell, iopub, stdin, control, heartbeat: all in there
    assert not directory.exists()  # removed with the kernel
    assert "without encryption" not in log.read_text()  # ipykernel's TCP warning


@pytest.mark.slow
def test_where_ipc_is_impossible_kernels_use_loopback_tcp(tmp_path, monkeypatch, caplog):
    """The fallback, and proof that the socket check above sees TCP listeners when there are some."""
    monkeypatch.setattr(transport, "candidate_bases", lambda: [])
    transport._warn_tcp.cache_clear()
    log = tmp_path / "kernels.log"

    async def scenario():
        async with running_kernel(tmp_path, log=log) as kernel:
            return kernel.socket_dir, await _inspect(kernel)

    directory, seen = asyncio.run(scenario())
    assert directory is None and seen["status"] == "ok"
    # the five channels and ipykernel's pipe for subprocess output
    assert len([entry for entry in seen["tcp"] if entry.startswith(LISTEN)]) == 6
    assert "kernels listen on loopback TCP" in caplog.text
    assert "without encryption" in log.read_text()
    transport._warn_tcp.cache_clear()


def _short_private_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="xdg-", dir="/tmp"))  # 0700, like /run/user/UID


def test_socket_directories_go_to_the_private_runtime_dir_when_it_is_short_enough(monkeypatch):
    runtime = _short_private_dir()
    try:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
        directory = transport.new_socket_dir()
        # (with a hostname near 64 characters, the pid@host name fits only under /tmp)
        expected = runtime if transport.fits(str(runtime)) else Path(transport.candidate_bases()[1])
        assert directory is not None and directory.parent == expected
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert directory.name.startswith(f"{transport.SOCKET_DIR_PREFIX}{os.getpid()}@")
        transport.remove_socket_dir(directory)
        assert not directory.exists()

        runtime.chmod(0o755)  # not what the XDG spec promises: not trusted
        assert str(runtime) not in transport.candidate_bases()
    finally:
        runtime.rmdir()


@pytest.mark.slow
def test_a_very_long_data_dir_and_runtime_dir_still_give_sockets_that_fit(tmp_path, monkeypatch):
    """Jupyter's runtime dir (connection files), $XDG_RUNTIME_DIR and $TMPDIR all far beyond the 107 bytes of
    a Unix socket path: the kernel's sockets go where they fit, and it runs."""
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 6)
    deep.mkdir(parents=True, mode=0o700)
    assert len(str(deep)) > 150
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(deep / "data"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(deep / "data" / "runtime"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(deep))
    monkeypatch.setattr(tempfile, "tempdir", str(deep))

    async def scenario():
        async with running_kernel(tmp_path) as kernel:
            return kernel.socket_dir, Path(kernel.km.connection_file), await _inspect(kernel)

    directory, connection_file, seen = asyncio.run(scenario())
    assert (
        connection_file.parent == deep / "data" / "runtime"
    )  # connection files stay where Jupyter keeps them
    assert directory is not None and directory.parent == Path("/tmp")
    assert seen["status"] == "ok" and seen["tcp"] == []
    assert max(len(path.encode()) for path in seen["unix"]) <= transport.MAX_SOCKET_PATH


def test_leftovers_of_killed_processes_are_removed_and_nothing_else(monkeypatch):
    base = _short_private_dir()
    monkeypatch.setattr(transport, "candidate_bases", lambda: [str(base)])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        killed = base / f"{transport.SOCKET_DIR_PREFIX}{dead.pid}@{socket.gethostname()}~abcdefgh"
        killed.mkdir(mode=0o700)
        (killed / "k-1").touch()  # a socket its SIGKILLed kernel never removed
        live = transport.new_socket_dir()
        elsewhere = _short_private_dir()  # a link to another directory, named like a leftover
        link = base / f"{transport.SOCKET_DIR_PREFIX}{dead.pid}@{socket.gethostname()}~linklink"
        link.symlink_to(elsewhere)

        assert transport.clean_socket_dirs(dry_run=True) == [killed]
        assert killed.exists()
        assert transport.clean_socket_dirs() == [killed]
        assert not killed.exists()
        assert live is not None and live.is_dir() and elsewhere.is_dir()
        elsewhere.rmdir()
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=True)


FORKED_CHILD_PRINTS = """
import multiprocessing, os
def child():
    print("from the child", os.getpid() != parent)
parent = os.getpid()
process = multiprocessing.get_context("fork").Process(target=child)
process.start()
process.join()
"""


def _streams(messages: list[dict]) -> str:
    return "".join(m["content"]["text"] for m in messages if m["header"]["msg_type"] == "stream")


@pytest.mark.slow
@pytest.mark.parametrize("forked", [False, True], ids=["spawned", "forked"])
def test_output_of_the_kernels_forked_subprocesses_arrives_through_its_private_pipe(tmp_path, forked):
    """ipykernel pipes a forked subprocess's output to the kernel (a loopback TCP port of its own): with
    IPC it is a socket in the kernel's directory, and the output still reaches the client."""

    async def scenario():
        async with running_kernel(tmp_path, forked=forked) as kernel:
            outputs = []
            await kernel.client.execute_interactive(
                FORKED_CHILD_PRINTS, output_hook=outputs.append, timeout=60
            )
            while "from the child" not in _streams(outputs):  # the pipe's message may come after idle
                outputs.append(await kernel.client.get_iopub_msg(timeout=30))
            pipe = kernel.socket_dir / f"{transport.SOCKET_NAME}-pipe"
            return outputs, pipe.is_socket(), process_sockets(kernel.km.provisioner.pid)["tcp"]

    outputs, pipe_is_socket, tcp = asyncio.run(scenario())
    assert "from the child True" in _streams(outputs)
    assert pipe_is_socket and tcp == []
