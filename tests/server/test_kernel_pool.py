"""kernel_pool_size on a real server: kernels wait from the first analysis on (not from the server's start),
a run's steps use them, and each kernel runs one step only (the pool refills with new ones, which import the
installed modules of the latest notebook analysed or run while they wait: kernel_pool_preload, on by
default); an idle pool gives its kernels back, and a stopping server stops them."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import make_notebook

pytestmark = pytest.mark.slow


def kernel_children(pid: int) -> set[int]:
    """The kernels a process started: its descendants running ipykernel (spawned, or forked by its kernel
    fork server), not counting a process a kernel forks itself."""
    found: dict[int, int] = {}  # kernel pid -> its parent's
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "ipykernel_launcher" in " ".join(child.cmdline()):
                found[child.pid] = child.ppid()
        except psutil.Error:
            continue
    return {kernel for kernel, parent in found.items() if parent not in found}


def numpy_loaded(pid: int) -> bool:
    """Whether a process has imported numpy (its compiled core is mapped into it)."""
    try:
        return "numpy" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def wait_for(condition, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_a_run_takes_the_servers_warm_kernels_once(launch):
    server = launch("--CellpipeApp.kernel_pool_size=2")

    def kernels(at_least: int, besides: set[int] = frozenset()) -> set[int] | None:
        found = kernel_children(server.process.pid)
        return found if len(found - besides) >= at_least else None

    make_notebook(server.root / "plain.ipynb", [(["step:only"], "x = 1")])
    analyse(
        server, "plain.ipynb"
    )  # the pool starts with the first analysis (of a notebook importing nothing)
    warm = wait_for(lambda: kernels(2))
    assert not any(numpy_loaded(pid) for pid in warm)  # nothing is imported ahead that no notebook imports
    answer = server.api("POST", "runs", json={"path": "branches.ipynb", "track": False})
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["id"]

    def final() -> dict | None:
        record = server.api("GET", f"runs/{run_id}").json()
        return record if record["status"] in ("succeeded", "failed", "crashed") else None

    record = wait_for(final)
    assert record["status"] == "succeeded", record
    refilled = wait_for(lambda: kernels(2, besides=warm))
    assert warm - refilled  # the warm kernels ran steps and are gone; new ones wait in their place
    assert len(refilled) == 2
    assert wait_for(lambda: all(numpy_loaded(pid) for pid in refilled))  # the notebook's `import numpy`


# -- the default pool: 3 kernels, started by the first analysis, given back when idle ----------------------
DEFAULT = {"CELLPIPE_KERNEL_POOL_SIZE": ""}  # the product's default (the suite's servers keep none)


def fork_servers(pid: int) -> set[int]:
    """The kernel fork servers a process started."""
    found = set()
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "jupyter_ext.runtime.kernel_fork" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.Error:
            continue
    return found


def running(pid: int) -> bool:
    """Whether a process exists and has not ended (an ended one waits as a zombie until its parent, or
    whoever adopted it, reaps it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def analyse(server, path: str = "branches.ipynb") -> None:
    answer = server.api("POST", "analyse", json={"path": path})
    assert answer.status_code == 200, answer.text


def run_to_the_end(server, path: str = "branches.ipynb") -> dict:
    answer = server.api("POST", "runs", json={"path": path, "track": False, "use_cache": False})
    assert answer.status_code == 202, answer.text
    return server.wait_for_run(
        answer.json()["id"], lambda r: r["status"] in ("succeeded", "failed", "crashed"), what="the run's end"
    )


def test_the_default_pool_waits_for_the_first_analysis_and_preloads_that_notebook(launch):
    server = launch(env=DEFAULT)
    assert server.api("GET", "config").json()["kernel_pool_size"] == 3
    time.sleep(1.0)  # a server that starts the pool with itself has forked by now
    assert kernel_children(server.process.pid) == set()  # nobody opened a notebook: no kernel held
    assert fork_servers(server.process.pid) == set()
    analyse(server)  # what the front end does when the notebook opens
    warm = wait_for(lambda: (found := kernel_children(server.process.pid)) and len(found) >= 3 and found)
    assert len(warm) == 3
    assert wait_for(lambda: all(numpy_loaded(pid) for pid in warm))  # its `import numpy`, before any run
    record = run_to_the_end(server)
    assert record["status"] == "succeeded", record
    assert warm - kernel_children(server.process.pid)  # the run's steps took the waiting kernels


def test_an_idle_pool_gives_its_kernels_back_and_starts_again_when_used(launch):
    server = launch("--CellpipeApp.kernel_pool_idle_timeout=2", env=DEFAULT)
    analyse(server)
    first = wait_for(lambda: (found := kernel_children(server.process.pid)) and len(found) >= 3 and found)
    forker = fork_servers(server.process.pid)
    assert len(forker) == 1
    wait_for(lambda: not kernel_children(server.process.pid) and not fork_servers(server.process.pid))
    wait_for(lambda: not any(running(pid) for pid in first | forker), timeout=30)
    analyse(server)  # the user is back
    again = wait_for(lambda: (found := kernel_children(server.process.pid)) and len(found) >= 3 and found)
    assert not again & first


def test_the_pool_gives_nothing_back_while_a_run_uses_its_fork_server(launch):
    # a run longer than the idle timeout: its kernels fork from the pool's fork server and would die with it
    server = launch("--CellpipeApp.kernel_pool_idle_timeout=0.5", env=DEFAULT, notebooks=())
    make_notebook(
        server.root / "slow.ipynb",
        [
            (["step:first"], "import time\ntime.sleep(2)\nx = 1"),
            (["step:second"], "time.sleep(2)\ny = x + 1"),
            (["pipeline-metrics"], "y"),
        ],
    )
    record = run_to_the_end(server, "slow.ipynb")
    assert record["status"] == "succeeded", record
    wait_for(lambda: not kernel_children(server.process.pid) and not fork_servers(server.process.pid))


def test_stopping_the_server_stops_the_pools_kernels_and_fork_server(launch):
    server = launch(env=DEFAULT)
    analyse(server)
    kernels = wait_for(lambda: (found := kernel_children(server.process.pid)) and len(found) >= 3 and found)
    processes = kernels | fork_servers(server.process.pid)
    server.stop()
    wait_for(lambda: not any(running(pid) for pid in processes), timeout=30)
