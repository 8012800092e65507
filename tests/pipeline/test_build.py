import json

import pytest

from jupyter_ext.errors import NotebookError
from jupyter_ext.pipeline.build import build_pipeline
from jupyter_ext.pipeline.model import Pipeline


def edges(pipeline):
    return {(e.source, e.target): e.variables for e in pipeline.edges}


def test_wine_classifier_dag_parameters_metrics(notebooks):
    p = build_pipeline(notebooks / "wine_classifier.ipynb")
    assert p.name == "wine-classifier" and p.experiment == "wine"
    assert [s.name for s in p.steps] == ["load_data", "split", "train", "evaluate"]
    assert edges(p) == {
        ("load_data", "split"): ["df"],
        ("split", "train"): ["X_train", "y_train"],
        ("train", "evaluate"): ["model"],
        ("split", "evaluate"): ["X_test", "y_test"],
    }
    assert [(x.name, x.type, x.default) for x in p.parameters] == [
        ("n_estimators", "int", 50), ("max_depth", "int", 4), ("test_size", "float", 0.25), ("seed", "int", 42),
    ]  # fmt: skip
    assert p.step("train").parameters == ["n_estimators", "max_depth", "seed"]
    assert p.step("evaluate").metrics == ["accuracy", "f1"]
    assert p.metrics == ["accuracy", "f1"]
    assert [c.index for c in p.prelude] == [2]


def test_independent_branches_join(notebooks):
    p = build_pipeline(notebooks / "branches.ipynb")
    assert p.step("stats").depends_on == ["make_data"]
    assert p.step("histogram").depends_on == ["make_data"]
    assert sorted(p.step("report").depends_on) == ["histogram", "stats"]
    assert p.step("make_data").parameters == ["n", "scale"]


def test_magics_shell_lines_and_function_free_variables(notebooks):
    p = build_pipeline(notebooks / "magics.ipynb")
    assert edges(p) == {("list_files", "summarise"): ["files", "n_files"]}
    # describe() in the functions cell reads `threshold`: a step calling it needs the parameter
    assert p.step("summarise").parameters == ["threshold"]
    assert len(p.step("summarise").cells) == 2  # the untagged cell joined the step above


def test_kale_legacy_dialect(notebooks):
    p = build_pipeline(notebooks / "kale_legacy.ipynb")
    assert p.name == "kale-circle" and p.image == "registry.example.com/ds/cellpipe:1.0"
    assert p.step("perimeter").prev == ["area"]
    assert p.step("perimeter").depends_on == ["area"]
    assert edges(p)[("area", "perimeter")] == []  # ordering only
    assert p.step("ratio").limits == {"cpu": "1", "memory": "512Mi"}
    assert all(s.labels == {"team": "ds"} for s in p.steps)  # steps_defaults
    assert "print('exploration only')" not in json.dumps(p.to_dict())


def test_papermill_parameters(notebooks):
    p = build_pipeline(notebooks / "papermill_params.ipynb")
    assert {x.name: x.type for x in p.parameters} == {
        "alpha": "float",
        "label": "str",
        "flags": "list",
        "verbose": "bool",
    }
    assert p.step("compute").parameters == ["alpha", "flags", "label"]


def test_model_round_trips_through_json(notebooks):
    p = build_pipeline(notebooks / "wine_classifier.ipynb")
    again = Pipeline.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p


def test_latest_producer_wins_and_mutation_counts(write_notebook):
    p = build_pipeline(
        write_notebook(
            [
                (["imports"], "from sklearn.linear_model import LinearRegression"),
                (["step:make"], "model = LinearRegression()\nX = [[1], [2]]\ny = [1, 2]"),
                (["step:fit"], "model.fit(X, y)"),
                (["step:use"], "score = model.score(X, y)"),
            ]
        )
    )
    assert edges(p) == {
        ("make", "fit"): ["model", "X", "y"],
        ("fit", "use"): ["model"],
        ("make", "use"): ["X", "y"],
    }


