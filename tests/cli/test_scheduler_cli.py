"""``cellpipe scheduler`` as a real foreground process: it starts, says what it watches, and stops cleanly on
SIGTERM and Ctrl-C (SIGINT). Its firing logic is the Scheduler's (tests/services/test_schedules.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jupyter_ext.cli.main import main


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_scheduler_runs_in_the_foreground_and_stops_cleanly(
    write_notebook: Callable[..., Path], data_dir: Path, stop_signal: int, capsys: pytest.CaptureFixture
) -> None:
    notebook = write_notebook([(["parameters"], "n = 1"), ([], "print(n)")], name="report.ipynb")
    assert main(["schedule", str(notebook), "--cron", "0 3 * * *"]) == 0
    assert main(["schedule", str(notebook), "--cron", "0 4 * * *", "--name", "later", "--paused"]) == 0
    capsys.readouterr()
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter_ext.cli", "scheduler"],
        env={**os.environ, "CELLPIPE_HOME": str(data_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = process.stdout.readline()  # blocks until the scheduler is up
        assert "cellpipe scheduler: 1 active local schedules (1 paused)" in first, first
        assert str(data_dir) in first and "Ctrl-C or SIGTERM stops it" in first
        started = time.monotonic()
        process.send_signal(stop_signal)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert time.monotonic() - started < 15
    assert "cellpipe scheduler stopped after" in rest and "0 runs started" in rest
    assert "Traceback" not in rest
