"""MLflow tracking off the critical path: a detached worker logs a finished run from its durable record,
after the command that ran it has returned, and no record is left pending when a process ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from jupyter_ext.records.models import RunStatus, TrackingStatus
from jupyter_ext.services.runs import RunRequest, RunService
from jupyter_ext.tracking import background

pytestmark = pytest.mark.slow

CELLS = [(["parameters"], "n = 2"), (["step:make"], "values = list(range(n))"),
         (["step:total"], "total = sum(values)"), (["pipeline-metrics"], "total")]  # fmt: skip


def mlflow_runs(record):
    """The MLflow runs tagged with the cellpipe run id: (parents, children)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=record.tracking.tracking_uri)
    runs = client.search_runs(
        [record.tracking.experiment_id], filter_string=f"tags.`cellpipe.run_id` = '{record.id}'"
    )
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parents, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_tracking_completes_after_the_cli_has_returned(write_notebook, data_dir):
    notebook = write_notebook(CELLS)
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_ext.cli.main", "run", str(notebook), "-p", "n=5", "--json"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["status"] == "succeeded"
    assert printed["tracking"]["status"] == "pending"  # the command did not wait for MLflow
    assert "mlflow: logging in the background" in done.stderr
    record = RunService(data_dir).wait_for_tracking(printed["id"])
    assert record.tracking.status is TrackingStatus.OK, record.tracking
    (parent,), children = mlflow_runs(record)
    assert parent.info.run_id == record.tracking.mlflow_run_id and parent.info.status == "FINISHED"
    assert parent.data.params["n"] == "5" and parent.data.metrics["total"] == 10.0
    assert sorted(c.data.tags["cellpipe.step"] for c in children) == ["make", "total"]
    assert record.timings["tracking_background_s"] > 0 and "tracking_s" not in record.timings


def test_a_run_whose_tracking_never_started_is_resumed_by_the_next_service(
    write_notebook, data_dir, monkeypatch
):
    notebook = write_notebook(CELLS)
    # the process ends after the final save, before it could start the tracking worker
    monkeypatch.setattr(RunService, "_start_tracking", lambda self, record: None)
    record = RunService(data_dir).run(RunRequest(notebook=notebook))
    assert record.status is RunStatus.SUCCEEDED and record.tracking.status is TrackingStatus.PENDING
    time.sleep(0.5)
    assert RunService(data_dir, background_tracking=False).get(record.id).tracking.status == "pending"
    monkeypatch.undo()
    service = RunService(data_dir)  # opening the store resumes it
    tracked = service.wait_for_tracking(record.id)
    assert tracked.tracking.status is TrackingStatus.OK
    assert len(mlflow_runs(tracked)[0]) == 1


def test_a_crashed_run_is_still_tracked_as_failed(write_notebook, data_dir):
    notebook = write_notebook([(["step:wait"], "import time\ntime.sleep(120)\nx = 1")])
    script = (
        "import sys; from pathlib import Path\n"
        "from jupyter_ext.services.runs import RunRequest, RunService\n"
        "RunService(Path(sys.argv[1])).run(RunRequest(notebook=Path(sys.argv[2])))\n"
    )
    runner = subprocess.Popen([sys.executable, "-c", script, str(data_dir), str(notebook)],
                              env={**os.environ, "PYTHONPATH": os.getcwd()})  # fmt: skip
    try:
        service = None
        for _ in range(600):
            time.sleep(0.2)
            if (data_dir / "cellpipe.db").exists():
                service = service or RunService(data_dir, background_tracking=False)
                runs, _ = service.list()
                if runs and runs[0].steps[0].status.value == "running":
                    break
        else:
            pytest.fail("the run did not start")
    finally:
        runner.kill()  # as a closed terminal or an OOM kill would: no finalize, no tracking worker
        runner.wait()
    service = RunService(data_dir)  # marks it crashed, and resumes its tracking
    record = service.wait_for_tracking(runs[0].id)
    assert record.status is RunStatus.CRASHED and record.tracking.status is TrackingStatus.OK
    (parent,), _ = mlflow_runs(record)
    assert parent.info.status == "FAILED"


def test_a_second_worker_neither_duplicates_nor_resurrects(write_notebook, data_dir, monkeypatch):
    monkeypatch.setattr(RunService, "_start_tracking", lambda self, record: None)
    service = RunService(data_dir, background_tracking=False)
    service.background_tracking = True  # finalize as the CLI does, without starting a worker
    record = service.run(RunRequest(notebook=write_notebook(CELLS)))
    first = background.track_pending(data_dir, record.id)
    assert first is not None and first.status is TrackingStatus.OK
    assert background.track_pending(data_dir, record.id) is None  # already done: nothing logged twice
    assert len(mlflow_runs(service.get(record.id))[0]) == 1
    # a worker that starts after the run was deleted writes nothing back
    other = service.run(RunRequest(notebook=write_notebook(CELLS)))
    service.delete(other.id)
    assert background.track_pending(data_dir, other.id) is None
    assert [r.id for r in service.list()[0]] == [record.id]
