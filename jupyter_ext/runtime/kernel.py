"""Start a Jupyter kernel and execute a notebook in it.

nbclient does the cell-by-cell work; starting the kernel and the surrounding loop are ours so that a
caller can hand in a kernel started ahead of time (the local runner's warm pool), and so that Ctrl-C
reaches the runner as a cancellation: nbclient's own SIGINT handler would instead kill the kernel and
make the step look failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_ext.runtime.kernel_fork import ForkedProcess, KernelForkServer, forkable, native
from jupyter_ext.runtime.kernel_launcher import launcher_command
from jupyter_ext.runtime.transport import clean_socket_dirs, new_socket_dir, remove_socket_dir, socket_prefix
from jupyter_ext.util import open_private, private_dir, remove_abandoned, writer_unique_name

# Kernels started concurrently must not share IPython's sqlite history file (it locks).
KERNEL_ARGS = ["--HistoryManager.hist_file=:memory:"]
CONNECTION_PREFIX = "kernel-cellpipe-"
START_ATTEMPTS = 3  # a kernel that dies at start-up (on TCP: a port taken meanwhile) is started again
READY_RETRY_S = 0.1  # kernel_info is sent again this often until IOPub has delivered one of its messages


@dataclass(eq=False)
class Kernel:
    km: Any  # jupyter_client AsyncKernelManager
    client: Any  # its AsyncKernelClient, channels started and ready
    info: dict = field(default_factory=dict)  # its kernel_info_reply's content (language_info, ...)

    @property
    def socket_dir(self) -> Path | None:
        """Its private directory of IPC sockets (None: it listens on TCP)."""
        return getattr(self.km, "socket_dir", None)

    async def shutdown(self) -> None:
        """Stop the kernel now (SIGKILL to its process group, as ``shutdown_kernel(now=True)`` does) and
        wait for its exit without jupyter_client's 0.1 s polling: the last step's kernel is stopped on the
        run's critical path."""
        with contextlib.suppress(Exception):
            self.client.stop_channels()
        with contextlib.suppress(Exception):
            await kill_and_wait(self.km.provisioner)
        with contextlib.suppress(Exception):
            await self.km.shutdown_kernel(now=True)  # finds it gone at once; removes the connection file
        remove_socket_dir(self.socket_dir)


async def kill_and_wait(provisioner: Any, timeout: float = 5.0) -> None:
    """SIGKILL a kernel's process group and wait until its process has exited (a pidfd, no polling)."""
    process = getattr(provisioner, "process", None)
    if process is None or process.poll() is not None or not hasattr(os, "pidfd_open"):
        return  # without pidfds (not Linux) jupyter_client's own shutdown does it
    try:
        descriptor = os.pidfd_open(process.pid)  # before the signal: the pid cannot be reused meanwhile
    except ProcessLookupError:
        return
    try:
        try:
            os.killpg(provisioner.pgid or process.pid, signal.SIGKILL)
        except OSError:
            process.kill()
        loop = asyncio.get_running_loop()
        exited = loop.create_future()
        loop.add_reader(descriptor, lambda: exited.done() or exited.set_result(None))
        try:
            await asyncio.wait_for(exited, timeout)
        finally:
            loop.remove_reader(descriptor)
        process.poll()  # reap it
    finally:
        os.close(descriptor)


async def start_kernel(
    kernel_name: str, cwd: str | Path, *, warmup: str = "", log: str | Path | None = None,
    forker: KernelForkServer | None = None,
) -> Kernel:  # fmt: skip
    """Start a kernel in ``cwd`` and wait until it answers; run ``warmup`` code silently (errors ignored).

    Kernel stdout/stderr (start-up chatter) go to ``log``, or nowhere: never to the user's terminal.
    The kernel listens on Unix sockets in a directory of its own (:mod:`.transport`), not on TCP ports.
    With ``forker``, the native Python kernel is forked from it (:mod:`.kernel_fork`; a fraction of the CPU).
    """
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            return await _start_once(kernel_name, cwd, warmup=warmup, log=log, forker=forker)
        except RuntimeError as exc:
            # On TCP (where IPC is impossible) jupyter_client picks the kernel's ports before the kernel binds
            # them: another process starting a kernel at the same moment can take one first, and this kernel
            # dies at start-up. It has run no code yet, so a new kernel with new ports is the same fresh kernel.
            if "died before replying" not in str(exc) or attempt == START_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def _start_once(
    kernel_name: str, cwd: str | Path, *, warmup: str, log: str | Path | None, forker: KernelForkServer | None
) -> Kernel:
    km = kernel_manager_class()(kernel_name=kernel_name, connection_file=str(new_connection_file()))
    km.forker = forker
    client = None
    try:
        await km.start_kernel(cwd=str(cwd), extra_arguments=list(KERNEL_ARGS), **_streams(log))
        client = km.client()
        # No heartbeat channel: whether the kernel lives is asked of its manager (the process), and the
        # heartbeat's thread, stopped before it got going (a kernel that died at once), runs on creating
        # sockets until ZMQ has none left ("Too many open files", and a second per start lost).
        client.start_channels(hb=False)
        info = await wait_until_ready(client, timeout=60)
        await warm_up(client, warmup)
    except BaseException:  # failed or cancelled mid-start: the process may exist already
        if client is not None:
            client.stop_channels()
        with contextlib.suppress(Exception):
            if km.has_kernel:
                await km.shutdown_kernel(now=True)
        remove_socket_dir(km.socket_dir)  # also where the kernel never started
        raise
    return Kernel(km, client, info)


