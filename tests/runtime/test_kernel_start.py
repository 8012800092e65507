"""Starting a kernel survives the port race of concurrent starts: jupyter_client picks a kernel's ports before
the kernel binds them, so a process starting kernels at the same moment can take one first (seen in CI with
five `cellpipe run` processes at once: "Address already in use", "Kernel died before replying")."""

from __future__ import annotations

import asyncio
import threading

import pytest

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
    with pytest.raises(RuntimeError, match="No such kernel"):  # the error reaches the caller
        asyncio.run(kernel_module.start_kernel("nope", tmp_path))
    assert calls == [1]


def test_a_started_kernel_is_ready_on_both_channels(tmp_path):
    """Ready means the shell answers and IOPub is subscribed: the very first execution's output arrives
    (a kernel's publications before the subscription are lost), and the kernel_info reply is kept for the
    step notebook's language_info."""

    async def scenario():
        started = await kernel_module.start_kernel("python3", tmp_path)
        try:
            outputs = []
            reply = await started.client.execute_interactive(
                "print('first words')", output_hook=outputs.append, timeout=60
            )
            return started.info, reply["content"]["status"], outputs, heartbeat_threads()
        finally:
            await started.shutdown()

    info, status, outputs, heartbeats = asyncio.run(scenario())
    assert info["language_info"]["name"] == "python"
    assert status == "ok" and heartbeats == []  # its liveness is its process's: no thread pinging it
    streams = [m["content"]["text"] for m in outputs if m["header"]["msg_type"] == "stream"]
    assert streams == ["first words\n"]


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_kernel_that_exits_at_once_is_reported_not_waited_for(tmp_path, monkeypatch):
    """A kernel process that ends before answering is noticed by the ready wait (not after its 60 s), and
    the channels started for it stop cleanly (a heartbeat thread stopped before it got going used to run
    on creating sockets until ZMQ had none left: "ZMQError: Too many open files" in the CI's warnings)."""
    import json
    import sys

    spec = tmp_path / "share" / "kernels" / "exits"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-c", "import sys; sys.exit(3)", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "exits", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share"))
    with pytest.raises(RuntimeError, match="died before replying"):  # it cannot be ready
        asyncio.run(kernel_module.start_kernel("exits", tmp_path))
    assert heartbeat_threads() == []


def heartbeat_threads() -> list:
    from jupyter_client.channels import HBChannel

    return [thread for thread in threading.enumerate() if isinstance(thread, HBChannel)]
