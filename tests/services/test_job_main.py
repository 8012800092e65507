"""The pod entry point in-process: restore a snapshot from a store, run, write results back to the store.

Two tests start a real kernel (a tagged pipeline, a plain notebook through papermill); the failure paths
stop before a kernel would start or replace papermill.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_ext.pipeline.build import build_pipeline
from jupyter_ext.records.remote import get_run_file, get_run_record
from jupyter_ext.services.job_main import main, parse_parameter_args
from jupyter_ext.snapshot import SnapshotStore, take_snapshot
from jupyter_ext.targets.k8s.notebook_job import NotebookRun, PodOptions, make_notebook_job


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in (
        "MLFLOW_TRACKING_URI",
        "CELLPIPE_STORE",
        "CELLPIPE_RUN_ID",
        "CELLPIPE_WORK_DIR",
        "CELLPIPE_HOME",
    ):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def store_url(env: Path) -> str:
    return f"file://{env / 'store'}"


def outputs(notebook: Any) -> str:
    return "".join(o.get("text", "") for c in notebook["cells"] for o in c.get("outputs", []))


@pytest.mark.slow
def test_tagged_notebook_runs_its_steps_from_the_jobs_args(
    env: Path, store_url: str, write_notebook: Any, capsys: pytest.CaptureFixture
) -> None:
    project = env / "project"
    project.mkdir()
    (project / "numbers.txt").write_text("1 2 3\n")
    path = write_notebook(
        [
            (["parameters"], "factor = 2"),
            (["step:load"], "xs = [int(v) for v in open('numbers.txt').read().split()]"),
            (["step:scale"], "total = sum(xs) * factor\nprint('total', total)"),
            (["pipeline-metrics"], "total"),
        ],
        name="project/sum.ipynb",
    )
    snapshot = take_snapshot(path, store=store_url)
    (project / "numbers.txt").unlink()  # the pod must read the data from the store, not from here
    run = NotebookRun(build_pipeline(path), snapshot.id, store_url, "alice", {"factor": 10})
    job = make_notebook_job(run, "sum-20250101-030000-abcdef", PodOptions(image="x", namespace="ns"))
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]

    assert main([*args, "--workdir", str(env / "work")]) == 0

    store = SnapshotStore.open(store_url)
    record = get_run_record(store, "sum-20250101-030000-abcdef")
    assert record["status"] == "succeeded" and record["mode"] == "steps"
    assert record["duration_s"] == pytest.approx(record["finished"] - record["created"], abs=0.01)
    assert record["target"] == "job" and record["snapshot_id"] == snapshot.id
    assert record["parameters"] == {"factor": 10} and record["metrics"] == {"total": 60}
    assert record["notebook"].endswith("sum.ipynb")
    assert [s["status"] for s in record["steps"]] == ["succeeded", "succeeded"]
    assert record["files"] == [
        "runs/sum-20250101-030000-abcdef/steps/load.ipynb",
        "runs/sum-20250101-030000-abcdef/steps/scale.ipynb",
    ]
    scaled = nbformat.reads(
        get_run_file(store, "sum-20250101-030000-abcdef", "steps/scale.ipynb").decode(), 4
    )
    assert "total 60" in outputs(scaled)
    out = capsys.readouterr().out
    assert "step scale: succeeded" in out and "results in file://" in out


@pytest.mark.slow
def test_untagged_notebook_runs_whole_with_papermill(env: Path, store_url: str, write_notebook: Any) -> None:
    path = write_notebook(
        [
            (["parameters"], "alpha = 0.5\nlabel = 'run'"),
            ([], "print(label, alpha * 2)"),
        ],
    )
    snapshot = take_snapshot(path, store=store_url)
    argv = ["--store", store_url, "--snapshot", snapshot.id[:12], "-p", "alpha=2", "-p", 'label="hi"']
    assert main([*argv, "--run-id", "report-1", "--workdir", str(env / "work")]) == 0

    store = SnapshotStore.open(store_url)
    record = get_run_record(store, "report-1")
    assert record["status"] == "succeeded" and record["mode"] == "notebook"
    assert record["parameters"] == {"alpha": 2.0, "label": "hi"}  # int 2 accepted for a float parameter
    assert record["files"] == ["runs/report-1/notebook.ipynb"]
    executed = nbformat.reads(get_run_file(store, "report-1", "notebook.ipynb").decode(), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "alpha = 2.0" in injected[0].source and 'label = "hi"' in injected[0].source
    assert "hi 4.0" in outputs(executed)


def test_papermill_failure_is_recorded_and_exits_non_zero(
    env: Path,
    store_url: str,
    write_notebook: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    def fail(notebook: Any, output: str, **kwargs: Any) -> None:
        Path(output).write_text(nbformat.writes(notebook))  # papermill writes the failed notebook too
        raise PapermillExecutionError(2, 3, "1/0", "ZeroDivisionError", "division by zero", [])

    monkeypatch.setattr(papermill, "execute_notebook", fail)
    path = write_notebook([([], "1 / 0")])
    snapshot = take_snapshot(path, store=store_url)
    code = main(["--store", store_url, "--snapshot", snapshot.id, "--run-id", "broken-1",
                 "--workdir", str(env / "work")])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"cellpipe-pod: error: run broken-1 failed: ZeroDivisionError: division by zero; results in "
        f"{store_url}/runs/broken-1/"
    )
    record = get_run_record(SnapshotStore.open(store_url), "broken-1")
    assert record["status"] == "failed" and record["error"]["ename"] == "ZeroDivisionError"
    assert record["files"] == ["runs/broken-1/notebook.ipynb"]


def test_missing_snapshot_is_one_line_and_recorded(
    env: Path, store_url: str, capsys: pytest.CaptureFixture
) -> None:
    code = main(
        ["--store", store_url, "--snapshot", "abcdef", "--run-id", "lost-1", "--workdir", str(env / "w")]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err == (
        f"cellpipe-pod: error: no snapshot 'abcdef' in the store {store_url}. 'cellpipe snapshots list' "
        "shows the snapshots it holds.\n"
    )
    record = get_run_record(SnapshotStore.open(store_url), "lost-1")
    assert record["status"] == "failed" and "no snapshot 'abcdef'" in record["error"]["message"]


def test_bad_parameter_values(
    env: Path, store_url: str, write_notebook: Any, capsys: pytest.CaptureFixture
) -> None:
    path = write_notebook([(["parameters"], "epochs = 3"), ([], "print(epochs)")])
    snapshot = take_snapshot(path, store=store_url)
    base = ["--store", store_url, "--snapshot", snapshot.id, "--workdir", str(env / "w1")]
    assert main([*base, "--run-id", "p-1", "-p", "epochs=three"]) == 1
    assert capsys.readouterr().err == (
        "cellpipe-pod: error: parameter 'epochs' (-p): value 'three' is not JSON. Strings need JSON quotes, "
        'e.g. -p label="\\"run\\""\n'
    )
    base[-1] = str(env / "w2")
    assert main([*base, "--run-id", "p-2", "-p", 'epochs="three"']) == 1
    assert capsys.readouterr().err == (
        "cellpipe-pod: error: parameter 'epochs' (override): 'three' is not a valid int: expected a whole number. "
        "E.g. -p epochs=3\n"
    )


def test_run_id_from_the_environment_and_checked(
    env: Path, store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("CELLPIPE_RUN_ID", "bad/../id")
    assert main(["--store", store_url, "--snapshot", "ab"]) == 1
    assert capsys.readouterr().err == (
        "cellpipe-pod: error: --run-id: invalid run id 'bad/../id'. Use up to 63 letters, digits, '-', '_' or "
        "'.', starting and ending with a letter or digit\n"
    )


def test_parameter_args_are_json() -> None:
    assert parse_parameter_args(["a=1", "b=[1, 2]", 'c="x=y"', "d=null", "e=true"]) == {
        "a": 1, "b": [1, 2], "c": "x=y", "d": None, "e": True,
    }  # fmt: skip
