"""Servers the tests start end with the test run, however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable

from jupyter_ext.util import end_with_parent


def ending_with_this_process() -> Callable[[], None]:
    """A ``preexec_fn`` for a test's server process: SIGTERM it when the test process dies, so that a pytest
    killed by a timeout (or a second Ctrl-C) leaves no jupyter server, lab or moto_server behind on a shared
    machine. Call Popen from the thread that lives as long as the server (the signal follows the forking
    thread's exit): the test's main thread."""
    tests = os.getpid()
    return lambda: end_with_parent(tests, signal.SIGTERM)


def stop_process(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM a test's server and wait for it; SIGKILL it if it has not exited within ``timeout`` s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
