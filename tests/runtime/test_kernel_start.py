"""Starting a kernel survives the port race of concurrent starts: jupyter_client picks a kernel's ports before
the kernel binds them, so a process starting kernels at the same moment can take one first (seen in CI with
five `cellpipe run` processes at once: "Address already in use", "Kernel died before replying")."""

from __future__ import annotations

import asyncio

from jupyter_ext.runtime import kernel as kernel_module


def test_a_kernel_that_dies_at_start_up_is_started_again(tmp_path, monkeypatch):
    """The first start dies as a kernel whose port was taken does (jupyter_client's message); the second,
    a real kernel, answers. (The race itself needs two processes binding at the same moment: the five
    concurrent `cellpipe run` processes of tests/tracking hit it.)"""
    real = kernel_module._start_once
    attempts = []

    async def first_one_dies(*args, **kwargs):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return await real(*args, **kwargs)

    monkeypatch.setattr(kernel_module, "_start_once", first_one_dies)

    async def scenario():
        started = await kernel_module.start_kernel("python3", tmp_path)
        try:
            reply = await started.client.execute_interactive("x = 6 * 7", timeout=60)
            return reply["content"]["status"]
        finally:
            await started.shutdown()

    assert asyncio.run(scenario()) == "ok"
    assert len(attempts) == 2


def test_other_start_failures_are_not_retried(tmp_path, monkeypatch):
    calls = []

    async def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("No such kernel named nope")

    monkeypatch.setattr(kernel_module, "_start_once", broken)
    try:
        asyncio.run(kernel_module.start_kernel("nope", tmp_path))
    except RuntimeError as exc:
        assert "No such kernel" in str(exc)
    else:
        raise AssertionError("the error should reach the caller")
    assert calls == [1]
