"""Synchronous entry points of the step runtime, for pods and KFP components.

A KFP component or a Kubernetes Job calls :func:`execute_step` with the pipeline model as JSON; it runs the
same :func:`jupyter_ext.runtime.step.run_step` the local runner uses, in a fresh kernel, and raises
:class:`StepFailed` (non-zero exit for the pod) when the user's code failed. In a pod, the failing cell
and exception are also written as the pod's termination message (:mod:`jupyter_ext.runtime.termination`).

With ``snapshot_id`` and ``store`` the step first restores that snapshot (the notebook and its data) and
runs in the notebook's directory inside it, so relative data paths resolve as they did where the snapshot
was taken: a pod reads its inputs from the store, never from the user's home volume.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from jupyter_ext.errors import SnapshotError, StepFailed
from jupyter_ext.pipeline.model import Pipeline
from jupyter_ext.runtime.step import StepResult, run_step
from jupyter_ext.runtime.termination import write_step_error


def execute_step(
    pipeline: Pipeline | str | dict,
    step: str,
    *,
    parameters: dict[str, Any] | None = None,
    input_dirs: dict[str, str] | None = None,
    output_dir: str | Path,
    workdir: str | Path | None = None,
    notebook_path: str | Path | None = None,
    snapshot_id: str | None = None,
    store: str | None = None,
) -> StepResult:
    """Run one step to completion; raise :class:`StepFailed` with the cell and exception if it fails.

    ``snapshot_id`` (with ``store``, the store's URL): restore the snapshot into ``workdir`` (default: a
    fresh temporary directory) and run the step in the notebook's directory there.
    """
    if isinstance(pipeline, str):
        pipeline = json.loads(pipeline)
    if isinstance(pipeline, dict):
        pipeline = Pipeline.from_dict(pipeline)
    values = pipeline.defaults()
    values.update(parameters or {})
    workdir = Path(workdir or tempfile.mkdtemp(prefix="cellpipe-work-"))
    if snapshot_id:
        try:
            workdir = _restore_snapshot(snapshot_id, store, workdir, step)
        except SnapshotError as exc:
            write_step_error(step, f"restoring snapshot {snapshot_id[:12]} failed: {exc}")
            raise
    notebook_path = Path(notebook_path or Path(output_dir) / f"{step}.ipynb")
    result = asyncio.run(
        run_step(
            pipeline,
            step,
            parameters=values,
            input_dirs=input_dirs or {},
            output_dir=output_dir,
            workdir=workdir,
            notebook_path=notebook_path,
        )
    )
    if result.error is not None:
        error = result.error
        # In a pod, the failing cell and exception outlive it in the pod's status (runtime/termination.py).
        write_step_error(step, error.message, cell=error.cell, ename=error.ename, evalue=error.evalue)
        tail = "\n".join(result.error.traceback[-6:])
        raise StepFailed(
            f"{result.error.message}\n{tail}\nexecuted notebook: {result.notebook}",
            notebook=pipeline.notebook,
            cell=result.error.cell,
            step=step,
        )
    return result


def _restore_snapshot(snapshot_id: str, store: str | None, workdir: Path, step: str) -> Path:
    """Restore the snapshot under ``workdir``; return the restored notebook's directory."""
    if not store:
        raise SnapshotError(
            f"snapshot {snapshot_id[:12]} was given without the store that holds it",
            step=step,
            field="store",
            hint="pass the store URL too (the KFP parameter cellpipe_store)",
        )
    from jupyter_ext.snapshot import materialize

    restored = materialize(store, snapshot_id, workdir / "project")
    return restored.notebook.parent
