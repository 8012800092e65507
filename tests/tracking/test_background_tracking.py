"""The warm MLflow tracking worker, with real MLflow (sqlite) and real processes: one worker per data
directory serves every run, the MLflow run exists (RUNNING) while the run executes and its id is in the
final record, nothing is lost or duplicated when a worker is killed, and an idle worker exits."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_ext.records.models import RunStatus, TrackingStatus
from jupyter_ext.services.runs import RunRequest, RunService
from jupyter_ext.tracking import background
from tests.support import waiting
from tests.support.mlflow_server import mlflow_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow

CELLS = [(["parameters"], "n = 2"), (["step:make"], "values = list(range(n))"),
         (["step:total"], "total = sum(values)"), (["pipeline-metrics"], "total")]  # fmt: skip
WAIT_LONG = {
    "CELLPIPE_TRACKING_WAIT_S": "300"
}  # a ready worker, busy on a loaded machine: the id must be there
RUNNER = (
    "import sys; from pathlib import Path\n"
    "from jupyter_ext.services.runs import RunRequest, RunService\n"
    "RunService(Path(sys.argv[1])).run(RunRequest(notebook=Path(sys.argv[2])))\n"
)


def mlflow_runs(record):
    """The active MLflow runs tagged with the cellpipe run id: (parents, children)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=record.tracking.tracking_uri)
    runs = client.search_runs(
        [record.tracking.experiment_id], filter_string=f"tags.`cellpipe.run_id` = '{record.id}'"
    )
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parents, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def served_by(data_dir) -> list[str]:
    """The 'serving' lines of the workers that served the directory (one per worker that took the lock)."""
    log = data_dir / background.WORKER_LOG
    return [line for line in log.read_text().splitlines() if "serving" in line] if log.exists() else []


wait_until = functools.partial(waiting.wait_until, timeout=120.0)  # a worker imports MLflow first (~2 s)


def test_the_final_record_has_the_mlflow_run_and_the_worker_finishes_it(write_notebook, data_dir):
    notebook = write_notebook(CELLS)
    background.ensure_worker(data_dir)  # warm, as the Jupyter server keeps it (or as a previous run left it)
    wait_until(lambda: background.worker_ready(data_dir), what="the worker to import MLflow")
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_ext.cli.main", "run", str(notebook), "-p", "n=5", "--json"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": os.getcwd(), **WAIT_LONG},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["status"] == "succeeded"
    assert printed["tracking"]["mlflow_run_id"]  # complete when final: the MLflow run is named in it
    assert printed["tracking"]["status"] in ("pending", "ok")  # the rest is logged off the result's path
    record = RunService(data_dir).wait_for_tracking(printed["id"])
    assert record.tracking.status is TrackingStatus.OK, record.tracking
    (parent,), children = mlflow_runs(record)
    assert parent.info.run_id == record.tracking.mlflow_run_id == printed["tracking"]["mlflow_run_id"]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["n"] == "5" and parent.data.metrics["total"] == 10.0
    assert parent.data.tags["cellpipe.notebook"] == str(notebook)
    assert sorted(c.data.tags["cellpipe.step"] for c in children) == ["make", "total"]
    # MLflow shows the run's and each step's own wall time, however late the worker logged them
    assert abs(parent.info.end_time - parent.info.start_time - record.duration_s * 1000) <= 1
    for child in children:
        step = record.step(child.data.tags["cellpipe.step"])
        assert abs(child.info.end_time - child.info.start_time - step.duration_s * 1000) <= 1
    assert record.timings["tracking_background_s"] > 0 and "tracking_s" not in record.timings
    assert "tracking_wait_s" in record.timings  # how long finalize waited for the worker is on record


