"""A test that fails with a kernel client still open does not hang pytest at exit.

Such a client is cyclic garbage together with its ZMQ sockets and context; pytest collects garbage once
more when it ends, and a context of the client's own, finalized before its sockets, waited for them in
``term()`` forever. Our kernel managers and clients share one context that lives as long as the process
(runtime/kernel.py, ``shared_zmq_context``). Shown with a real pytest run in a subprocess whose tests fail
on purpose, leaving a started kernel and a kernel pool open: the run must end by itself."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ending_with_this_process

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parents[2]
EXIT_WITHIN_S = 240  # kernels start in seconds; a hang never ends (generous for a loaded 2-core machine)

FAILING_TESTS = """\
import asyncio
import os

from jupyter_ext.runtime.kernel import start_kernel
from jupyter_ext.targets.local.kernels import KernelPool

PIDS = os.environ["KERNEL_PIDS"]


def remember(kernel):
    with open(PIDS, "a") as file:
        file.write(f"{kernel.km.provisioner.process.pid}\\n")


async def test_fails_with_a_started_kernel_left_open(tmp_path):
    kernel = await start_kernel("python3", tmp_path)
    remember(kernel)
    reply = await kernel.client.execute_interactive("x = 6 * 7", timeout=60)
    assert reply["content"]["status"] == "ok"
    assert False, "fails on purpose, the kernel still open"


async def test_fails_with_a_kernel_pool_left_open(tmp_path):
    pool = KernelPool("python3", tmp_path, size=2, cores=2)
    pool.expect(2)
    remember(await pool.acquire())
    await asyncio.sleep(0.5)
    assert False, "fails on purpose, the pool still open"
"""

# the project's pytest settings for async tests (pyproject.toml), for the subprocess's own rootdir
INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


def test_pytest_ends_after_tests_that_fail_with_kernels_open(tmp_path: Path) -> None:
    (tmp_path / "test_left_open.py").write_text(FAILING_TESTS)
    (tmp_path / "pytest.ini").write_text(INI)
    pids = tmp_path / "kernel-pids"
    env = {
        **os.environ,
        "KERNEL_PIDS": str(pids),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_left_open.py"]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=ending_with_this_process(),
    )
    try:
        output, _ = process.communicate(timeout=EXIT_WITHIN_S)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"pytest did not exit within {EXIT_WITHIN_S} s after its tests ended:\n{output[-3000:]}")
    finally:
        for pid in pids.read_text().split() if pids.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)  # the kernels the failing tests left running

    assert process.returncode == 1, output  # it ran, and its tests failed as they should
    assert "2 failed" in output and output.count("fails on purpose") >= 2, output
    assert len(pids.read_text().split()) == 2
