"""The embedded local runner: run a pipeline's steps on this machine, independent steps in parallel.

The run service (:mod:`jupyter_ext.services.runs`) drives it through the local target. Each step runs
through :func:`jupyter_ext.runtime.step.run_step`, the same code a pod runs. Steps whose inputs are
unchanged come from the step cache. A failed step stops its dependants; independent branches finish.
Cancelling (Ctrl-C, a cancel request) shuts every kernel down and marks unfinished steps cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jupyter_ext.errors import TargetError
from jupyter_ext.pipeline.model import Pipeline, Step
from jupyter_ext.records.models import RunRecord, RunStatus, StepRecord, StepStatus
from jupyter_ext.runtime.kernel import clean_kernel_leftovers
from jupyter_ext.runtime.step import StepError, StepResult, run_step
from jupyter_ext.targets.local.cache import StepCache, environment_fingerprint, step_cache_key
from jupyter_ext.targets.local.kernels import KernelPool, WarmKernelPool, leading_imports
from jupyter_ext.util import fsync_file, sha256_file

Listener = Callable[[str, str, RunRecord], None]  # (event, step name or "", the whole run record)


@dataclass
class RunOptions:
    parameters: dict[str, Any] = field(default_factory=dict)
    max_parallel: int = 0  # 0: number of cores
    use_cache: bool = True
    step_timeout: float | None = None


class LocalRunner:
    """Executes the steps of ``record`` (created by the run service, steps in pipeline order) and keeps their
    status in it; ``save`` persists the record after each change. The run's own status is the service's:
    :meth:`run` returns the outcome and leaves finalizing (tracking, final status) to the caller."""

    def __init__(
        self,
        pipeline: Pipeline,
        record: RunRecord,
        *,
        workdir: str | Path,
        run_dir: str | Path,
        cache_dir: str | Path,
        options: RunOptions | None = None,
        save: Callable[[RunRecord], None] | None = None,
        listener: Listener | None = None,
        shared_kernels: WarmKernelPool | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.shared_kernels = shared_kernels  # a long-lived process's warm kernels (the Jupyter server's)
        self.record = record
        self.workdir = Path(workdir)
        self.run_dir = Path(run_dir)
        options = options or RunOptions()
        # every parameter has a value, so cache keys and records never depend on who filled in defaults
        self.options = replace(options, parameters={**pipeline.defaults(), **options.parameters})
        self.save = save or (lambda record: None)
        self.listener = listener or (lambda event, step, info: None)
        self.cache = StepCache(Path(cache_dir))
        self.steps: dict[str, StepRecord] = {s.name: s for s in record.steps}
        self.kernel_wait = 0.0  # seconds steps waited for a kernel to start
        self._outputs_dirs: dict[str, str] = {}
        self._output_hashes: dict[str, dict[str, str]] = {}
        self._executing: set[str] = set()  # the steps the cache will not answer (known at the start)
        self._persisting: dict[str, asyncio.Future] = {}  # step -> its outputs and notebook being fsynced

    # -- the run -----------------------------------------------------------------------------------
    async def run(self) -> RunStatus:
        self.cache.clean_leftovers()  # of runs that were killed
        clean_kernel_leftovers()
        parallel = self.options.max_parallel or os.cpu_count() or 1
        self._executing = self._steps_to_execute()
        to_execute = len(self._executing)
        pool = KernelPool(
            self.pipeline.kernel,
            self.workdir,
            size=min(parallel + 1, to_execute),  # one more warming for the next ready step
            warmup=leading_imports([c.source for c in self.pipeline.prelude]),
            log=self.run_dir / "kernels.log",
            shared=self.shared_kernels,
            cores=os.cpu_count() or 1,  # kernels warm up ahead on idle cores, whatever --max-parallel says
        )
        pool.expect(to_execute)
        limiter = asyncio.Semaphore(parallel)
        running: dict[str, asyncio.Task] = {}
        try:
            while True:
                self._skip_blocked()
                for step in self._ready(running):
                    running[step.name] = asyncio.ensure_future(self._run_one(step, pool, limiter))
                pool.ahead(min(parallel, self._next_wave(running)))
                if not running:
                    break
                done, _ = await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
                for name in [n for n, t in running.items() if t in done]:
                    running.pop(name).result()
        except BaseException:  # cancelled, interrupted, or a bug of ours: no step stays "running"
            for task in running.values():
                task.cancel()
            for task in running.values():
                with contextlib.suppress(BaseException):
                    await task
            for info in self.steps.values():  # what ran was cancelled; what had not started never ran
                if info.status is StepStatus.RUNNING:  # how long it ran until it was stopped
                    info.end(StepStatus.CANCELLED)
                elif info.status is StepStatus.PENDING:
                    info.status, info.reason = StepStatus.NOT_RUN, "the run was stopped before it started"
            raise
        finally:
            closing = asyncio.ensure_future(pool.close())  # the last kernel's stop beside the last fsyncs
            persisted = await asyncio.gather(*self._persisting.values(), return_exceptions=True)
            await closing
            self.record.metrics = {k: v for info in self.record.steps for k, v in info.metrics.items()}
            self.record.timings["kernel_wait_s"] = round(self.kernel_wait, 3)
        for step, outcome in zip(self._persisting, persisted, strict=True):
            if isinstance(outcome, OSError):  # the run is not reported succeeded with outputs not on disk
                raise TargetError(f"its outputs could not be written to disk: {outcome}", step=step,
                                  hint="check the free space and health of the disk holding .cellpipe")  # fmt: skip
        return RunStatus.FAILED if self._any(StepStatus.FAILED) else RunStatus.SUCCEEDED

    def _ready(self, running: dict[str, asyncio.Task]) -> list[Step]:
        return [
            s
            for s in self.pipeline.steps
            if self.steps[s.name].status is StepStatus.PENDING
            and s.name not in running
            and all(self.steps[u].status.ok for u in s.depends_on)
        ]

    def _next_wave(self, running: dict[str, asyncio.Task]) -> int:
        """How many steps that will execute become ready when the running steps end (their kernels can
        start now: a branch whose kernel starts only once it is ready waits that start on the critical
        path)."""
        return sum(
            1
            for s in self.pipeline.steps
            if s.name in self._executing
            and self.steps[s.name].status is StepStatus.PENDING
            and s.name not in running
            and all(u in running or self.steps[u].status.ok for u in s.depends_on)
        )

    def _skip_blocked(self) -> None:
        changed = True
        while changed:
            changed = False
            for step in self.pipeline.steps:
                info = self.steps[step.name]
                blocked = [
                    u
                    for u in step.depends_on
                    if self.steps[u].status.is_final and not self.steps[u].status.ok
                ]
                if info.status is StepStatus.PENDING and blocked:
                    info.status = StepStatus.NOT_RUN
                    info.reason = f"upstream step '{blocked[0]}' did not succeed"
                    changed = True
                    self._emit("not_run", step.name)

    def _any(self, status: StepStatus) -> bool:
        return any(s.status is status for s in self.record.steps)

    # -- cache -------------------------------------------------------------------------------------
    @functools.cached_property
    def environment(self) -> str:
        """The installed packages this run's cache keys name (looked at once per run)."""
        return environment_fingerprint()

    def _cacheable(self, step: Step) -> bool:
        return self.options.use_cache and self.pipeline.step_cache(step)

    def _cache_key(self, step: Step, output_hashes: dict[str, dict[str, str]]) -> str:
        inputs = {
            f"{u}.{v}": output_hashes[u][v] for u in step.depends_on for v in output_hashes.get(u, {})
            if v in step.inputs
        }  # fmt: skip
        return step_cache_key(
            self.pipeline, step, self.options.parameters, inputs, environment=self.environment
        )

    def _steps_to_execute(self) -> set[str]:
        """The steps that will need a kernel: the cache is consulted ahead, so that a re-run after a small
        edit starts one kernel, not one per step (on few cores, needless kernel starts slow the needed one)."""
        hashes: dict[str, dict[str, str]] = {}
        names: set[str] = set()
        for step in self.pipeline.steps:  # topological order: upstream hashes are known when needed
            known = all(u in hashes for u in step.depends_on)
            entry = (
                self.cache.lookup(self._cache_key(step, hashes)) if known and self._cacheable(step) else None
            )
            if entry is None:
                names.add(step.name)
            else:
                hashes[step.name] = entry.get("hashes", {})
        return names

    # -- one step ----------------------------------------------------------------------------------
    async def _run_one(self, step: Step, pool: KernelPool, limiter: asyncio.Semaphore) -> None:
        info = self.steps[step.name]
        key = info.cache_key = self._cache_key(step, self._output_hashes)
        entry = self.cache.lookup(key) if self._cacheable(step) else None
        if entry is not None:
            self._use_cached(step, info, entry)
            return
        async with limiter:
            waited = time.monotonic()
            try:
                warm = await pool.acquire()
            except Exception as exc:  # the kernel did not start: this step fails, the run goes on
                message = f"the kernel '{self.pipeline.kernel}' could not start: {type(exc).__name__}: {exc}"
                now = time.time()
                self._store_result(info, StepResult(step.name, StepStatus.FAILED, now, 0.0, "",
                                                    error=StepError(kind="kernel_start", message=message)))  # fmt: skip
                return
            finally:
                self.kernel_wait += time.monotonic() - waited
            staging = self.cache.staging_dir()
            info.status, info.started = StepStatus.RUNNING, time.time()
            self._save()
            self._emit("started", step.name)
            try:
                result = await run_step(
                    self.pipeline,
                    step.name,
                    parameters=self.options.parameters,
                    input_dirs={u: self._outputs_dirs[u] for u in step.depends_on if u in self._outputs_dirs},
                    output_dir=staging / "outputs",
                    workdir=self.workdir,
                    notebook_path=self.run_dir / "steps" / f"{step.name}.ipynb",
                    kernel=warm,
                    timeout=self.options.step_timeout,
                    durable=False,  # persisted below, off the path of the steps downstream
                )
            except BaseException:
                self.cache.discard(staging)
                raise
            finally:
                pool.release(warm)
            if result.status is StepStatus.SUCCEEDED:
                hashes = await asyncio.to_thread(_hash_outputs, staging / "outputs", result)
                entry = {"step": step.name, "run_id": self.record.id, "outputs": result.outputs,
                         "metrics": result.metrics, "hashes": hashes, "notebook": result.notebook}  # fmt: skip
                outputs_dir = self.cache.commit(staging, key, entry, replace=True, durable=False)
                self._outputs_dirs[step.name] = str(outputs_dir)
                self._output_hashes[step.name] = hashes
            else:
                self.cache.discard(staging)
            self._persist(step.name, result, key if result.status is StepStatus.SUCCEEDED else None)
            self._store_result(info, result)

    def _persist(self, step: str, result: StepResult, key: str | None) -> None:
        """Make a step's executed notebook and committed outputs durable in a thread, while the steps after
        it run: fsyncs cost 2-10 ms each (seconds when the disk stalls), five or more per step. The run
        waits for all of them before its status turns final; the cache trusts the entry only after."""

        def persist_notebook() -> None:
            if result.notebook and Path(result.notebook).exists():
                fsync_file(result.notebook)
                fsync_file(Path(result.notebook).parent)  # its name

        work = [asyncio.to_thread(persist_notebook)]  # beside the outputs': the disk merges the flushes
        if key is not None:
            work.append(asyncio.to_thread(self.cache.make_durable, key, self.record.id))
        self._persisting[step] = asyncio.gather(*work)

    def _use_cached(self, step: Step, info: StepRecord, entry: dict) -> None:
        self._outputs_dirs[step.name] = entry["outputs_dir"]
        self._output_hashes[step.name] = entry.get("hashes", {})
        info.cached, info.cached_from, info.started = True, entry.get("run_id"), time.time()
        info.end(StepStatus.CACHED, at=info.started)
        info.outputs, info.metrics = entry.get("outputs", {}), entry.get("metrics", {})
        info.notebook = entry.get("notebook") or str(
            self.run_dir.parent / entry.get("run_id", "") / "steps" / f"{step.name}.ipynb"
        )
        self._save()
        self._emit("cached", step.name)

    def _store_result(self, info: StepRecord, result: StepResult) -> None:
        apply_result(info, result)
        self._save()
        self._emit(result.status, result.step)

    # -- bookkeeping -------------------------------------------------------------------------------
    def _save(self) -> None:
        self.save(self.record)

    def _emit(self, event: str, step: str) -> None:
        self.listener(event, step, self.record)


def apply_result(info: StepRecord, result: StepResult) -> None:
    """A finished step's result into its record."""
    info.started = info.started or result.started  # a step that never got a kernel starts with its result
    info.end(StepStatus(result.status), at=result.started + result.duration)
    info.notebook = result.notebook or None
    info.outputs, info.metrics = result.outputs, result.metrics
    if result.error is not None:
        info.error = dict(result.error.__dict__)


def _hash_outputs(directory: Path, result: StepResult) -> dict[str, str]:
    return {name: sha256_file(directory / Path(rec["file"]).name) for name, rec in result.outputs.items()}
