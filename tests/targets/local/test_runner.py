"""The local runner with real kernels: data passing, parallel branches, cache, failures, MLflow."""

import json
import shutil
from pathlib import Path

import pytest

from jupyter_ext.notebook.params import resolve
from jupyter_ext.pipeline.build import build_pipeline
from jupyter_ext.services.runs import RunRequest, RunService, run_pipeline
from jupyter_ext.targets.local.target import LocalOptions

pytestmark = pytest.mark.slow


def launch(notebook, data_dir, *, overrides=None, step_timeout=None, **kwargs):
    """A run through the run service (snapshot, record, local target, tracking), as a JSON record."""
    request = RunRequest(notebook=Path(notebook), parameters=overrides,
                         target_options=LocalOptions(step_timeout=step_timeout), **kwargs)  # fmt: skip
    service = RunService(data_dir)
    return service.wait_for_tracking(service.run(request).id).to_dict()  # MLflow is logged in the background


def steps(record):
    """The record's steps (a list in pipeline order) by name."""
    return {s["name"]: s for s in record["steps"]}


def test_wine_pipeline_runs_and_is_tracked(notebooks, tmp_path, data_dir):
    notebook = shutil.copy(notebooks / "wine_classifier.ipynb", tmp_path / "wine.ipynb")
    record = launch(notebook, data_dir, overrides=["n_estimators=10"])
    assert record["status"] == "succeeded", record
    assert [s["name"] for s in record["steps"]] == [
        "load_data",
        "split",
        "train",
        "evaluate",
    ]  # pipeline order
    assert all(s["status"] == "succeeded" for s in steps(record).values())
    assert 0.5 < record["metrics"]["accuracy"] <= 1.0
    assert record["parameters"]["n_estimators"] == 10
    assert record["snapshot_id"] and record["notebook_sha256"]
    # data passed by type
    backends = {k: v["backend"] for k, v in steps(record)["split"]["outputs"].items()}
    assert backends == {
        "X_train": "dataframe",
        "X_test": "dataframe",
        "y_train": "series",
        "y_test": "series",
    }
    assert steps(record)["train"]["outputs"]["model"]["backend"] == "sklearn"
    # the executed step notebook is kept and readable, with the step's own output
    executed = json.loads(Path(steps(record)["evaluate"]["notebook"]).read_text())
    texts = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert "accuracy=" in texts
    generated = [
        c for c in executed["cells"] if c["metadata"].get("cellpipe", {}).get("role") in ("inputs", "outputs")
    ]
    assert generated and not any(c.get("outputs") for c in generated)  # cellpipe's own cells show nothing
    # the record on disk is the same
    assert RunService(data_dir).get(record["id"]).to_dict() == record
    # MLflow: a parent run with params, metrics and lineage tags, and a nested run per step
    from mlflow.tracking import MlflowClient

    assert record["tracking"]["status"] == "ok"  # logged in the background: the MLflow run is in the record
    client = MlflowClient(tracking_uri=record["tracking"]["tracking_uri"])
    parent = client.get_run(record["tracking"]["mlflow_run_id"])
    assert parent.data.params["n_estimators"] == "10"
    assert parent.data.metrics["accuracy"] == record["metrics"]["accuracy"]
    assert parent.data.tags["cellpipe.run_id"] == record["id"]
    assert parent.data.tags["cellpipe.snapshot_id"] == record["snapshot_id"]
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert {c.data.tags["cellpipe.step"] for c in children} == {"load_data", "split", "train", "evaluate"}
    evaluate = next(c for c in children if c.data.tags["cellpipe.step"] == "evaluate")
    assert [a.path for a in client.list_artifacts(evaluate.info.run_id, "notebooks")] == [
        "notebooks/evaluate.ipynb"
    ]
    assert str(data_dir) in parent.info.artifact_uri  # artifacts next to the DB, not in the cwd


