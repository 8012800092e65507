"""A failed step's error as its pod's termination message (runtime/termination.py, entry.execute_step).

One test runs a real kernel through ``execute_step``, as a KFP component does, with the termination log
redirected to a file that exists (as the kubelet's does in a pod).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from jupyter_ext.errors import StepFailed
from jupyter_ext.pipeline.build import build_pipeline
from jupyter_ext.runtime.entry import execute_step
from jupyter_ext.runtime.termination import LIMIT, read_step_error, step_error_message, write_step_error


@pytest.fixture
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv("CELLPIPE_TERMINATION_LOG", str(path))
    return path


def test_a_succeeding_step_writes_nothing(
    write_notebook: Callable[..., Path], termination_log: Path, tmp_path: Path
) -> None:
    termination_log.write_text("")  # the kubelet creates the file in a pod
    notebook = write_notebook([(["step:prepare"], "xs = [1, 2]")])
    execute_step(build_pipeline(notebook).to_dict(), "prepare", output_dir=tmp_path / "prepare")
    assert termination_log.read_text() == ""  # a step that succeeds writes nothing


def test_the_failing_step_writes_its_cell_and_exception(
    write_notebook: Callable[..., Path], termination_log: Path, tmp_path: Path
) -> None:
    termination_log.write_text("")
    notebook = write_notebook(
        [(["step:train_model"], "import math"), (["step:train_model"], "total = math.sqrt(-1)")]
    )
    pipeline = build_pipeline(notebook)
    with pytest.raises(StepFailed):
        execute_step(pipeline.to_dict(), "train_model", output_dir=tmp_path / "out")
    written = read_step_error(termination_log.read_text())
    assert written is not None
    assert (written["step"], written["cell"], written["ename"]) == ("train_model", 2, "ValueError")
    assert written["evalue"] == "math domain error" and "ValueError" in written["message"]


def test_nothing_is_written_outside_a_pod(termination_log: Path) -> None:
    assert not write_step_error("train", "boom")
    assert not termination_log.exists()


def test_the_message_fits_kubernetes_limit() -> None:
    text = step_error_message("s", "é" * 5000, cell=2, ename="E", evalue="ü" * 9000)
    assert len(text.encode()) <= LIMIT
    assert read_step_error(text)["cell"] == 2
    assert read_step_error("OOMKilled") is None and read_step_error('{"other": 1}') is None
