"""A KFP run belongs to KFP once it exists: ``cellpipe submit --target kfp`` returns, and whichever process
reads the record later (a new ``cellpipe`` process here) asks the loopback KFP server and finalizes it;
``cellpipe runs cancel`` from another process terminates it through the record's handle."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jupyter_ext.services.runs import RunService
from tests.support.loopback import free_port

if TYPE_CHECKING:
    from conftest import FakeKFP  # tests/targets/kfp/conftest.py

IMAGE = "ghcr.io/acme/cellpipe-runtime:1.0"
CELLS = [(["parameters"], "epochs = 3"), (["step:load"], "xs = list(range(epochs))"),
         (["step:train"], "total = sum(xs)")]  # fmt: skip


@pytest.fixture
def env(
    data_dir: Path, shared_remote_store: dict[str, str]
) -> dict[str, str]:  # data_dir clears $CELLPIPE_STORE: first
    return {**shared_remote_store, "CELLPIPE_HOME": str(data_dir)}


def cellpipe(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    """``cellpipe ARGV`` in a new process (the KFP server answers from its own thread)."""
    return subprocess.run([sys.executable, "-m", "jupyter_ext.cli", *argv], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def show(env: dict[str, str], run_id: str) -> dict[str, Any]:
    done = cellpipe(env, "runs", "show", run_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def submit(env: dict[str, str], kfp_server: FakeKFP, notebook: Path, tmp_path: Path) -> str:
    token = tmp_path / "token"
    token.write_text("t0k\n")
    done = cellpipe(env, "submit", str(notebook), "--target", "kfp", "--host", kfp_server.url,
                    "--token-file", str(token), "--image", IMAGE, "--no-track")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "KFP run r-4 created" in done.stdout and "t0k" not in done.stdout
    return done.stdout.split("run id    ", 1)[1].split()[0]


def test_a_submitted_kfp_run_is_finalized_by_whoever_reads_it(
    kfp_server: FakeKFP, env: dict, write_notebook: Callable, tmp_path: Path, data_dir: Path
) -> None:
    run_id = submit(env, kfp_server, write_notebook(CELLS, name="train.ipynb"), tmp_path)
    kfp_server.run("r-4").start().step("load", "Running")
    seen = show(env, run_id)  # submit has exited: the record is KFP's, not crashed
    assert seen["status"] == "running" and seen["refresh_error"] is None, seen
    assert seen["handle"]["host"] == kfp_server.url and seen["handle"]["run_id"] == "r-4"
    assert "t0k" not in json.dumps(seen)
    assert [s["status"] for s in seen["steps"]] == ["running", "pending"]

    kfp_server.run("r-4").step("load", "Succeeded").step("train", "Succeeded").finish("Succeeded")
    time.sleep(max(0.0, seen["refreshed"] + RunService.refresh_seconds - time.time()))
    done = show(env, run_id)
    assert done["status"] == "succeeded", done
    assert [(s["name"], s["status"]) for s in done["steps"]] == [
        ("load", "succeeded"),
        ("train", "succeeded"),
    ]
    assert done["links"]["kfp"].endswith("/#/runs/details/r-4")


def test_cancel_from_another_process_terminates_the_kfp_run(
    kfp_server: FakeKFP, env: dict, write_notebook: Callable, tmp_path: Path
) -> None:
    run_id = submit(env, kfp_server, write_notebook(CELLS, name="train.ipynb"), tmp_path)
    done = cellpipe(env, "runs", "cancel", run_id)
    assert done.returncode == 0 and f"run {run_id} cancelled" in done.stdout, (done.stdout, done.stderr)
    assert any(path.endswith("r-4:terminate") for _, path in kfp_server.paths())
    assert show(env, run_id)["status"] == "cancelled"


def test_an_unreachable_kfp_host_leaves_the_run_running_and_says_why(
    kfp_server: FakeKFP, env: dict, write_notebook: Callable, tmp_path: Path, data_dir: Path
) -> None:
    run_id = submit(env, kfp_server, write_notebook(CELLS, name="train.ipynb"), tmp_path)
    gone = f"http://127.0.0.1:{free_port()}"
    RunService(data_dir).store.update_run(run_id, lambda r: r.handle.update(host=gone))
    seen = show(env, run_id)
    assert seen["status"] == "running" and f"cannot reach KFP at {gone}" in seen["refresh_error"]
