"""MLflow tracking of a finished run: one MLflow run per pipeline run, a nested run per step.

The pipeline run gets the parameters, the pipeline metrics and lineage tags (cellpipe run id, notebook
and its hash, snapshot id); each step run gets the parameters it reads, its metrics, its status and
cache key, and its executed notebook as an artifact. ``mlflow`` is imported only here, only when
tracking is on: it costs about two seconds.

Default store: ``sqlite:///<data dir>/mlflow.db`` with artifacts in ``<data dir>/mlartifacts``;
``MLFLOW_TRACKING_URI`` overrides it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from jupyter_ext.pipeline.model import Pipeline
from jupyter_ext.records.models import RunRecord, RunStatus, StepRecord, StepStatus, Tracking, TrackingStatus
from jupyter_ext.util import open_private, private_dir

STATUS = {RunStatus.SUCCEEDED: "FINISHED", RunStatus.FAILED: "FAILED", RunStatus.CANCELLED: "KILLED",
          RunStatus.CRASHED: "FAILED"}  # fmt: skip
MAX_PARAM = 6000  # MLflow's limit on a param value
DATABASE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"


def tracking_uri(data_dir: str | Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(data_dir).resolve() / DATABASE_FILE}"


def tracking_job(pipeline: Pipeline) -> dict[str, Any]:
    """What tracking needs from the pipeline besides the run record, as JSON: a detached tracking process
    (:mod:`jupyter_ext.tracking.background`) logs a run from its record and this, without the notebook."""
    return {
        "experiment": pipeline.experiment or pipeline.name,
        "pipeline": pipeline.name,
        "steps": [[step.name, list(step.parameters)] for step in pipeline.steps],  # pipeline order, reads
    }


def track_run(record: RunRecord, pipeline: Pipeline, *, data_dir: str | Path, status: RunStatus) -> Tracking:
    """Log a run record to MLflow as a run with ``status``; raises what MLflow raises (the caller decides)."""
    return track_record(record, tracking_job(pipeline), data_dir=data_dir, status=status)


def track_record(
    record: RunRecord, job: dict[str, Any], *, data_dir: str | Path, status: RunStatus
) -> Tracking:
    """:func:`track_run` from a :func:`tracking_job`. A retry after a killed attempt replaces the MLflow runs
    that attempt left (found by their ``cellpipe.run_id`` tag), so a run is logged once."""
    import logging

    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    for noisy in ("alembic", "mlflow.store.db.utils"):  # sqlite migrations are chatty on first use
        logging.getLogger(noisy).setLevel(logging.WARNING)
    uri = tracking_uri(data_dir)
    if _default_store(uri):
        _create_private_store(Path(data_dir).resolve())
    client = MlflowClient(tracking_uri=uri)
    experiment_id = _experiment(client, job["experiment"], data_dir, uri)
    _delete_earlier_attempts(client, experiment_id, record.id)
    start_ms = int(record.created * 1000)
    end_ms = int(time.time() * 1000)
    parent = client.create_run(
        experiment_id,
        start_time=start_ms,
        run_name=f"{job['pipeline']} {record.id}",
        tags={
            "cellpipe.run_id": record.id,
            "cellpipe.pipeline": job["pipeline"],
            "cellpipe.notebook": record.notebook,
            "cellpipe.notebook_sha256": record.notebook_sha256 or "",
            "cellpipe.snapshot_id": record.snapshot_id or "",
            "cellpipe.target": record.target,
        },
    ).info.run_id
    params = [Param(k, _param(v)) for k, v in sorted(record.parameters.items())]
    metrics = [Metric(k, v, end_ms, 0) for k, v in sorted(record.metrics.items())]
    client.log_batch(parent, metrics=metrics, params=params)
    for name, reads in job["steps"]:
        _track_step(client, experiment_id, parent, reads, record.step(name), record, end_ms)
    client.set_terminated(parent, status=STATUS.get(status, "FAILED"), end_time=end_ms)
    return Tracking(
        status=TrackingStatus.OK,
        mlflow_run_id=parent,
        mlflow_url=run_url(uri, experiment_id, parent),
        tracking_uri=uri,
        experiment_id=experiment_id,
    )


def _delete_earlier_attempts(client, experiment_id: str, run_id: str) -> None:
    for earlier in client.search_runs([experiment_id], filter_string=f"tags.`cellpipe.run_id` = '{run_id}'"):
        client.delete_run(earlier.info.run_id)


def run_url(uri: str, experiment_id: str, run_id: str) -> str | None:
    """The MLflow UI's page of a run, when the tracking URI is a server (a sqlite file has no page)."""
    if not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def _track_step(client, experiment_id, parent, reads, info: StepRecord, record: RunRecord, end_ms) -> None:
    from mlflow.entities import Metric, Param

    started = int((info.started or record.created) * 1000)
    tags = {
        "mlflow.parentRunId": parent,
        "cellpipe.run_id": record.id,
        "cellpipe.step": info.name,
        "cellpipe.status": info.status.value,
        "cellpipe.cache_key": info.cache_key or "",
    }
    if info.cached_from:
        tags["cellpipe.cached_from"] = info.cached_from
    run_id = client.create_run(experiment_id, start_time=started, run_name=info.name, tags=tags).info.run_id
    params = [Param(p, _param(record.parameters.get(p))) for p in reads]
    metrics = [Metric(k, v, end_ms, 0) for k, v in info.metrics.items()]
    client.log_batch(run_id, metrics=metrics, params=params)
    if info.notebook and Path(info.notebook).is_file():
        client.log_artifact(run_id, info.notebook, artifact_path="notebooks")
    duration_ms = int((info.duration_s or 0) * 1000)
    status = {StepStatus.SUCCEEDED: "FINISHED", StepStatus.CACHED: "FINISHED"}.get(
        info.status, STATUS.get(info.status, "KILLED")
    )
    client.set_terminated(run_id, status=status, end_time=started + duration_ms if duration_ms else end_ms)


def _experiment(client, name: str, data_dir: str | Path, uri: str) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if _default_store(uri):
        location = (Path(data_dir).resolve() / ARTIFACTS_DIR / name).as_uri()
    return client.create_experiment(name, artifact_location=location)


def _default_store(uri: str) -> bool:
    return uri.startswith("sqlite:") and "MLFLOW_TRACKING_URI" not in os.environ


def _create_private_store(directory: Path) -> None:
    """The default database and artifacts hold parameters and outputs: private to the user (0600/0700).

    SQLite gives its journal the database file's mode, so creating the empty file 0600 first is enough.
    """
    private_dir(directory / ARTIFACTS_DIR)
    database = directory / DATABASE_FILE
    if not database.exists():
        open_private(database, "ab").close()


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 3] + "..."
