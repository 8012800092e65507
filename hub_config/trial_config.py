"""A trial JupyterHub on one machine: a few users, each with their own JupyterLab + cellpipe server.

Start it from the repository root, in the environment cellpipe is installed in (the ``hub`` or ``test``
extra brings JupyterHub, JupyterLab and the Python configurable-http-proxy)::

    pip install -c constraints.txt -e ".[hub]"
    jupyterhub -f hub_config/trial_config.py

then open http://127.0.0.1:8000 and log in as one of the users with the shared password. Everything
listens on 127.0.0.1 only. Not for production: one shared password, servers run as the hub's own OS user
(their homes are separate directories, not separate accounts). For a real deployment see docs/hub.md.

Settings (environment variables, all optional):

  CELLPIPE_HUB_DIR        state: hub database, cookie secret, pid files, and per user
                          users/<name>/home (the server's root and $HOME) and users/<name>/cellpipe
                          (the user's cellpipe data: runs, snapshots, cache, MLflow; $CELLPIPE_HOME)
                          default: ./cellpipe-hub
  CELLPIPE_HUB_USERS      comma-separated user names (lower case), default alice,bob
  CELLPIPE_HUB_PASSWORD   the shared password (8+ characters); default: a random one, kept in
                          $CELLPIPE_HUB_DIR/password (mode 0600) and reused on the next start
  CELLPIPE_HUB_PORT       public port (the proxy), default 8000
  CELLPIPE_HUB_API_PORT   the hub's own port, default 8081
  CELLPIPE_HUB_PROXY_API_PORT   the proxy's REST API port, default 8001
  CELLPIPE_HUB_PROXY      the configurable-http-proxy executable, default: the one installed beside this
                          Python (pip's port), else the first on PATH (e.g. npm's official one)
"""

import os
import secrets
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cellpipe_trial import LOOPBACK, quiet_port  # noqa: E402 - after the path insert above

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file
hub_dir = Path(os.environ.get("CELLPIPE_HUB_DIR", "cellpipe-hub")).resolve()
users = [u.strip() for u in os.environ.get("CELLPIPE_HUB_USERS", "alice,bob").split(",") if u.strip()]


def private_dir(path: Path) -> Path:
    """A directory only this OS user can read (the hub state and every user's files)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def shared_password() -> str:
    """$CELLPIPE_HUB_PASSWORD, else a random password generated once and kept in the hub directory."""
    if password := os.environ.get("CELLPIPE_HUB_PASSWORD"):
        return password
    stored = hub_dir / "password"
    if not stored.exists():
        fd = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(12) + "\n")
        print(f"cellpipe trial hub: the users' password is in {stored}", file=sys.stderr)
    return stored.read_text().strip()


def proxy_command() -> str:
    if explicit := os.environ.get("CELLPIPE_HUB_PROXY"):
        return explicit
    beside_python = Path(sys.executable).parent / "configurable-http-proxy"
    found = str(beside_python) if beside_python.exists() else shutil.which("configurable-http-proxy")
    if not found:
        sys.exit(
            "cellpipe trial hub: configurable-http-proxy not found. Install it with "
            '`pip install -c constraints.txt -e ".[hub]"`, or set CELLPIPE_HUB_PROXY to its path'
        )
    return found


def user_dir(username: str) -> Path:
    return private_dir(hub_dir / "users" / username)


def prepare_server(spawner) -> None:
    """Before a server starts: the user's home (its root) and cellpipe data directory, both private; a port."""
    for name in ("home", "cellpipe"):
        private_dir(user_dir(spawner.user.name) / name)
    spawner.port = quiet_port()  # 0 (none found): the spawner picks a random one itself


private_dir(hub_dir)

# -- network: everything on loopback ---------------------------------------------------------------
c.JupyterHub.bind_url = f"http://{LOOPBACK}:{os.environ.get('CELLPIPE_HUB_PORT', '8000')}"
c.JupyterHub.hub_bind_url = f"http://{LOOPBACK}:{os.environ.get('CELLPIPE_HUB_API_PORT', '8081')}"
c.JupyterHub.hub_connect_url = c.JupyterHub.hub_bind_url
c.ConfigurableHTTPProxy.api_url = f"http://{LOOPBACK}:{os.environ.get('CELLPIPE_HUB_PROXY_API_PORT', '8001')}"
c.ConfigurableHTTPProxy.command = [proxy_command()]
c.ConfigurableHTTPProxy.auth_token = secrets.token_hex(32)  # the hub starts the proxy: a fresh one each start
c.ConfigurableHTTPProxy.pid_file = str(hub_dir / "proxy.pid")

# -- state in the hub directory, cleaned up on stop -------------------------------------------------
c.JupyterHub.db_url = f"sqlite:///{hub_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(hub_dir / "cookie_secret")
c.JupyterHub.pid_file = str(hub_dir / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True

# -- users: a shared password, suitable for a trial only ---------------------------------------------
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = shared_password()
c.Authenticator.allowed_users = set(users)

# -- one JupyterLab + cellpipe server per user, as a local process --------------------------------------
c.JupyterHub.spawner_class = "simple"  # SimpleLocalProcessSpawner: the hub's OS user, a home per user
c.SimpleLocalProcessSpawner.home_dir_template = str(hub_dir / "users" / "{username}" / "home")
c.Spawner.pre_spawn_hook = prepare_server
# This interpreter's jupyterhub-singleuser: it loads every server extension enabled here, cellpipe's included.
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--allow-root"] if os.geteuid() == 0 else []  # a root server refuses to start without it
c.Spawner.ip = LOOPBACK
c.Spawner.default_url = "/lab"
c.Spawner.environment = {"CELLPIPE_HOME": lambda spawner: str(user_dir(spawner.user.name) / "cellpipe")}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
