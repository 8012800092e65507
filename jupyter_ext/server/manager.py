"""Runs started from JupyterLab: analysis, background local runs, status and cancel.

Runs execute in the server's own event loop (the local runner is asyncio-native); the blocking parts
(snapshot hashing, MLflow logging) go to a worker thread so the server stays responsive.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from jupyter_ext.errors import CellpipeError
from jupyter_ext.runs.launch import LaunchRequest, prepare
from jupyter_ext.runs.store import RunStore
from jupyter_ext.snapshot.project import data_dir
from jupyter_ext.targets.local.runner import LocalRunner, RunOptions


class RunManager:
    def __init__(self, root_dir: str | Path, log: logging.Logger | None = None) -> None:
        self.root = Path(root_dir).resolve()
        self.log = log or logging.getLogger(__name__)
        self.tasks: dict[str, asyncio.Task] = {}

    # -- paths -------------------------------------------------------------------------------------
    def resolve(self, path: str) -> Path:
        """A notebook path from the UI (relative to the server root) as a real path inside the root."""
        if not path or not isinstance(path, str):
            raise CellpipeError("no notebook path given", field="path", hint="send the notebook's path")
        candidate = (self.root / path.lstrip("/")).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            raise CellpipeError(f"'{path}' is outside the server's root directory", field="path")
        return candidate

    # -- runs --------------------------------------------------------------------------------------
    async def start(
        self, path: str, *, parameters: dict[str, Any] | None = None, content: bytes | None = None,
        use_cache: bool = True, track: bool = True,
    ) -> dict[str, Any]:  # fmt: skip
        """Validate and snapshot now (errors go back to the caller), then run in the background."""
        notebook = self.resolve(path)
        request = LaunchRequest(
            notebook=notebook,
            overrides=parameters or {},
            content=content,
            use_cache=use_cache,
            track=track,
            extra={"source": "jupyterlab"},
        )
        prepared = await asyncio.to_thread(prepare, request)
        runner = LocalRunner(
            prepared.pipeline,
            workdir=notebook.parent,
            data_dir=prepared.data_dir,
            options=RunOptions(
                parameters=prepared.parameters,
                use_cache=use_cache,
                snapshot_id=prepared.snapshot.id if prepared.snapshot else None,
                notebook_sha256=prepared.notebook_sha256,
            ),
            extra=request.extra,
        )
        task = asyncio.ensure_future(self._run(runner, prepared, track))
        await asyncio.sleep(0)  # the runner writes its record before its first await: the id exists now
        self.tasks[runner.record["id"]] = task
        return runner.record

    async def _run(self, runner: LocalRunner, prepared: Any, track: bool) -> dict[str, Any]:
        try:
            record = await runner.run()
        except asyncio.CancelledError:
            record = runner.record
        except Exception:
            self.log.exception("cellpipe run %s failed", runner.record.get("id"))
            return runner.record
        if track and record.get("status") in ("succeeded", "failed", "cancelled"):
            from jupyter_ext.tracking.mlflow import track_run

            record["mlflow"] = await asyncio.to_thread(
                track_run, record, prepared.pipeline, data_dir=prepared.data_dir
            )
            RunStore(prepared.data_dir / "runs").save(record)
        return record

    def list(self, path: str | None = None) -> list[dict[str, Any]]:
        store = self._store(path)
        records = store.list()
        if path:
            notebook = str(self.resolve(path))
            records = [r for r in records if r.get("notebook") == notebook]
        return records

    def get(self, run_id: str, path: str | None = None) -> dict[str, Any]:
        return self._store(path).load(run_id)

    async def cancel(self, run_id: str) -> bool:
        task = self.tasks.get(run_id)
        if task is None or task.done():
            return False
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    def _store(self, path: str | None) -> RunStore:
        anchor = self.resolve(path) if path else self.root / "notebook.ipynb"
        return RunStore(data_dir(anchor) / "runs")

    async def shutdown(self) -> None:
        for run_id in list(self.tasks):
            await self.cancel(run_id)
