"""Malformed notebooks never give a traceback: ``cellpipe inspect`` and ``cellpipe compile`` end with exit
code 1 and one ``cellpipe: error:`` line (or succeed, when a mutation happens to leave a valid notebook),
within a time bound.

A property-based test (hypothesis) mutates a valid tagged notebook: wrong types and nulls anywhere in its
metadata and cells, missing fields, hostile tags, pathological sources (deep nesting, lone surrogates,
1e999, huge literals), deeply nested or truncated JSON, invalid UTF-8. Each issue-listed case also has an
explicit test that requires the error.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_ext.cli.main import main

TIME_BOUND_S = 20  # per command, on 2 shared cores; a well-formed notebook of this size takes ~0.1 s
EXAMPLES = int(os.environ.get("CELLPIPE_FUZZ_EXAMPLES", "120"))
OUTCOMES: Counter[str] = Counter()  # how each tried input ended, reported at the end of the session


def base_notebook() -> dict[str, Any]:
    def code(source: str, tags: list[str] | None = None) -> dict[str, Any]:
        return {
            "cell_type": "code",
            "execution_count": None,
            "id": f"c{abs(hash(source)) % 10**8}",
            "metadata": {"tags": tags} if tags else {},
            "outputs": [],
            "source": source,
        }

    return {
        "cells": [
            {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": "# Title"},
            code("import math", ["imports"]),
            code("n = 3\nd = {'a': 1}", ["parameters"]),
            code("xs = [math.sqrt(i) for i in range(n)]", ["step:load"]),
            code("total = sum(xs) + d['a']", ["step:train", "prev:load"]),
            code("total", ["pipeline-metrics"]),
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "cellpipe": {"pipeline_name": "fuzz", "data": [], "volumes": [], "steps_defaults": []},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


# -- strategies -----------------------------------------------------------------------------------------

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=5)), max_size=3),
    st.dictionaries(
        st.text(max_size=6), st.one_of(st.none(), st.integers(), st.text(max_size=5)), max_size=3
    ),
)
NOTEBOOK_FIELDS = [
    "metadata", "metadata.kernelspec", "metadata.kernelspec.name", "metadata.kernelspec.language",
    "metadata.language_info", "metadata.language_info.name", "metadata.cellpipe",
    "metadata.cellpipe.volumes", "metadata.cellpipe.steps_defaults", "metadata.cellpipe.data",
    "metadata.cellpipe.pipeline_name", "metadata.cellpipe.pipeline_description",
    "metadata.cellpipe.docker_image", "metadata.cellpipe.enable_caching", "metadata.cellpipe.experiment",
    "metadata.kubeflow_notebook", "metadata.kubeflow_notebook.volumes", "metadata.kubeflow_notebook.base_image",
    "nbformat", "nbformat_minor", "cells",
]  # fmt: skip
CELL_FIELDS = ["source", "cell_type", "metadata", "metadata.tags", "outputs", "execution_count", "id"]
TAG = st.one_of(
    st.sampled_from(
        ["step:_", "step:", "block:__", "prev:", "step:A", "limit:cpu:x", "limit:nvidia.com/gpu:0.5",
         "limit::", "secret:a:b:1x", "image:", "data:", "data:/etc/hostname", "cache:maybe", "label::v",
         "imports", "functions", "parameters", "pipeline-metrics", "skip", "step:" + "a" * 300]
    ),
    st.from_regex(r"(step|block|prev|limit|image|secret|data|label|annotation|cache):[ -~]{0,12}", fullmatch=True),
    st.text(max_size=10),
)  # fmt: skip
PATHOLOGICAL_SOURCES = st.one_of(
    st.integers(50, 100_000).map(lambda n: "x = " + "(" * n + "1" + ")" * n),
    st.integers(50, 100_000).map(lambda n: "x = " + "[" * n + "]" * n),
    st.integers(50, 100_000).map(lambda n: "x = " + "-" * n + "1"),
    st.integers(50, 50_000).map(lambda n: "x = " + "1 + " * n + "1"),
    st.integers(50, 5_000).map(lambda n: "".join(" " * i + "if x:\n" for i in range(n)) + " " * n + "pass"),
    st.integers(4_000, 20_000).map(lambda n: "x = " + "9" * n),
    st.sampled_from(
        ["x = '\ud800'", "\udcff = 1", "p = {'a': 1e999}", "p = {'a': None}", "p = [1e999, None]",
         "x = 1e999", "p = -1e999", "p = {'a': {'b': [None, 1e999]}}", "def f(:\n", "%%bash\necho",
         "!ls\nx = 1", "x = \\", "\x00", "x = '" + "a" * 100_000 + "'"]
    ),
    st.text(max_size=40),
)  # fmt: skip


def set_path(document: Any, dotted: str, value: Any, *, delete: bool = False) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        if not isinstance(document, dict):
            return
        document = (
            document.setdefault(part, {})
            if not isinstance(document.get(part), (list, str))
            else document[part]
        )
    if isinstance(document, dict):
        if delete:
            document.pop(last, None)
        else:
            document[last] = value


@st.composite
def mutation(draw: st.DrawFn) -> tuple[str, Any]:
    """(label, how to apply it to the parsed notebook)."""
    kind = draw(st.sampled_from(["field", "cell-field", "cell-delete", "tags", "source", "params", "name"]))
    if kind == "field":
        field, value = draw(st.sampled_from(NOTEBOOK_FIELDS)), draw(JUNK)
        return f"{field}={type(value).__name__}", lambda nb: set_path(nb, field, value)
    cell = draw(st.integers(0, 5))
    if kind == "cell-field":
        field, value = draw(st.sampled_from(CELL_FIELDS)), draw(JUNK)
        return f"cell.{field}={type(value).__name__}", lambda nb: set_path(_cell(nb, cell), field, value)
    if kind == "cell-delete":
        field = draw(st.sampled_from(["source", "cell_type", "metadata"]))
        return f"cell.{field} missing", lambda nb: set_path(_cell(nb, cell), field, None, delete=True)
    if kind == "tags":
        tags = draw(st.lists(TAG, min_size=1, max_size=3))
        return "tags", lambda nb: set_path(_cell(nb, cell), "metadata.tags", tags)
    if kind == "source":
        source = draw(PATHOLOGICAL_SOURCES)
        return "source", lambda nb: set_path(_cell(nb, cell), "source", source)
    if kind == "params":
        source = draw(PATHOLOGICAL_SOURCES)
        return "parameters source", lambda nb: set_path(_cell(nb, 2), "source", source)
    length = draw(st.integers(100, 400))
    return "long name", lambda nb: set_path(nb, "metadata.cellpipe.pipeline_name", "p" * length)


def _cell(notebook: dict[str, Any], index: int) -> Any:
    cells = notebook.get("cells")
    return cells[index % len(cells)] if isinstance(cells, list) and cells else {}


@st.composite
def malformed_notebook(draw: st.DrawFn) -> tuple[str, bytes]:
    """(label, the notebook file's bytes)."""
    raw = draw(st.sampled_from(["json", "json", "json", "json", "nested-json", "truncated", "bad-utf8"]))
    if raw == "nested-json":
        depth = draw(st.integers(100, 200_000))
        return "deeply nested JSON", (
            '{"cells": [], "metadata": {"x": '
            + "[" * depth
            + "]" * depth
            + '}, "nbformat": 4, "nbformat_minor": 5}'
        ).encode()
    notebook = base_notebook()
    mutations = draw(st.lists(mutation(), min_size=1, max_size=3))
    for _, apply in mutations:
        apply(notebook)
    text = json.dumps(notebook)
    label = " + ".join(name for name, _ in mutations)
    if raw == "truncated":
        return "truncated JSON", text[: draw(st.integers(0, len(text) - 1))].encode()
    if raw == "bad-utf8":
        at = draw(st.integers(0, len(text)))
        return "invalid UTF-8", text[:at].encode() + b"\xff\xfe" + text[at:].encode()
    return label, text.encode("utf-8", "surrogatepass")


# -- the contract ---------------------------------------------------------------------------------------


def run_main(argv: list[str]) -> tuple[int, str, float]:
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue(), time.monotonic() - started


def check_contract(command: str, path: Path, tmp_path: Path, label: str) -> int:
    argv = [command, str(path)] + (["-o", str(tmp_path / "out.yaml")] if command == "compile" else [])
    try:
        code, err, elapsed = run_main(argv)
    except BaseException as exc:  # the contract is broken: show what broke it
        OUTCOMES[f"{command}: traceback {type(exc).__name__}"] += 1
        raise AssertionError(f"{label}: {command} raised {type(exc).__name__}: {str(exc)[:300]}") from exc
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("cellpipe: error: ")]
    OUTCOMES[f"{command}: exit {code}" + (" (clean error)" if code == 1 and len(errors) == 1 else "")] += 1
    assert code in (0, 1), (label, code, err[-500:])
    assert "Traceback" not in err, (label, err[-2000:])
    if code == 1:
        assert len(errors) == 1, (label, err[-1000:])
    assert elapsed < TIME_BOUND_S, (label, elapsed)
    return code


