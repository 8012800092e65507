"""Ctrl-C and a killed runner: kernels are stopped, and the run record says what happened."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from jupyter_ext.records.models import StepStatus
from jupyter_ext.records.store import RecordStore
from jupyter_ext.services.runs import RunRequest, RunService
from jupyter_ext.targets.local.target import LocalOptions

pytestmark = pytest.mark.slow


def start_run(notebook, data_dir):
    env = {**os.environ, "CELLPIPE_HOME": str(data_dir)}
    cmd = [sys.executable, "-m", "jupyter_ext.cli", "run", str(notebook), "--no-track"]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_interruptible
    )


def _interruptible() -> None:
    """Ctrl-C as in a terminal, whatever this test runs under: a shell starting a command in the background
    (``cmd &``, nohup) makes it ignore SIGINT, its children inherit that, and the runner then rightly ignores
    the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_running_step(data_dir, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (data_dir / "cellpipe.db").exists():
            for record in RecordStore(data_dir).list_runs()[0]:
                if any(s.status is StepStatus.RUNNING for s in record.steps):
                    return record.id
        time.sleep(0.2)
    raise AssertionError("no step started running")


def descendants(pid):
    return psutil.Process(pid).children(recursive=True)


def test_ctrl_c_cancels_and_stops_every_kernel(write_notebook, data_dir):
    notebook = write_notebook(
        [(["step:slow"], "import time\nx = 1\ntime.sleep(120)"), (["step:after"], "y = x")]
    )
    process = start_run(notebook, data_dir)
    run_id = wait_for_running_step(data_dir)
    time.sleep(1)  # let the kernel get into the cell
    kernels = descendants(process.pid)
    assert kernels, "the runner should have kernel child processes"
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 130, output
    gone, alive = psutil.wait_procs(kernels, timeout=10)
    assert not alive, f"kernels left behind: {alive}"
    record = RecordStore(data_dir).get_run(run_id)
    assert record.status == "cancelled"
    slow = record.step("slow")
    assert slow.status == "cancelled"
    assert slow.duration_s >= 1 and slow.finished >= slow.started  # how long it ran until stopped
    assert record.step("after").status == "not_run"  # never started


def test_killed_runner_leaves_a_crashed_record(write_notebook, data_dir):
    notebook = write_notebook([(["step:slow"], "import time\ntime.sleep(120)")])
    process = start_run(notebook, data_dir)
    run_id = wait_for_running_step(data_dir)
    kernels = descendants(process.pid)
    process.kill()
    process.wait(timeout=30)
    record = RecordStore(data_dir).get_run(run_id)
    assert record.status == "crashed"
    assert record.step("slow").status == "crashed"
    # kernels notice their parent is gone (ipykernel's parent poller) and exit on their own
    gone, alive = psutil.wait_procs(kernels, timeout=20)
    for proc in alive:
        proc.kill()
    assert not alive


def test_step_timeout_names_the_cell(write_notebook, data_dir):
    notebook = write_notebook([(["step:quick"], "x = 1"), (["step:stuck"], "import time\ntime.sleep(60)")])
    request = RunRequest(notebook=notebook, track=False, target_options=LocalOptions(step_timeout=2))
    record = RunService(data_dir).run(request)
    error = record.step("stuck").error
    assert error["kind"] == "timeout" and error["cell"] == 2