def test_a_long_run_is_running_in_mlflow_and_survives_a_killed_worker(write_notebook, data_dir, tmp_path):
    """During the run: the MLflow run exists (RUNNING), the record already names it, and a finished step is
    logged. The worker is killed mid-run; the run's finalize starts a new one, which finishes the same MLflow
    run (the step logged by the killed worker replaced, not doubled)."""
    flag = tmp_path / "go"
    notebook = write_notebook([
        (["step:first"], "w = 0"),
        (["step:wait"], f"import os, time\nwhile not os.path.exists({str(flag)!r}):\n    time.sleep(0.05)\nx = 1"),
        (["step:after"], "y = x + 1"),
    ])  # fmt: skip
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(data_dir), str(notebook)],
                              env={**os.environ, "PYTHONPATH": os.getcwd()})  # fmt: skip
    try:
        service = RunService(data_dir, background_tracking=False)  # a reader; starts no worker
        wait_until(lambda: (data_dir / "cellpipe.db").exists() and service.list()[1], what="the record")
        run_id = service.list()[0][0].id
        record = wait_until(
            lambda: (r := service.get(run_id)).tracking.mlflow_run_id and r, what="the MLflow run"
        )
        assert record.status is RunStatus.RUNNING and record.tracking.status is TrackingStatus.PENDING
        (parent,), _ = mlflow_runs(record)
        assert parent.info.run_id == record.tracking.mlflow_run_id and parent.info.status == "RUNNING"
        (first,) = wait_until(lambda: mlflow_runs(record)[1], what="the finished step in MLflow")
        assert (
            first.data.tags["cellpipe.step"] == "first" and first.data.tags["cellpipe.status"] == "succeeded"
        )
        first_worker = background.worker_pid(data_dir)
        os.kill(first_worker, signal.SIGKILL)  # as an OOM kill would
        wait_until(lambda: background.worker_pid(data_dir) is None, what="the lock to be free")
        flag.write_text("")
        assert runner.wait(timeout=300) == 0
    finally:
        flag.write_text("")
        runner.kill()
        runner.wait()
    final = RunService(data_dir, background_tracking=False).wait_for_tracking(run_id)
    assert final.status is RunStatus.SUCCEEDED and final.tracking.status is TrackingStatus.OK, final.tracking
    assert final.tracking.mlflow_run_id == record.tracking.mlflow_run_id  # the same MLflow run, finished
    (parent,), children = mlflow_runs(final)  # one MLflow run per cellpipe run
    assert parent.info.status == "FINISHED"
    assert sorted(c.data.tags["cellpipe.step"] for c in children) == ["after", "first", "wait"]
    assert len(served_by(data_dir)) == 2 and background.worker_pid(data_dir) != first_worker


