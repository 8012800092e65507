"""The run service: the one lifecycle every run goes through, whoever starts it and wherever it runs.

    validate -> snapshot -> create the record -> execute on the target -> track -> finalize

The CLI (``cellpipe run``/``rerun``), the Jupyter server, the scheduler and the Job pod all call
:class:`RunService`; nothing else writes run records. Hooks around execution, as in jupyter-scheduler's
execution manager: :meth:`RunService.before_start`, :meth:`RunService.on_failure`,
:meth:`RunService.on_complete` (override them, or pass ``hooks`` objects with the same methods).

- Everything that can fail on user input (notebook, parameters, kernel, snapshot) fails in :meth:`prepare`,
  before a record exists, as a :class:`~jupyter_ext.errors.CellpipeError`.
- Tracking is off the critical path: the data directory's warm tracking worker
  (:mod:`jupyter_ext.tracking.background`, started when a tracked run is prepared if none runs) creates the
  run's MLflow run while it executes and writes the ids and link into the record; the final record carries
  them (a run that ends within moments waits up to ``tracking_wait_s`` for a warm worker), and the worker then
  logs the rest and turns tracking ``ok`` or ``failed`` (saying why). Saves keep what the worker wrote.
  ``background_tracking=False`` (a Job pod, whose container ends with its main process) tracks before the
  status turns final. A tracking failure never changes a run's status or raises.
- Background runs (:meth:`submit`) wait in ``queued`` beyond ``max_concurrent_runs``.
- A Kubernetes Job / KFP run belongs to the cluster once it exists (:mod:`.cluster_runs`): reads refresh it,
  the first reader to see it ended finalizes it.
- Any process can cancel any run (:meth:`cancel`, :mod:`.cancellation`): the request is stored with the run, and the process that
  runs it (a ``cellpipe run`` in a terminal, a Jupyter server, ``cellpipe scheduler``) polls for requests to
  its runs every ``cancel_poll_s`` (one query for all of them, only while it runs some) and cancels the run
  the way Ctrl-C does: kernels shut down, the record and its unfinished steps say ``cancelled``, the
  ``on_failure`` hooks run.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_ext.errors import CellpipeError, NotebookError, SnapshotError
from jupyter_ext.pipeline.model import Pipeline
from jupyter_ext.records.models import (
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    Tracking,
    TrackingStatus,
    new_run_id,
)
from jupyter_ext.records.owner import current_owner
from jupyter_ext.records.store import RecordStore, StoredRun
from jupyter_ext.services.cancellation import CANCEL_POLL_S, Cancellation
from jupyter_ext.services.cluster_runs import ClusterRuns
from jupyter_ext.targets.base import ExecutionContext, Listener
from jupyter_ext.targets.registry import get_target, options_for
from jupyter_ext.util import private_dir


@dataclass
class RunRequest:
    notebook: Path  # absolute path
    content: bytes | None = None  # unsaved content from the UI
    parameters: dict[str, Any] | list[str] | None = None  # typed values, or CLI "NAME=VALUE" strings
    target: str = "local"  # "local" | "job" | "kfp"
    target_options: Any = None  # LocalOptions | JobOptions | KfpOptions (or a dict of their fields)
    use_cache: bool = True
    track: bool = True
    snapshot_id: str | None = None  # rerun from this snapshot
    schedule_id: str | None = None
    source: str = "cli"  # "cli" | "jupyterlab" | "schedule" | "pod"
    extra: dict[str, Any] = field(default_factory=dict)  # recorded as is; "rerun_of" is understood


@dataclass
class Prepared:
    """A validated, snapshotted request: what :meth:`RunService.execute` needs."""

    request: RunRequest
    pipeline: Pipeline
    parameters: dict[str, Any]
    notebook_sha256: str
    workdir: Path
    options: Any
    notebook_path: Path | None = None  # the file read (a restored copy for a rerun)
    content: bytes | None = None  # unsaved content that differs from the file
    snapshot_id: str | None = None
    snapshot_store: str | None = None  # where the snapshot is (the target's store for a cluster run)
    snapshot: Any = None  # jupyter_ext.snapshot.Snapshot when one was taken now
    prepare_s: float = 0.0
    cleanup: Path | None = None  # a restored copy to remove when the run is over
    notes: list[str] = field(default_factory=list)  # the target's notes for the user (which image, ...)


class RunService(ClusterRuns, Cancellation):
    def __init__(
        self,
        data_dir: Path,
        *,
        root: Path | None = None,
        max_concurrent_runs: int = 2,
        kernel_pool: Any = None,
        log: logging.Logger | None = None,
        hooks: list[Any] | None = None,
        background_tracking: bool = True,
        cancel_poll_s: float = CANCEL_POLL_S,
        tracking_wait_s: float | None = None,
        tracking_idle_s: float | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.root = Path(root).resolve() if root else None
        self.store = RecordStore(self.data_dir)
        self.max_concurrent_runs = max(1, int(max_concurrent_runs))
        self.kernel_pool = kernel_pool  # a WarmKernelPool (the server's): local steps take its kernels first
        self.log = log or logging.getLogger(__name__)
        self.hooks = list(hooks or [])
        self.background_tracking = background_tracking
        self.cancel_poll_s = cancel_poll_s
        self.tracking_wait_s = (
            tracking_wait_default() if tracking_wait_s is None else max(0.0, tracking_wait_s)
        )
        self.tracking_idle_s = tracking_idle_s  # the worker's idle time (None: $CELLPIPE_TRACKING_IDLE_S)
        self._tasks: dict[str, asyncio.Task] = {}  # the runs this process runs (queued or executing)
        self._cancel_by: dict[str, dict[str, Any]] = {}  # their cancel requests acted on: {"at", "by"}
        self._finalizing: set[str] = set()  # runs past execution: too late to cancel
        self._watcher: asyncio.Task | None = None
        self._refresh_locks: dict[str, threading.Lock] = {}
        self._leaving = False  # shutting down: cluster runs are left to the cluster, not cancelled
        self._slots: asyncio.Semaphore | None = None
        self.store.recover_crashed()  # runs of a previous process that died show as crashed now
        if background_tracking:
            self._resume_tracking()

    # -- hooks ---------------------------------------------------------------------------------------
    def before_start(self, record: RunRecord) -> None:
        self._call_hooks("before_start", record)

    def on_failure(self, record: RunRecord) -> None:
        self._call_hooks("on_failure", record)

    def on_complete(self, record: RunRecord) -> None:
        self._call_hooks("on_complete", record)

    def _call_hooks(self, name: str, record: RunRecord) -> None:
        for hook in self.hooks:
            method = getattr(hook, name, None)
            if method is None:
                continue
            try:
                method(record)
            except Exception:  # a hook's bug must not change the run
                self.log.exception("cellpipe: %s hook failed for run %s", name, record.id)

    # -- the lifecycle -------------------------------------------------------------------------------
    def prepare(self, request: RunRequest, *, snapshot_progress: Any = None) -> Prepared:
        """Validate and snapshot: every user mistake fails here, before a record exists."""
        from jupyter_ext.notebook.params import resolve
        from jupyter_ext.pipeline.build import build_pipeline

        began = time.perf_counter()
        target = get_target(request.target)
        options = options_for(request.target, request.target_options)
        store = target.snapshot_store(options, self.snapshot_store_url())  # pods need one they can read
        notebook, cleanup, snapshot_id = Path(request.notebook), None, request.snapshot_id
        if snapshot_id:  # a rerun: the notebook and its data come from the snapshot
            from jupyter_ext.snapshot import materialize

            restored = materialize(store, snapshot_id)
            notebook, cleanup, snapshot_id = restored.notebook, restored.notebook.parent, restored.id
            content = notebook.read_bytes()
        else:
            content = request.content if request.content is not None else _read(notebook)
        try:
            pipeline = build_pipeline(notebook, content=content)
            if request.track and self.background_tracking:  # a head start while we check and snapshot
                self.ensure_tracking_worker()
            target.check(pipeline, options)
            if request.target == "local":  # elsewhere the kernel is the image's
                check_kernel(pipeline)
            parameters = resolve(pipeline.parameters, request.parameters)
            preflight = getattr(target, "preflight", None)  # a cluster target's dry run: before any upload
            notes = preflight(pipeline, options, parameters) if preflight else []
            snap = None
            if not snapshot_id:
                from jupyter_ext.snapshot import take_snapshot

                snap = take_snapshot(
                    notebook, store=store, notebook_bytes=content, progress=snapshot_progress,
                    confine_to=self.root,  # a server's runs read data inside its root only
                    # a local run reads the notebook's own directory, not the store: it starts while the
                    # snapshot reaches the disk (_settle_snapshot waits). Pods read the store: complete first.
                    durable="wait" if getattr(target, "detached", False) else "background",
                )  # fmt: skip
                snapshot_id = snap.id
        except BaseException:
            if cleanup:
                shutil.rmtree(cleanup, ignore_errors=True)
            raise
        return Prepared(
            request=request,
            pipeline=pipeline,
            parameters=parameters,
            notebook_sha256=hashlib.sha256(content).hexdigest(),
            workdir=notebook.resolve().parent,
            options=options,
            notebook_path=notebook,
            content=request.content,
            snapshot_id=snapshot_id,
            snapshot_store=store,
            snapshot=snap,
            prepare_s=time.perf_counter() - began,
            cleanup=cleanup,
            notes=notes,
        )

    def create_record(self, prepared: Prepared) -> RunRecord:
        request = prepared.request
        extra = dict(request.extra)
        record = RunRecord(
            id=new_run_id(),
            notebook=str(Path(request.notebook).resolve()),
            target=request.target,
            status=RunStatus.QUEUED,
            source=request.source,
            parameters=prepared.parameters,
            snapshot_id=prepared.snapshot_id,
            schedule_id=request.schedule_id,
            rerun_of=extra.pop("rerun_of", None),
            steps=_step_records(prepared.pipeline),
            mode="notebook" if prepared.pipeline.is_plain else "steps",
            tracking=Tracking(status=TrackingStatus.PENDING if request.track else TrackingStatus.OFF),
            pipeline=prepared.pipeline.name,
            notebook_sha256=prepared.notebook_sha256,
            use_cache=request.use_cache,
            timings={"prepare_s": round(prepared.prepare_s, 3)},
            owner=current_owner(),
            extra=extra,
        )
        background = request.track and self.background_tracking
        if background:  # kept beside the record from the start: even a crashed run can be tracked
            from jupyter_ext.tracking.background import write_job
            from jupyter_ext.tracking.mlflow import tracking_job

            write_job(self.store.run_dir(record.id), tracking_job(prepared.pipeline, self.data_dir))
        self.store.save_run(record)
        if background:  # after the save: a worker about to exit idle sees the run when it looks once more
            self.ensure_tracking_worker()
        return record

    async def execute(
        self, record: RunRecord, prepared: Prepared, listener: Listener | None = None, *, follow: bool = True
    ) -> RunRecord:
        """Execute on the target, track, finalize. Never raises for the run's own failure; re-raises
        cancellation after the record says ``cancelled``.

        On a cluster target the run is started there and, once the Job / KFP run exists, owned by the
        cluster (the record holds its handle); ``follow`` then follows it to its end (cancelling stops it
        on the cluster), else returns the running record at once (:meth:`follow` and any read go on)."""
        listener = listener or (lambda event, step, rec: None)
        own_task = record.id not in self._tasks  # a foreground run: cancel requests reach it too
        if own_task:
            self._tasks[record.id] = asyncio.current_task()
            self._watch_cancel_requests()
        try:
            return await self._execute(record, prepared, listener, follow)
        finally:
            if own_task:
                self._forget(record.id)

    async def _execute(
        self, record: RunRecord, prepared: Prepared, listener: Listener, follow: bool
    ) -> RunRecord:
        target = get_target(record.target)
        record.status, record.started = RunStatus.RUNNING, time.time()
        self.before_start(record)
        self._save(record)
        listener("started", "", record)
        run_dir = private_dir(self.store.run_dir(record.id))
        context = ExecutionContext(
            record=record,
            pipeline=prepared.pipeline,
            parameters=prepared.parameters,
            workdir=prepared.workdir,
            notebook=_notebook_file(prepared, run_dir),
            run_dir=run_dir,
            data_dir=self.data_dir,
            options=prepared.options,
            use_cache=prepared.request.use_cache,
            snapshot_id=prepared.snapshot_id,
            snapshot_store=prepared.snapshot_store or self.snapshot_store_url(),
            kernel_pool=self.kernel_pool,
            save=self._save_progress,
            listener=listener,
        )
        began = time.perf_counter()
        if getattr(target, "detached", False):
            outcome, interrupted = await self._guarded(record, target.start(context))
            if outcome is None:  # the Job / KFP run exists: from now on the cluster owns the run
                record.timings["submit_s"] = round(time.perf_counter() - began, 3)
                self._save(record)
                if prepared.cleanup:
                    shutil.rmtree(prepared.cleanup, ignore_errors=True)
                listener("submitted", "", record)
                if not follow:
                    return record
                return await self.follow(record, listener, cancel_on_interrupt=True)
        else:
            outcome, interrupted = await self._guarded(record, target.execute(context))
        record.timings["execute_s"] = round(time.perf_counter() - began, 3)
        self._finalizing.add(record.id)
        if outcome is RunStatus.CANCELLED:
            record.cancel_requested = self._cancel_by.get(record.id, record.cancel_requested)
        await asyncio.shield(asyncio.to_thread(self._finalize, record, prepared, outcome))
        listener("finished", "", record)
        if interrupted is not None:
            raise interrupted
        return record

    async def _guarded(
        self, record: RunRecord, work: Awaitable[RunStatus | None]
    ) -> tuple[RunStatus | None, BaseException | None]:
        """``work``'s outcome, or how it failed (the record says why) and the interruption to re-raise."""
        try:
            return await work, None
        except (asyncio.CancelledError, KeyboardInterrupt) as exc:
            return RunStatus.CANCELLED, exc
        except CellpipeError as exc:
            record.error = exc.to_dict()
        except Exception as exc:  # a bug of ours: the record says so, the caller goes on
            self.log.exception("cellpipe: run %s failed inside cellpipe", record.id)
            record.error = {"message": f"internal error: {type(exc).__name__}: {exc}"}
        return RunStatus.FAILED, None

    def _finalize(self, record: RunRecord, prepared: Prepared, outcome: RunStatus) -> None:
        """Turn the status final with the MLflow run's ids in the record: the tracking worker created it
        meanwhile (waited for up to ``tracking_wait_s`` if not yet) and finishes it after this save; or,
        inline, tracking is done before this save."""
        if not self._settle_snapshot(record, prepared) and outcome is RunStatus.SUCCEEDED:
            outcome = RunStatus.FAILED  # its results are kept, but it cannot be rerun: the user must know
        background = prepared.request.track and self.background_tracking
        if background:
            self._wait_for_mlflow_run(record)
        elif prepared.request.track:
            began = time.perf_counter()
            record.tracking = self._track(record, prepared.pipeline, outcome)
            record.timings["tracking_s"] = round(time.perf_counter() - began, 3)
            if record.tracking.mlflow_url:
                record.links["mlflow"] = record.tracking.mlflow_url
        record.end(outcome)
        self._save(record)
        if background:  # the worker may have gone idle during a long run: it must see the final record
            self.ensure_tracking_worker()
        if prepared.cleanup:
            shutil.rmtree(prepared.cleanup, ignore_errors=True)
        (self.on_complete if outcome is RunStatus.SUCCEEDED else self.on_failure)(record)

    def _settle_snapshot(self, record: RunRecord, prepared: Prepared) -> bool:
        """Wait until the snapshot taken for the run is in the store (a local run starts while it reaches
        the disk: take_snapshot's ``durable="background"``); whether it is. One that could not be stored
        (disk full, I/O error) must not be named by the record: its id is cleared, the reason is kept in
        ``extra["snapshot_not_stored"]`` and, unless the run already failed for another reason, in its
        error. The steps' results are kept."""
        snap = prepared.snapshot
        if snap is None or record.snapshot_id is None:
            return True
        began = time.perf_counter()
        try:
            snap.wait_durable()
            return True
        except Exception as exc:  # SnapshotError: the store's own one-line reason
            reason = exc.message if isinstance(exc, CellpipeError) else f"{type(exc).__name__}: {exc}"
            self.log.warning("cellpipe: the snapshot of run %s could not be stored: %s", record.id, reason)
            record.snapshot_id = None
            record.extra["snapshot_not_stored"] = {"id": snap.id, "reason": reason}
            if record.error is None:
                record.error = SnapshotError(
                    f"snapshot {snap.short_id} could not be stored: {reason}; the run's results are kept, "
                    "but it has no snapshot to be rerun from",
                    field="snapshot",
                    hint="Free space in the snapshot store (or fix its disk), then run again; 'cellpipe gc' "
                    "removes what the failed snapshot left.",
                ).to_dict()
            return False
        finally:
            record.timings["snapshot_wait_s"] = round(time.perf_counter() - began, 3)

    def _track(self, record: RunRecord, pipeline: Pipeline, outcome: RunStatus) -> Tracking:
        try:
            from jupyter_ext.tracking.mlflow import track_run

            return track_run(record, pipeline, data_dir=self.data_dir, status=outcome)
        except Exception as exc:  # MLflow down, disk full: the run keeps its status, the record says why
            self.log.warning("cellpipe: MLflow tracking of run %s failed: %s", record.id, exc)
            return Tracking(status=TrackingStatus.FAILED, error=f"{type(exc).__name__}: {exc}")

    def _wait_for_mlflow_run(self, record: RunRecord) -> None:
        """A warm worker that has not created the MLflow run yet (a run over within moments) gets up to
        ``tracking_wait_s`` to do it, so that the final record has its ids; a cold one (still importing
        MLflow) is not waited for. The time waited is in the wall time."""
        from jupyter_ext.tracking.background import wait_for_mlflow_run

        tracking = self.store.tracking_of(record.id)
        if tracking is not None and (tracking.mlflow_run_id or tracking.status is not TrackingStatus.PENDING):
            record.timings["tracking_wait_s"] = 0.0
            return
        self.ensure_tracking_worker()  # a worker killed meanwhile
        record.timings["tracking_wait_s"] = round(
            wait_for_mlflow_run(self.store, record.id, self.tracking_wait_s), 3
        )

    def ensure_tracking_worker(self, *, keep_for: dict[str, Any] | None = None) -> int | None:
        """Start the data directory's tracking worker unless one runs (cheap: a lock probe); its pid if
        started. ``keep_for``: a process (a Jupyter server's owner) while which it stays, idle or not."""
        from jupyter_ext.tracking.background import ensure_worker

        try:
            return ensure_worker(self.data_dir, idle_s=self.tracking_idle_s, keep_for=keep_for)
        except OSError as exc:  # cannot start a process: the next run or service to open the store retries
            self.log.warning("cellpipe: could not start the MLflow tracking worker: %s", exc)
            return None

    def _resume_tracking(self) -> None:
        """Pending tracking left by processes that ended (an index lookup) gets a worker."""
        from jupyter_ext.tracking.background import has_work

        if has_work(self.store):
            self.ensure_tracking_worker()

    def wait_for_tracking(self, run_id: str, timeout: float = 300.0) -> RunRecord:
        """The run's record once its tracking is no longer pending (or as it is when ``timeout`` runs out)."""
        deadline = time.monotonic() + timeout
        record = self.get(run_id)
        while record.tracking.status is TrackingStatus.PENDING and time.monotonic() < deadline:
            time.sleep(0.1)
            record = self.get(run_id)
        return record

    def _save(self, record: RunRecord) -> None:
        """Save, keeping (and taking into ``record``) what the tracking worker wrote meanwhile."""
        self.store.save_run(record, keep_tracking=self.background_tracking)

    def _save_progress(self, record: RunRecord) -> None:
        """A target's save of step progress: not fsynced (see ``RecordStore.save_run``), the run's own status
        changes are."""
        self.store.save_run(record, keep_tracking=self.background_tracking, durable=False)

    # -- foreground (CLI) ----------------------------------------------------------------------------
    def run(self, request: RunRequest, listener: Listener | None = None) -> RunRecord:
        """Prepare and run in the foreground; Ctrl-C cancels (the record says so) and re-raises."""
        prepared = self.prepare(request)
        record = self.create_record(prepared)
        return self.run_prepared(record, prepared, listener)

    def run_prepared(
        self, record: RunRecord, prepared: Prepared, listener: Listener | None = None
    ) -> RunRecord:
        try:
            return asyncio.run(self.execute(record, prepared, listener))
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise KeyboardInterrupt from None

    # -- background (server, scheduler) --------------------------------------------------------------
    async def submit(self, request: RunRequest) -> RunRecord:
        """Validate and snapshot now (errors raise), then run in the background; returns the queued record."""
        prepared = await asyncio.to_thread(self.prepare, request)
        record = await asyncio.to_thread(self.create_record, prepared)
        answer = RunRecord.from_dict(
            record.to_dict()
        )  # as it is now: the background task goes on changing it
        self._tasks[record.id] = asyncio.ensure_future(self._background(record, prepared))
        self._watch_cancel_requests()
        return answer

    async def _background(self, record: RunRecord, prepared: Prepared) -> RunRecord:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrent_runs)
        try:
            async with self._slots:  # a cluster run needs no slot once submitted: it is followed outside
                await self.execute(record, prepared, follow=False)
            if record.on_cluster and not record.is_final:
                await self.follow(record, cancel_on_interrupt=True)
            return record
        except asyncio.CancelledError:
            if not record.status.is_final and not record.on_cluster:  # cancelled while queued: never started
                await asyncio.shield(asyncio.to_thread(self._settle_snapshot, record, prepared))
                record.end(RunStatus.CANCELLED)
                record.cancel_requested = self._cancel_by.get(record.id, record.cancel_requested)
                for step in record.steps:  # a final run has no step still pending
                    step.status, step.reason = StepStatus.NOT_RUN, "the run was cancelled before it started"
                self._save(record)
                self.on_failure(record)
            return record
        finally:
            self._forget(record.id)

    def _forget(self, run_id: str) -> None:
        self._tasks.pop(run_id, None)
        self._cancel_by.pop(run_id, None)
        self._finalizing.discard(run_id)

    def is_active_here(self, run_id: str) -> bool:
        """Whether this service is executing (or queueing) the run now."""
        return run_id in self._tasks

    async def rerun(self, run_id: str) -> RunRecord:
        return await self.submit(self.rerun_request(run_id))

    def rerun_request(self, run_id: str, **changes: Any) -> RunRequest:
        """A request that runs a recorded run again from its snapshot, with its parameters."""
        record = self.get(run_id)
        if not record.snapshot_id:
            raise CellpipeError(
                f"run {record.id} has no snapshot to run from",
                hint="run the notebook again with `cellpipe run`",
            )
        values: dict[str, Any] = {
            "notebook": Path(record.notebook),
            "parameters": dict(record.parameters),
            "target": record.target,
            "use_cache": record.use_cache,
            "snapshot_id": record.snapshot_id,
            "extra": {"rerun_of": record.id},
        }
        return RunRequest(**{**values, **changes})

    async def shutdown(self) -> None:
        """Cancel this process's local runs; cluster runs go on (the next reader of their records follows)."""
        self._leaving = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- reading -------------------------------------------------------------------------------------
    def list(
        self, *, notebook: str | None = None, status: str | None = None, target: str | None = None,
        schedule_id: str | None = None, since: float | None = None, limit: int = 50, offset: int = 0,
    ) -> tuple[list[RunRecord], int]:  # fmt: skip
        """Newest first, with the total count of matching runs (for paging); active cluster runs refreshed."""
        runs, total = self.list_stored(notebook=notebook, status=status, target=target, schedule_id=schedule_id,
                                       since=since, limit=limit, offset=offset)  # fmt: skip
        return [run.record() for run in runs], total

    def list_stored(
        self, *, notebook: str | None = None, status: str | None = None, target: str | None = None,
        schedule_id: str | None = None, since: float | None = None, limit: int = 50, offset: int = 0,
    ) -> tuple[list[StoredRun], int]:  # fmt: skip
        """:meth:`list` as stored (id, status, the record's JSON text), for readers that cache by that text.
        Final runs are passed on untouched; an active cluster run that :meth:`refresh` changes is given the
        text of its refreshed record."""
        runs, total = self.store.list_stored_runs(notebook=notebook, status=status, target=target,
                                                  schedule_id=schedule_id, since=since, limit=limit, offset=offset)  # fmt: skip
        fresh = self._refresh_many([run.record() for run in runs if not run.is_final])
        return [StoredRun.of(fresh[run.id]) if run.id in fresh else run for run in runs], total

    def get(self, run_id: str) -> RunRecord:
        """By full id, unique prefix, or ``latest`` (an active cluster run refreshed from the cluster)."""
        return self.refresh(self.store.get_run(run_id))

    def delete(self, run_id: str) -> None:
        record = self.get(run_id)
        if not record.is_final:
            raise CellpipeError(
                f"run {record.id} is {record.status.value}", hint="cancel it first, or wait until it finishes"
            )
        self.store.delete_run(record.id)

    def step_notebook(self, run_id: str, step: str) -> Path:
        record = self.get(run_id)
        try:
            path = record.step(step).notebook
        except KeyError:
            raise CellpipeError(f"run {record.id} has no step '{step}'", step=step) from None
        if not path or not Path(path).is_file():
            raise CellpipeError(f"step '{step}' of run {record.id} has no executed notebook", step=step)
        return Path(path)

    def logs(self, run_id: str) -> str:
        record = self.get(run_id)
        path = self.store.run_dir(record.id) / "kernels.log"
        try:
            return path.read_text(errors="replace")
        except OSError:
            return ""

    def snapshot_store_url(self) -> str:
        """The snapshot store (``$CELLPIPE_STORE`` overrides), as the snapshot commands see it."""
        from jupyter_ext.snapshot.store import STORE_DIR

        return os.environ.get("CELLPIPE_STORE") or str(self.data_dir / STORE_DIR)


