"""The SQLite record store: filters and paging, id resolution, crash detection that PID reuse cannot fool,
schema migrations, the import of old JSON records, private files, fire leases."""

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

from jupyter_ext.errors import CellpipeError
from jupyter_ext.records import models
from jupyter_ext.records.models import RunRecord, RunStatus, ScheduleRecord, StepRecord, StepStatus
from jupyter_ext.records.owner import current_owner, process_start
from jupyter_ext.records.store import DB_FILE, MIGRATIONS, SCHEMA_VERSION, RecordStore


def make(run_id, created, **kwargs):
    return RunRecord(id=run_id, notebook=kwargs.pop("notebook", "/p/a.ipynb"), created=created, **kwargs)


def test_list_is_newest_first_filtered_and_paged(tmp_path):
    store = RecordStore(tmp_path)
    for i in range(12):
        status = RunStatus.FAILED if i % 3 == 0 else RunStatus.SUCCEEDED
        store.save_run(make(f"2026-{i:02d}", 1000 + i, status=status, notebook=f"/p/{i % 2}.ipynb"))
    records, total = store.list_runs(limit=5)
    assert total == 12 and [r.id for r in records] == [f"2026-{i:02d}" for i in (11, 10, 9, 8, 7)]
    records, total = store.list_runs(limit=5, offset=10)
    assert [r.id for r in records] == ["2026-01", "2026-00"]
    failed, total = store.list_runs(status="failed")
    assert total == 4 and all(r.status is RunStatus.FAILED for r in failed)
    odd, total = store.list_runs(notebook="/p/1.ipynb", since=1006)
    assert [r.id for r in odd] == ["2026-11", "2026-09", "2026-07"] and total == 3


def test_progress_saves_skip_the_fsync_and_leave_the_connection_fully_synchronous(tmp_path):
    store = RecordStore(tmp_path)
    record = make("2026-progress", 1000, status=RunStatus.RUNNING)
    store.save_run(record, durable=False)
    record.status = RunStatus.SUCCEEDED
    store.save_run(record, durable=False)
    other = sqlite3.connect(tmp_path / DB_FILE)  # another process's view: committed, not just buffered
    assert json.loads(other.execute("SELECT data FROM runs").fetchone()[0])["status"] == "succeeded"
    other.close()
    with store.engine.connect() as conn:  # the pooled connection is FULL (2) again for the next writer
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2


def test_ids_resolve_by_prefix_suffix_and_latest(tmp_path):
    store = RecordStore(tmp_path)
    store.save_run(make("20261129-100000-aaa111", 1))
    store.save_run(make("20261129-100001-bbb222", 2))
    assert store.get_run("latest").id == "20261129-100001-bbb222"
    assert store.resolve_run_id("20261129-100000") == "20261129-100000-aaa111"
    assert store.resolve_run_id("bbb222") == "20261129-100001-bbb222"  # the random part alone
    with pytest.raises(CellpipeError, match="ambiguous"):
        store.resolve_run_id("20261129-10000")
    with pytest.raises(CellpipeError, match="no run 'zzzz'"):
        store.resolve_run_id("zzzz")