def test_runs_in_quick_succession_share_one_worker(write_notebook, data_dir):
    notebook = write_notebook(CELLS)
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "CELLPIPE_TRACKING_IDLE_S": "120", **WAIT_LONG}
    commands = [
        subprocess.Popen([sys.executable, "-m", "jupyter_ext.cli.main", "run", str(notebook), "-p", f"n={i}",
                          "--json", "--no-cache"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(5)
    ]  # fmt: skip
    printed = []
    for command in commands:
        out, err = command.communicate(timeout=600)
        assert command.returncode == 0, err
        printed.append(json.loads(out))
    service = RunService(data_dir, background_tracking=False)
    records = [service.wait_for_tracking(p["id"]) for p in printed]
    assert all(r.tracking.status is TrackingStatus.OK for r in records), [r.tracking for r in records]
    # a cold worker: a run that ended before MLflow was imported went final without the id (not waited for)
    assert all(
        p["tracking"]["mlflow_run_id"] in (None, r.tracking.mlflow_run_id)
        for p, r in zip(printed, records, strict=True)
    )
    assert all(p["timings"]["tracking_wait_s"] == 0 for p in printed if not p["tracking"]["mlflow_run_id"])
    assert len({r.tracking.mlflow_run_id for r in records}) == 5
    assert all(len(mlflow_runs(r)[0]) == 1 for r in records)
    assert len(served_by(data_dir)) == 1  # one process imported MLflow for all five
    assert background.worker_pid(data_dir) is not None


def test_an_idle_worker_exits(write_notebook, data_dir, monkeypatch):
    monkeypatch.setenv("CELLPIPE_TRACKING_IDLE_S", "1")
    service = RunService(data_dir)
    record = service.run(RunRequest(notebook=write_notebook(CELLS)))
    pid = background.worker_pid(data_dir)
    assert pid is not None
    assert service.wait_for_tracking(record.id).tracking.status is TrackingStatus.OK
    wait_until(lambda: background.worker_pid(data_dir) is None, what="the idle worker to exit")
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or "Z" in _state(pid), what="the process to end")


def test_a_worker_kept_for_a_server_stays_while_it_lives_and_leaves_with_it(data_dir):
    """What a Jupyter server does (keep_for its own owner): the worker ignores its idle time while the server
    lives, and exits as soon as the server is gone and nothing is pending, whatever its idle time (a stopped
    or culled server leaves no process behind). A sleeping child process plays the server."""
    import socket

    from jupyter_ext.records.owner import boot_id, process_start

    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    owner = {"host": socket.gethostname(), "pid": server.pid, "pid_start": process_start(server.pid),
             "boot_id": boot_id()}  # fmt: skip
    try:
        pid = background.ensure_worker(data_dir, idle_s=0.5, keep_for=owner)
        wait_until(lambda: background.worker_pid(data_dir) == pid, what="the worker to take its lock")
        time.sleep(3)  # six idle times
        assert background.worker_pid(data_dir) == pid, "a worker kept for a living server left"
        background.stop_worker(data_dir)
        pid = background.ensure_worker(data_dir, idle_s=3600, keep_for=owner)
        wait_until(lambda: background.worker_pid(data_dir) == pid, what="the second worker to take its lock")
    finally:
        server.kill()
        server.wait()
    wait_until(lambda: background.worker_pid(data_dir) is None, timeout=60,
               what="the worker to leave with its server (its idle time is an hour)")  # fmt: skip


YIELD_PROBE = """
import json, os, sys, time
from jupyter_ext.tracking.background import yielding_to_runs
def group():
    return (open("/proc/self/autogroup").read().split() or ["none"])[-1]  # empty: in no autogroup
seen = {"before": group()}
with yielding_to_runs(for_at_most=float(sys.argv[1])):
    seen["during"] = group()
    time.sleep(float(sys.argv[2]))
    seen["late"] = group()
seen["after"] = group()
print(json.dumps(seen))
"""


def autogroup_nice(pid: int) -> int | None:
    """Process ``pid``'s autogroup nice; None for a kernel without autogroups, or a process in none (one that
    shares the session of pid 1, which never called setsid: its /proc file is empty, as under some CI runners)."""
    try:
        fields = Path(f"/proc/{pid}/autogroup").read_text().split()
    except OSError:  # a kernel without autogroups
        return None
    return int(fields[-1]) if fields else None


def autogroups_on() -> bool:
    """Whether a new session gets its own scheduling group: what the worker relies on, whatever group the
    tests themselves run in."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def test_a_process_in_no_autogroup_reads_as_none():
    """pid 1 never calls setsid: its autogroup file is empty on kernels with autogroups, absent without."""
    assert autogroup_nice(1) is None


@pytest.mark.skipif(not autogroups_on(), reason="the kernel has no autogroup scheduling")
@pytest.mark.parametrize(
    "own_session, for_at_most, sleep, seen",
    [
        (True, 120, 0, {"during": "19", "late": "19", "after": "0"}),  # yields until it has started
        (True, 1, 3, {"during": "19", "late": "0", "after": "0"}),  # and for a bounded time
        (False, 120, 0, {}),  # a worker started by hand in a terminal leaves the terminal's group alone
    ],
)
def test_a_starting_worker_yields_the_cpu_to_runs_for_a_bounded_time(own_session, for_at_most, sleep, seen):
    """A starting worker's session (its own scheduling group) is at autogroup nice 19 until it has started,
    for ``for_at_most`` seconds at most, then at 0, as any session."""
    done = subprocess.run([sys.executable, "-c", YIELD_PROBE, str(for_at_most), str(sleep)], timeout=120,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()},
                          start_new_session=own_session)  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    before = found.pop("before")
    assert found == (seen or {"during": before, "late": before, "after": before})


def test_a_cold_worker_starts_yielding_to_runs_and_serves_at_nice_10(data_dir):
    pid = background.ensure_worker(data_dir)
    wait_until(lambda: background.worker_pid(data_dir) == pid, what="the worker to take its lock")
    starting = autogroup_nice(pid)  # MLflow takes seconds to import: it is still starting
    wait_until(lambda: background.worker_ready(data_dir), what="the worker to import MLflow")
    try:
        if autogroups_on():  # the worker's own session is a group of its own
            assert starting == 19 and autogroup_nice(pid) == 0
        assert os.sched_getscheduler(pid) == os.SCHED_OTHER and os.getpriority(os.PRIO_PROCESS, pid) == 10
    finally:
        background.stop_worker(data_dir)


def test_the_worker_does_not_import_from_the_callers_working_directory(
    write_notebook, data_dir, tmp_path, monkeypatch
):
    """A project folder with its own mlflow.py (or a jupyter_ext/) is where `cellpipe run` starts the worker:
    the worker imports the real MLflow and the caller's cellpipe, not the folder's."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "mlflow.py").write_text("raise ImportError('the project folder was on the path')\n")
    monkeypatch.chdir(project)
    service = RunService(data_dir)
    record = service.wait_for_tracking(service.run(RunRequest(notebook=write_notebook(CELLS))).id)
    assert record.tracking.status is TrackingStatus.OK, record.tracking


def _state(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_pending_tracking_without_a_worker_is_resumed_by_the_next_service(
    write_notebook, data_dir, monkeypatch
):
    notebook = write_notebook(CELLS)
    # the process ends before it could start a worker (and does not wait for one)
    monkeypatch.setattr(RunService, "ensure_tracking_worker", lambda self, **kw: None)
    record = RunService(data_dir, tracking_wait_s=0).run(RunRequest(notebook=notebook))
    assert record.status is RunStatus.SUCCEEDED and record.tracking.status is TrackingStatus.PENDING
    assert not record.tracking.mlflow_run_id and record.timings["tracking_wait_s"] == 0
    monkeypatch.undo()
    assert RunService(data_dir, background_tracking=False).get(record.id).tracking.status == "pending"
    tracked = RunService(data_dir).wait_for_tracking(record.id)  # opening the store starts a worker
    assert tracked.tracking.status is TrackingStatus.OK and tracked.tracking.mlflow_run_id
    assert len(mlflow_runs(tracked)[0]) == 1


def test_a_crashed_run_is_tracked_as_failed(write_notebook, data_dir):
    notebook = write_notebook([(["step:wait"], "import time\ntime.sleep(120)\nx = 1")])
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(data_dir), str(notebook)],
                              env={**os.environ, "PYTHONPATH": os.getcwd()})  # fmt: skip
    try:
        service = RunService(data_dir, background_tracking=False)
        wait_until(lambda: (data_dir / "cellpipe.db").exists() and service.list()[1], what="the record")
        wait_until(lambda: service.list()[0][0].steps[0].status.value == "running", what="the step")
        run_id = service.list()[0][0].id
    finally:
        runner.kill()  # as a closed terminal or an OOM kill would: no finalize
        runner.wait()
    record = RunService(data_dir).wait_for_tracking(run_id)  # the worker (or this read) marks it crashed
    assert record.status is RunStatus.CRASHED and record.tracking.status is TrackingStatus.OK
    (parent,), _ = mlflow_runs(record)
    assert parent.info.status == "FAILED"


