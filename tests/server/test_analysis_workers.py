"""The analysis workers of a server end with it, however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

SERVER = """
import os, signal, sys
from jupyter_ext.server.analysis import Analyser

analyser = Analyser(workers=1, timeout=60, max_memory=0)
analyser.warm_up()
analyser._executor().submit(os.getpid).result(timeout=120)  # the worker has started
print(*[p.pid for p in analyser._executor()._processes.values()], flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
"""


def test_analysis_workers_end_when_the_server_is_killed():
    """A server killed with SIGKILL cannot shut its pool down: each worker watches its parent and ends."""
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})  # fmt: skip
    workers = [int(pid) for pid in server.stdout.readline().split()]  # not read to the end: workers hold it
    server.wait(timeout=180)
    server.stdout.close()
    assert workers and server.returncode == -signal.SIGKILL

    def running(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + 30
    while any(map(running, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in workers if running(pid)]
    for pid in left:
        psutil.Process(pid).kill()
    assert not left, "analysis workers outlived their server"