@pytest.fixture(scope="module", autouse=True)
def report_outcomes():
    yield
    if OUTCOMES:
        print("\nmalformed-notebook outcomes: " + ", ".join(f"{k}: {v}" for k, v in sorted(OUTCOMES.items())))


@settings(
    max_examples=EXAMPLES,
    deadline=None,  # the time bound is asserted per command above, with a margin for a loaded machine
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    derandomize=True,  # the same inputs on every run: a failure on CI is a failure here
)
@given(case=malformed_notebook())
def test_malformed_notebooks_end_in_one_error_line(case: tuple[str, bytes], tmp_path: Path) -> None:
    label, data = case
    path = tmp_path / "fuzz.ipynb"
    path.write_bytes(data)
    for command in ("inspect", "compile"):
        check_contract(command, path, tmp_path, label)


# -- each case the issue lists, required to fail cleanly -------------------------------------------------


def _params(source: str):
    return lambda nb: set_path(nb["cells"][2], "source", "n = 3\n" + source)


ISSUE_CASES = {
    "kernelspec null": (lambda nb: set_path(nb, "metadata.kernelspec", None), "metadata.kernelspec"),
    "kernelspec a list": (lambda nb: set_path(nb, "metadata.kernelspec", ["python3"]), "metadata.kernelspec"),
    "kernelspec language a number": (
        lambda nb: set_path(nb, "metadata.kernelspec.language", 3),
        "metadata.kernelspec.language",
    ),
    "language_info a string": (lambda nb: set_path(nb, "metadata.language_info", "python"), "language_info"),
    "tags a string": (lambda nb: set_path(nb["cells"][3], "metadata.tags", "step:load"), "cell 4"),
    "tags with null": (lambda nb: set_path(nb["cells"][3], "metadata.tags", [None]), "cell 4"),
    "volumes a number": (lambda nb: set_path(nb, "metadata.cellpipe.volumes", 1.5), "volumes"),
    "steps_defaults a bool": (
        lambda nb: set_path(nb, "metadata.cellpipe.steps_defaults", True),
        "steps_defaults",
    ),
    "data a dict": (lambda nb: set_path(nb, "metadata.cellpipe.data", {"a": 1}), "cellpipe.data"),
    "source null": (lambda nb: set_path(nb["cells"][3], "source", None), "cell 4"),
    "source a number": (lambda nb: set_path(nb["cells"][3], "source", 42), "cell 4"),
    "source missing": (lambda nb: nb["cells"][3].pop("source"), "cell 4"),
    "cell_type missing": (lambda nb: nb["cells"][3].pop("cell_type"), "cell 4"),
    "deeply nested expression": (
        lambda nb: set_path(nb["cells"][3], "source", "x = " + "-" * 50_000 + "1"),
        "cell 4",
    ),
    "deeply nested brackets": (
        lambda nb: set_path(nb["cells"][3], "source", "x = " + "[" * 100_000 + "]" * 100_000),
        "cell 4",
    ),
    "deeply nested parameters": (_params("d = " + "{'a': " * 150 + "1" + "}" * 150), "cell 3"),
    "lone surrogate in source": (lambda nb: set_path(nb["cells"][3], "source", "x = '\ud800'"), "cell 4"),
    "lone surrogate escaped in a parameter": (_params("s = '\\udcff'"), "cell 3"),
    "1e999 in a dict parameter": (_params("d = {'a': 1e999}"), "cell 3"),
    "-1e999 parameter": (_params("d = -1e999"), "cell 3"),
    "non-string dict keys": (_params("d = {1: 2}"), "cell 3"),
    "step:_": (lambda nb: set_path(nb["cells"][3], "metadata.tags", ["step:_"]), "cell 4"),
    "pipeline name of 129 characters": (
        lambda nb: set_path(nb, "metadata.cellpipe.pipeline_name", "p" * 129),
        "pipeline_name",
    ),
    "image a number": (lambda nb: set_path(nb, "metadata.cellpipe.docker_image", 7), "docker_image"),
    "image a list": (lambda nb: set_path(nb, "metadata.kubeflow_notebook.base_image", ["a"]), "base_image"),
}


