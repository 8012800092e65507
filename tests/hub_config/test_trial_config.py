"""The trial hub's config, loaded by JupyterHub without starting it: loopback only, state and password private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

TRIAL_CONFIG = Path(__file__).parents[2] / "hub_config" / "trial_config.py"


def load(monkeypatch, hub_dir: Path, **env: str):
    monkeypatch.setenv("CELLPIPE_HUB_DIR", str(hub_dir))
    monkeypatch.delenv("CELLPIPE_HUB_PASSWORD", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from jupyterhub.app import JupyterHub

    hub = JupyterHub()
    hub.load_config_file(str(TRIAL_CONFIG))
    return hub.config


def test_everything_listens_on_loopback_and_state_stays_in_the_hub_dir(monkeypatch, tmp_path):
    config = load(monkeypatch, tmp_path / "hub", CELLPIPE_HUB_PORT="18000", CELLPIPE_HUB_USERS="ann, ben")
    urls = [config.JupyterHub.bind_url, config.JupyterHub.hub_bind_url, config.ConfigurableHTTPProxy.api_url]
    assert all(url.startswith("http://127.0.0.1:") for url in urls) and urls[0].endswith(":18000")
    assert config.Spawner.ip == "127.0.0.1"
    assert config.Authenticator.allowed_users == {"ann", "ben"}
    assert config.JupyterHub.authenticator_class == "shared-password"
    assert config.JupyterHub.db_url == f"sqlite:///{tmp_path / 'hub' / 'jupyterhub.sqlite'}"
    assert Path(config.ConfigurableHTTPProxy.command[0]).name == "configurable-http-proxy"


def test_a_generated_password_is_private_and_kept_across_starts(monkeypatch, tmp_path):
    first = load(monkeypatch, tmp_path / "hub").SharedPasswordAuthenticator.user_password
    stored = tmp_path / "hub" / "password"
    assert len(first) >= 8 and stored.read_text().strip() == first
    assert (
        stat.S_IMODE(stored.stat().st_mode) == 0o600
        and stat.S_IMODE((tmp_path / "hub").stat().st_mode) == 0o700
    )
    assert load(monkeypatch, tmp_path / "hub").SharedPasswordAuthenticator.user_password == first


def test_a_missing_proxy_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no configurable-http-proxy on PATH
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))  # nor beside the interpreter
    with pytest.raises(SystemExit, match="configurable-http-proxy not found. Install it with"):
        load(monkeypatch, tmp_path / "hub")