async def warm_up(client: Any, code: str) -> None:
    """Run ``code`` (the prelude's imports) silently in a started kernel; errors are the step's to show:
    its prelude runs the same lines again."""
    if code:
        with contextlib.suppress(Exception):
            await client.execute_interactive(code, silent=True, store_history=False, timeout=120)


async def wait_until_ready(client: Any, timeout: float = 60.0) -> dict:
    """Wait until a new kernel answers ``kernel_info`` on its shell channel and its IOPub channel is
    connected; returns the reply's content.

    jupyter_client's ``wait_for_ready`` checks the same, but sleeps where it need not: it ends with a
    0.2 s wait for IOPub to stay silent (every kernel start paid it; the later readers skip messages that
    are not theirs anyway), and waits 0.2 s more whenever IOPub is not connected yet. Here both channels
    are polled together; ``kernel_info`` is sent again every ``READY_RETRY_S`` because the kernel's IOPub
    publications are dropped until the subscription has arrived, and any message of any of these requests
    on IOPub proves the subscription.
    """
    import zmq
    import zmq.asyncio

    shell, iopub = client.shell_channel, client.iopub_channel
    poller = zmq.asyncio.Poller()
    poller.register(shell.socket, zmq.POLLIN)
    poller.register(iopub.socket, zmq.POLLIN)
    deadline = time.monotonic() + timeout
    sent: set[str] = set()
    reply: dict | None = None
    heard = False
    retry_at = 0.0
    while reply is None or not heard:
        now = time.monotonic()
        if now >= retry_at:
            if not await client.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if now > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")
            sent.add(client.kernel_info())
            retry_at = now + READY_RETRY_S
        events = dict(await poller.poll(max(1, int((retry_at - now) * 1000))))
        if shell.socket in events:
            message = await shell.get_msg(timeout=0)
            if message["parent_header"].get("msg_id") in sent and message["msg_type"] == "kernel_info_reply":
                reply = message
        if iopub.socket in events:
            message = await iopub.get_msg(timeout=0)
            heard = heard or message["parent_header"].get("msg_id") in sent
    client._handle_kernel_info_reply(reply)  # adapts to the kernel's protocol version, as wait_for_ready does
    return reply["content"]


_shared_context: tuple[int, Any] | None = None  # (pid, context): see shared_zmq_context
_shared_context_lock = threading.Lock()  # runs start kernels from several threads (the server's)


def shared_zmq_context() -> Any:
    """The one asyncio ZMQ context of this process's kernel managers and clients, held while it runs.

    jupyter_client gives every manager and client a context of its own, terminated when garbage-collected.
    A client left open (a test failing mid-run, an abandoned run) becomes cyclic garbage together with its
    sockets, and the collector may finalize the context first: its ``term()`` then waits for sockets that are
    never closed, and the process hangs (pytest did, in its final ``gc.collect()``). A context that lives as
    long as the process is never terminated by the collector; a forgotten socket is closed when collected,
    and the exit does not wait for it. Closing (``stop_channels``, ``shutdown``) is unchanged: sockets close
    with linger 0 and the kernel's control socket at shutdown."""
    import zmq.asyncio

    global _shared_context
    with _shared_context_lock:
        if _shared_context is None or _shared_context[0] != os.getpid():  # a forked child makes its own
            _shared_context = (os.getpid(), zmq.asyncio.Context())
        return _shared_context[1]