TRACKING_WAIT_ENV = "CELLPIPE_TRACKING_WAIT_S"
DEFAULT_TRACKING_WAIT_S = 0.5  # a warm worker needed 0.00-0.15 s (measured, load 7-13): a 3x margin


def tracking_wait_default() -> float:
    """How long finalize waits for a starting tracking worker: ``$CELLPIPE_TRACKING_WAIT_S`` or 0.5 s."""
    try:
        return max(0.0, float(os.environ.get(TRACKING_WAIT_ENV) or DEFAULT_TRACKING_WAIT_S))
    except ValueError:
        return DEFAULT_TRACKING_WAIT_S


def _step_records(pipeline: Pipeline) -> list[StepRecord]:
    """The record's steps, in pipeline order; a plain notebook's one step is the whole notebook."""
    from jupyter_ext.targets.local.papermill import PLAIN_STEP

    if pipeline.is_plain:
        return [StepRecord(name=PLAIN_STEP, cell=1)]
    return [
        StepRecord(name=s.name, cell=s.first_cell, cells=[c.index for c in s.cells], depends_on=s.depends_on)
        for s in pipeline.steps
    ]


def _notebook_file(prepared: Prepared, run_dir: Path) -> Path:
    """The notebook as it runs: unsaved content is written (privately) into the run's directory."""
    from jupyter_ext.util import open_private

    if prepared.content is None:
        return Path(prepared.notebook_path or prepared.request.notebook)
    path = run_dir / "source.ipynb"
    with open_private(path, "wb") as fh:
        fh.write(prepared.content)
    return path


