"""The runner's kernel pool: kernels start ahead of need on a core that no step and no other start is using,
a waiting step always gets one started, and so do the steps next in line (ahead), busy cores or not; a
stopped kernel is gone with its connection file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
import pytest

from jupyter_ext.runtime.kernel import start_kernel
from jupyter_ext.targets.local.kernels import KernelPool

pytestmark = pytest.mark.slow


def test_kernels_start_ahead_only_on_an_idle_core(tmp_path):
    async def scenario():
        pool = KernelPool("python3", tmp_path, size=3, cores=1)
        pool.expect(3)
        counts = {"after expect": len(pool._starting)}
        first = await pool.acquire()
        # the one core runs the first step now: nothing starts ahead of need
        counts["while a step runs"] = len(pool._starting) + pool._ready.qsize()
        second = await asyncio.wait_for(pool.acquire(), 120)  # a waiting step gets one all the same
        pids = [k.km.provisioner.process.pid for k in (first, second)]
        pool.release(first)
        pool.release(second)  # the core is idle again: the third kernel starts ahead
        counts["after release"] = len(pool._starting) + pool._ready.qsize()
        third = await asyncio.wait_for(pool.acquire(), 120)
        pids.append(third.km.provisioner.process.pid)
        await pool.close()
        return counts, pids

    counts, pids = asyncio.run(scenario())
    assert counts == {"after expect": 1, "while a step runs": 0, "after release": 1}
    assert len(set(pids)) == 3
    assert not any(psutil.pid_exists(pid) for pid in pids)  # close() waited for every kernel's exit


def test_kernels_for_the_steps_next_in_line_start_on_a_busy_core(tmp_path):
    """Two branches after a short step: both their kernels start while the first step runs, not when
    it ends (the second branch would otherwise wait a whole kernel start)."""

    async def scenario():
        pool = KernelPool("python3", tmp_path, size=3, cores=1)
        pool.expect(3)
        first = await pool.acquire()
        before = len(pool._starting) + pool._ready.qsize()
        pool.ahead(2)
        after = len(pool._starting) + pool._ready.qsize()
        branches = [await asyncio.wait_for(pool.acquire(), 120) for _ in range(2)]
        pids = [k.km.provisioner.process.pid for k in (first, *branches)]
        await pool.close()
        return before, after, pids

    before, after, pids = asyncio.run(scenario())
    assert (before, after) == (0, 2)
    assert len(set(pids)) == 3
    assert not any(psutil.pid_exists(pid) for pid in pids)


def test_shutdown_stops_the_kernel_and_removes_its_connection_file(tmp_path):
    async def scenario():
        kernel = await start_kernel("python3", tmp_path)
        pid, connection = kernel.km.provisioner.process.pid, Path(kernel.km.connection_file)
        existed = connection.exists()
        await kernel.shutdown()
        return pid, connection, existed

    pid, connection, existed = asyncio.run(scenario())
    assert existed and not connection.exists()
    assert not psutil.pid_exists(pid)
