"""A plain notebook (no step tags) run whole with papermill, as the single step of its run.

papermill runs in a child process (its command line, through :func:`papermill_command_line`: its kernel has
cellpipe's kernel manager, on private IPC sockets), so cancelling stops it and its kernel. The
parameters go in as a JSON file (typed values, never code) and papermill injects them after the cell tagged
``parameters`` (a ``pipeline-parameters`` cell gets that tag in a copy: the user's notebook is never changed).
A failure names the notebook's own cell number, not the executed copy's (which has the injected cell).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from jupyter_ext.notebook.read import read_notebook
from jupyter_ext.pipeline.model import Pipeline
from jupyter_ext.records.models import StepStatus
from jupyter_ext.runtime.step import StepError, StepResult
from jupyter_ext.util import write_atomic

PLAIN_STEP = "notebook"  # the name of a plain notebook's one step
ENGINE = "cellpipe"  # papermill's nbclient engine with cellpipe's kernel manager
# cells papermill adds to the executed copy: the injected parameters, and the error banners
ADDED_TAGS = ("injected-parameters", "papermill-error-cell-tag")


def papermill_input(pipeline: Pipeline, source: Path, destination: Path) -> Path:
    """A copy of the notebook whose defaults cell carries papermill's ``parameters`` tag, and every cell an id.

    Read with the project's reader, not ``nbformat.read``: nbformat's validation prints a
    MissingIDFieldWarning (into a pod's log) for a v4.5 notebook whose cells lack ids; the copy gets them, so
    papermill's own read is quiet too.
    """
    from nbformat.corpus.words import generate_corpus_id

    notebook = read_notebook(source)
    cells = {p.cell for p in pipeline.parameters}
    for index, cell in enumerate(notebook.cells, start=1):
        tags = cell.metadata.setdefault("tags", [])
        if index in cells and "parameters" not in tags:
            tags.append("parameters")
        if not cell.get("id"):
            cell["id"] = generate_corpus_id()
    notebook["nbformat_minor"] = max(5, notebook.get("nbformat_minor", 0))  # 4.5: the first with cell ids
    destination.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(destination, json.dumps(notebook, indent=1, ensure_ascii=False).encode(), durable=False)
    return destination


async def run_papermill(
    pipeline: Pipeline, notebook: Path, parameters: dict[str, Any], *, output: Path, cwd: Path,
    log: Path | None = None, timeout: float | None = None,
) -> StepResult:  # fmt: skip
    """Execute ``notebook`` whole into ``output``; the result of its one step. Cell output goes to ``log``, or
    with no log to this process's stdout (a pod's log shows it)."""
    from jupyter_ext.util import open_private

    started = time.time()
    work = output.parent
    source = papermill_input(pipeline, notebook, work / "input.ipynb")
    params = work / "parameters.json"
    params.write_text(json.dumps(parameters))
    command = [sys.executable, "-m", __name__, str(source), str(output), "-f", str(params), "-k",
               pipeline.kernel, "--cwd", str(cwd), "--no-progress-bar", "--log-level", "WARNING",
               "--engine", ENGINE]  # fmt: skip
    if timeout:
        command += ["--execution-timeout", str(int(timeout))]
    if log is None:
        command += ["--stdout-file", "/dev/stdout", "--stderr-file", "/dev/stderr"]
    with contextlib.ExitStack() as stack:
        stream = stack.enter_context(open_private(log, "ab")) if log else None
        process = await asyncio.create_subprocess_exec(*command, stdout=stream, stderr=stream)
        try:
            code = await process.wait()
        except BaseException:  # cancelled: stop papermill and, with it, its kernel
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(process.wait(), 10)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise
    duration = time.time() - started
    if code == 0:
        return StepResult(PLAIN_STEP, StepStatus.SUCCEEDED, started, duration, str(output))
    return StepResult(PLAIN_STEP, StepStatus.FAILED, started, duration, str(output) if output.is_file() else "",
                      error=_failure(output, code))  # fmt: skip


def _failure(output: Path, code: int) -> StepError:
    """The failing cell of the executed notebook, numbered as in the user's notebook."""
    import nbformat

    try:
        executed = nbformat.read(output, as_version=4)
    except (OSError, ValueError):
        return StepError(
            kind="internal", message=f"papermill exited with status {code} before writing output"
        )
    position = 0
    for cell in executed.cells:
        if any(tag in ADDED_TAGS for tag in cell.metadata.get("tags", [])):
            continue
        position += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                ename, evalue = out.get("ename", ""), out.get("evalue", "")
                traceback = [_plain(line) for line in out.get("traceback", [])][-6:]
                return StepError(kind="exception", message=f"{ename}: {evalue}", ename=ename, evalue=evalue,
                                 cell=position, traceback=traceback)  # fmt: skip
    return StepError(
        kind="internal", message=f"papermill exited with status {code}; see the executed notebook"
    )


def _plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def papermill_command_line() -> None:
    """``python -m jupyter_ext.targets.local.papermill ARGS``: papermill's command line, with an engine whose
    kernel has cellpipe's kernel manager (IPC sockets in a private directory, not loopback TCP)."""
    from papermill.cli import papermill
    from papermill.engines import NBClientEngine, papermill_engines

    from jupyter_ext.runtime.kernel import kernel_manager_class

    class CellpipeEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
            kwargs["kernel_manager_class"] = kernel_manager_class()
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register(ENGINE, CellpipeEngine)
    papermill()  # click reads the arguments


if __name__ == "__main__":
    papermill_command_line()
