"""The embedded local runner: run a pipeline on this machine, independent steps in parallel.

:func:`run_pipeline` is the top-level function (sync wrapper over :meth:`LocalRunner.run`). Each step runs
through :func:`jupyter_ext.runtime.step.run_step`, the same code a pod runs. Steps whose inputs are
unchanged come from the step cache. A failed step stops its dependants; independent branches finish.
Ctrl-C cancels: every kernel is shut down and the run is recorded as cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jupyter_ext.pipeline.model import Pipeline, Step
from jupyter_ext.runs.store import RunStore
from jupyter_ext.runtime.kernel import clean_connection_files
from jupyter_ext.runtime.step import StepError, StepResult, run_step
from jupyter_ext.targets.local.cache import StepCache, step_cache_key
from jupyter_ext.targets.local.kernels import KernelPool, import_statements
from jupyter_ext.util import private_dir, sha256_file

Listener = Callable[[str, str, dict], None]  # (event, step name or "", the whole run record)


@dataclass
class RunOptions:
    parameters: dict[str, Any] = field(default_factory=dict)
    max_parallel: int = 0  # 0: number of cores
    use_cache: bool = True
    step_timeout: float | None = None
    snapshot_id: str | None = None
    notebook_sha256: str | None = None
    target: str = "local"


class LocalRunner:
    def __init__(
        self,
        pipeline: Pipeline,
        *,
        workdir: str | Path,
        data_dir: str | Path,
        options: RunOptions | None = None,
        listener: Listener | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.extra = extra or {}
        self.workdir = Path(workdir)
        self.data_dir = Path(data_dir)
        options = options or RunOptions()
        # every parameter has a value, so cache keys and records never depend on who filled in defaults
        self.options = replace(options, parameters={**pipeline.defaults(), **options.parameters})
        self.listener = listener or (lambda event, step, info: None)
        self.store = RunStore(self.data_dir / "runs")
        self.cache = StepCache(self.data_dir / "cache")
        self.record: dict[str, Any] = {}
        self._outputs_dirs: dict[str, str] = {}
        self._output_hashes: dict[str, dict[str, str]] = {}

    # -- the run -----------------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        private_dir(self.data_dir)  # records, cache, logs and MLflow below it are the user's alone
        self.cache.clean_leftovers()  # of runs that were killed
        clean_connection_files()
        self.record = self.store.create(self._initial_record())
        run_dir = self.store.path(self.record["id"])
        parallel = self.options.max_parallel or os.cpu_count() or 1
        to_execute = self._steps_to_execute()
        pool = KernelPool(
            self.pipeline.kernel,
            self.workdir,
            size=min(parallel + 1, to_execute),  # one more warming for the next ready step
            warmup=import_statements([c.source for c in self.pipeline.prelude]),
            log=run_dir / "kernels.log",
        )
        pool.expect(to_execute)
        limiter = asyncio.Semaphore(parallel)
        running: dict[str, asyncio.Task] = {}
        try:
            while True:
                self._skip_blocked()
                for step in self._ready(running):
                    running[step.name] = asyncio.ensure_future(self._run_one(step, pool, limiter, run_dir))
                if not running:
                    break
                done, _ = await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
                for name in [n for n, t in running.items() if t in done]:
                    running.pop(name).result()
            self._finish("failed" if self._any("failed") else "succeeded")
        except (asyncio.CancelledError, KeyboardInterrupt):
            for task in running.values():
                task.cancel()
            for task in running.values():
                with contextlib.suppress(BaseException):
                    await task
            for info in self.record["steps"].values():
                if info["status"] in ("pending", "running"):
                    info["status"] = "cancelled"
            self._finish("cancelled")
            raise
        except BaseException as exc:  # a bug of ours: record it, never leave the run "running"
            self.record["error"] = {"message": f"internal error: {exc!r}"}
            self._finish("failed")
            raise
        finally:
            await pool.close()
        return self.record

    def _initial_record(self) -> dict[str, Any]:
        return {
            **self.extra,
            "pipeline": self.pipeline.name,
            "notebook": str(Path(self.pipeline.notebook).resolve()),
            "notebook_sha256": self.options.notebook_sha256,
            "snapshot_id": self.options.snapshot_id,
            "target": self.options.target,
            "parameters": self.options.parameters,
            "use_cache": self.options.use_cache,
            "steps": {
                s.name: {"status": "pending", "depends_on": s.depends_on, "cells": [c.index for c in s.cells]}
                for s in self.pipeline.steps
            },
        }

    def _ready(self, running: dict[str, asyncio.Task]) -> list[Step]:
        steps = self.record["steps"]
        return [
            s
            for s in self.pipeline.steps
            if steps[s.name]["status"] == "pending"
            and s.name not in running
            and all(steps[u]["status"] in ("succeeded", "cached") for u in s.depends_on)
        ]

    def _skip_blocked(self) -> None:
        steps = self.record["steps"]
        changed = True
        while changed:
            changed = False
            for step in self.pipeline.steps:
                info = steps[step.name]
                blocked = [
                    u for u in step.depends_on if steps[u]["status"] in ("failed", "skipped", "cancelled")
                ]
                if info["status"] == "pending" and blocked:
                    info["status"] = "skipped"
                    info["reason"] = f"upstream step '{blocked[0]}' did not succeed"
                    changed = True
                    self._emit("skipped", step.name)

    def _any(self, status: str) -> bool:
        return any(s["status"] == status for s in self.record["steps"].values())

    # -- cache -------------------------------------------------------------------------------------
    def _cacheable(self, step: Step) -> bool:
        return self.options.use_cache and self.pipeline.step_cache(step)

    def _cache_key(self, step: Step, output_hashes: dict[str, dict[str, str]]) -> str:
        inputs = {
            f"{u}.{v}": output_hashes[u][v] for u in step.depends_on for v in output_hashes.get(u, {})
            if v in step.inputs
        }  # fmt: skip
        return step_cache_key(self.pipeline, step, self.options.parameters, inputs)

    def _steps_to_execute(self) -> int:
        """How many steps will need a kernel: the cache is consulted ahead, so that a re-run after a small
        edit starts one kernel, not one per step (on few cores, needless kernel starts slow the needed one)."""
        hashes: dict[str, dict[str, str]] = {}
        count = 0
        for step in self.pipeline.steps:  # topological order: upstream hashes are known when needed
            known = all(u in hashes for u in step.depends_on)
            entry = (
                self.cache.lookup(self._cache_key(step, hashes)) if known and self._cacheable(step) else None
            )
            if entry is None:
                count += 1
            else:
                hashes[step.name] = entry.get("hashes", {})
        return count

    # -- one step ----------------------------------------------------------------------------------
    async def _run_one(self, step: Step, pool: KernelPool, limiter: asyncio.Semaphore, run_dir: Path) -> None:
        info = self.record["steps"][step.name]
        key = info["cache_key"] = self._cache_key(step, self._output_hashes)
        entry = self.cache.lookup(key) if self._cacheable(step) else None
        if entry is not None:
            self._use_cached(step, info, entry)
            return
        async with limiter:
            try:
                warm = await pool.acquire()
            except Exception as exc:  # the kernel did not start: this step fails, the run goes on
                message = f"the kernel '{self.pipeline.kernel}' could not start: {type(exc).__name__}: {exc}"
                now = time.time()
                self._store_result(info, StepResult(step.name, "failed", now, 0.0, "",
                                                    error=StepError(kind="kernel_start", message=message)))  # fmt: skip
                return
            staging = self.cache.staging_dir()
            info.update(status="running", started=time.time())
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
                    notebook_path=run_dir / "steps" / f"{step.name}.ipynb",
                    kernel=warm,
                    timeout=self.options.step_timeout,
                )
            except BaseException:
                self.cache.discard(staging)
                raise
            finally:
                pool.release(warm)
            if result.status == "succeeded":
                hashes = await asyncio.to_thread(_hash_outputs, staging / "outputs", result)
                entry = {"step": step.name, "run_id": self.record["id"], "outputs": result.outputs,
                         "metrics": result.metrics, "hashes": hashes}  # fmt: skip
                outputs_dir = self.cache.commit(staging, key, entry, replace=True)
                self._outputs_dirs[step.name] = str(outputs_dir)
                self._output_hashes[step.name] = hashes
            else:
                self.cache.discard(staging)
            self._store_result(info, result)

    def _use_cached(self, step: Step, info: dict, entry: dict) -> None:
        self._outputs_dirs[step.name] = entry["outputs_dir"]
        self._output_hashes[step.name] = entry.get("hashes", {})
        info.update(
            status="cached",
            started=time.time(),
            duration=0.0,
            cached_from=entry.get("run_id"),
            outputs=entry.get("outputs", {}),
            metrics=entry.get("metrics", {}),
            notebook=str(self.store.path(entry.get("run_id", "")) / "steps" / f"{step.name}.ipynb"),
        )
        self._save()
        self._emit("cached", step.name)

    def _store_result(self, info: dict, result: StepResult) -> None:
        info.update(
            status=result.status,
            duration=round(result.duration, 3),
            notebook=result.notebook,
            outputs=result.outputs,
            metrics=result.metrics,
        )
        if result.error is not None:
            info["error"] = {k: v for k, v in result.error.__dict__.items()}
        self._save()
        self._emit(result.status, result.step)

    # -- bookkeeping -------------------------------------------------------------------------------
    def _finish(self, status: str) -> None:
        self.record["status"] = status
        self.record["finished"] = time.time()
        self.record["duration"] = round(self.record["finished"] - self.record["created"], 3)
        self.record["metrics"] = {
            k: v for info in self.record["steps"].values() for k, v in (info.get("metrics") or {}).items()
        }
        self._save()
        self._emit("finished", "")

    def _save(self) -> None:
        self.store.save(self.record)

    def _emit(self, event: str, step: str) -> None:
        self.listener(event, step, self.record)


def _hash_outputs(directory: Path, result: StepResult) -> dict[str, str]:
    return {name: sha256_file(directory / Path(rec["file"]).name) for name, rec in result.outputs.items()}


def run_pipeline(
    pipeline: Pipeline,
    *,
    workdir: str | Path,
    data_dir: str | Path,
    options: RunOptions | None = None,
    listener: Listener | None = None,
) -> dict[str, Any]:
    """Run ``pipeline`` locally and return its run record (sync wrapper for scripts and the CLI)."""
    runner = LocalRunner(pipeline, workdir=workdir, data_dir=data_dir, options=options, listener=listener)
    return asyncio.run(runner.run())
