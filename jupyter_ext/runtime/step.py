"""Execute one pipeline step: the single code path, used by the local runner and inside KFP/Kubernetes pods.

A step runs as a small notebook in a fresh Jupyter kernel::

    [prelude]       the notebook's imports/functions cells
    [parameters]    the parameters cell's defaults, then papermill's injected-parameters cell (typed values)
    [inputs]        load the variables this step reads from upstream output directories
    [step cells]    the step's own cells, outputs kept
    [outputs]       save the variables downstream steps read, and the step's metrics

The executed notebook is written next to the outputs, so a failing step can be opened like any notebook.
Parameters are injected the papermill way (an ``injected-parameters`` cell) as literals: values, never code.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jupyter_ext.pipeline.model import Pipeline, Step
from jupyter_ext.records.models import StepStatus
from jupyter_ext.runtime.inject import inject_parameters, literal
from jupyter_ext.runtime.kernel import Kernel, execute_cells, start_kernel
from jupyter_ext.runtime.marshal import INDEX_FILE
from jupyter_ext.runtime.metrics import METRICS_FILE
from jupyter_ext.util import write_atomic


@dataclass
class StepError:
    kind: str  # "exception" | "kernel_died" | "timeout" | "internal"
    message: str
    ename: str | None = None
    evalue: str | None = None
    cell: int | None = None  # cell number in the original notebook
    traceback: list[str] = field(default_factory=list)  # last lines, ANSI colours removed

    def summary(self) -> str:
        where = f"cell {self.cell}: " if self.cell else ""
        return f"{where}{self.message}"


@dataclass
class StepResult:
    step: str
    status: StepStatus  # succeeded or failed
    started: float
    duration: float
    notebook: str  # executed step notebook
    outputs: dict[str, dict] = field(default_factory=dict)  # variable -> marshal record
    metrics: dict[str, float] = field(default_factory=dict)
    error: StepError | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_step_notebook(
    pipeline: Pipeline,
    step: Step,
    *,
    input_dirs: dict[str, str | Path],
    output_dir: str | Path,
    durable: bool = True,
) -> Any:
    """The notebook that runs ``step``. ``input_dirs`` maps each upstream step to its outputs directory.
    ``durable=False``: the outputs cell does not fsync what it writes (the caller makes it durable)."""
    from nbformat.v4 import new_code_cell, new_notebook

    def cell(source: str, role: str, index: int | None = None, tags: list[str] | None = None):
        code = new_code_cell(source)
        code.metadata["cellpipe"] = {"role": role, "cell": index}
        code.metadata["tags"] = tags or []  # papermill reads every cell's tags
        return code

    cells = [cell(c.source, "prelude", c.index) for c in pipeline.prelude]
    defaults = "\n".join(f"{p.name} = {literal(p.default)}" for p in pipeline.parameters)
    cells.append(cell(defaults, "parameters", tags=["parameters"]))
    sources = _input_sources(pipeline, step)
    if sources:
        lines = ["from jupyter_ext.runtime import marshal as _cellpipe_marshal"]
        for upstream, names in sources.items():
            directory = str(Path(input_dirs[upstream]).resolve())
            lines.append(
                f"globals().update(_cellpipe_marshal.load_all({names!r}, {directory!r}, step={step.name!r}))"
            )
        cells.append(cell("\n".join(lines), "inputs"))
    cells.extend(cell(c.source, "step", c.index) for c in step.cells)
    out = str(Path(output_dir).resolve())
    sync = "" if durable else ", durable=False"
    save = [
        "from jupyter_ext.runtime import marshal as _cellpipe_marshal, metrics as _cellpipe_metrics",
        f"_cellpipe_marshal.save_all({{{', '.join(f'{n!r}: {n}' for n in step.outputs)}}}, {out!r}, step={step.name!r}{sync})",
        f"_cellpipe_metrics.record({{{', '.join(f'{m!r}: {m}' for m in step.metrics)}}}, {out!r}, step={step.name!r}{sync});",
    ]  # the ';' keeps IPython from displaying record()'s return value as the cell's output
    cells.append(cell("\n".join(save), "outputs"))
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": pipeline.kernel,
        "display_name": pipeline.kernel,
        "language": "python",
    }
    notebook.metadata["papermill"] = {}
    notebook.metadata["cellpipe"] = {
        "pipeline": pipeline.name,
        "step": step.name,
        "notebook": pipeline.notebook,
    }
    return notebook


def _input_sources(pipeline: Pipeline, step: Step) -> dict[str, list[str]]:
    """Upstream step -> the variables this step loads from it."""
    sources: dict[str, list[str]] = {}
    for edge in pipeline.edges:
        if edge.target == step.name and edge.variables:
            sources.setdefault(edge.source, []).extend(edge.variables)
    return sources


async def run_step(
    pipeline: Pipeline,
    step_name: str,
    *,
    parameters: dict[str, Any],
    input_dirs: dict[str, str | Path],
    output_dir: str | Path,
    workdir: str | Path,
    notebook_path: str | Path,
    kernel: Kernel | None = None,
    timeout: float | None = None,
    durable: bool = True,
) -> StepResult:
    """Run one step in a kernel and return what happened. Never raises for errors in the user's code.

    ``kernel``: an already started kernel (the local runner keeps warm ones), which the caller stops;
    ``None`` starts a fresh one and stops it at the end. ``durable=False``: the outputs and the executed
    notebook are written completely but not fsynced; the caller makes them durable (off the step's path).
    """
    import nbformat
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    step = pipeline.step(step_name)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    notebook = build_step_notebook(
        pipeline, step, input_dirs=input_dirs, output_dir=output_dir, durable=durable
    )
    inject_parameters(notebook, _step_parameters(pipeline, parameters))
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name=pipeline.kernel,
        allow_errors=False,
        record_timing=True,
    )
    running: dict[str, Any] = {}  # the cell being executed, to locate kernel deaths and timeouts
    client.on_cell_execute = lambda cell, cell_index: running.update(cell=cell)
    started = time.time()
    error: StepError | None = None
    owned = kernel is None  # a kernel handed in is stopped by whoever started it
    try:
        kernel = kernel or await start_kernel(pipeline.kernel, workdir)
        await execute_cells(client, kernel)
    except CellExecutionError as exc:
        error = _exception_error(notebook, exc)
    except NoSuchKernel:
        error = StepError(
            kind="no_kernel",
            message=f"no Jupyter kernel named '{pipeline.kernel}' is installed here: install it "
            "(python -m ipykernel install --user --name NAME) or switch the notebook's kernel",
        )
    except DeadKernelError:
        if asyncio.current_task().cancelling():  # nbclient reports our own cancellation as a dead kernel
            raise asyncio.CancelledError from None
        error = StepError(
            kind="kernel_died",
            message="the kernel died while running the step (out of memory, or a crash in native code)",
            cell=_source_cell(running.get("cell")),
        )
    except CellTimeoutError:
        error = StepError(
            kind="timeout",
            message=f"a cell ran longer than {timeout} s",
            cell=_source_cell(running.get("cell")),
        )
    finally:
        if owned and kernel is not None:
            await kernel.shutdown()
        # in a thread: its fsync must not hold up the event loop (the Jupyter server's, other steps')
        await asyncio.to_thread(
            lambda: write_atomic(notebook_path, nbformat.writes(notebook).encode(), durable=durable)
        )
    duration = time.time() - started
    if error is not None:
        return StepResult(step_name, StepStatus.FAILED, started, duration, str(notebook_path), error=error)
    return StepResult(
        step_name,
        StepStatus.SUCCEEDED,
        started,
        duration,
        str(notebook_path),
        outputs=_read_json(output_dir / INDEX_FILE),
        metrics=_read_json(output_dir / METRICS_FILE),
    )


def _step_parameters(pipeline: Pipeline, values: dict[str, Any]) -> dict[str, Any]:
    known = {p.name for p in pipeline.parameters}
    return {name: value for name, value in values.items() if name in known}


def _exception_error(notebook: Any, exc: Any) -> StepError:
    from nbclient.exceptions import CellExecutionError

    assert isinstance(exc, CellExecutionError)
    cell_meta = _failing_cell_meta(notebook)
    traceback = (
        _strip_ansi(exc.traceback if isinstance(exc.traceback, str) else str(exc)).strip().splitlines()
    )
    role = cell_meta.get("role")
    where = {"inputs": "loading the step's inputs", "outputs": "saving the step's outputs"}.get(role)
    message = f"{exc.ename}: {exc.evalue}"
    if where:
        message = f"{message} (while {where})"
    return StepError(
        kind="exception",
        message=message,
        ename=exc.ename,
        evalue=exc.evalue,
        cell=cell_meta.get("cell"),
        traceback=traceback[-12:],
    )


def _failing_cell_meta(notebook: Any) -> dict:
    for cell in notebook.cells:
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return dict(cell.metadata.get("cellpipe", {}))
    return {}


def _source_cell(cell: Any) -> int | None:
    """The original notebook's cell number of a step-notebook cell."""
    return cell.metadata.get("cellpipe", {}).get("cell") if cell is not None else None


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}
