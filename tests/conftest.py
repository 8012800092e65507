"""Shared fixtures: paths to the test notebooks and a builder for small notebooks written on the fly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).parent / "notebooks"

# MLflow tracking workers started by the tests' runs exit soon after their last run (default: 5 minutes)
os.environ.setdefault("CELLPIPE_TRACKING_IDLE_S", "5")
# The tests' many Jupyter servers keep no warm kernels (the default keeps 3 from the first analysis or run):
# tests of the pool ask for it (tests/server/test_kernel_pool.py: the default, with this variable emptied)
os.environ.setdefault("CELLPIPE_KERNEL_POOL_SIZE", "0")


@pytest.fixture
def notebooks() -> Path:
    return NOTEBOOKS


def make_notebook(path: Path, cells: list, metadata: dict | None = None) -> Path:
    """Write a notebook. ``cells`` items: a markdown string, or ``(tags, source)`` for a code cell."""
    built = []
    for cell in cells:
        if isinstance(cell, str):
            built.append(new_markdown_cell(cell))
        else:
            tags, source = cell
            code = new_code_cell(source)
            if tags:
                code.metadata["tags"] = list(tags)
            built.append(code)
    notebook = new_notebook(cells=built)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata.update(metadata or {})
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def write_notebook(tmp_path: Path):
    counter = iter(range(1000))

    def write(cells: list, metadata: dict | None = None, name: str | None = None) -> Path:
        return make_notebook(tmp_path / (name or f"nb{next(counter)}.ipynb"), cells, metadata)

    return write


@pytest.fixture
def umask_022():
    """The usual umask 022 for one test, as on a shared machine: a file we create without a mode of our own
    comes out world-readable, so a test can tell which ones are private on purpose."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """An isolated cellpipe data directory ($CELLPIPE_HOME) with its own MLflow store, for one test; its
    MLflow tracking worker (if a run started one) is stopped at the end."""
    from jupyter_ext.tracking.background import stop_worker

    directory = tmp_path / "cellpipe-data"
    monkeypatch.setenv("CELLPIPE_HOME", str(directory))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CELLPIPE_STORE", raising=False)
    yield directory
    stop_worker(directory)


CLUSTER_ENV = ("CELLPIPE_STORE", "CELLPIPE_IMAGE", "CELLPIPE_NAMESPACE", "KUBECONFIG", "MLFLOW_TRACKING_URI")


@pytest.fixture
def shared_remote_store(s3_bucket: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A snapshot store on the loopback S3 server (``$CELLPIPE_STORE``, a fresh bucket) that this process and
    every process started with the returned environment (a ``cellpipe`` command, a Jupyter server) reach
    alike, as pods and the machine that submits to them do. Clears cellpipe's cluster settings, acts as alice."""
    monkeypatch.setenv("JUPYTERHUB_USER", "alice@example.com")
    monkeypatch.setenv("CELLPIPE_STORE", s3_bucket.url("cellpipe"))
    paths = [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}


@pytest.fixture(scope="session")
def moto_s3_server(tmp_path_factory: pytest.TempPathFactory):
    """``moto_server`` on a free loopback port for the whole session (a real S3 API, a real process)."""
    from tests.support.s3_server import MotoServer

    server = MotoServer.start(tmp_path_factory.mktemp("moto") / "moto_server.log")
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(moto_s3_server, monkeypatch: pytest.MonkeyPatch):
    """A fresh bucket on the loopback S3 server; this process's environment reaches it (AWS_ENDPOINT_URL,
    dummy keys, no profile, no instance-metadata lookups) and ``bucket.env`` gives the same to others."""
    from tests.support.s3_server import S3_ENV_REMOVED, forget_cached_clients, new_bucket

    for name in (*S3_ENV_REMOVED, *CLUSTER_ENV):
        monkeypatch.delenv(name, raising=False)
    bucket = new_bucket(moto_s3_server.endpoint)
    for name, value in bucket.env.items():
        monkeypatch.setenv(name, value)
    forget_cached_clients()
    yield bucket
    forget_cached_clients()
