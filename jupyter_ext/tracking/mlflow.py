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
from pathlib import Path
from typing import Any

from jupyter_ext.pipeline.model import Pipeline
from jupyter_ext.util import open_private, private_dir

STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED", "crashed": "FAILED"}
MAX_PARAM = 6000  # MLflow's limit on a param value
DATABASE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"


def tracking_uri(data_dir: str | Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(data_dir).resolve() / DATABASE_FILE}"


def track_run(record: dict[str, Any], pipeline: Pipeline, *, data_dir: str | Path) -> dict[str, str]:
    """Log a run record to MLflow; returns ``{"tracking_uri", "experiment_id", "run_id"}``."""
    import logging

    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    for noisy in ("alembic", "mlflow.store.db.utils"):  # sqlite migrations are chatty on first use
        logging.getLogger(noisy).setLevel(logging.WARNING)
    uri = tracking_uri(data_dir)
    if _default_store(uri):
        _create_private_store(Path(data_dir).resolve())
    client = MlflowClient(tracking_uri=uri)
    experiment_id = _experiment(client, pipeline.experiment or pipeline.name, data_dir, uri)
    start_ms = int(record["created"] * 1000)
    end_ms = int(record.get("finished", record["created"]) * 1000)
    parent = client.create_run(
        experiment_id,
        start_time=start_ms,
        run_name=f"{pipeline.name} {record['id']}",
        tags={
            "cellpipe.run_id": record["id"],
            "cellpipe.pipeline": pipeline.name,
            "cellpipe.notebook": record["notebook"],
            "cellpipe.notebook_sha256": record.get("notebook_sha256") or "",
            "cellpipe.snapshot_id": record.get("snapshot_id") or "",
            "cellpipe.target": record.get("target", "local"),
        },
    ).info.run_id
    params = [Param(k, _param(v)) for k, v in sorted(record.get("parameters", {}).items())]
    metrics = [Metric(k, v, end_ms, 0) for k, v in sorted(record.get("metrics", {}).items())]
    client.log_batch(parent, metrics=metrics, params=params)
    for step in pipeline.steps:
        info = record["steps"][step.name]
        _track_step(client, experiment_id, parent, step.parameters, step.name, info, record, end_ms)
    client.set_terminated(parent, status=STATUS.get(record["status"], "FAILED"), end_time=end_ms)
    return {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": parent}


def _track_step(client, experiment_id, parent, reads, name, info, record, end_ms) -> None:
    from mlflow.entities import Metric, Param

    started = int(info.get("started", record["created"]) * 1000)
    tags = {
        "mlflow.parentRunId": parent,
        "cellpipe.run_id": record["id"],
        "cellpipe.step": name,
        "cellpipe.status": info["status"],
        "cellpipe.cache_key": info.get("cache_key", ""),
    }
    if info.get("cached_from"):
        tags["cellpipe.cached_from"] = info["cached_from"]
    run_id = client.create_run(experiment_id, start_time=started, run_name=name, tags=tags).info.run_id
    params = [Param(p, _param(record["parameters"].get(p))) for p in reads]
    metrics = [Metric(k, v, end_ms, 0) for k, v in (info.get("metrics") or {}).items()]
    client.log_batch(run_id, metrics=metrics, params=params)
    notebook = info.get("notebook")
    if notebook and Path(notebook).is_file():
        client.log_artifact(run_id, notebook, artifact_path="notebooks")
    duration_ms = int((info.get("duration") or 0) * 1000)
    status = {"succeeded": "FINISHED", "cached": "FINISHED"}.get(
        info["status"], STATUS.get(info["status"], "KILLED")
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