def test_cell_in_two_steps_and_ours_metadata_wins(write_notebook):
    p = build_pipeline(
        write_notebook(
            [(["step:a", "step:b"], "x = 1"), (["step:c"], "y = x")],
            metadata={"kubeflow_notebook": {"pipeline_name": "kale"}, "cellpipe": {"pipeline_name": "ours"}},
        )
    )
    assert p.name == "ours"
    assert [c.source for c in p.step("b").cells] == ["x = 1"]
    assert p.step("c").depends_on == ["b"]


# -- bad input: one clear line naming the notebook and cell --------------------------------------------
BAD = [
    (
        [(["step:a"], "x = 1"), (["step:b"], "y = x"), (["step:a"], "z = 2")],
        "cell 3: step 'a' is tagged again",
    ),
    ([(["step:a", "prev:ghost"], "x = 1")], "cell 1: step 'a': prev:ghost names an unknown step"),
    (
        [(["step:a", "prev:b"], "x = 1"), (["step:b", "prev:a"], "y = 2")],
        "the steps form a cycle: a -> b -> a",
    ),
    (
        [(["step:a"], "x = undefined_thing + 1")],
        "cell 1: step 'a': name 'undefined_thing' is read but never defined",
    ),
    ([(["step:a"], "y = later"), (["step:b"], "later = 1")], "'later' is read before it is defined"),
    (
        [(["parameters"], "a = f(1)"), (["step:s"], "b = a")],
        "cell 1: parameter 'a' (line 1) is not a literal value",
    ),
    ([(["step:a"], "x = (")], "cell 1: syntax error at line 1"),
    (
        [(["step:a"], "x = 1"), (["pipeline-metrics"], "nope")],
        "cell 2: metric 'nope' is not defined by any step",
    ),
    ([(["step:a"], "x = 1"), (["pipeline-metrics"], "x + 1")], "cell 2: pipeline-metrics cell line 1"),
    ([(["step:a", "limit:gpu"], "x = 1")], "cell 1: malformed tag 'limit:gpu'"),
]


@pytest.mark.parametrize(("cells", "expected"), BAD)
def test_bad_notebooks(write_notebook, cells, expected):
    path = write_notebook(cells)
    with pytest.raises(NotebookError) as info:
        build_pipeline(path)
    assert str(info.value).startswith(str(path))
    assert expected in str(info.value)


def test_not_a_notebook(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    with pytest.raises(NotebookError, match=r"bad.ipynb: not a notebook: invalid JSON \(line 1\)"):
        build_pipeline(bad)
    bad.write_text(json.dumps({"nbformat": 3, "worksheets": []}))
    with pytest.raises(NotebookError, match="unsupported notebook format 3"):
        build_pipeline(bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(NotebookError, match="not a notebook: no cells"):
        build_pipeline(bad)
    with pytest.raises(NotebookError, match="missing.ipynb: no such file"):
        build_pipeline(tmp_path / "missing.ipynb")


def test_non_python_kernel(write_notebook):
    path = write_notebook([(["step:a"], "x <- 1")], metadata={"kernelspec": {"name": "ir", "language": "R"}})
    with pytest.raises(NotebookError, match="kernel language is R; cellpipe runs Python notebooks"):
        build_pipeline(path)


def test_unsaved_content_replaces_file(write_notebook):
    path = write_notebook([(["step:a"], "x = 1")])
    text = path.read_text().replace('"step:a"', '"step:edited"')
    assert build_pipeline(path, content=text).steps[0].name == "edited"


def test_star_imports_make_unknown_names_acceptable(write_notebook):
    in_prelude = write_notebook([(["imports"], "from math import *"), (["step:a"], "x = sqrt(2)")])
    assert build_pipeline(in_prelude).step("a").inputs == []
    in_step = write_notebook([(["step:a"], "from math import *\nx = floor(pi)")])
    assert build_pipeline(in_step).steps[0].name == "a"


def test_tricky_reads_and_writes(write_notebook):
    p = build_pipeline(
        write_notebook(
            [
                (["step:make"], "total = 0\nitems = [1, 2]\nflag = True"),
                (["step:grow"], "for i in items:\n    total += i\nlabel = f'{total} items'"),
                (["step:use"], "if flag:\n    shown = label.upper()\nprint(shown)"),
            ]
        )
    )
    assert edges(p) == {
        ("make", "grow"): ["items", "total"],
        ("make", "use"): ["flag"],
        ("grow", "use"): ["label"],
    }
