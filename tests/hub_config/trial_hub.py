"""Start the trial hub (hub_config/trial_config.py) for real on loopback, and stop it without orphans.

The hub, its configurable-http-proxy and the users' JupyterLab servers are real processes. The test adds
only a service whose one scope is ``tokens``, to mint each user's API token; it does that in its own
config file, which loads the trial config unchanged first.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from tests.support.processes import ending_with_this_process

HUB_CONFIG = Path(__file__).parents[2] / "hub_config"
TRIAL_CONFIG = HUB_CONFIG / "trial_config.py"
sys.path.insert(0, str(HUB_CONFIG))
from cellpipe_trial import quiet_port  # noqa: E402 - hub_config/ is not a package

TEST_CONFIG = """\
load_subconfig({trial!r})
c.JupyterHub.services = [{{"name": "token-minter", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "token-minter", "scopes": ["tokens"], "services": ["token-minter"]}}]
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}  # POST .../server answers 202: spawns in parallel
"""


@dataclass
class TrialHub:
    directory: Path
    url: str
    process: subprocess.Popen
    service_token: str
    password: str
    tokens: dict[str, str] = field(default_factory=dict)

    def api(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {token}"} if token else {}
        kwargs.setdefault("timeout", 60)
        return requests.request(method, f"{self.url}{path}", headers=headers, allow_redirects=False, **kwargs)

    def log(self) -> str:
        return (self.directory / "hub.log").read_text(errors="replace")[-6000:]

    def wait_for(self, what: str, check, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the hub exited ({self.process.returncode}) waiting for {what}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not within {timeout:.0f} s:\n{self.log()}")
            time.sleep(0.2)

    def start_server(self, user: str) -> None:
        """Mint the user's token with the service, then start their server with their own token."""
        minted = self.api("POST", f"/hub/api/users/{user}/tokens", self.service_token, json={"note": "test"})
        assert minted.status_code == 201, minted.text
        self.tokens[user] = minted.json()["token"]
        started = self.api("POST", f"/hub/api/users/{user}/server", self.tokens[user])
        assert started.status_code in (201, 202), started.text

    def server_ready(self, user: str) -> bool:
        servers = self.api("GET", f"/hub/api/users/{user}", self.tokens[user]).json().get("servers", {})
        return bool(servers.get("", {}).get("ready"))


def start_trial_hub(directory: Path, users: list[str]) -> TrialHub:
    directory.mkdir(parents=True, exist_ok=True)
    service_token = secrets.token_hex(16)
    config = directory / "test_config.py"
    config.write_text(TEST_CONFIG.format(trial=str(TRIAL_CONFIG), token=service_token))
    port = quiet_port()
    env = {
        **os.environ,
        "CELLPIPE_HUB_DIR": str(directory / "hub"),
        "CELLPIPE_HUB_USERS": ",".join(users),
        "CELLPIPE_HUB_PASSWORD": secrets.token_urlsafe(12),
        "CELLPIPE_HUB_PORT": str(port),
        "CELLPIPE_HUB_API_PORT": str(quiet_port()),
        "CELLPIPE_HUB_PROXY_API_PORT": str(quiet_port()),
    }
    env.pop("CELLPIPE_HOME", None)  # each user's server gets its own from the trial config
    with open(directory / "hub.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=ending_with_this_process(),
        )  # fmt: skip
    hub = TrialHub(
        directory, f"http://127.0.0.1:{port}", process, service_token, env["CELLPIPE_HUB_PASSWORD"]
    )
    try:
        # "up" means the hub answers through the proxy (the proxy alone answers 404 until the hub's route exists)
        hub.wait_for("the hub", lambda: _status(hub, "/hub/api/") == 200, timeout=60)
        for user in users:
            hub.start_server(user)
        for user in users:
            hub.wait_for(f"{user}'s server", lambda user=user: hub.server_ready(user))
    except BaseException:
        stop_trial_hub(hub)
        raise
    return hub


def _status(hub: TrialHub, path: str) -> int:
    try:
        return hub.api("GET", path, timeout=5).status_code
    except requests.ConnectionError:
        return 0


def stop_trial_hub(hub: TrialHub, timeout: float = 30) -> list[int]:
    """SIGTERM the hub (it stops the servers and the proxy) and wait; kill whatever it left. Returns leftovers.

    The hub starts the proxy and each server in their own session, so they are found as its children now,
    before it exits, rather than by process group.
    """
    try:
        children = psutil.Process(hub.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if hub.process.poll() is None:
        hub.process.send_signal(signal.SIGTERM)
        try:
            hub.process.wait(timeout)
        except subprocess.TimeoutExpired:
            hub.process.kill()
            hub.process.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    for leftover in alive:
        leftover.kill()
    psutil.wait_procs(alive, timeout=5)
    return [p.pid for p in alive]