def test_a_second_attempt_neither_duplicates_nor_resurrects(write_notebook, data_dir, monkeypatch):
    monkeypatch.setattr(RunService, "ensure_tracking_worker", lambda self, **kw: None)
    service = RunService(data_dir, tracking_wait_s=0)
    record = service.run(RunRequest(notebook=write_notebook(CELLS)))
    worker = background.Worker(data_dir)  # in this process: the worker's body, step by step
    assert worker.serve_once()  # final and pending: created and finished at once
    assert service.get(record.id).tracking.status is TrackingStatus.OK
    assert not worker.serve_once()  # already done: nothing logged twice
    again = background.Worker(data_dir)
    again.tracker.finish(
        service.get(record.id),
        json.loads((service.store.run_dir(record.id) / background.JOB_FILE).read_text()),
        service.get(record.id).tracking,
    )
    (parent,), children = mlflow_runs(service.get(record.id))  # a repeated finish replaced the step runs
    assert parent.info.run_id == service.get(record.id).tracking.mlflow_run_id and len(children) == 2
    other = service.run(RunRequest(notebook=write_notebook(CELLS)))
    service.delete(other.id)  # a worker that looks after the run was deleted writes nothing back
    assert not worker.serve_once()
    assert [r.id for r in service.list()[0]] == [record.id]