def check_kernel(pipeline: Pipeline) -> None:
    """Fail before anything runs when the notebook's kernel is not installed here."""
    if _kernel_spec_found(pipeline.kernel):
        return
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(pipeline.kernel)
    except NoSuchKernel:
        raise NotebookError(
            f"the notebook's kernel '{pipeline.kernel}' is not installed here",
            notebook=pipeline.notebook,
            field="metadata.kernelspec.name",
            hint="install it (python -m ipykernel install --user --name NAME) or switch the notebook to python3",
        ) from None


def _kernel_spec_found(name: str) -> bool:
    """Whether a kernel spec of that name is in Jupyter's kernel directories (or it is the native python3
    kernel), looked up as jupyter_client does but without importing it (a third of a second: a fully cached
    re-run executes no kernel at all). Not found here: jupyter_client decides, and says why."""
    import importlib.util

    from jupyter_core.paths import jupyter_path

    if name == "python3" and importlib.util.find_spec("ipykernel") is not None:
        return True
    return any(
        (Path(directory) / name.lower() / "kernel.json").is_file() for directory in jupyter_path("kernels")
    )


def _read(path: Path) -> bytes:
    from jupyter_ext.notebook.read import read_notebook

    read_notebook(path)  # the clear errors for a missing or broken file
    return path.read_bytes()


