"""kernel_pool_size on a real server: kernels wait before any run, a run's steps use them, and each kernel
runs one step only (the pool refills with new ones, which import the run's installed modules while they
wait: kernel_pool_preload, on by default)."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

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

    warm = wait_for(lambda: kernels(2))
    assert not any(numpy_loaded(pid) for pid in warm)  # before any run, nothing is imported ahead
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
