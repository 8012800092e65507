"""A local run on a shared machine: what it writes (data dir, store, cache, logs, MLflow) is private."""

from __future__ import annotations

import os
import socket
import stat
import subprocess

import pytest

from jupyter_ext.services.runs import RunRequest, RunService
from jupyter_ext.util import private_dir

pytestmark = pytest.mark.slow


def test_a_tracked_run_leaves_nothing_readable_by_others(write_notebook, data_dir) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = data_dir / "cache" / f".staging-{dead.pid}@{socket.gethostname()}~0123abcd" / "outputs"
    private_dir(leftover)  # as a run killed while it stored a step's outputs leaves it
    old = os.umask(0o022)
    try:
        notebook = write_notebook([(["step:make"], "x = 41"), (["step:use"], "y = x + 1")])
        service = RunService(data_dir)
        record = service.wait_for_tracking(service.run(RunRequest(notebook=notebook)).id).to_dict()
    finally:
        os.umask(old)
    assert record["status"] == "succeeded", record
    assert not leftover.parent.exists()  # cleaned when the next run started

    def mode(path):
        return oct(stat.S_IMODE(path.stat().st_mode))

    (kernels_log,) = data_dir.glob("runs/*/kernels.log")
    assert [mode(data_dir / name) for name in ("", "store", "cache", "mlartifacts")] == [oct(0o700)] * 4
    assert [mode(data_dir / "mlflow.db"), mode(kernels_log), mode(data_dir / "cellpipe.db")] == [
        oct(0o600)
    ] * 3
    assert mode(kernels_log.parent) == oct(0o700)
    # Store and cache through and through; MLflow's artifact tree follows the umask, behind mlartifacts/ (0700).
    exposed = [
        f"{path} {mode(path)}"
        for top in ("store", "cache")
        for path in (data_dir / top).rglob("*")
        if stat.S_IMODE(path.stat().st_mode) & 0o077
        and not (path.is_file() and path.parent.name == "outputs")  # written by the kernel, in a 0700 dir
    ]
    assert exposed == []
