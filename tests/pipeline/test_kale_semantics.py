"""Kale's notebook semantics the analysis follows, and the mistakes it reports as warnings instead of
silently changing the DAG."""

import json
import warnings

import pytest

from jupyter_ext.errors import NotebookError
from jupyter_ext.notebook.read import read_notebook
from jupyter_ext.pipeline.build import build_pipeline
from jupyter_ext.pipeline.model import Pipeline


def test_empty_step_tag_continues_the_previous_step(write_notebook):
    p = build_pipeline(
        write_notebook(
            [(["step:a"], "x = 1"), (["step:"], "y = x + 1"), (["block:"], "z = y"), (["step:b"], "w = z")]
        )
    )
    assert [c.index for c in p.step("a").cells] == [1, 2, 3]
    assert [e.variables for e in p.edges] == [["z"]]
    assert p.warnings == []


def test_untagged_cells_before_the_first_step_are_left_out_with_a_warning(write_notebook):
    path = write_notebook(
        ["# title", (None, "import this_is_never_run"), (None, "print('exploring')"), (["step:a"], "x = 1")]
    )
    p = build_pipeline(path)
    assert [s.name for s in p.steps] == ["a"]
    (warning,) = p.warnings
    assert warning["cell"] == 2
    assert (
        "cell 2: code cells 2, 3 come before the first step and are left out of the pipeline"
        in warning["text"]
    )
    assert "'skip'" in warning["hint"] and "step:NAME" in warning["hint"]


def test_one_leading_cell_reads_singular(write_notebook):
    (warning,) = build_pipeline(write_notebook([(None, "a = 1"), (["step:s"], "b = 2")])).warnings
    assert warning["text"].endswith(
        "cell 1: this code cell comes before the first step and is left out of the "
        "pipeline. Tag each such cell 'skip' to confirm, or step:NAME, imports or "
        "functions to include it"
    )


def test_a_notebook_without_step_tags_is_plain_not_an_error(write_notebook):
    p = build_pipeline(write_notebook([(["parameters"], "n = 3"), (None, "print(n)"), (["stpe:x"], "y = 2")]))
    assert p.is_plain and p.steps == []
    assert [(x.name, x.default) for x in p.parameters] == [("n", 3)]
    assert [w["field"] for w in p.warnings] == ["tag 'stpe:x'"]  # mistakes are still reported
    data = p.to_dict()
    assert data["is_plain"] is True
    assert Pipeline.from_dict(json.loads(json.dumps(data))).is_plain


def test_a_tag_typo_is_a_warning_naming_the_cell_and_the_fix(write_notebook):
    p = build_pipeline(
        write_notebook([(["step:load"], "x = 1"), (["stpe:train"], "y = x"), (["step:report"], "z = y")])
    )
    assert [s.name for s in p.steps] == ["load", "report"]  # as written: cell 2 joins 'load'
    (warning,) = p.warnings
    assert (warning["cell"], warning["field"]) == (2, "tag 'stpe:train'")
    assert "did you mean 'step:train'?" in warning["hint"]
    assert warning["text"].startswith(f"{p.notebook}: cell 2: tag 'stpe:train': not a cellpipe tag, ignored")


def test_unimplemented_kale_tags_warn_once_listing_the_cells(write_notebook):
    p = build_pipeline(
        write_notebook([(["step:a", "report:enabled"], "x = 1"), (["step:b", "report:disabled"], "y = x")])
    )
    (warning,) = p.warnings
    assert warning["field"] == "tag 'report:'" and "cells 1, 2" in warning["message"]


def test_metrics_may_list_numeric_parameters(write_notebook):
    p = build_pipeline(
        write_notebook(
            [
                (["pipeline-parameters"], "d1 = 5\nname = 'x'"),
                (["step:a"], "s = 1"),
                (["step:b"], "t = s"),
                (["pipeline-metrics"], "print(d1)\nprint(t)"),
            ]  # fmt: skip
        )
    )
    assert p.metrics == ["d1", "t"]
    assert p.step("b").metrics == ["d1", "t"] and "d1" in p.step("b").parameters  # the step receives it
    path = write_notebook(
        [(["parameters"], "name = 'x'"), (["step:a"], "s = 1"), (["pipeline-metrics"], "name")]
    )
    with pytest.raises(NotebookError, match="cell 3: metric 'name' is a str parameter; metrics are numbers"):
        build_pipeline(path)


def test_notebooks_without_cell_ids_read_quietly(tmp_path):
    data = {
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"cell_type": "code", "metadata": {"tags": ["step:a"]}, "source": "x = 1", "outputs": [],
                   "execution_count": None}],
    }  # fmt: skip
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_notebook(path)
        build_pipeline(path)
    assert [str(w.message) for w in caught] == []
    assert json.loads(path.read_text()) == data  # the user's file is untouched


def test_a_step_payload_carries_no_warnings(write_notebook):
    p = build_pipeline(write_notebook([(None, "a = 1"), (["step:s"], "b = 2")]))
    assert p.warnings and p.for_step("s").warnings == []


def test_a_label_names_the_notebook_everywhere_instead_of_its_path(write_notebook):
    path = write_notebook([(None, "a = 1"), (["step:s"], "b = 2")])
    p = build_pipeline(path, label="work/nb.ipynb")
    assert p.notebook == "work/nb.ipynb"
    assert p.warnings[0]["text"].startswith("work/nb.ipynb: cell 1: ") and str(path) not in json.dumps(
        p.to_dict()
    )
    with pytest.raises(NotebookError, match=r"^work/nb.ipynb: not a notebook"):
        build_pipeline(path, content=b"{}", label="work/nb.ipynb")


def test_steps_defaults_typos_are_warned(write_notebook):
    meta = {"kubeflow_notebook": {"steps_defaults": ["label:team:ml", "limits:cpu:1", "report:enabled"]}}
    p = build_pipeline(write_notebook([(["step:a"], "x = 1")], metadata=meta))
    assert p.step("a").labels == {"team": "ml"}
    assert [(w["field"], w["hint"]) for w in p.warnings] == [
        ("metadata steps_defaults", "did you mean 'limit:cpu:1'?"),
        ("metadata steps_defaults", "a Kale setting cellpipe does not implement"),
    ]
