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
