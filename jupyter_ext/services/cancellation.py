"""Cancelling runs from any process, part of :class:`~jupyter_ext.services.runs.RunService`.

The request is stored with the run (who asked and when). The process that runs it (a ``cellpipe run`` in a
terminal, a Jupyter server, ``cellpipe scheduler``) polls for requests to its runs every ``cancel_poll_s``
(one query for all of them, only while it runs some) and cancels the run the way Ctrl-C does. A cluster run
nobody runs here is stopped through its handle.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from jupyter_ext.errors import CellpipeError
from jupyter_ext.records.models import RunRecord

CANCEL_POLL_S = 0.5  # how often a process running runs looks for requests to cancel them
CANCEL_WAIT_S = 5.0  # how long cancel() waits for another process to stop the run


class Cancellation:
    """The cancel part of :class:`~jupyter_ext.services.runs.RunService` (uses its store, tasks and log)."""

    store: Any
    log: Any
    data_dir: Any
    cancel_poll_s: float
    _tasks: dict[str, asyncio.Task]
    _cancel_by: dict[str, dict[str, Any]]
    _finalizing: set[str]
    _watcher: asyncio.Task | None

    async def cancel(self, run_id: str, *, by: str = "", wait_s: float = CANCEL_WAIT_S) -> RunRecord:
        """Cancel a queued or running run, whichever process runs it; ``by`` says who asks (recorded).

        The request is stored with the run first (who asked and when). A run of this process is cancelled
        now and its final record returned. A run of another process is cancelled by that process when it
        next polls (within its ``cancel_poll_s``): this waits up to ``wait_s`` (without blocking the event
        loop) and returns the record as it is then, still active with ``cancel_requested`` set if the owner
        has not finished cancelling yet. A final run is returned as it is (a run whose process is gone
        reads as crashed)."""
        record = await asyncio.to_thread(self.get, run_id)
        if record.is_final:
            return record
        requested = await asyncio.to_thread(self.store.request_cancel, record.id, by or requester())
        if requested is None:
            raise CellpipeError(f"no run '{run_id}' in {self.data_dir}", hint="it was deleted meanwhile")
        if requested.is_final:
            return requested
        task = self._tasks.get(record.id)
        if task is None and requested.on_cluster:  # no process owns it: stop it on the cluster from here
            return await asyncio.to_thread(self.cancel_on_cluster, record.id)
        if task is not None and self._cancel_here(record.id, requested.cancel_requested or {}):
            await asyncio.gather(task, return_exceptions=True)
        return await self._wait_final(record.id, wait_s)

    async def _wait_final(self, run_id: str, wait_s: float) -> RunRecord:
        deadline = time.monotonic() + wait_s
        record = await asyncio.to_thread(self.get, run_id)
        while not record.is_final and time.monotonic() < deadline:
            await asyncio.sleep(min(0.1, self.cancel_poll_s))
            record = await asyncio.to_thread(self.get, run_id)
        return record

    def _cancel_here(self, run_id: str, request: dict[str, Any]) -> bool:
        """Cancel this process's task of the run, unless it is gone or already past execution."""
        task = self._tasks.get(run_id)
        if task is None or task.done() or run_id in self._finalizing or run_id in self._cancel_by:
            return False
        self._cancel_by[run_id] = request
        self.log.info("cellpipe: cancelling run %s (requested by %s)", run_id, request.get("by"))
        task.cancel()
        return True

    def _watch_cancel_requests(self) -> None:
        """Start polling for cancel requests on this event loop, unless it polls already."""
        watcher = self._watcher
        if watcher is None or watcher.done() or watcher.get_loop() is not asyncio.get_running_loop():
            self._watcher = asyncio.ensure_future(self._poll_cancel_requests())

    async def _poll_cancel_requests(self) -> None:
        """While this process runs runs: every ``cancel_poll_s``, one query for requests to cancel any."""
        while self._tasks:
            await asyncio.sleep(self.cancel_poll_s)
            watched = [i for i in self._tasks if i not in self._cancel_by and i not in self._finalizing]
            if not watched:
                continue
            try:
                requests = await asyncio.to_thread(self.store.cancel_requests, watched)
            except Exception as exc:  # a busy or vanished database: the next poll tries again
                self.log.warning("cellpipe: could not read cancel requests: %s", exc)
                continue
            for run_id, request in requests.items():
                self._cancel_here(run_id, request)


def requester(source: str = "cellpipe runs cancel", user: str | None = None) -> str:
    """Who asks, as a cancel request records it: the user's name (this process's user unless given) and
    where from; no host or pid."""
    if user is None:
        import getpass

        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # a container user without a passwd entry
            user = f"uid {os.getuid()}"
    return f"{user} ({source})"
