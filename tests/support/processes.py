"""Servers the tests start end with the test run, however it ends."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def ending_with_this_process() -> Callable[[], None]:
    """A ``preexec_fn`` for a test's server process: SIGTERM it when the test process dies, so that a pytest
    killed by a timeout (or a second Ctrl-C) leaves no jupyter server, lab or moto_server behind on a shared
    machine. Linux only; elsewhere nothing. Call Popen from the thread that lives as long as the server (the
    signal follows the forking thread's exit): the test's main thread."""
    tests = os.getpid()

    def preexec() -> None:
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != tests:  # the test process died before the signal was set
            os._exit(1)

    return preexec
