"""A real `mlflow server` on loopback for the tests that need an MLflow web UI (its runs' pages are links)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.processes import ending_with_this_process
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on loopback (sqlite store, local artifacts); ~20-40 s to start on 2 cores.
    Yields its URL (what MLFLOW_TRACKING_URI names)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with open(root / "server.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--default-artifact-root", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=ending_with_this_process(),
        )  # fmt: skip
    try:

        def healthy() -> bool:
            try:
                return urllib.request.urlopen(f"{url}/health", timeout=2).status == 200
            except OSError:
                return server.poll() is not None and pytest.fail((root / "server.log").read_text()[-2000:])

        wait_until(healthy, timeout=300, interval=0.3, what="mlflow server to answer /health")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
