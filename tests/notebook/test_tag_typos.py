"""Tags that look like a slip of ours are reported with the tag that was probably meant."""

import pytest

from jupyter_ext.notebook.suggest import closest, edit_distance
from jupyter_ext.notebook.tags import parse_cell_tags, suggest_tag


def parse(*tags):
    return parse_cell_tags(list(tags), notebook="nb.ipynb", cell=3)


@pytest.mark.parametrize(
    ("tag", "meant"),
    [
        ("stpe:train", "step:train"),  # swapped letters
        ("step-train", "step:train"),  # wrong separator
        ("step train", "step:train"),
        ("Step:Train", "step:train"),  # wrong case (step names are lowercase)
        ("prev train", "prev:train"),
        ("blok:load", "block:load"),
        ("limits:cpu:2", "limit:cpu:2"),
        ("pipeline-parameter", "pipeline-parameters"),
        ("pipeline_metrics", "pipeline-metrics"),
        ("import", "imports"),
        ("Functions", "functions"),
        ("skp", "skip"),
        ("metrics", "pipeline-metrics"),
        ("params", "parameters"),
    ],
)
def test_slips_are_kept_with_a_suggestion(tag, meant):
    parsed = parse(tag)
    assert parsed.steps == [] and parsed.role is None  # still not applied: a warning, not a guess
    assert [(i.tag, i.suggestion) for i in parsed.ignored] == [(tag, meant)]


@pytest.mark.parametrize(
    "tag",
    ["hide-input", "remove-cell", "raises-exception", "thebe-init", "margin", "dataset", "todo", "slow"],
)
def test_other_tools_tags_are_not_slips(tag):
    assert suggest_tag(tag) is None
    assert parse(tag).ignored == []


def test_kale_tags_cellpipe_does_not_implement_are_kept_by_name():
    parsed = parse("step:train", "report:enabled", "notebook:other")
    assert parsed.steps == ["train"]
    assert [(i.tag, i.unimplemented) for i in parsed.ignored] == [
        ("report:enabled", "report"),
        ("notebook:other", "notebook"),
    ]


def test_empty_step_tag_continues_the_step_above():
    for tag in ("step:", "block:"):
        parsed = parse(tag)
        assert parsed.continues and parsed.steps == []


def test_edit_distance_counts_a_swap_as_one():
    assert edit_distance("stpe", "step") == 1
    assert edit_distance("step", "step") == 0
    assert edit_distance("", "abc") == 3
    assert closest("pipline_name", ["pipeline_name", "experiment_name"]) == "pipeline_name"
    assert closest("zzz", ["step"]) is None
