"""The whole local run of a notebook, as one call: snapshot -> analyse -> run -> track.

Used by ``cellpipe run``, ``cellpipe rerun`` and the Jupyter server extension, so every entry point
takes the same path and every run records its snapshot.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_ext.notebook.params import resolve
from jupyter_ext.pipeline.build import build_pipeline
from jupyter_ext.pipeline.model import Pipeline
from jupyter_ext.runs.store import RunStore
from jupyter_ext.snapshot.project import data_dir
from jupyter_ext.targets.local.runner import Listener, LocalRunner, RunOptions


@dataclass
class LaunchRequest:
    notebook: str | Path
    overrides: list[str] | dict[str, Any] | None = None
    content: bytes | None = None  # unsaved notebook content (from the UI)
    max_parallel: int = 0
    use_cache: bool = True
    track: bool = True
    snapshot: bool = True
    snapshot_id: str | None = None  # run from this existing snapshot (rerun) instead of taking one
    step_timeout: float | None = None
    data_dir: str | Path | None = None
    workdir: str | Path | None = None  # default: the notebook's directory
    extra: dict[str, Any] = field(default_factory=dict)  # recorded as is (e.g. rerun_of)


@dataclass
class Prepared:
    pipeline: Pipeline
    parameters: dict[str, Any]
    data_dir: Path
    notebook_sha256: str
    snapshot: Any = None  # jupyter_ext.snapshot.Snapshot


def prepare(request: LaunchRequest, *, snapshot_progress: Any = None) -> Prepared:
    """Read, analyse and snapshot the notebook; everything that can fail on user input fails here."""
    path = Path(request.notebook)
    content = request.content if request.content is not None else _read(path)
    pipeline = build_pipeline(path, content=content)
    if pipeline.is_plain:
        from jupyter_ext.errors import NotebookError

        raise NotebookError(
            "no steps: a plain notebook (no step:NAME tags) does not run locally as a pipeline yet",
            notebook=str(path),
            hint="tag the first cell of each step step:NAME (e.g. step:load_data); run `cellpipe --help`",
        )
    check_kernel(pipeline)
    parameters = resolve(pipeline.parameters, request.overrides)
    directory = Path(request.data_dir) if request.data_dir else data_dir(path)
    snap = None
    if request.snapshot and not request.snapshot_id:
        from jupyter_ext.snapshot import take_snapshot

        snap = take_snapshot(
            path, store=_store_url(directory), notebook_bytes=content, progress=snapshot_progress
        )
    return Prepared(pipeline, parameters, directory, hashlib.sha256(content).hexdigest(), snap)


def execute(
    request: LaunchRequest, prepared: Prepared, *, listener: Listener | None = None
) -> dict[str, Any]:
    """Run a prepared pipeline locally, then track it in MLflow (unless turned off)."""
    import asyncio

    runner = LocalRunner(
        prepared.pipeline,
        workdir=Path(request.workdir or Path(request.notebook).resolve().parent),
        data_dir=prepared.data_dir,
        options=RunOptions(
            parameters=prepared.parameters,
            max_parallel=request.max_parallel,
            use_cache=request.use_cache,
            step_timeout=request.step_timeout,
            snapshot_id=prepared.snapshot.id if prepared.snapshot else request.snapshot_id,
            notebook_sha256=prepared.notebook_sha256,
        ),
        listener=listener,
        extra=request.extra,
    )
    try:
        record = asyncio.run(runner.run())
    except KeyboardInterrupt:
        record = runner.record
    if request.track and record.get("status") in ("succeeded", "failed", "cancelled"):
        from jupyter_ext.tracking.mlflow import track_run

        record["mlflow"] = track_run(record, prepared.pipeline, data_dir=prepared.data_dir)
        RunStore(prepared.data_dir / "runs").save(record)
    return record


def check_kernel(pipeline: Pipeline) -> None:
    """Fail before anything runs when the notebook's kernel is not installed here."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from jupyter_ext.errors import NotebookError

    try:
        KernelSpecManager().get_kernel_spec(pipeline.kernel)
    except NoSuchKernel:
        raise NotebookError(
            f"the notebook's kernel '{pipeline.kernel}' is not installed here",
            notebook=pipeline.notebook,
            field="metadata.kernelspec.name",
            hint="install it (python -m ipykernel install --user --name NAME) or switch the notebook to python3",
        ) from None


def _store_url(directory: Path) -> str:
    """The snapshot store of a data directory (``$CELLPIPE_STORE`` overrides), as the snapshot commands see it."""
    from jupyter_ext.snapshot.store import STORE_DIR

    return os.environ.get("CELLPIPE_STORE") or str(directory / STORE_DIR)


def _read(path: Path) -> bytes:
    from jupyter_ext.notebook.read import read_notebook

    read_notebook(path)  # the clear errors for a missing or broken file
    return path.read_bytes()


def rerun_request(run_id: str, directory: str | Path, **options: Any) -> LaunchRequest:
    """A request that runs a recorded run again from its snapshot, with its parameters."""
    from jupyter_ext.errors import CellpipeError
    from jupyter_ext.snapshot import materialize

    record = RunStore(Path(directory) / "runs").load(run_id)
    if not record.get("snapshot_id"):
        raise CellpipeError(
            f"run {record['id']} has no snapshot to run from",
            hint="it was run with snapshots off; run the notebook again with `cellpipe run`",
        )
    restored = materialize(_store_url(Path(directory)), record["snapshot_id"])
    return LaunchRequest(
        notebook=restored.notebook,
        overrides=record.get("parameters") or {},
        snapshot_id=record["snapshot_id"],
        data_dir=directory,
        extra={"rerun_of": record["id"], "original_notebook": record["notebook"]},
        **options,
    )
