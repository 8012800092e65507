"""Fixtures for the snapshot tests: notebooks written with nbformat, data files, a project and a store."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from jupyter_ext.snapshot import SnapshotStore
from jupyter_ext.snapshot.statcache import RACY_MARGIN_NS
from tests.support.stores import write_legacy_store


def settle() -> None:
    """Wait out the stat cache's racy window: files written just now are not trusted to it (statcache.py)."""
    time.sleep(RACY_MARGIN_NS / 1e9 * 2.5)


def write_notebook(
    path: Path,
    cells: list[tuple[str, str] | tuple[str, str, list[str]]],
    *,
    data: list[str] | None = None,
    kernel: str = "python3",
) -> Path:
    """cells: (kind, source[, tags]) with kind 'code' or 'markdown'."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": kernel, "display_name": "Python 3", "language": "python"}
    if data is not None:
        notebook.metadata["cellpipe"] = {"data": data}
    for kind, source, *rest in cells:
        tags = rest[0] if rest else []
        make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        notebook.cells.append(make(source, metadata={"tags": tags} if tags else {}))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))
    return path


def write_file(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.fixture(name="settle")
def settle_fixture() -> Callable[[], None]:
    return settle


@pytest.fixture(name="write_nb")
def write_nb_fixture() -> Callable[..., Path]:
    return write_notebook


@pytest.fixture(name="write_data")
def write_data_fixture() -> Callable[[Path, bytes | str], Path]:
    return write_file


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project (not a git repository) with data files and a notebook that names them."""
    root = tmp_path / "project"
    write_file(root / "data" / "train.csv", "a,b\n1,2\n" * 1000)
    write_file(root / "data" / "test.csv", "a,b\n3,4\n")
    write_file(root / "data" / "images" / "cat.png", os.urandom(50_000))
    write_file(root / "config.yaml", "lr: 0.1\n")
    write_notebook(
        root / "train.ipynb",
        [
            ("markdown", "# Training"),
            ("code", "import pandas as pd\n%matplotlib inline\ndf = pd.read_csv('data/train.csv')"),
            ("code", "images = 'data/images'\n!ls data", ["data:config.yaml"]),
        ],
    )
    settle()
    return root


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore.open(tmp_path / "store")


@pytest.fixture(params=["blake3", "sha256"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> SnapshotStore:
    """A store created now (BLAKE3) or one an earlier cellpipe created (sha256 names, no store.json)."""
    root = tmp_path / "store"
    if request.param == "sha256":
        write_legacy_store(tmp_path / "empty", root)
    store = SnapshotStore.open(root)
    assert store.algorithm == request.param
    return store


@pytest.fixture
def notebook(project: Path) -> Path:
    return project / "train.ipynb"
