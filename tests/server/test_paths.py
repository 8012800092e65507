"""Paths at the HTTP boundary: requests resolve inside the root; answers hide the server's paths and host."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_ext.errors import CellpipeError
from jupyter_ext.server.paths import ServerPaths


@pytest.fixture
def paths(tmp_path) -> ServerPaths:
    (tmp_path / "root").mkdir()
    return ServerPaths(root=tmp_path / "root", data_dir=tmp_path / "root" / ".cellpipe")


def test_paths_resolve_inside_the_root(paths):
    assert paths.resolve("a/b.ipynb") == paths.root / "a" / "b.ipynb"
    assert paths.resolve("/a.ipynb") == paths.root / "a.ipynb"  # a leading / means the root
    assert paths.relative(paths.root / "a" / "b.ipynb") == "a/b.ipynb"


def test_a_link_out_of_the_root_is_refused(paths, tmp_path):
    (paths.root / "out").symlink_to(tmp_path)
    with pytest.raises(CellpipeError, match="outside the server's root") as caught:
        paths.resolve("out/secret.ipynb")
    assert caught.value.field == "path"


@pytest.mark.parametrize(
    ("value", "message"),
    [(None, "no notebook path"), (3, "must be a string"), ("a\0b", "NUL"), ("x" * 5000, "longer than"),
     ("x" * 300, "longer than 255 bytes"), ("../x.ipynb", "outside")],
)  # fmt: skip
def test_unusable_paths_are_errors_naming_the_field(paths, value, message):
    with pytest.raises(CellpipeError, match=message) as caught:
        paths.resolve(value, field="path")
    assert caught.value.field == "path"


def test_answers_hide_server_paths_and_process_identity(paths):
    root = str(paths.root)
    record = {
        "notebook": f"{root}/nb.ipynb",
        "error": {"message": f"cannot read {root}/.cellpipe/runs/x/log: denied", "where": f"in {root}."},
        "owner": {"host": "node-7", "pid": 4242},
        "pid": 4242,
        "parameters": {"out": f"{root}/kept.csv"},
        "steps": [{"notebook": f"{root}/.cellpipe/runs/x/s.ipynb"}],
        "home": f"{Path.home()}/.ssh/id_rsa",
        "sibling": f"{root}2/other",
    }
    public = paths.public(record)
    assert public["notebook"] == "nb.ipynb"
    assert public["error"] == {"message": "cannot read <cellpipe data>/runs/x/log: denied", "where": "in .."}
    assert "owner" not in public and "pid" not in public
    assert public["parameters"] == record["parameters"]  # the user's own values are sent as they are
    assert public["steps"][0]["notebook"] == "<cellpipe data>/runs/x/s.ipynb"
    assert public["home"] == "~/.ssh/id_rsa"
    assert public["sibling"] == f"{root}2/other"  # not a path under the root
