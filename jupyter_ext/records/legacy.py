"""Run records written by earlier cellpipe versions (``runs/<id>/record.json``), as :class:`RunRecord`."""

from __future__ import annotations

from typing import Any

from jupyter_ext.records.models import RunRecord, RunStatus, StepRecord, StepStatus, Tracking, TrackingStatus

_STEP_STATUS = {"skipped": StepStatus.NOT_RUN, "not run": StepStatus.NOT_RUN}


def legacy_record(data: dict[str, Any]) -> RunRecord:
    steps = []
    for name, info in (data.get("steps") or {}).items():
        status = _STEP_STATUS.get(info.get("status")) or StepStatus(info.get("status", "pending"))
        started, duration = info.get("started"), info.get("duration")
        steps.append(StepRecord(
            name=name, status=status, started=started, duration_s=duration,
            finished=started + duration if started is not None and duration is not None else None,
            cached=status is StepStatus.CACHED, cached_from=info.get("cached_from"),
            cells=list(info.get("cells") or []), cell=(info.get("cells") or [None])[0],
            depends_on=list(info.get("depends_on") or []), error=info.get("error"), reason=info.get("reason"),
            notebook=info.get("notebook"), cache_key=info.get("cache_key"),
            outputs=info.get("outputs") or {}, metrics=info.get("metrics") or {},
        ))  # fmt: skip
    mlflow = data.get("mlflow") or {}
    tracking = Tracking(
        status=TrackingStatus.OK if mlflow else TrackingStatus.OFF,
        mlflow_run_id=mlflow.get("run_id"),
        tracking_uri=mlflow.get("tracking_uri"),
        experiment_id=mlflow.get("experiment_id"),
    )
    status = RunStatus(data.get("status", "crashed"))
    return RunRecord(
        id=data["id"],
        notebook=str(data.get("notebook", "")),
        target="job" if data.get("target") == "kubernetes" else data.get("target", "local"),
        status=status,
        source=data.get("source", "cli"),
        created=float(data.get("created", 0)),
        started=data.get("created"),
        finished=data.get("finished"),
        duration_s=data.get("duration"),
        parameters=data.get("parameters") or {},
        snapshot_id=data.get("snapshot_id"),
        rerun_of=data.get("rerun_of"),
        error=data.get("error"),
        steps=steps,
        tracking=tracking,
        pipeline=data.get("pipeline", ""),
        notebook_sha256=data.get("notebook_sha256"),
        use_cache=bool(data.get("use_cache", True)),
        metrics=data.get("metrics") or {},
        owner={"host": data.get("host"), "pid": data.get("pid")},
    )
