"""Start a Jupyter kernel and execute a notebook in it.

nbclient does the cell-by-cell work; starting the kernel and the surrounding loop are ours so that a
caller can hand in a kernel started ahead of time (the local runner's warm pool), and so that Ctrl-C
reaches the runner as a cancellation: nbclient's own SIGINT handler would instead kill the kernel and
make the step look failed.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_ext.util import open_private, private_dir, remove_abandoned, writer_tag

# Kernels started concurrently must not share IPython's sqlite history file (it locks).
KERNEL_ARGS = ["--HistoryManager.hist_file=:memory:"]
CONNECTION_PREFIX = "kernel-cellpipe-"


@dataclass(eq=False)
class Kernel:
    km: Any  # jupyter_client AsyncKernelManager
    client: Any  # its AsyncKernelClient, channels started and ready

    async def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.client.stop_channels()
        with contextlib.suppress(Exception):
            if await self.km.is_alive():
                await self.km.shutdown_kernel(now=True)


async def start_kernel(
    kernel_name: str, cwd: str | Path, *, warmup: str = "", log: str | Path | None = None
) -> Kernel:
    """Start a kernel in ``cwd`` and wait until it answers; run ``warmup`` code silently (errors ignored).

    Kernel stdout/stderr (start-up chatter) go to ``log``, or nowhere: never to the user's terminal.
    """
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name=kernel_name, connection_file=str(new_connection_file()))
    client = None
    try:
        await km.start_kernel(cwd=str(cwd), extra_arguments=list(KERNEL_ARGS), **_streams(log))
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        if warmup:
            with contextlib.suppress(Exception):
                await client.execute_interactive(warmup, silent=True, store_history=False, timeout=120)
    except BaseException:  # failed or cancelled mid-start: the process may exist already
        if client is not None:
            client.stop_channels()
        with contextlib.suppress(Exception):
            if km.has_kernel:
                await km.shutdown_kernel(now=True)
        raise
    return Kernel(km, client)


def connection_directory() -> Path:
    """Where our kernels' connection files go: Jupyter's runtime directory (per user, 0700), not the
    shared temporary directory jupyter_client would pick."""
    from jupyter_core.paths import jupyter_runtime_dir

    return private_dir(jupyter_runtime_dir())


def new_connection_file() -> Path:
    """A connection file name that says which process it belongs to, for :func:`clean_connection_files`."""
    return connection_directory() / f"{CONNECTION_PREFIX}{writer_tag()}{uuid.uuid4().hex}.json"


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
    info = await client.async_wait_for_reply(client.kc.kernel_info())
    if info is not None and "language_info" in info["content"]:
        client.nb.metadata["language_info"] = info["content"]["language_info"]
    for index, cell in enumerate(client.nb.cells):
        await client.async_execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
    client.set_widgets_metadata()
