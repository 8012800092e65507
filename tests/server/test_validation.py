"""Client input never gets a 500: every wrong field is a 400 naming it; answers hold no server paths or pids."""

from __future__ import annotations

import json
import socket

import pytest

NOTEBOOK = "branches.ipynb"

# (route, body, the field the 400 must name)
BAD_BODIES = [
    ("analyse", {"path": 3}, "path"),
    ("analyse", {"path": None}, "path"),
    ("analyse", {"path": "a\0b.ipynb"}, "path"),
    ("analyse", {"path": "x" * 5000}, "path"),
    ("analyse", {"path": "d/" + "x" * 300 + ".ipynb"}, "path"),  # a name too long for the file system
    ("analyse", {"path": "../../etc/passwd"}, "path"),
    ("analyse", {"path": NOTEBOOK, "content": 12}, "content"),
    ("analyse", {"path": NOTEBOOK, "content": ["cells"]}, "content"),
    ("analyse", {"path": NOTEBOOK, "content": "\ud800"}, "content"),
    ("analyse", {"path": NOTEBOOK, "colour": "red"}, "colour"),
    ("runs", {"path": NOTEBOOK, "use_cache": "false"}, "use_cache"),
    ("runs", {"path": NOTEBOOK, "track": 0}, "track"),
    ("runs", {"path": NOTEBOOK, "parameters": ["n=3"]}, "parameters"),
    ("runs", {"path": NOTEBOOK, "parameters": "n=3"}, "parameters"),
    ("runs", {"path": NOTEBOOK, "parameters": {"": 1}}, "parameters"),
    ("runs", {"path": NOTEBOOK, "target": "mainframe"}, "target"),
    ("runs", {"path": NOTEBOOK, "target": 7}, "target"),
    ("runs", {"path": NOTEBOOK, "content": {"cells": "nope"}, "track": False}, None),
    ("runs", {"path": "x" * 5000}, "path"),
    ("runs", {"path": NOTEBOOK, "content": 1.5}, "content"),
]


@pytest.mark.parametrize(
    ("route", "body", "field"), BAD_BODIES, ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(BAD_BODIES)]
)
def test_a_wrong_field_is_a_400_naming_it(server, route, body, field):
    response = server.api("POST", route, data=json.dumps(body))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    if field is not None:
        assert error["field"] == field, error
    assert error["text"] and "Traceback" not in response.text


@pytest.mark.parametrize(
    "raw",
    [b"", b"[]", b'"text"', b"{", b'{"path": NaN}', b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000],
    ids=["empty", "array", "string", "truncated", "nan", "not-utf8", "deep"],
)
def test_bodies_that_are_not_a_json_object(server, raw):
    response = server.api("POST", "analyse", data=raw)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] in ("body", "path")


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "ten"},
        {"limit": "100000"},
        {"offset": "-1"},
        {"status": "sleeping"},
        {"target": "mainframe"},
        {"path": "../x.ipynb"},
        {"path": "a\0b"},
        {"colour": "red"},
    ],
)
def test_a_wrong_query_argument_is_a_400_naming_it(server, query):
    response = server.api("GET", "runs", params=query)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == next(iter(query))


def test_jupyterlabs_cache_buster_is_not_an_unknown_field(server):
    """ServerConnection.makeRequest adds "?<milliseconds>" to every GET unless told otherwise."""
    response = server.api("GET", "runs?1764460800000")
    assert response.status_code == 200, response.text
    assert server.api("GET", "runs?1764460800000=x").status_code == 400  # a value: not the cache-buster


def test_unknown_runs_are_404s(server):
    for method, route in [
        ("GET", "runs/nothing-here"),
        ("GET", "runs/nothing-here/logs"),
        ("POST", "runs/nothing-here/cancel"),
        ("POST", "runs/nothing-here/rerun"),
        ("DELETE", "runs/nothing-here"),
        ("GET", "runs/nothing-here/steps/train/notebook"),
    ]:
        response = server.api(method, route)
        assert response.status_code == 404, (method, route, response.text)
        assert response.json()["error"]["field"] == "id"


def test_errors_show_paths_relative_to_the_root(server):
    response = server.api("POST", "analyse", json={"path": "sub/missing.ipynb"})
    assert response.status_code == 400
    text = response.text
    assert str(server.root) not in text and socket.gethostname() not in text
    assert "sub/missing.ipynb" in response.json()["error"]["text"]


def test_analysis_of_a_notebook_object_and_its_text_agree(server):
    content = json.loads((server.root / NOTEBOOK).read_text())
    as_object = server.api("POST", "analyse", json={"path": NOTEBOOK, "content": content})
    as_text = server.api("POST", "analyse", json={"path": NOTEBOOK, "content": json.dumps(content)})
    assert as_object.status_code == as_text.status_code == 200, as_object.text
    assert as_object.json()["pipeline"] == as_text.json()["pipeline"]
    assert as_object.json()["pipeline"]["notebook"] == NOTEBOOK
    assert isinstance(as_object.json()["warnings"], list)


@pytest.mark.parametrize(
    "content",
    [
        {"cells": None},
        {"cells": [{"cell_type": "code"}], "nbformat": 4, "nbformat_minor": 5, "metadata": {}},
        {"cells": [{"cell_type": "code", "source": None, "metadata": {"tags": "step:a"}}]},
        {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": 3}, "cells": []},
        "not json at all",
        "",
        '{"cells": [' + "[" * 5000 + "]" * 5000 + "]}",
    ],
)
def test_malformed_notebooks_are_400s(server, content):
    response = server.api("POST", "analyse", json={"path": NOTEBOOK, "content": content})
    assert response.status_code == 400, response.text
    assert "Traceback" not in response.text


@pytest.mark.parametrize("declared", ["/etc/passwd", "../outside.csv"])
def test_unsaved_content_cannot_capture_files_outside_the_project(server, declared):
    """A request's notebook content declares data outside the root: no snapshot, no run, a 400 naming it."""
    (server.root.parent / "outside.csv").write_text("secret\n")
    content = json.loads((server.root / NOTEBOOK).read_text())
    content["cells"][3]["metadata"]["tags"].append(f"data:{declared}")
    before = server.api("GET", "runs").json()["total"]
    response = server.api("POST", "runs", json={"path": NOTEBOOK, "content": content, "track": False})
    assert response.status_code == 400, response.text
    assert "outside" in response.json()["error"]["text"]
    assert str(server.root) not in response.text
    assert server.api("GET", "runs").json()["total"] == before
