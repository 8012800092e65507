"""Real `jupyter server` processes with the cellpipe extension, started per test module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from jupyter_ext.tracking.background import stop_worker
from tests.support.loopback import free_port
from tests.support.processes import ending_with_this_process, stop_process
from tests.support.waiting import wait_until

TOKEN = "cellpipe-test-token"
NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


@dataclass
class Server:
    url: str
    root: Path
    process: subprocess.Popen
    log: Path

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {TOKEN}"}

    def api(self, method: str, route: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}/cellpipe/api/{route}", headers=headers, **kwargs)

    def wait_for_run(
        self,
        run_id: str,
        holds: Callable[[dict], Any],
        *,
        timeout: float = 180,
        what: str,
        interval: float = 0.3,
    ) -> dict:
        """The run as GET runs/ID shows it, once ``holds`` of it (blocks: from async code, in a thread)."""

        def shown() -> dict | None:
            record = self.api("GET", f"runs/{run_id}").json()
            return record if holds(record) else None

        return wait_until(shown, timeout=timeout, interval=interval, what=what)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)
        stop_worker(self.root / ".cellpipe")  # the MLflow tracking worker outlives a server on purpose


def start_server(root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 90) -> Server:
    port = free_port()
    environment = {**os.environ, "CELLPIPE_HOME": str(root / ".cellpipe"), "JUPYTER_PLATFORM_DIRS": "1"}
    environment.pop("MLFLOW_TRACKING_URI", None)
    environment.update(env or {})
    cmd = [
        sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}",
        "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", *args,
    ]  # fmt: skip
    log = root.parent / f"server-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            cmd, env=environment, stdout=out, stderr=subprocess.STDOUT, preexec_fn=ending_with_this_process()
        )
    server = Server(f"http://127.0.0.1:{port}", root, process, log)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited ({process.returncode}):\n{server.log_text()}")
        try:
            if requests.get(f"{server.url}/api/status", headers=server.headers(), timeout=2).ok:
                return server
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or too busy starting to answer
            time.sleep(0.3)
    server.stop()
    raise AssertionError(f"the server did not start:\n{server.log_text()}")


@pytest.fixture(scope="module")
def launch(tmp_path_factory):
    """``launch(*server_args, env=..., notebooks=[...], root=None)`` starts a server (on a fresh root unless
    one is given); all stop at the end."""
    servers: list[Server] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        notebooks: tuple[str, ...] = ("branches.ipynb",),
        root: Path | None = None,  # another server's root: start again where it left off
    ):
        if root is None:
            root = tmp_path_factory.mktemp("root")
            for name in notebooks:
                shutil.copy(NOTEBOOKS / name, root / name)
        server = start_server(root, *args, env=env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def server(launch) -> Server:
    return launch()
