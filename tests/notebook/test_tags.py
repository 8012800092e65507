import pytest

from jupyter_ext.errors import NotebookError
from jupyter_ext.notebook.tags import parse_cell_tags
from jupyter_ext.pipeline.model import Secret


def parse(*tags):
    return parse_cell_tags(list(tags), notebook="nb.ipynb", cell=3)


def test_kale_vocabulary_both_dialects():
    assert parse("step:train").steps == ["train"]
    assert parse("block:train").steps == ["train"]
    assert parse("block:a", "block:b").steps == ["a", "b"]
    assert parse("step:b", "prev:a").prev == ["a"]
    for tag, role in [("imports", "imports"), ("functions", "functions"), ("pipeline-parameters", "parameters"),
                      ("parameters", "parameters"), ("pipeline-metrics", "metrics"), ("skip", "skip")]:  # fmt: skip
        assert parse(tag).role == role


def test_step_settings():
    tags = parse(
        "step:train", "limit:nvidia.com/gpu:1", "limit:cpu:2", "limit:memory:4Gi", "image:reg.io/x:1.0",
        "annotation:team.io/owner:ana", "label:team:ml", "cache:disabled", "secret:db:password:DB_PASSWORD",
        "data:data/*.csv",
    )  # fmt: skip
    assert tags.limits == {"nvidia.com/gpu": "1", "cpu": "2", "memory": "4Gi"}
    assert tags.image == "reg.io/x:1.0"
    assert tags.annotations == {"team.io/owner": "ana"}
    assert tags.labels == {"team": "ml"}
    assert tags.cache is False
    assert tags.secrets == [Secret("db", "password", "DB_PASSWORD")]
    assert tags.data == ["data/*.csv"]


def test_foreign_tags_are_ignored():
    tags = parse("hide-input", "remove-cell", "raises-exception", "step:x")
    assert tags.steps == ["x"] and tags.role is None


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("step:Bad Name", "'Bad Name' is not a valid step name"),
        ("block:1abc", "'1abc' is not a valid step name"),
        ("prev:", "no step name"),
        ("step", "no step name"),
        ("limit:gpu", "expected limit:RESOURCE:VALUE"),
        ("limit:nvidia.com/gpu:1.5", "GPU count '1.5' must be a whole number"),
        ("limit:foo:1", "unknown resource 'foo'"),
        ("limit:memory:lots", "'lots' is not a resource quantity"),
        ("cache:maybe", "expected cache:enabled or cache:disabled"),
        ("secret:db:password", "expected secret:SECRET:KEY:ENV_VAR"),
        ("image:", "no image reference"),
    ],
)
def test_malformed_tags_name_notebook_and_cell(tag, expected):
    with pytest.raises(NotebookError) as info:
        parse(tag)
    text = str(info.value)
    assert text.startswith("nb.ipynb: cell 3: malformed tag")
    assert expected in text


def test_conflicting_roles():
    with pytest.raises(NotebookError, match="tagged both 'imports' and 'step:a'"):
        parse("imports", "step:a")
    with pytest.raises(NotebookError, match="tagged both 'imports' and 'skip'"):
        parse("imports", "skip")