@pytest.mark.parametrize("case", sorted(ISSUE_CASES))
@pytest.mark.parametrize("command", ["inspect", "compile"])
def test_issue_case_is_one_error_line(case: str, command: str, tmp_path: Path) -> None:
    mutate, where = ISSUE_CASES[case]
    notebook = base_notebook()
    mutate(notebook)
    path = tmp_path / "case.ipynb"
    path.write_bytes(json.dumps(notebook).encode("utf-8", "surrogatepass"))
    assert check_contract(command, path, tmp_path, case) == 1
    _, err, _ = run_main(
        [command, str(path)] + (["-o", str(tmp_path / "o.yaml")] if command == "compile" else [])
    )
    assert where in err, err


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '{"cells": [], "metadata": {"x": ' + "[" * 200_000 + "]" * 200_000 + "}, " + '"nbformat": 4}',
            "nests more than",
        ),
        (
            '{"cells": [], "metadata": {"x": ' + "[" * 101 + "]" * 101 + "}, " + '"nbformat": 4}',
            "nests more than",
        ),
        ('{"cells": [{"cell_type": "code", "source": "x = 1"', "invalid JSON"),
    ],
)
def test_json_level_cases(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "raw.ipynb"
    path.write_text(text)
    for command in ("inspect", "compile"):
        assert check_contract(command, path, tmp_path, message) == 1
        assert message in run_main([command, str(path)])[1]


def test_a_plain_notebook_does_not_crash_compile(tmp_path: Path) -> None:
    notebook = base_notebook()
    for cell in notebook["cells"]:
        cell.get("metadata", {}).pop("tags", None)
    path = tmp_path / "plain.ipynb"
    path.write_text(json.dumps(notebook))
    assert check_contract("compile", path, tmp_path, "plain") == 1
    assert "has no step: tags" in run_main(["compile", str(path), "-o", str(tmp_path / "o.yaml")])[1]


def test_a_long_file_name_still_gives_a_valid_pipeline_name(tmp_path: Path) -> None:
    path = tmp_path / ("n" * 200 + ".ipynb")
    path.write_text(json.dumps(base_notebook()).replace('"pipeline_name": "fuzz", ', ""))
    assert check_contract("compile", path, tmp_path, "long file name") == 0


@pytest.mark.parametrize(
    "case", ["source null", "deeply nested brackets", "lone surrogate in source", "step:_"]
)
def test_the_real_command_prints_one_line_and_no_traceback(case: str, tmp_path: Path) -> None:
    mutate, _ = ISSUE_CASES[case]
    notebook = base_notebook()
    mutate(notebook)
    path = tmp_path / "case.ipynb"
    path.write_bytes(json.dumps(notebook).encode("utf-8", "surrogatepass"))
    for command in ("inspect", "compile"):
        done = subprocess.run(
            [sys.executable, "-m", "jupyter_ext.cli", command, str(path)],
            capture_output=True,
            text=True,
            timeout=TIME_BOUND_S * 3,
            cwd=tmp_path,
        )
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert [line for line in done.stderr.splitlines() if line.strip()] == [done.stderr.strip()]
        assert done.stderr.startswith("cellpipe: error: ")
