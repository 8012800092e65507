"""Typed records: one definition of final states, and a JSON round trip that keeps every field."""

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
