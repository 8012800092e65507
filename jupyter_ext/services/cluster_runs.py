"""Cluster runs (Kubernetes Job, KFP run) in the run service: once the Job / KFP run exists, the cluster owns
the run. The record holds its handle; any process reading it refreshes it from the cluster (throttled, the
time kept in the record so processes share it) and the first to see it ended finalizes it, once, through the
store's update transaction (status, steps, hooks, tracking). Part of :class:`~jupyter_ext.services.runs.RunService`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import fields
from typing import Any

from jupyter_ext.errors import CellpipeError
from jupyter_ext.records.models import RunRecord, RunStatus, StepStatus, TrackingStatus
from jupyter_ext.targets.base import Listener
from jupyter_ext.targets.registry import get_target

REFRESH_THREADS = 4  # cluster runs of one listed page asked about at once


class ClusterRuns:
    """The cluster-run part of :class:`~jupyter_ext.services.runs.RunService` (uses its store, log, hooks)."""

    refresh_seconds: float = 3.0  # an active cluster run is asked about at most this often when read
    store: Any
    log: Any
    background_tracking: bool
    _leaving: bool
    _refresh_locks: dict[str, threading.Lock]

    async def follow(
        self, record: RunRecord, listener: Listener | None = None, *, cancel_on_interrupt: bool = False,
        poll: float | None = None,
    ) -> RunRecord:  # fmt: skip
        """Follow a cluster run until it ends, refreshing ``record`` (in place) from the cluster; returns it.
        Interrupted (Ctrl-C, task cancelled): stops the run on the cluster if ``cancel_on_interrupt``, else
        leaves it running; re-raises either way."""
        listener = listener or (lambda event, step, rec: None)
        interval = get_target(record.target).poll_seconds if poll is None else poll
        try:
            while True:
                _assign(record, await asyncio.to_thread(self.refresh, record, force=True))
                if record.is_final:
                    listener("finished", "", record)
                    return record
                listener("progress", "", record)
                await asyncio.sleep(interval)
        except (asyncio.CancelledError, KeyboardInterrupt):
            if cancel_on_interrupt and not self._leaving:
                _assign(record, await asyncio.shield(asyncio.to_thread(self.cancel_on_cluster, record.id)))
            raise

    def refresh(self, record: RunRecord, *, force: bool = False) -> RunRecord:
        """A cluster run's record as the cluster says it is now; any other record as it is.

        At most once per :attr:`refresh_seconds` per run unless ``force`` (the time is in the record, so
        processes sharing the store share the throttle). When the cluster says the run ended it is finalized
        (steps, status, hooks, tracking) exactly once, whichever process or thread reads it first. A cluster
        that cannot be reached leaves the record as it was, with ``refresh_error`` saying why."""
        if not (self._refresh_due(record) or (force and record.on_cluster and not record.is_final)):
            return record
        lock = self._refresh_locks.setdefault(record.id, threading.Lock())
        if not lock.acquire(blocking=False):  # another thread of this process is asking right now
            return record
        try:
            seen = RunRecord.from_dict(record.to_dict())
            try:
                outcome = get_target(record.target).poll(seen)
            except CellpipeError as exc:
                return self._settle(record.id, seen, None, refresh_error=str(exc)) or record
            except Exception as exc:  # a client library's own error: the run is not ours to fail
                self.log.warning("cellpipe: asking the cluster about run %s failed", record.id, exc_info=True)
                return (
                    self._settle(record.id, seen, None, refresh_error=f"{type(exc).__name__}: {exc}")
                    or record
                )
            return self._settle(record.id, seen, outcome) or seen
        finally:
            lock.release()

    def _refresh_due(self, record: RunRecord) -> bool:
        """An active cluster run not asked about for :attr:`refresh_seconds`."""
        if not record.on_cluster or record.is_final:
            return False
        return not record.refreshed or time.time() - record.refreshed >= self.refresh_seconds

    def _refresh_many(self, records: list[RunRecord]) -> dict[str, RunRecord]:
        """Refresh the runs that are due, a few at a time (each waits on the cluster); id -> changed record."""
        due = [record for record in records if self._refresh_due(record)]
        if len(due) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(
                min(REFRESH_THREADS, len(due)), thread_name_prefix="cellpipe-refresh"
            ) as pool:
                fresh = list(pool.map(self.refresh, due))
        else:
            fresh = [self.refresh(record) for record in due]
        return {old.id: new for old, new in zip(due, fresh, strict=True) if new is not old}

    def follow_cluster_runs(self, limit: int = 500) -> list[str]:
        """Refresh every active cluster run of this store that is due (what a long-lived process, the Jupyter
        server, does now and then, so that runs nobody reads still end: hooks, tracking); the ids that
        turned final."""
        runs, _ = self.store.list_stored_runs(status=RunStatus.RUNNING.value, limit=limit)
        active = [run.record() for run in runs]
        fresh = self._refresh_many([record for record in active if record.on_cluster])
        return [run_id for run_id, record in fresh.items() if record.is_final]

    def cancel_on_cluster(self, run_id: str) -> RunRecord:
        """Stop a cluster run through its handle (from any process); the record turns cancelled. A cluster
        that cannot be reached raises CellpipeError and leaves the run as it is."""
        record = self.store.get_run(run_id)
        if record.is_final or not record.on_cluster:
            return record
        get_target(record.target).cancel(record)
        seen = RunRecord.from_dict(record.to_dict())
        for step in seen.steps:
            if step.status is StepStatus.RUNNING:
                step.status = StepStatus.CANCELLED
            elif step.status is StepStatus.PENDING:
                step.status, step.reason = StepStatus.NOT_RUN, "the run was stopped before it started"
        return self._settle(record.id, seen, RunStatus.CANCELLED) or seen

    def _settle(
        self, run_id: str, seen: RunRecord, outcome: RunStatus | None, *, refresh_error: str | None = None
    ) -> RunRecord | None:
        """Write what the cluster said into the stored record, in one transaction; the caller whose write
        turns it final runs the end of the lifecycle (tracking, hooks), nobody else. None: it was deleted."""
        concluded = False

        def change(current: RunRecord) -> bool | None:
            nonlocal concluded
            if current.is_final:  # someone else finalized it meanwhile
                return False
            current.refreshed, current.refresh_error = time.time(), refresh_error
            if refresh_error:
                return None
            current.steps, current.metrics, current.links = seen.steps, seen.metrics, seen.links
            current.error = seen.error or current.error
            if outcome is not None:
                current.end(outcome)
                concluded = True
            return None

        current = self.store.update_run(run_id, change)
        if concluded and current is not None:
            self._refresh_locks.pop(run_id, None)
            if current.tracking.status is TrackingStatus.PENDING and self.background_tracking:
                self.ensure_tracking_worker()  # it finishes the MLflow run now that the record is final
            (self.on_complete if current.status is RunStatus.SUCCEEDED else self.on_failure)(current)
        return current


def _assign(record: RunRecord, fresh: RunRecord) -> None:
    """Make ``record`` (an object callers hold) what ``fresh`` says."""
    if fresh is not record:
        for item in fields(RunRecord):
            setattr(record, item.name, getattr(fresh, item.name))
