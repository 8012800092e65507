"""Cancel from any process, with real processes on one data directory: a `cellpipe run` in a terminal
cancelled through the server's API, a server run cancelled by `cellpipe runs cancel`; kernels gone, the
record cancelled with the step that ran cancelled and who asked; a finished run is left as it is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.server.test_kernel_pool import kernel_children
from tests.server.test_runs import wait_final

pytestmark = pytest.mark.slow


def write_pipeline(path, seconds: float) -> None:
    """Two steps: ``wait`` sleeps ``seconds``, ``after`` needs its result."""
    cells = [new_code_cell(f"import time\ntime.sleep({seconds})\nx = 1"), new_code_cell("y = x + 1")]
    for cell, name in zip(cells, ("wait", "after"), strict=True):
        cell.metadata["tags"] = [f"step:{name}"]
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def cli(server, *args: str, **kwargs) -> subprocess.Popen:
    """A cellpipe command on the server's data directory, as a user in a terminal next to it."""
    env = {**os.environ, "CELLPIPE_HOME": str(server.root / ".cellpipe")}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen([sys.executable, "-m", "jupyter_ext.cli", *args], env=env, cwd=server.root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)  # fmt: skip


def wait_for_step(server, run_id: str, name: str = "wait", timeout: float = 90) -> dict:
    def running(record: dict) -> bool:
        return next(s for s in record["steps"] if s["name"] == name)["status"] == "running"

    return server.wait_for_run(run_id, running, timeout=timeout, interval=0.2, what=f"step '{name}' to start")


def kernels(pid: int) -> list[psutil.Process]:
    return [psutil.Process(kernel) for kernel in kernel_children(pid)]


def statuses(record: dict) -> dict[str, str]:
    return {s["name"]: s["status"] for s in record["steps"]}


@pytest.fixture(scope="module")
def server(launch):
    return launch("--CellpipeApp.kernel_pool_size=0", notebooks=())  # every kernel under it is a run's


def terminal_run(server, name: str) -> tuple[subprocess.Popen, str]:
    """`cellpipe run NAME` in a terminal beside the server, once its first step runs: (process, run id)."""
    write_pipeline(server.root / name, 120)
    run = cli(server, "run", name, "--no-track")
    deadline = time.time() + 90
    query = {"status": "running", "path": name}
    while not (listed := server.api("GET", "runs", params=query).json()["runs"]):
        assert time.time() < deadline and run.poll() is None, "the terminal run did not start"
        time.sleep(0.2)
    assert listed[0]["source"] == "cli"
    wait_for_step(server, listed[0]["id"])
    return run, listed[0]["id"]


def test_a_terminal_run_is_cancelled_through_the_servers_api(server):
    run, run_id = terminal_run(server, "terminal.ipynb")
    running_kernels = kernels(run.pid)
    assert running_kernels, "the terminal run should have a kernel"

    began = time.perf_counter()
    answer = server.api("POST", f"runs/{run_id}/cancel")
    answered_s = time.perf_counter() - began
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["cancel_requested"]["by"].endswith("(Jupyter server)")
    output = run.communicate(timeout=60)[0]
    assert run.returncode == 130, output  # as after Ctrl-C
    assert "cancelled by" in output and "(Jupyter server)" in output, output
    record = wait_final(server, run_id)
    assert record["status"] == "cancelled"
    assert statuses(record) == {"wait": "cancelled", "after": "not_run"}
    assert record["cancel_requested"] == body["cancel_requested"]
    gone, alive = psutil.wait_procs(running_kernels, timeout=10)
    assert not alive, f"kernels left behind: {alive}"
    took = record["finished"] - record["cancel_requested"]["at"]
    print(f"\nterminal run cancelled through the API: request -> cancelled {took:.2f} s (record times), "
          f"API answered in {answered_s:.2f} s with status {body['status']}")  # fmt: skip
    assert server.api("POST", f"runs/{run_id}/cancel").json()["status"] == "cancelled"  # a no-op now


