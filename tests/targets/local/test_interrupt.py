"""Ctrl-C and a killed runner: kernels are stopped, and the run record says what happened."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from jupyter_ext.runs.store import RunStore

pytestmark = pytest.mark.slow


def start_run(notebook, data_dir):
    env = {**os.environ, "CELLPIPE_HOME": str(data_dir)}
    cmd = [sys.executable, "-m", "jupyter_ext.cli", "run", str(notebook), "--no-track"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for_running_step(data_dir, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for record_file in (data_dir / "runs").glob("*/record.json"):
            try:
                record = json.loads(record_file.read_text())
            except ValueError:
                continue
            if any(s["status"] == "running" for s in record["steps"].values()):
                return record["id"]
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
    record = RunStore(data_dir / "runs").load(run_id)
    assert record["status"] == "cancelled"
    assert record["steps"]["slow"]["status"] == "cancelled"
    assert record["steps"]["after"]["status"] == "cancelled"


def test_killed_runner_leaves_a_crashed_record(write_notebook, data_dir):
    notebook = write_notebook([(["step:slow"], "import time\ntime.sleep(120)")])
    process = start_run(notebook, data_dir)
    run_id = wait_for_running_step(data_dir)
    kernels = descendants(process.pid)
    process.kill()
    process.wait(timeout=30)
    record = RunStore(data_dir / "runs").load(run_id)
    assert record["status"] == "crashed"
    assert record["steps"]["slow"]["status"] == "crashed"
    # kernels notice their parent is gone (ipykernel's parent poller) and exit on their own
    gone, alive = psutil.wait_procs(kernels, timeout=20)
    for proc in alive:
        proc.kill()
    assert not alive


def test_step_timeout_names_the_cell(write_notebook, data_dir):
    from jupyter_ext.runs.launch import LaunchRequest, execute, prepare

    notebook = write_notebook([(["step:quick"], "x = 1"), (["step:stuck"], "import time\ntime.sleep(60)")])
    request = LaunchRequest(notebook=notebook, data_dir=data_dir, track=False, snapshot=False, step_timeout=2)
    record = execute(request, prepare(request))
    error = record["steps"]["stuck"]["error"]
    assert error["kind"] == "timeout" and error["cell"] == 2