def test_a_run_whose_owner_died_is_crashed_on_the_next_read(tmp_path):
    store = RecordStore(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    owner = {**current_owner(), "pid": child.pid, "pid_start": process_start(child.pid)}
    record = make("r1", 1, status=RunStatus.RUNNING, owner=owner,
                  steps=[StepRecord("a", StepStatus.RUNNING), StepRecord("b")])  # fmt: skip
    store.save_run(record)
    assert store.get_run("r1").status is RunStatus.RUNNING  # its owner is alive
    child.kill()
    child.wait()
    crashed = store.get_run("r1")
    assert crashed.status is RunStatus.CRASHED and crashed.is_final
    assert [s.status for s in crashed.steps] == [StepStatus.CRASHED, StepStatus.NOT_RUN]
    assert RecordStore(tmp_path).get_run("r1").status is RunStatus.CRASHED  # saved, not just shown
    store.delete_run("r1")
    assert store.list_runs()[1] == 0


def test_pid_reuse_does_not_keep_a_dead_run_alive(tmp_path):
    """After a restart the same pid belongs to another process: its start time tells them apart."""
    store = RecordStore(tmp_path)
    reused = {**current_owner(), "pid_start": process_start(os.getpid()) - 1}  # our pid, an earlier process
    store.save_run(make("r2", 1, status=RunStatus.RUNNING, owner=reused))
    other_boot = {**current_owner(), "boot_id": "another-boot"}
    store.save_run(make("r3", 2, status=RunStatus.QUEUED, owner=other_boot))
    store.save_run(make("r4", 3, status=RunStatus.RUNNING, owner=current_owner()))
    assert sorted(RecordStore(tmp_path).recover_crashed()) == ["r2", "r3"]  # what a server start does
    assert store.get_run("r4").status is RunStatus.RUNNING


def test_crash_recovery_asks_once_per_owner_and_reads_only_orphans(tmp_path, monkeypatch):
    """Every list runs it: many active runs of one live owner cost one question, not a record each."""
    import jupyter_ext.records.store as store_module

    store = RecordStore(tmp_path)
    for i in range(20):
        store.save_run(make(f"live-{i:02d}", i, status=RunStatus.QUEUED, owner=current_owner()))
    dead = {**current_owner(), "pid_start": process_start(os.getpid()) - 1}
    store.save_run(make("dead", 30, status=RunStatus.RUNNING, owner=dead))
    store.save_run(make("ownerless", 31, status=RunStatus.RUNNING))  # an owner never recorded
    store.save_run(make("done", 32, status=RunStatus.SUCCEEDED))
    asked = []
    real = store_module.owner_alive
    monkeypatch.setattr(store_module, "owner_alive", lambda owner: asked.append(owner) or real(owner))
    assert sorted(store.recover_crashed()) == ["dead", "ownerless"]
    assert store.get_run("dead").status is RunStatus.CRASHED
    assert store.get_run("ownerless").status is RunStatus.CRASHED
    assert len([o for o in asked if o == current_owner()]) == 1  # the 20 live runs: asked once
    stored, total = store.list_stored_runs(status="queued", limit=100)
    assert total == 20 and [r.record() for r in stored] == store.list_runs(status="queued", limit=100)[0]
    assert all(not r.is_final for r in stored) and store.list_stored_runs(status="crashed")[0][0].is_final


def test_runs_as_stored_carry_the_cancel_requests_records_show(tmp_path):
    """The server builds its answer from the stored text alone: a request not yet in the record is in it."""
    store = RecordStore(tmp_path)
    store.save_run(make("r1", 1, status=RunStatus.RUNNING, owner=current_owner()))
    store.save_run(make("r2", 2, status=RunStatus.RUNNING, owner=current_owner()))
    store.request_cancel("r1", by="someone")
    stored = {run.id: run for run in store.list_stored_runs()[0]}
    assert stored["r1"].record().cancel_requested["by"] == "someone"
    assert stored["r1"].record() == store.get_run("r1") and stored["r2"].record().cancel_requested is None
    assert [run.record() for run in store.list_stored_runs()[0]] == store.list_runs()[0]


def test_one_notebooks_runs_of_one_status_are_counted_in_the_index_alone(tmp_path):
    """The runs view's filter (path and status): neither the count nor the page reads rows it does not send."""
    store = RecordStore(tmp_path)
    for i in range(30):
        status = (RunStatus.SUCCEEDED, RunStatus.FAILED)[i % 2]
        store.save_run(make(f"r{i:02d}", i, status=status, notebook=f"/p/{i % 3}.ipynb"))
    records, total = store.list_runs(notebook="/p/1.ipynb", status="failed", limit=2)
    assert total == 5 and [r.id for r in records] == ["r25", "r19"]
    with store._read() as conn:
        plan = " ".join(
            str(row[-1]) for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM runs WHERE notebook = ? AND status = ?", ("/p/1.ipynb", "failed"))
        )  # fmt: skip
    assert "COVERING INDEX runs_by_notebook_status" in plan


def test_files_are_private(tmp_path):
    RecordStore(tmp_path / "data")
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "data" / DB_FILE).stat().st_mode) == 0o600


def test_an_old_database_is_migrated(tmp_path):
    """A version-1 database (runs only, no source/schedule columns, no schedules) opens as the current one."""
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / DB_FILE}")
    with engine.begin() as conn:
        MIGRATIONS[1](conn)
        conn.exec_driver_sql("PRAGMA user_version = 1")
        data = make("old-1", 5.0, status=RunStatus.SUCCEEDED).to_dict()
        conn.exec_driver_sql(
            "INSERT INTO runs (id, notebook, status, target, created, finished, data) VALUES (?,?,?,?,?,?,?)",
            ("old-1", "/p/a.ipynb", "succeeded", "local", 5.0, 6.0, json.dumps(data)),
        )
    engine.dispose()
    store = RecordStore(tmp_path)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.get_run("old-1").status is RunStatus.SUCCEEDED
    assert store.list_runs(schedule_id="nope")[1] == 0  # the new column works
    store.save_schedule(ScheduleRecord(id="s", notebook="/p/a.ipynb", cron="* * * * *"))
    assert [s.id for s in store.list_schedules()] == ["s"]


