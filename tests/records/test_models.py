"""Typed records: one definition of final states, of wall time, and a JSON round trip that keeps every field."""

import time

import pytest

from jupyter_ext.records.models import (
    FINAL_RUN_STATES,
    RunRecord,
    RunStatus,
    ScheduleRecord,
    StepRecord,
    StepStatus,
    Tracking,
    TrackingStatus,
)


def test_final_states_are_defined_once():
    assert {s for s in RunStatus if s.is_final} == FINAL_RUN_STATES
    assert not RunStatus.QUEUED.is_final and not RunStatus.RUNNING.is_final
    assert RunStatus.CRASHED.is_final and RunStatus("succeeded") is RunStatus.SUCCEEDED
    assert [s for s in StepStatus if s.ok] == [StepStatus.CACHED, StepStatus.SUCCEEDED]
    assert RunStatus.FAILED == "failed"  # a str: JSON and SQL see the plain value


def test_run_record_round_trips_through_json_shape():
    record = RunRecord(
        id="20261129-120000-abcdef",
        notebook="/p/nb.ipynb",
        status=RunStatus.SUCCEEDED,
        parameters={"n": 3},
        steps=[
            StepRecord("a", StepStatus.SUCCEEDED, cell=2, error=None),
            StepRecord("b", StepStatus.NOT_RUN),
        ],
        tracking=Tracking(TrackingStatus.FAILED, error="OSError: disk full"),
    )
    data = record.to_dict()
    assert data["status"] == "succeeded" and data["steps"][1]["status"] == "not_run"
    assert [s["name"] for s in data["steps"]] == ["a", "b"]
    assert data["tracking"] == {"status": "failed", "error": "OSError: disk full", "mlflow_run_id": None,
                                "mlflow_url": None, "tracking_uri": None, "experiment_id": None}  # fmt: skip
    again = RunRecord.from_dict(data)
    assert again == record and again.step("b").status is StepStatus.NOT_RUN
    assert RunRecord.from_dict({**data, "unknown_future_field": 1}) == record


def test_schedule_record_round_trip():
    schedule = ScheduleRecord(id="s1", notebook="/p/nb.ipynb", cron="*/5 * * * *", parameters={"x": 1})
    assert ScheduleRecord.from_dict(schedule.to_dict()) == schedule


def test_a_step_lasts_from_its_start_to_its_end_on_the_clock_given():
    step = StepRecord("train")
    assert step.elapsed_s(now=50.0) is None  # not started: no time yet
    step.status, step.started = StepStatus.RUNNING, 100.0
    assert step.duration_s is None and step.elapsed_s(now=102.5) == 2.5  # running: the time so far
    step.end(StepStatus.SUCCEEDED, at=160.25)  # a KFP task's end, on the clock that timed its start
    assert (step.status, step.finished, step.duration_s) == (StepStatus.SUCCEEDED, 160.25, 60.25)
    assert step.elapsed_s(now=1e9) == 60.25  # ended: the duration, whatever the time now


def test_a_step_that_never_started_has_no_duration_even_when_it_ends():
    step = StepRecord("train")
    step.end(StepStatus.CANCELLED, at=10.0)
    assert step.finished == 10.0 and step.duration_s is None and step.elapsed_s() is None


def test_a_step_ends_now_unless_told_and_never_lasts_less_than_nothing():
    step = StepRecord("train", StepStatus.RUNNING, started=time.time() - 1.0)
    step.end(StepStatus.CANCELLED)
    assert 1.0 <= step.duration_s < 60 and step.finished - step.started == pytest.approx(
        step.duration_s, abs=1e-3
    )
    late = StepRecord("train", StepStatus.RUNNING, started=200.0)
    late.end(StepStatus.FAILED, at=199.0)  # the wall clock was set back while it ran
    assert late.duration_s == 0.0


def test_a_run_lasts_from_its_creation_queue_included():
    run = RunRecord(id="r", notebook="/p/nb.ipynb", created=1000.0)
    assert run.elapsed_s(now=1004.0) == 4.0 and run.duration_s is None  # queued: waiting counts
    run.end(RunStatus.CANCELLED, at=1010.0)  # cancelled before it started
    assert run.started is None and (run.finished, run.duration_s) == (1010.0, 10.0)
    again = RunRecord(
        id="r", notebook="/p/nb.ipynb", created=1000.0, status=RunStatus.RUNNING, started=1003.0
    )
    again.end(RunStatus.SUCCEEDED, at=1020.5)
    assert again.duration_s == 20.5 and again.is_final
    assert RunRecord.from_dict(again.to_dict()).duration_s == 20.5  # stored, not recomputed
