"""Concurrency through HTTP: runs beyond ``max_concurrent_runs`` wait as ``queued``, kernels never exceed the
limit, finished runs release their slot, and stopping the server ends every run and kernel cleanly."""

from __future__ import annotations

import concurrent.futures
import time

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

LIMIT = 2
SUBMISSIONS = 20


def write_sleeper(path, seconds: float) -> None:
    """A one-step notebook whose step sleeps: one kernel per run, for ``seconds``."""
    cell = new_code_cell(f"import time\ntime.sleep({seconds})\ndone = True")
    cell.metadata["tags"] = ["step:sleep"]
    notebook = new_notebook(cells=[cell])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def kernels_of(process: psutil.Process) -> int:
    """Kernel processes under the server. A process a kernel forks (a subprocess between fork and exec)
    shows the same command line for a moment: it is not a kernel."""
    found: dict[int, int] = {}  # kernel pid -> its parent's
    for child in process.children(recursive=True):
        try:
            if "ipykernel_launcher" in " ".join(child.cmdline()):
                found[child.pid] = child.ppid()
        except psutil.Error:
            continue
    return sum(1 for parent in found.values() if parent not in found)


def test_runs_beyond_the_limit_wait_in_a_visible_queue(launch):
    server = launch(f"--CellpipeApp.max_concurrent_runs={LIMIT}", notebooks=())
    write_sleeper(server.root / "sleeper.ipynb", 1.5)
    assert server.api("GET", "config").json()["max_concurrent_runs"] == LIMIT
    body = {"path": "sleeper.ipynb", "track": False, "use_cache": False}
    with concurrent.futures.ThreadPoolExecutor(SUBMISSIONS) as pool:
        responses = list(pool.map(lambda _: server.api("POST", "runs", json=body), range(SUBMISSIONS)))
    assert [r.status_code for r in responses] == [202] * SUBMISSIONS, responses[0].text
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == SUBMISSIONS

    process = psutil.Process(server.process.pid)
    most_kernels = most_running = 0
    saw_queued = False
    deadline = time.time() + 300
    while True:
        most_kernels = max(most_kernels, kernels_of(process))
        running = server.api("GET", "runs", params={"status": "running"}).json()["total"]
        queued = server.api("GET", "runs", params={"status": "queued"}).json()["total"]
        most_running = max(most_running, running)
        saw_queued = saw_queued or queued > 0
        if running == queued == 0:
            break
        assert time.time() < deadline, f"{running} running and {queued} queued after 300 s"
        time.sleep(0.2)
    print(
        f"{SUBMISSIONS} submissions, limit {LIMIT}: at most {most_kernels} kernels, {most_running} running at once"
    )
    assert saw_queued
    assert most_running <= LIMIT
    assert most_kernels <= LIMIT
    listed = server.api("GET", "runs", params={"limit": 100}).json()
    assert {r["id"] for r in listed["runs"]} >= ids
    assert all(r["status"] == "succeeded" for r in listed["runs"] if r["id"] in ids)
    time.sleep(1)
    assert kernels_of(process) == 0  # every finished run released its kernel


def test_stopping_the_server_ends_runs_and_kernels(launch):
    server = launch(f"--CellpipeApp.max_concurrent_runs={LIMIT}", notebooks=())
    write_sleeper(server.root / "long.ipynb", 120)
    body = {"path": "long.ipynb", "track": False, "use_cache": False}
    ids = [server.api("POST", "runs", json=body).json()["id"] for _ in range(LIMIT + 2)]
    process = psutil.Process(server.process.pid)
    wait_until(lambda: kernels_of(process) >= LIMIT, timeout=90, interval=0.3, what="the kernels to start")
    kernels = [c for c in process.children(recursive=True) if "ipykernel_launcher" in " ".join(c.cmdline())]
    started = time.perf_counter()
    server.stop()
    stopped_in = time.perf_counter() - started
    assert server.process.returncode is not None and stopped_in < 30
    gone, alive = psutil.wait_procs(kernels, timeout=10)
    assert not alive, f"kernels left running after the server stopped: {[p.pid for p in alive]}"

    from jupyter_ext.records.store import RecordStore

    store = RecordStore(server.root / ".cellpipe")  # the stopped server's store, read directly
    statuses = [store.get_run(run_id).status.value for run_id in ids]
    assert statuses == ["cancelled"] * len(ids), statuses  # shut down cleanly: none left running or crashed


def test_a_server_killed_mid_run_shows_its_runs_crashed_after_a_restart(launch):
    first = launch("--CellpipeApp.max_concurrent_runs=1", notebooks=())
    write_sleeper(first.root / "long.ipynb", 120)
    body = {"path": "long.ipynb", "track": False, "use_cache": False}
    running, queued = (first.api("POST", "runs", json=body).json()["id"] for _ in range(2))
    process = psutil.Process(first.process.pid)
    wait_until(lambda: kernels_of(process) >= 1, timeout=90, interval=0.3, what="the kernel to start")
    orphans = [c for c in process.children(recursive=True) if "ipykernel_launcher" in " ".join(c.cmdline())]
    first.process.kill()  # no shutdown at all: a crash, an OOM kill, a culled pod
    first.process.wait()
    for kernel in orphans:  # what a real crash would leave behind; not the point here
        kernel.kill()

    second = launch(notebooks=(), root=first.root)
    records = {run_id: second.api("GET", f"runs/{run_id}").json() for run_id in (running, queued)}
    assert {r["status"] for r in records.values()} == {"crashed"}, records
    assert second.api("GET", "runs", params={"status": "running"}).json()["total"] == 0
    assert second.api("DELETE", f"runs/{running}").status_code == 204  # a crashed run can be deleted