@functools.cache
def kernel_manager_class() -> type:
    """The kernel manager of every kernel cellpipe starts locally (also papermill's, for plain notebooks)."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class CellpipeKernelManager(AsyncKernelManager):
        """Its kernel listens on IPC sockets in a private directory of its own (:mod:`.transport`), made
        with the manager and removed when the kernel is shut down, unless a ``transport`` is given.

        Launches this interpreter's own ipykernel (jupyter_client's documented override point) through
        the fork server when there is one that works, else through :mod:`.kernel_launcher` when it listens
        on IPC (its subprocess pipe too); any other kernel the usual way."""

        forker: KernelForkServer | None = None

        @default("context")
        def _context_default(self) -> Any:
            return shared_zmq_context()  # not "created" here: shutting a kernel down leaves it to the others

        def client(self, **kwargs: Any) -> Any:
            kwargs.setdefault("context", self.context)  # the client's sockets too (see shared_zmq_context)
            return super().client(**kwargs)

        def __init__(self, **kwargs: Any) -> None:
            self.socket_dir = None if "transport" in kwargs else new_socket_dir()
            if self.socket_dir is not None:
                kwargs.update(transport="ipc", ip=socket_prefix(self.socket_dir))
            super().__init__(**kwargs)

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart:
                remove_socket_dir(self.socket_dir)

        cleanup_resources = _async_cleanup_resources  # as AsyncKernelManager aliases jupyter_client's

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            if not native(kernel_cmd):
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            if self.forker is not None and self.forker.usable and forkable(kernel_cmd):
                with contextlib.suppress(OSError):
                    return await self._fork(kernel_cmd, **kw)
            if self.transport == "ipc":
                kernel_cmd = launcher_command(kernel_cmd)
            return await super()._async_launch_kernel(kernel_cmd, **kw)

        async def _fork(self, kernel_cmd: list[str], **kw: Any) -> None:
            assert self.forker is not None
            output = kw.get("stdout")
            pid = await asyncio.to_thread(
                self.forker.fork, kernel_cmd[3:], cwd=str(kw.get("cwd") or os.getcwd()),
                env=dict(kw.get("env") or os.environ), output=output.fileno() if hasattr(output, "fileno") else None,
            )  # fmt: skip
            provisioner = self.provisioner
            provisioner.process = ForkedProcess(pid)
            provisioner.pid = provisioner.pgid = pid  # the child made itself a session leader
            provisioner.cwd = kw.get("cwd")
            self._reconcile_connection_info(provisioner.connection_info)

    return CellpipeKernelManager


def connection_directory() -> Path:
    """Where our kernels' connection files go: Jupyter's runtime directory (per user, 0700), not the
    shared temporary directory jupyter_client would pick."""
    from jupyter_core.paths import jupyter_runtime_dir

    return private_dir(jupyter_runtime_dir())


def new_connection_file() -> Path:
    """A connection file name that says which process it belongs to, for :func:`clean_connection_files`."""
    return connection_directory() / f"{writer_unique_name(CONNECTION_PREFIX)}.json"


def clean_kernel_leftovers(*, dry_run: bool = False) -> list[Path]:
    """Remove what the kernels of a killed runner left: connection files and socket directories."""
    return clean_connection_files(dry_run=dry_run) + clean_socket_dirs(dry_run=dry_run)


def clean_connection_files(*, dry_run: bool = False) -> list[Path]:
    """Remove connection files (ports and the signing key) of our kernels whose runner was killed."""
    paths = connection_directory().glob(f"{CONNECTION_PREFIX}*.json")
    return remove_abandoned(paths, lambda path: path.unlink(missing_ok=True), dry_run=dry_run)


def _streams(log: str | Path | None) -> dict:
    if log is None:
        return {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    private_dir(Path(log).parent)
    stream = open_private(log, "ab")  # the kernel process owns it from here; a log may show data
    return {"stdout": stream, "stderr": stream}


async def execute_cells(client: Any, kernel: Kernel) -> None:
    """Run every cell of ``client.nb`` (an nbclient ``NotebookClient``) in ``kernel``, in order."""
    client.km = kernel.km
    client.kc = kernel.client
    client.kc.allow_stdin = False
    client.reset_execution_trackers()
    info = kernel.info  # the kernel's start asked already
    if "language_info" not in info:
        reply = await client.async_wait_for_reply(client.kc.kernel_info())
        info = reply["content"] if reply is not None else {}
    if "language_info" in info:
        client.nb.metadata["language_info"] = info["language_info"]
    for index, cell in enumerate(client.nb.cells):
        await client.async_execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
    client.set_widgets_metadata()
