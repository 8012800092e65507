"""A plain notebook (no step tags) is a first-class local run: papermill runs it whole as one step."""

import json
from pathlib import Path

import pytest

from jupyter_ext.cli.main import main
from jupyter_ext.records.models import RunStatus, StepStatus
from jupyter_ext.services.runs import RunRequest, RunService

pytestmark = pytest.mark.slow

PLAIN = [
    "# A report",
    (["parameters"], "x = 1\nlabel = 'a'"),
    (None, "result = x * 10\nprint(f'{label}={result}')"),
    (None, "assert result < 100, 'too big'"),
]


def outputs(notebook_path: str) -> str:
    executed = json.loads(Path(notebook_path).read_text())
    return "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))


def test_cellpipe_run_a_plain_notebook_with_parameters(write_notebook, data_dir, capsys):
    notebook = write_notebook(PLAIN, name="report.ipynb")
    before = notebook.read_bytes()
    assert main(["run", str(notebook), "-p", "x=5", "-p", "label=b", "--no-track", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["mode"] == "notebook" and record["parameters"] == {"x": 5, "label": "b"}
    (step,) = record["steps"]
    assert step["name"] == "notebook" and step["status"] == "succeeded"
    assert "b=50" in outputs(step["notebook"])  # papermill injected the typed values
    assert notebook.read_bytes() == before  # the user's notebook is untouched
    assert main(["runs", "show", "latest"]) == 0
    assert record["id"] in capsys.readouterr().out


def test_a_failing_plain_notebook_names_its_own_cell(write_notebook, data_dir):
    record = RunService(data_dir).run(
        RunRequest(notebook=write_notebook(PLAIN, name="big.ipynb"), parameters={"x": 50}, track=False)
    )
    assert record.status is RunStatus.FAILED
    (step,) = record.steps
    assert step.status is StepStatus.FAILED
    # cell 4 of the user's notebook (markdown counted), not of the executed copy with the injected cell
    assert (
        step.error["cell"] == 4
        and step.error["ename"] == "AssertionError"
        and "too big" in step.error["message"]
    )


def test_a_papermill_notebook_without_parameters_runs(write_notebook, data_dir):
    service = RunService(data_dir)
    record = service.run(RunRequest(notebook=write_notebook([(None, "y = 2")]), track=True))
    assert record.status is RunStatus.SUCCEEDED and record.steps[0].status is StepStatus.SUCCEEDED
    assert (
        service.wait_for_tracking(record.id).tracking.status == "ok"
    )  # tracked like any run, in the background


def test_the_papermill_copy_gives_every_cell_an_id_without_warnings(tmp_path):
    """A v4.5 notebook whose cells lack ids made nbformat print MissingIDFieldWarning into a pod's log."""
    import warnings

    import nbformat

    from jupyter_ext.pipeline.build import build_pipeline
    from jupyter_ext.targets.local.papermill import papermill_input

    cells = [{"cell_type": "code", "metadata": {"tags": ["pipeline-parameters"]}, "source": "x = 1", "outputs": [], "execution_count": None},
             {"cell_type": "code", "metadata": {}, "source": "print(x)", "outputs": [], "execution_count": None}]  # fmt: skip
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source = tmp_path / "no-ids.ipynb"
    source.write_text(
        json.dumps(
            {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": kernelspec}, "cells": cells}
        )
    )
    before = source.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        copy = papermill_input(build_pipeline(source), source, tmp_path / "work" / "input.ipynb")
        read_back = nbformat.read(copy, as_version=4)  # what papermill does with the copy
    assert all(cell.get("id") for cell in read_back.cells)
    assert "parameters" in read_back.cells[0].metadata["tags"]  # pipeline-parameters: the defaults cell
    assert source.read_bytes() == before
