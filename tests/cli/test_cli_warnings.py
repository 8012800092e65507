"""Warnings reach the user on every command and never stop it: inspect, compile and run survive them."""

import json

from jupyter_ext.cli.main import main

CELLS = [
    (None, "print('exploring')"),  # before the first step: left out, with a warning
    (["step:load"], "x = 1"),
    (["stpe:train"], "y = x + 1"),  # a typo: joins 'load', with a warning
    (["step:report"], "z = y"),
]


def test_inspect_and_compile_warn_and_succeed(write_notebook, tmp_path, capsys):
    notebook = write_notebook(CELLS)
    assert main(["inspect", str(notebook), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["warnings"][1]["hint"] == "did you mean 'step:train'?"
    assert (
        f"cellpipe: warning: {notebook}: cell 1: this code cell comes before the first step" in captured.err
    )
    assert f"cellpipe: warning: {notebook}: cell 3: tag 'stpe:train': not a cellpipe tag" in captured.err
    assert main(["compile", str(notebook), "-o", str(tmp_path / "p.yaml")]) == 0
    assert captured.err.count("warning") == capsys.readouterr().err.count("warning") == 2


def test_run_warns_and_runs(write_notebook, data_dir, capsys):
    notebook = write_notebook(CELLS)
    assert main(["run", str(notebook), "--no-track", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "succeeded"
    assert "Did you mean 'step:train'?" in captured.err and "before the first step" in captured.err


def test_a_plain_notebook_is_inspected_as_such_and_kfp_compile_says_why_not(write_notebook, tmp_path, capsys):
    notebook = write_notebook([(["parameters"], "n = 1"), (None, "print(n)")])
    assert main(["inspect", str(notebook), "--svg", str(tmp_path / "p.svg")]) == 0
    out = capsys.readouterr().out
    assert "a plain notebook: no cell is tagged step:NAME, so it runs whole" in out
    assert 'height="48"' in (tmp_path / "p.svg").read_text()  # an empty picture, still a valid one
    assert main(["compile", str(notebook), "-o", str(tmp_path / "p.yaml")]) == 1
    assert "the notebook has no step: tags; Kubeflow Pipelines runs a notebook as a pipeline of steps" in (
        capsys.readouterr().err
    )