def test_credentials_in_the_tracking_uri_are_not_written_into_the_record(
    write_notebook, data_dir, monkeypatch
):
    """An unreachable server (nothing listens on loopback port 9): tracking fails with the reason, the run keeps
    its status, and the password written into the URI appears nowhere in the record."""
    from jupyter_ext.tracking.mlflow import shown_uri

    assert shown_uri("https://alice:s3cret@mlflow.example:5000/x") == "https://mlflow.example:5000/x"
    assert shown_uri("sqlite:////data/mlflow.db") == "sqlite:////data/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:s3cret@127.0.0.1:9")
    service = RunService(data_dir)
    record = service.wait_for_tracking(service.run(RunRequest(notebook=write_notebook(CELLS))).id)
    assert record.status is RunStatus.SUCCEEDED and record.tracking.status is TrackingStatus.FAILED
    assert record.tracking.error and record.tracking.tracking_uri == "http://127.0.0.1:9"
    assert "s3cret" not in json.dumps(record.to_dict())


def test_a_tracking_server_gives_the_final_record_its_web_link(
    write_notebook,
    data_dir,
    monkeypatch,
    mlflow_server,  # noqa: F811 (the fixture imported above)
):
    import urllib.request

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("CELLPIPE_TRACKING_WAIT_S", "300")  # a loaded machine: the id must be there
    background.ensure_worker(data_dir)
    wait_until(lambda: background.worker_ready(data_dir), what="the worker to import MLflow")
    service = RunService(data_dir)
    record = service.run(RunRequest(notebook=write_notebook(CELLS)))
    tracking = record.tracking
    assert tracking.mlflow_run_id and tracking.tracking_uri == mlflow_server
    assert (
        tracking.mlflow_url
        == f"{mlflow_server}/#/experiments/{tracking.experiment_id}/runs/{tracking.mlflow_run_id}"
    )
    assert record.links["mlflow"] == tracking.mlflow_url  # in the final record, for the UI's link
    assert service.wait_for_tracking(record.id).tracking.status is TrackingStatus.OK
    answer = urllib.request.urlopen(
        f"{mlflow_server}/api/2.0/mlflow/runs/get?run_id={tracking.mlflow_run_id}"
    )
    run = json.loads(answer.read())["run"]
    assert run["info"]["status"] == "FINISHED"
    assert {t["key"]: t["value"] for t in run["data"]["tags"]}["cellpipe.run_id"] == record.id