def test_a_server_run_is_cancelled_from_the_terminal(server):
    write_pipeline(server.root / "served.ipynb", 120)
    run_id = server.api("POST", "runs", json={"path": "served.ipynb", "track": False}).json()["id"]
    wait_for_step(server, run_id)
    running_kernels = kernels(server.process.pid)
    assert running_kernels, "the server run should have a kernel"

    began = time.perf_counter()
    cancel = cli(server, "runs", "cancel", run_id[-6:])  # the id's random part, as `runs show` takes it
    output = cancel.communicate(timeout=60)[0]
    command_s = time.perf_counter() - began
    assert cancel.returncode == 0, output
    assert f"run {run_id} cancelled in" in output and "(stopped in step wait)" in output, output
    record = server.api("GET", f"runs/{run_id}").json()
    assert record["status"] == "cancelled"
    assert statuses(record) == {"wait": "cancelled", "after": "not_run"}
    assert record["cancel_requested"]["by"].endswith("(cellpipe runs cancel)")
    gone, alive = psutil.wait_procs(running_kernels, timeout=10)
    assert not alive and not kernels(server.process.pid), f"kernels left behind: {alive}"
    took = record["finished"] - record["cancel_requested"]["at"]
    print(f"\nserver run cancelled by `cellpipe runs cancel`: request -> cancelled {took:.2f} s (record times), "
          f"whole command {command_s:.2f} s")  # fmt: skip

    again = cli(server, "runs", "cancel", run_id)
    output = again.communicate(timeout=60)[0]
    assert again.returncode == 0 and "already ended (cancelled); nothing to cancel" in output, output


def test_cancel_of_a_finished_run_leaves_it_as_it_is(server):
    write_pipeline(server.root / "quick.ipynb", 0)
    run_id = server.api("POST", "runs", json={"path": "quick.ipynb", "track": False}).json()["id"]
    done = wait_final(server, run_id, timeout=120)
    assert done["status"] == "succeeded"
    answer = server.api("POST", f"runs/{run_id}/cancel")
    assert answer.status_code == 202 and answer.json()["status"] == "succeeded"
    assert answer.json()["cancel_requested"] is None
    command = cli(server, "runs", "cancel", run_id)
    output = command.communicate(timeout=60)[0]
    assert command.returncode == 0 and "already ended (succeeded); nothing to cancel" in output, output
    assert server.api("GET", f"runs/{run_id}").json() == done


def test_a_request_the_owner_has_not_seen_yet_is_answered_running_and_kept(server):
    """An owner that does not look in time (stopped here with SIGSTOP): the API answers 202 after its wait
    with the run still running and the request shown; the owner cancels it once it looks again."""
    run, run_id = terminal_run(server, "paused.ipynb")
    run.send_signal(signal.SIGSTOP)  # alive (not crashed), but it cannot poll
    try:
        began = time.perf_counter()
        answer = server.api("POST", f"runs/{run_id}/cancel")
        waited_s = time.perf_counter() - began
        body = answer.json()
        assert answer.status_code == 202 and body["status"] == "running", answer.text
        assert body["cancel_requested"]["by"].endswith("(Jupyter server)") and waited_s >= 4.5
        listed = server.api("GET", "runs", params={"path": "paused.ipynb"}).json()["runs"]
        assert listed[0]["cancel_requested"] == body["cancel_requested"]  # the list shows it too
    finally:
        run.send_signal(signal.SIGCONT)
    output = run.communicate(timeout=60)[0]
    assert run.returncode == 130, output
    record = wait_final(server, run_id)
    assert record["status"] == "cancelled" and record["cancel_requested"] == body["cancel_requested"]
    assert statuses(record) == {"wait": "cancelled", "after": "not_run"}


def test_a_second_server_on_the_same_data_directory_cancels_the_first_ones_run(server, launch):
    """A JupyterHub pod restarted beside the old one, or two servers of one user: either cancels any run."""
    write_pipeline(server.root / "first.ipynb", 120)
    run_id = server.api("POST", "runs", json={"path": "first.ipynb", "track": False}).json()["id"]
    wait_for_step(server, run_id)
    running_kernels = kernels(server.process.pid)
    second = launch("--CellpipeApp.kernel_pool_size=0", root=server.root)
    answer = second.api("POST", f"runs/{run_id}/cancel")
    assert answer.status_code == 202 and answer.json()["cancel_requested"], answer.text
    record = wait_final(server, run_id, timeout=60)  # the first server, which ran it, agrees
    assert record["status"] == "cancelled" and statuses(record)["wait"] == "cancelled"
    gone, alive = psutil.wait_procs(running_kernels, timeout=10)
    assert not alive, f"kernels left behind: {alive}"
    second.stop()
