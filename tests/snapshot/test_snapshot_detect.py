"""Finding declared paths and path literals in a notebook's JSON."""

from __future__ import annotations

import pytest

from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot.detect import (
    declared_paths,
    looks_like_path,
    path_literals,
    python_source,
    string_literals,
)


def notebook(*cells: dict, data: object = None) -> dict:
    metadata = {"cellpipe": {"data": data}} if data is not None else {}
    return {"cells": list(cells), "metadata": metadata}


def code(source: str | list[str], tags: list[str] | None = None) -> dict:
    return {"cell_type": "code", "source": source, "metadata": {"tags": tags or []}}


def test_magics_and_shell_lines_are_neutralised_keeping_indentation() -> None:
    source = "%matplotlib inline\nif True:\n    !pip install x\nfiles = !ls data\ndf = load('a.csv')"
    assert python_source(source) == "pass\nif True:\n    pass\nfiles = None\ndf = load('a.csv')"
    assert string_literals(source) == ["a.csv"]


def test_cell_magics() -> None:
    assert string_literals("%%bash\ncat 'data/x.csv'") == []  # not Python
    assert string_literals("%%time\nx = open('data/x.csv')") == ["data/x.csv"]


def test_fstring_parts_and_unparsable_cells() -> None:
    nb = notebook(
        {"cell_type": "markdown", "source": "'data/readme.csv'", "metadata": {}},
        code(["x = f'data/{name}.csv'\n", "y = 'data/y.csv'"]),
        code("def broken(:"),
        code("z = 'data/skipped.csv'", ["skip"]),
    )
    literals, unparsed = path_literals(nb)
    assert [(lit.text, lit.cell) for lit in literals] == [("data/y.csv", 2)]
    assert unparsed == [3]


def test_declared_paths_from_tags_and_metadata() -> None:
    nb = notebook(
        code("x = 1", ["step:load", "data:data/a.csv"]),
        code("y = 2", ["data: models/ "]),
        data=["extra/*.parquet"],
    )
    declared = declared_paths(nb, notebook_label="nb.ipynb")
    assert [(d.spec, d.cell, d.field) for d in declared] == [
        ("data/a.csv", 1, "tag 'data:data/a.csv'"),
        ("models/", 2, "tag 'data: models/ '"),
        ("extra/*.parquet", None, "metadata.cellpipe.data"),
    ]


def test_bad_declarations() -> None:
    with pytest.raises(SnapshotError, match="nb.ipynb: cell 1: tag 'data:' has no path"):
        declared_paths(notebook(code("x", ["data:"])), notebook_label="nb.ipynb")
    with pytest.raises(SnapshotError, match="nb.ipynb: metadata.cellpipe.data: must be a list of paths"):
        declared_paths(notebook(data="data/a.csv"), notebook_label="nb.ipynb")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("data/x.csv", True), ("train.parquet", True), ("mean", False), ("%d/%m/%Y", False), ("a b/c", False)],
)
def test_looks_like_path(text: str, expected: bool) -> None:
    assert looks_like_path(text) is expected
