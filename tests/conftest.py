"""Shared fixtures: paths to the test notebooks and a builder for small notebooks written on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).parent / "notebooks"

# MLflow tracking workers started by the tests' runs exit soon after their last run (default: 5 minutes)
os.environ.setdefault("CELLPIPE_TRACKING_IDLE_S", "5")


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


SUPPORT = Path(__file__).parent / "support"
CLUSTER_ENV = ("CELLPIPE_STORE", "CELLPIPE_IMAGE", "CELLPIPE_NAMESPACE", "KUBECONFIG", "MLFLOW_TRACKING_URI")


@pytest.fixture
def shared_remote_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``fakes3://``, a "remote" snapshot store kept in a directory (support/disk_remote), registered here and
    seen alike by the processes started with the returned environment (a ``cellpipe`` command, a Jupyter
    server); the in-memory one lives in one process. Clears cellpipe's cluster settings, acts as alice."""
    import importlib
    import importlib.util

    for name in CLUSTER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTERHUB_USER", "alice@example.com")
    directory = str(tmp_path / "fakes3")
    monkeypatch.setenv("CELLPIPE_TEST_FAKES3_DIR", directory)
    registry = importlib.import_module("fsspec.registry")  # the module (fsspec.registry is a mapping too)
    monkeypatch.setitem(registry.known_implementations, "fakes3", {"class": "DiskFakeS3 (test)"})
    monkeypatch.setitem(registry._registry, "fakes3", None)  # undone after the test, whoever sets it now
    spec = importlib.util.spec_from_file_location("disk_remote", SUPPORT / "disk_remote" / "sitecustomize.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # registers the directory-backed class
    paths = [str(SUPPORT / "disk_remote"), str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
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