def test_cache_reruns_only_what_changed(write_notebook, data_dir):
    cells = [
        (["parameters"], "n = 3\nfactor = 2"),
        (["step:make"], "values = list(range(n))"),
        (["step:scale"], "scaled = [v * factor for v in values]"),
        (["step:total"], "total = sum(scaled)"),
        (["pipeline-metrics"], "total"),
    ]
    notebook = write_notebook(cells, name="cache.ipynb")
    first = launch(notebook, data_dir, track=False)
    assert first["metrics"] == {"total": 6.0}
    again = launch(notebook, data_dir, track=False)
    assert {n: s["status"] for n, s in steps(again).items()} == dict.fromkeys(
        ("make", "scale", "total"), "cached"
    )
    assert again["metrics"] == {"total": 6.0}
    # edit the last step only
    cells[3] = (["step:total"], "total = sum(scaled) + 1")
    write_notebook(cells, name="cache.ipynb")
    edited = launch(notebook, data_dir, track=False)
    assert {n: s["status"] for n, s in steps(edited).items()} == {
        "make": "cached",
        "scale": "cached",
        "total": "succeeded",
    }
    assert edited["metrics"] == {"total": 7.0}
    # a parameter change re-runs the steps that read it, and those downstream of a changed output
    changed = launch(notebook, data_dir, track=False, overrides=["factor=3"])
    assert {n: s["status"] for n, s in steps(changed).items()} == {
        "make": "cached",
        "scale": "succeeded",
        "total": "succeeded",
    }
    assert changed["metrics"] == {"total": 10.0}
    forced = launch(notebook, data_dir, track=False, use_cache=False)
    assert all(s["status"] == "succeeded" for s in steps(forced).values())
    assert steps(forced)["make"]["cache_key"] == steps(first)["make"]["cache_key"]


def test_failure_stops_dependants_and_lets_branches_finish(write_notebook, data_dir):
    notebook = write_notebook(
        [
            "# a failing branch",
            (["step:source"], "x = 1"),
            (["step:broken"], "y = x + 1\nz = y / 0"),
            (["step:after_broken"], "w = z * 2"),
            (["step:independent"], "import time\ntime.sleep(0.5)\nv = x * 10"),
        ]
    )
    record = launch(notebook, data_dir, track=False)
    statuses = {n: s["status"] for n, s in steps(record).items()}
    assert statuses == {
        "source": "succeeded",
        "broken": "failed",
        "after_broken": "not_run",
        "independent": "succeeded",
    }
    assert record["status"] == "failed"
    error = steps(record)["broken"]["error"]
    assert error["cell"] == 3 and error["ename"] == "ZeroDivisionError"
    assert any("y / 0" in line for line in error["traceback"])
    assert steps(record)["after_broken"]["reason"] == "upstream step 'broken' did not succeed"


def test_kernel_death_is_reported(write_notebook, data_dir):
    notebook = write_notebook([(["step:die"], "import os\nos._exit(1)")])
    record = launch(notebook, data_dir, track=False)
    error = steps(record)["die"]["error"]
    assert error["kind"] == "kernel_died" and "kernel died" in error["message"]
    assert error["cell"] == 1


def test_unserialisable_variable_names_variable_type_and_step(write_notebook, data_dir):
    notebook = write_notebook(
        [(["step:make"], "gen = (i for i in range(3))"), (["step:use"], "total = sum(gen)")]
    )
    record = launch(notebook, data_dir, track=False)
    error = steps(record)["make"]["error"]
    assert steps(record)["use"]["status"] == "not_run"
    assert "gen" in error["message"] and "generator" in error["message"] and "make" in error["message"]


def test_independent_steps_overlap(notebooks, tmp_path, data_dir):
    notebook = tmp_path / "parallel.ipynb"
    text = (notebooks / "branches.ipynb").read_text()
    # make both branches take a while, so overlap is unambiguous
    text = text.replace(
        "mean = float(values.mean())", "import time; time.sleep(1.5)\\nmean = float(values.mean())"
    )
    text = text.replace(
        "counts, edges = np.histogram", "import time; time.sleep(1.5)\\ncounts, edges = np.histogram"
    )
    notebook.write_text(text)
    pipeline = build_pipeline(notebook)
    events = []
    record = run_pipeline(
        pipeline,
        workdir=tmp_path,
        data_dir=data_dir,
        parameters=resolve(pipeline.parameters, None),
        options=LocalOptions(max_parallel=2),
        listener=lambda event, step, rec: events.append((event, step)),
    ).to_dict()
    assert record["status"] == "succeeded"
    order = [e for e in events if e[1] in ("stats", "histogram")]
    # both branches started before either finished
    assert [e[0] for e in order[:2]] == ["started", "started"], order
    assert record["metrics"]["peak"] > 0