def test_a_newer_database_is_refused(tmp_path):
    RecordStore(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_FILE) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(CellpipeError, match="newer cellpipe"):
        RecordStore(tmp_path)


def test_old_json_records_are_imported_once(tmp_path):
    run_dir = tmp_path / "runs" / "20261101-000000-abcdef"
    run_dir.mkdir(parents=True)
    legacy = {
        "id": "20261101-000000-abcdef", "notebook": "/p/a.ipynb", "status": "failed", "created": 10.0,
        "finished": 12.0, "duration": 2.0, "parameters": {"n": 1}, "pipeline": "a", "pid": 1, "host": "h",
        "mlflow": {"tracking_uri": "sqlite:///x.db", "experiment_id": "1", "run_id": "abc"},
        "steps": {"one": {"status": "succeeded", "duration": 1.0, "started": 10.0, "cells": [2]},
                  "two": {"status": "skipped", "reason": "upstream step 'x' did not succeed"}},
    }  # fmt: skip
    (run_dir / "record.json").write_text(json.dumps(legacy))
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "record.json").write_text("{not json")
    record = RecordStore(tmp_path).get_run("abcdef")
    assert record.status is RunStatus.FAILED and record.duration_s == 2.0
    assert [(s.name, s.status) for s in record.steps] == [("one", "succeeded"), ("two", "not_run")]
    assert record.tracking.mlflow_run_id == "abc" and record.tracking.status == "ok"
    assert RecordStore(tmp_path).list_runs()[1] == 1


def test_a_fire_lease_is_granted_once(tmp_path):
    first, second = RecordStore(tmp_path), RecordStore(tmp_path)
    fire = time.time()
    assert first.acquire_fire_lease("s1", fire, "a") is True
    assert second.acquire_fire_lease("s1", fire, "b") is False
    assert second.acquire_fire_lease("s1", fire + 60, "b") is True


def test_a_version_3_database_gets_the_cancel_requests_table(tmp_path):
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / DB_FILE}")
    with engine.begin() as conn:
        for version in (1, 2, 3):
            MIGRATIONS[version](conn)
        conn.exec_driver_sql("PRAGMA user_version = 3")
        data = make("old-3", 5.0, status=RunStatus.RUNNING, owner=current_owner()).to_dict()
        del data["cancel_requested"]  # written before the field existed
        conn.exec_driver_sql(
            "INSERT INTO runs (id, notebook, status, target, created, data) VALUES (?,?,?,?,?,?)",
            ("old-3", "/p/a.ipynb", "running", "local", 5.0, json.dumps(data)),
        )
    engine.dispose()
    store = RecordStore(tmp_path)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.get_run("old-3").cancel_requested is None
    assert store.request_cancel("old-3", "me (test)").cancel_requested["by"] == "me (test)"


def test_a_cancel_request_is_kept_apart_from_the_owners_saves(tmp_path):
    store, other = RecordStore(tmp_path), RecordStore(tmp_path)  # the owner's view and a requester's
    running = make("r1", 1, status=RunStatus.RUNNING, owner=current_owner())
    store.save_run(running)
    before = time.time()
    asked = other.request_cancel("r1", "alice (Jupyter server)")
    assert asked.cancel_requested["by"] == "alice (Jupyter server)" and asked.cancel_requested["at"] >= before
    store.save_run(running)  # the owner rewrites its record, not knowing yet: the request stays
    assert store.get_run("r1").cancel_requested == asked.cancel_requested
    assert store.list_runs()[0][0].cancel_requested == asked.cancel_requested
    assert other.request_cancel("r1", "bob (cellpipe runs cancel)").cancel_requested == asked.cancel_requested
    running.status = RunStatus.SUCCEEDED
    store.save_run(running)  # it ended before the owner looked: the record still says someone asked
    assert store.get_run("r1").cancel_requested == asked.cancel_requested
    assert store.list_stored_runs()[0][0].record().cancel_requested == asked.cancel_requested
    assert other.request_cancel("r1", "bob (cellpipe runs cancel)").status is RunStatus.SUCCEEDED
    assert store.cancel_requests(["r1", "r2"]) == {"r1": asked.cancel_requested}
    assert store.cancel_requests([]) == {}
    store.save_run(make("r2", 2, status=RunStatus.SUCCEEDED))
    assert store.request_cancel("r2", "me").cancel_requested is None  # a final run gets no request
    assert store.cancel_requests(["r2"]) == {} and store.request_cancel("nope", "me") is None
    store.delete_run("r1")
    assert store.cancel_requests(["r1"]) == {}


