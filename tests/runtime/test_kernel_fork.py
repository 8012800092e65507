"""Kernels forked from the kernel fork server: each a fresh process in its own directory and session, the same
import path as a spawned kernel, interruptible, stopped cleanly; a broken server falls back to spawning."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from jupyter_ext.runtime.kernel import start_kernel
from jupyter_ext.runtime.kernel_fork import KernelForkServer, forkable

pytestmark = pytest.mark.slow


async def evaluate(kernel, code: str, timeout: float = 30) -> str:
    """Run ``code`` in the kernel; what it printed."""
    printed: list[str] = []

    def collect(message) -> None:
        if message["msg_type"] == "stream":
            printed.append(message["content"]["text"])

    reply = await kernel.client.execute_interactive(code, timeout=timeout, output_hook=collect)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(printed).strip()


PROBE = "import os, sys; print(os.getpid(), os.getcwd(), os.getsid(0) == os.getpid(), sys.path[:3], secret)"


def test_forked_kernels_are_fresh_processes_like_spawned_ones(tmp_path, monkeypatch):
    log = tmp_path / "kernels.log"
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()

    async def scenario():
        forker = KernelForkServer(log=log)
        spawned = await start_kernel("python3", first_dir)
        forked = [await start_kernel("python3", d, forker=forker, log=log) for d in (first_dir, second_dir)]
        try:
            server_pid = forker._process.pid
            parents = [psutil.Process(k.km.provisioner.process.pid).ppid() for k in forked]
            await evaluate(forked[0], "secret = 'set in the first kernel'")
            seen = [await evaluate(k, "print('secret' in globals())") for k in forked]
            for k in [spawned, *forked]:
                await evaluate(k, "import os\nsecret = os.environ.get('CELLPIPE_TEST_SECRET')")
            probes = [await evaluate(k, PROBE) for k in (spawned, *forked)]
            # an interrupt reaches a busy forked kernel, which stays usable
            running = asyncio.ensure_future(evaluate(forked[1], "import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    print('interrupted')"))  # fmt: skip
            await asyncio.sleep(1.0)
            began = time.monotonic()
            await forked[1].km.interrupt_kernel()
            interrupted = await asyncio.wait_for(running, 30), time.monotonic() - began
            connection_files = [k.km.connection_file for k in forked]
            pids = [k.km.provisioner.process.pid for k in forked]
        finally:
            for k in [spawned, *forked]:
                await k.shutdown()
        await asyncio.to_thread(forker.close)
        return server_pid, parents, seen, probes, interrupted, connection_files, pids

    monkeypatch.setenv("CELLPIPE_TEST_SECRET", "from the environment")
    server_pid, parents, seen, probes, interrupted, connection_files, pids = asyncio.run(scenario())
    assert parents == [server_pid, server_pid]
    assert seen == ["True", "False"]  # nothing of one kernel is in the other
    spawned_probe, *forked_probes = [p.split(" ", 3) for p in probes]
    assert len({p[0] for p in (spawned_probe, *forked_probes)}) == 3
    assert [p[1] for p in forked_probes] == [str(first_dir), str(second_dir)]
    assert [p[2] for p in forked_probes] == ["True", "True"]  # own session, as jupyter_client starts kernels
    assert all(p[3] == spawned_probe[3] for p in forked_probes)  # the same import path and environment
    assert "from the environment" in spawned_probe[3]
    assert interrupted[0] == "interrupted"
    assert not any(os.path.exists(f) for f in connection_files)
    assert not any(psutil.pid_exists(pid) for pid in pids)
    assert not psutil.pid_exists(server_pid)


def test_a_broken_fork_server_falls_back_to_spawning(tmp_path):
    async def scenario():
        forker = KernelForkServer()
        first = await start_kernel("python3", tmp_path, forker=forker)
        await first.shutdown()
        os.kill(forker._process.pid, signal.SIGKILL)  # the server dies between two kernels
        second = await start_kernel("python3", tmp_path, forker=forker)
        try:
            answer = await evaluate(second, "print(6 * 7)")
            parent = psutil.Process(second.km.provisioner.process.pid).ppid()
        finally:
            await second.shutdown()
        await asyncio.to_thread(forker.close)
        return answer, parent, forker.usable

    answer, parent, usable = asyncio.run(scenario())
    assert answer == "42"
    assert parent == os.getpid()  # spawned by us, as without a fork server
    assert not usable


def test_only_this_interpreters_ipykernel_is_forked():
    assert forkable([sys.executable, "-m", "ipykernel_launcher", "-f", "c.json"])
    assert not forkable(["/usr/bin/env", "-m", "ipykernel_launcher", "-f", "c.json"])
    assert not forkable([sys.executable, "-m", "other_launcher", "-f", "c.json"])
    assert not forkable(["R", "--slave", "-e", "IRkernel::main()"])


def test_without_pidfds_kernels_are_spawned(monkeypatch):
    """macOS and old Linux kernels have no pidfd_open: nothing is forked, and stopping a kernel falls back to
    jupyter_client's own shutdown (kill_and_wait returns at once instead of raising)."""
    from jupyter_ext.runtime.kernel import kill_and_wait

    monkeypatch.delattr(os, "pidfd_open")
    assert not forkable([sys.executable, "-m", "ipykernel_launcher", "-f", "c.json"])

    class Provisioner:  # a live process kill_and_wait must leave to the caller's fallback
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        pgid = None

    try:
        asyncio.run(kill_and_wait(Provisioner))
        assert Provisioner.process.poll() is None
    finally:
        Provisioner.process.kill()
        Provisioner.process.wait()


def gone(pid: int) -> bool:
    """Exited (a zombie not yet reaped by init counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_forked_kernels_end_with_a_killed_fork_server(tmp_path):
    """A fork server killed outright (its client crashed, the OOM killer) takes its kernels with it at
    once: no kernel is left running on nobody's behalf."""

    async def scenario():
        forker = KernelForkServer()
        kernel = await start_kernel("python3", tmp_path, forker=forker)
        try:
            assert await evaluate(kernel, "print(6 * 7)") == "42"
            pid = kernel.km.provisioner.process.pid
            os.kill(forker._process.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5  # ipykernel's own parent poller alone would take ~1 s
            while not gone(pid) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return gone(pid)
        finally:
            await kernel.shutdown()
            await asyncio.to_thread(forker.close)

    assert asyncio.run(scenario())