def test_torch_and_numpy_values_flow_between_kernels(write_notebook, data_dir):
    notebook = write_notebook(
        [
            (["imports"], "import numpy as np\nimport torch"),
            (["step:make"], "weights = torch.arange(4, dtype=torch.float32)\nbias = np.array([0.5, 1.5])"),
            (["step:use"], "total = float(weights.sum()) + float(bias.sum())"),
            (["pipeline-metrics"], "total"),
        ]
    )
    record = launch(notebook, data_dir, track=False)
    assert record["status"] == "succeeded", record
    outputs = steps(record)["make"]["outputs"]
    assert (outputs["weights"]["backend"], outputs["bias"]["backend"]) == ("torch", "ndarray")
    assert record["metrics"] == {"total": 8.0}


def test_a_kernel_that_cannot_start_fails_the_step_not_the_runner(write_notebook, tmp_path, data_dir):
    pipeline = build_pipeline(write_notebook([(["step:a"], "x = 1"), (["step:b"], "y = x")]))
    pipeline.kernel = "no-such-kernel"  # past the up-front check of `cellpipe run`, e.g. removed meanwhile
    record = run_pipeline(pipeline, workdir=tmp_path, data_dir=data_dir).to_dict()
    assert record["status"] == "failed"
    error = steps(record)["a"]["error"]
    assert error["kind"] == "kernel_start" and "no-such-kernel" in error["message"]
    assert steps(record)["b"]["status"] == "not_run"


def test_parameter_defaults_are_part_of_the_cache_key(write_notebook, tmp_path, data_dir):
    cells = [(["parameters"], "n = 2"), (["step:a"], "total = n * 10"), (["pipeline-metrics"], "total")]
    notebook = write_notebook(cells, name="defaults.ipynb")
    first = run_pipeline(build_pipeline(notebook), workdir=tmp_path, data_dir=data_dir).to_dict()
    write_notebook([(["parameters"], "n = 3"), *cells[1:]], name="defaults.ipynb")  # a new default
    second = run_pipeline(build_pipeline(notebook), workdir=tmp_path, data_dir=data_dir).to_dict()
    assert (first["metrics"], second["metrics"]) == ({"total": 20.0}, {"total": 30.0})
    assert steps(second)["a"]["status"] == "succeeded" and second["parameters"] == {"n": 3}


def test_the_steps_next_in_line_are_those_whose_upstreams_all_run_or_ended(write_notebook, tmp_path):
    """What the runner tells its kernel pool to start ahead: while the source runs, both branches; while
    the branches run, the join; never a step the cache answers."""
    from jupyter_ext.records.models import RunRecord, StepRecord, StepStatus
    from jupyter_ext.targets.local.runner import LocalRunner

    notebook = write_notebook(
        [
            (["step:source"], "x = 1"),
            (["step:left"], "left = x * 2"),
            (["step:right"], "right = x * 3"),
            (["step:join"], "total = left + right"),
        ]
    )
    pipeline = build_pipeline(notebook)
    record = RunRecord(
        id="r", notebook=str(notebook), steps=[StepRecord(name=s.name) for s in pipeline.steps]
    )
    runner = LocalRunner(
        pipeline, record, workdir=tmp_path, run_dir=tmp_path / "run", cache_dir=tmp_path / "c"
    )
    runner._executing = runner._steps_to_execute()  # as run() does
    assert runner._executing == {"source", "left", "right", "join"}  # an empty cache
    status = {s.name: s for s in record.steps}
    status["source"].status = StepStatus.RUNNING
    assert runner._next_wave({"source": None}) == 2
    status["source"].status = StepStatus.SUCCEEDED
    status["left"].status = status["right"].status = StepStatus.RUNNING
    assert runner._next_wave({"left": None, "right": None}) == 1
    runner._executing.discard("join")  # the cache has it: no kernel
    assert runner._next_wave({"left": None, "right": None}) == 0
