"""The run lifecycle with real kernels: one record from request to final state, hooks, tracking failures
that do not fail the run, background runs with a queue, cancel, delete, rerun."""

import asyncio
import subprocess
import threading
from pathlib import Path

import pytest

from jupyter_ext.errors import CellpipeError
from jupyter_ext.records.models import RunStatus, StepStatus, TrackingStatus
from jupyter_ext.services.runs import RunRequest, RunService
from jupyter_ext.snapshot import SnapshotStore, restore
from jupyter_ext.tracking import background
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

CELLS = [(["parameters"], "n = 2"), (["step:make"], "values = list(range(n))"),
         (["step:total"], "total = sum(values)"), (["pipeline-metrics"], "total")]  # fmt: skip


class Hooks:
    def __init__(self):
        self.calls = []

    def before_start(self, record):
        self.calls.append(("before_start", record.status.value))

    def on_failure(self, record):
        self.calls.append(("on_failure", record.status.value))

    def on_complete(self, record):
        self.calls.append(("on_complete", record.status.value, record.tracking.status.value))


def test_tracking_failure_keeps_the_runs_status_and_says_why(write_notebook, data_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")  # MLflow cannot create a database below a file: a real, immediate failure
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/mlflow.db")
    hooks = Hooks()
    service = RunService(data_dir, hooks=[hooks])
    record = service.run(RunRequest(notebook=write_notebook(CELLS), parameters=["n=4"]))
    assert record.status is RunStatus.SUCCEEDED and record.metrics == {"total": 6.0}
    assert record.tracking.status in (TrackingStatus.PENDING, TrackingStatus.FAILED)  # the worker's pace
    assert hooks.calls == [
        ("before_start", "running"),
        ("on_complete", "succeeded", record.tracking.status.value),
    ]
    stored = service.wait_for_tracking(record.id)
    assert stored.status is RunStatus.SUCCEEDED and stored.metrics == record.metrics
    assert stored.tracking.status is TrackingStatus.FAILED and "not-a-directory" in stored.tracking.error
    assert [s.name for s in stored.steps] == ["make", "total"]
    # the worker goes on serving: the next run, to a working store, is tracked by the same process
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    worker = background.worker_pid(data_dir)
    good = service.wait_for_tracking(service.run(RunRequest(notebook=write_notebook(CELLS))).id)
    assert good.tracking.status is TrackingStatus.OK and good.tracking.tracking_uri.startswith("sqlite:")
    assert worker is not None and background.worker_pid(data_dir) == worker


def test_inline_tracking_failure_is_in_the_final_record(write_notebook, data_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/mlflow.db")
    hooks = Hooks()
    service = RunService(data_dir, hooks=[hooks], background_tracking=False)  # as a Job pod runs
    record = service.run(RunRequest(notebook=write_notebook(CELLS), parameters=["n=4"]))
    assert record.status is RunStatus.SUCCEEDED
    assert record.tracking.status is TrackingStatus.FAILED and record.tracking.error
    assert hooks.calls == [("before_start", "running"), ("on_complete", "succeeded", "failed")]
    assert service.get(record.id) == record and record.timings["tracking_s"] >= 0


def test_a_failed_run_is_tracked_and_deleted(write_notebook, data_dir):
    hooks = Hooks()
    service = RunService(data_dir, hooks=[hooks])
    notebook = write_notebook([(["step:a"], "x = 1"), (["step:b"], "y = x / 0"), (["step:c"], "z = y")])
    record = service.run(RunRequest(notebook=notebook))
    assert record.status is RunStatus.FAILED
    assert [s.status for s in record.steps] == [StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.NOT_RUN]
    record = service.wait_for_tracking(record.id)
    assert record.tracking.status is TrackingStatus.OK and record.tracking.mlflow_run_id
    assert hooks.calls[-1] == ("on_failure", "failed")
    service.delete(record.id)
    assert service.list()[1] == 0 and not service.store.run_dir(record.id).exists()


def test_user_mistakes_fail_before_a_record_exists(write_notebook, data_dir):
    service = RunService(data_dir)
    with pytest.raises(CellpipeError, match="unknown parameter 'm'"):
        service.run(RunRequest(notebook=write_notebook(CELLS), parameters={"m": 1}))
    with pytest.raises(CellpipeError, match="unknown target 'mars'"):
        service.run(RunRequest(notebook=write_notebook(CELLS), target="mars"))
    assert service.list() == ([], 0)


def test_a_servers_runs_take_data_from_inside_its_root_only(write_notebook, data_dir, tmp_path):
    """The server's root can sit below a repository's top: the rest of the repository stays out of reach."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # the project root is tmp_path
    (tmp_path / "private.csv").write_text("a\n1\n")
    (tmp_path / "served").mkdir()
    notebook = write_notebook([(["step:read", "data:../private.csv"], "x = 1")], name="served/nb.ipynb")
    service = RunService(data_dir, root=tmp_path / "served")
    with pytest.raises(CellpipeError, match="outside the server's root directory"):
        service.prepare(RunRequest(notebook=notebook, track=False))
    assert service.list() == ([], 0)


def test_background_runs_queue_cancel_and_rerun(write_notebook, data_dir):
    slow = write_notebook([(["step:wait"], "import time\ntime.sleep(60)\nx = 1")], name="slow.ipynb")
    quick = write_notebook(CELLS, name="quick.ipynb")

    async def scenario():
        service = RunService(data_dir, max_concurrent_runs=1)
        first = await service.submit(RunRequest(notebook=slow, track=False, source="jupyterlab"))
        second = await service.submit(RunRequest(notebook=quick, track=False))
        assert (first.status, second.status) == (RunStatus.QUEUED, RunStatus.QUEUED)
        for _ in range(300):  # the first takes the only slot; the second waits in the queue
            if service.get(first.id).steps[0].status is StepStatus.RUNNING:
                break
            await asyncio.sleep(0.1)
        assert service.get(second.id).status is RunStatus.QUEUED
        with pytest.raises(CellpipeError, match="is running"):
            service.delete(first.id)
        cancelled = await service.cancel(first.id)
        assert cancelled.status is RunStatus.CANCELLED and cancelled.steps[0].status is StepStatus.CANCELLED
        for _ in range(600):
            if service.get(second.id).is_final:
                break
            await asyncio.sleep(0.1)
        done = service.get(second.id)
        assert done.status is RunStatus.SUCCEEDED and done.metrics == {"total": 1.0}
        again = await service.rerun(second.id)
        assert again.rerun_of == second.id and again.snapshot_id == second.snapshot_id
        for _ in range(600):
            if service.get(again.id).is_final:
                break
            await asyncio.sleep(0.1)
        rerun = service.get(again.id)
        assert rerun.status is RunStatus.SUCCEEDED and [s.status for s in rerun.steps] == ["cached", "cached"]
        assert rerun.notebook == str(Path(quick).resolve())
        records, total = service.list()
        assert total == 3 and [r.id for r in records] == [again.id, second.id, first.id]  # newest first
        assert service.step_notebook(second.id, "total").is_file()
        await service.shutdown()

    asyncio.run(scenario())


async def owner_done(service, run_id):
    """Wait until the owning service is done with the run: its record turns final just before its hooks run."""
    for _ in range(200):
        if not service.is_active_here(run_id):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the service still runs {run_id}")


def test_a_run_is_cancelled_from_another_service_on_the_same_store(write_notebook, data_dir):
    """The owner polls the store for requests: a second service (as another process would) asks, and the
    owner cancels the run the normal way (the running step cancelled, the next not run, hooks, record says who asked)."""
    slow = write_notebook([(["step:wait"], "import time\ntime.sleep(60)\nx = 1"), (["step:after"], "y = x")])
    hooks = Hooks()

    async def scenario():
        owner = RunService(data_dir, hooks=[hooks], cancel_poll_s=0.2)
        other = RunService(data_dir)
        queued = await owner.submit(RunRequest(notebook=slow, track=False))
        for _ in range(300):
            if owner.get(queued.id).steps[0].status is StepStatus.RUNNING:
                break
            await asyncio.sleep(0.1)
        assert not other.is_active_here(queued.id)
        record = await other.cancel(queued.id, by="me (test)", wait_s=30)
        assert record.status is RunStatus.CANCELLED and record.cancel_requested["by"] == "me (test)"
        assert [s.status for s in record.steps] == [
            StepStatus.CANCELLED,
            StepStatus.NOT_RUN,
        ]  # "after" never ran
        await owner_done(owner, queued.id)
        assert hooks.calls[-1] == ("on_failure", "cancelled")
        again = await other.cancel(queued.id, wait_s=0)  # a final run: answered as it is
        assert again.status is RunStatus.CANCELLED and again.cancel_requested == record.cancel_requested
        await owner.shutdown()

    asyncio.run(scenario())


def test_a_queued_run_is_cancelled_from_another_service_before_it_starts(write_notebook, data_dir):
    slow = write_notebook([(["step:wait"], "import time\ntime.sleep(60)")], name="slow.ipynb")
    quick = write_notebook(CELLS, name="quick.ipynb")
    hooks = Hooks()

    async def scenario():
        owner = RunService(data_dir, hooks=[hooks], max_concurrent_runs=1, cancel_poll_s=0.2)
        first = await owner.submit(RunRequest(notebook=slow, track=False))
        second = await owner.submit(RunRequest(notebook=quick, track=False))
        record = await RunService(data_dir).cancel(second.id, by="me (test)", wait_s=30)
        assert record.status is RunStatus.CANCELLED and record.started is None
        assert [s.status for s in record.steps] == [StepStatus.NOT_RUN, StepStatus.NOT_RUN]
        await owner_done(owner, second.id)
        assert record.cancel_requested["by"] == "me (test)" and ("on_failure", "cancelled") in hooks.calls
        assert owner.get(first.id).status in (RunStatus.QUEUED, RunStatus.RUNNING)  # the other goes on
        await owner.shutdown()

    asyncio.run(scenario())


def test_a_cancel_request_made_before_an_asleep_owner_looks_only_waits_so_long(write_notebook, data_dir):
    slow = write_notebook([(["step:wait"], "import time\ntime.sleep(60)")])

    async def scenario():
        owner = RunService(data_dir, cancel_poll_s=3600)  # an owner that does not look in time
        queued = await owner.submit(RunRequest(notebook=slow, track=False))
        record = await RunService(data_dir).cancel(queued.id, by="me (test)", wait_s=0.5)
        assert not record.is_final and record.cancel_requested["by"] == "me (test)"
        stopped = await owner.cancel(queued.id)  # the owner itself: cancelled at once, the first request kept
        assert stopped.status is RunStatus.CANCELLED and stopped.cancel_requested["by"] == "me (test)"
        await owner.shutdown()

    asyncio.run(scenario())


def test_cancel_of_a_run_whose_process_is_gone_answers_crashed(data_dir):
    """No process would ever act on a request: the answer is the crashed record, at once, and none is stored."""
    from jupyter_ext.records.models import RunRecord, StepRecord
    from jupyter_ext.records.owner import current_owner, process_start

    child = subprocess.Popen(["sleep", "30"])
    owner = {**current_owner(), "pid": child.pid, "pid_start": process_start(child.pid)}
    child.kill()
    child.wait()
    service = RunService(data_dir)
    service.store.save_run(RunRecord(id="r-gone", notebook="/p/a.ipynb", status=RunStatus.RUNNING, owner=owner,
                                     steps=[StepRecord("a", StepStatus.RUNNING)]))  # fmt: skip
    record = asyncio.run(service.cancel("r-gone", by="me (test)", wait_s=30))
    assert record.status is RunStatus.CRASHED and record.steps[0].status is StepStatus.CRASHED
    assert record.cancel_requested is None and service.store.cancel_requests(["r-gone"]) == {}


def test_a_local_run_starts_before_its_snapshot_is_durable_and_ends_after(write_notebook, data_dir, tmp_path):
    """The snapshot's disk part runs while the steps do; the run's end waits for it. A step that rewrites
    the data the notebook declares changes its working copy, not the snapshot taken before it ran."""
    data = tmp_path / "data.txt"
    data.write_text("as it was\n")
    notebook = write_notebook(
        [(["step:edit"], "open('data.txt', 'w').write('changed by the run')"), (["step:after"], "done = 1")],
        {"cellpipe": {"data": ["data.txt"]}},
    )
    service = RunService(data_dir)
    prepared = service.prepare(RunRequest(notebook=notebook, track=False))
    assert prepared.snapshot is not None and prepared.snapshot.completion is not None  # in the background
    record = service.run_prepared(service.create_record(prepared), prepared)
    assert record.status is RunStatus.SUCCEEDED and data.read_text() == "changed by the run"
    assert prepared.snapshot.is_durable and record.timings["snapshot_wait_s"] >= 0
    store = SnapshotStore.open(service.snapshot_store_url())
    assert store.ids() == [record.snapshot_id] and store.verify(record.snapshot_id).ok
    restored = restore(store, record.snapshot_id, tmp_path / "restored")
    assert (restored.directory / "data.txt").read_text() == "as it was\n"


def test_a_snapshot_that_cannot_be_stored_fails_the_run_keeping_its_results(
    write_notebook, data_dir, tmp_path
):
    """A real failure of the snapshot's disk part (the store's snapshots/ is a file: no manifest can be
    written) after the run started: the record says so and names no snapshot, the steps' results stay,
    and the MLflow run (created while the run executed, when the id was still expected) is corrected."""
    store_root = data_dir / "store"
    store_root.mkdir(parents=True)
    (store_root / "snapshots").write_text("not a directory")
    flag = tmp_path / "mlflow-run-exists"
    notebook = write_notebook(
        [
            (["step:make"], f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.05)"),
            (["step:total"], "total = 1"),
            (["pipeline-metrics"], "total"),
        ]
    )
    service = RunService(data_dir)
    prepared = service.prepare(RunRequest(notebook=notebook))
    record = service.create_record(prepared)
    finished = []
    running = threading.Thread(target=lambda: finished.append(service.run_prepared(record, prepared)))
    running.start()
    wait_until(
        lambda: getattr(service.store.tracking_of(record.id), "mlflow_run_id", None),
        timeout=120,
        what="the tracking worker to create the MLflow run while the run executes",
    )
    flag.touch()
    running.join(120)
    record = finished[0]
    assert record.status is RunStatus.FAILED and record.metrics == {"total": 1.0}
    assert [step.status for step in record.steps] == [StepStatus.SUCCEEDED, StepStatus.SUCCEEDED]
    assert record.snapshot_id is None
    assert record.error["field"] == "snapshot"
    assert "could not be stored: cannot write to the snapshot store" in record.error["message"]
    assert "the run's results are kept" in record.error["message"] and "\n" not in record.error["message"]
    not_stored = record.extra["snapshot_not_stored"]
    assert len(not_stored["id"]) == 64 and not_stored["reason"].startswith(
        "cannot write to the snapshot store"
    )
    with pytest.raises(CellpipeError, match="has no snapshot to run from"):
        service.rerun_request(record.id)
    from mlflow.tracking import MlflowClient

    tracked = service.wait_for_tracking(record.id)
    assert tracked.tracking.status is TrackingStatus.OK and tracked.snapshot_id is None
    tags = (
        MlflowClient(tracking_uri=tracked.tracking.tracking_uri)
        .get_run(tracked.tracking.mlflow_run_id)
        .data.tags
    )
    assert tags["cellpipe.snapshot_id"] == "" and tags["cellpipe.run_id"] == record.id