def test_a_version_4_database_gets_the_tracking_column(tmp_path):
    """v4 -> v5: the tracking status becomes a column filled from the stored records, with a partial index
    of the pending ones (the tracking worker's poll)."""
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / DB_FILE}")
    with engine.begin() as conn:
        for version in (1, 2, 3, 4):
            MIGRATIONS[version](conn)
        conn.exec_driver_sql("PRAGMA user_version = 4")
        for run_id, tracking in (("a", "pending"), ("b", "ok"), ("c", None)):
            record = make(run_id, 5.0, status=RunStatus.SUCCEEDED)
            data = record.to_dict()
            data["tracking"] = {"status": tracking} if tracking else None
            conn.exec_driver_sql(
                "INSERT INTO runs (id, notebook, status, target, created, finished, data) VALUES (?,?,?,?,?,?,?)",
                (run_id, "/p/a.ipynb", "succeeded", "local", 5.0, 6.0, json.dumps(data)),
            )
    engine.dispose()
    store = RecordStore(tmp_path)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.pending_tracking(since=0) == [("a", RunStatus.SUCCEEDED, None)]
    with store._read() as conn:
        plan = " ".join(str(r) for r in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT id FROM runs WHERE tracking = 'pending' AND created >= 0"))  # fmt: skip
    assert "runs_tracking_pending" in plan  # an index lookup, not a scan of every run


def test_pending_tracking_stays_an_index_lookup_with_many_runs(tmp_path):
    store = RecordStore(tmp_path)
    with store._write() as conn:
        for i in range(2000):
            record = make(f"r{i:05d}", float(i), status=RunStatus.SUCCEEDED)
            record.tracking = models.Tracking(
                status=models.TrackingStatus.OK if i != 1234 else models.TrackingStatus.PENDING
            )
            store._upsert(conn, record)
    assert store.pending_tracking(since=0) == [("r01234", RunStatus.SUCCEEDED, None)]
    with store._read() as conn:
        plan = " ".join(str(r) for r in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT id, status FROM runs WHERE tracking = 'pending' AND created >= 0"))  # fmt: skip
    assert "runs_tracking_pending" in plan and "SCAN runs" not in plan


def test_saves_with_keep_tracking_never_undo_the_tracking_workers_writes(tmp_path):
    """The run service saves its whole record often (each step) while the tracking worker writes the
    record's tracking part: two processes racing, each change must survive."""
    store = RecordStore(tmp_path)
    steps = [StepRecord(f"s{i}") for i in range(40)]
    store.save_run(make("race", 1.0, status=RunStatus.RUNNING, steps=steps,
                        tracking=models.Tracking(status=models.TrackingStatus.PENDING)))  # fmt: skip
    worker = (
        "import sys, time\n"
        "from jupyter_ext.records.store import RecordStore\n"
        "store = RecordStore(sys.argv[1])\n"
        "time.sleep(0.2)\n"
        "def change(r):\n"
        "    r.tracking.mlflow_run_id = 'mlflow-1'; r.tracking.experiment_id = '7'; r.links['mlflow'] = 'http://m/1'\n"
        "store.update_run('race', change)\n"
    )
    other = subprocess.Popen([sys.executable, "-c", worker, str(tmp_path)])
    record = store.get_run("race")
    for step in record.steps:  # the service's saves, with a record read before the worker wrote
        step.status = StepStatus.SUCCEEDED
        store.save_run(record, keep_tracking=True)
        time.sleep(0.01)
    assert other.wait(timeout=60) == 0
    store.save_run(record, keep_tracking=True)
    stored = store.get_run("race")
    assert all(s.status is StepStatus.SUCCEEDED for s in stored.steps)  # the service's writes
    assert (
        stored.tracking.mlflow_run_id == "mlflow-1" and stored.links["mlflow"] == "http://m/1"
    )  # the worker's
    assert record.tracking.mlflow_run_id == "mlflow-1"  # and the service's own record now has them too
    record.tracking = models.Tracking(status=models.TrackingStatus.FAILED, error="x")
    store.save_run(record)  # without keep_tracking (inline tracking): the caller's tracking is written
    assert store.get_run("race").tracking.status is models.TrackingStatus.FAILED