def run_pipeline(
    pipeline: Pipeline, *, workdir: str | Path, data_dir: str | Path, parameters: dict[str, Any] | None = None,
    options: Any = None, use_cache: bool = True, track: bool = False, listener: Listener | None = None,
    source: str = "cli", background_tracking: bool = False,
) -> RunRecord:  # fmt: skip
    """Run an already built pipeline locally, without a snapshot (scripts, benchmarks, tests, a Job pod).
    Tracking, when on, is done before this returns unless ``background_tracking``."""
    from jupyter_ext.notebook.params import resolve

    request = RunRequest(
        notebook=Path(pipeline.notebook), use_cache=use_cache, track=track, target_options=options
    )
    prepared = Prepared(
        request=request,
        pipeline=pipeline,
        parameters=resolve(pipeline.parameters, parameters),
        notebook_sha256="",
        workdir=Path(workdir),
        notebook_path=Path(pipeline.notebook),
        options=options_for("local", options),
    )
    service = RunService(Path(data_dir), background_tracking=background_tracking)
    return service.run_prepared(service.create_record(prepared), prepared, listener)


# what a local run imports on first use (~0.05-0.1 s of CPU on this project's 2-core machine)
RUN_PATH_MODULES = (
    "jupyter_ext.notebook.params",
    "jupyter_ext.pipeline.build",
    "jupyter_ext.snapshot",
    "jupyter_ext.targets.local.runner",
    "jupyter_ext.tracking.background",
    "jupyter_ext.tracking.mlflow",
)


def warm_up_run_path() -> None:
    """Do what a local run does once per process on first use: import its modules, compile nbformat's
    notebook validator (every step notebook is validated as it is built; the first validation compiles the
    JSON schema, ~0.04 s of CPU). A long-lived process (the Jupyter server) calls it, in a thread, when a
    run is likely soon (a notebook was opened), so that its first run does not pay for it."""
    import importlib

    for name in RUN_PATH_MODULES:
        importlib.import_module(name)
    from nbformat.v4 import new_code_cell, new_notebook

    new_notebook(cells=[new_code_cell("")])  # validated: the validator is compiled and kept
