"""MLflow tracking of a run: one MLflow run per pipeline run, a nested run per step.

The pipeline run gets the parameters, the pipeline metrics and lineage tags (cellpipe run id, notebook
and its hash, snapshot id); each step run gets the parameters it reads, its metrics, its status and
cache key, and its executed notebook as an artifact. ``mlflow`` is imported only here, only when
tracking is on: it costs about two seconds.

Default store: ``sqlite:///<data dir>/mlflow.db`` with artifacts in ``<data dir>/mlartifacts``;
``MLFLOW_TRACKING_URI`` overrides it.
"""

from __future__ import annotations

import dataclasses
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


def tracking_job(pipeline: Pipeline, data_dir: str | Path) -> dict[str, Any]:
    """What tracking needs from the pipeline besides the run record, as JSON: the tracking worker
    (:mod:`jupyter_ext.tracking.background`) logs a run from its record and this, without the notebook. The
    tracking URI is resolved here, by the process that starts the run (the worker serves every process of
    the data directory, whatever their ``MLFLOW_TRACKING_URI``); credentials stay in the environment."""
    uri = tracking_uri(data_dir)
    return {
        "experiment": pipeline.experiment or pipeline.name,
        "pipeline": pipeline.name,
        "steps": [[step.name, list(step.parameters)] for step in pipeline.steps],  # pipeline order, reads
        "tracking_uri": uri,
        "default_store": _default_store(uri),
    }


def track_run(record: RunRecord, pipeline: Pipeline, *, data_dir: str | Path, status: RunStatus) -> Tracking:
    """Log a run record to MLflow as a run with ``status`` at once (inline: a Job pod); raises what MLflow
    raises (the caller decides)."""
    return MlflowTracker(data_dir).finish(record, tracking_job(pipeline, data_dir), Tracking(), status=status)


class MlflowTracker:
    """Creates and finishes the MLflow runs of cellpipe runs, with one client per tracking URI (the tracking
    worker keeps one tracker for its whole life: MLflow is imported and each store opened once).

    A retry after a killed attempt replaces what that attempt left (runs found by their ``cellpipe.run_id``
    tag; step runs by their parent), so each cellpipe run has one MLflow run."""

    def __init__(self, data_dir: str | Path) -> None:
        import logging

        for noisy in ("alembic", "mlflow.store.db.utils"):  # sqlite migrations are chatty on first use
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self.data_dir = Path(data_dir).resolve()
        self._clients: dict[str, Any] = {}

    def _client(self, job: dict[str, Any]) -> tuple[Any, str]:
        uri = job.get("tracking_uri") or tracking_uri(self.data_dir)
        return self.client_for(uri, default_store=job.get("default_store")), uri

    def client_for(self, uri: str, *, default_store: bool | None = None) -> Any:
        """The MLflow client of ``uri`` (made once; the default sqlite store is created private)."""
        client = self._clients.get(uri)
        if client is None:
            from mlflow.tracking import MlflowClient

            if _default_store(uri) if default_store is None else default_store:
                _create_private_store(self.data_dir)
            client = self._clients[uri] = MlflowClient(tracking_uri=uri)
        return client

    def start(self, record: RunRecord, job: dict[str, Any]) -> Tracking:
        """Create the run's MLflow run (RUNNING, lineage tags, parameters); tracking stays pending."""
        from mlflow.entities import Param

        client, uri = self._client(job)
        experiment_id = _experiment(client, job["experiment"], self.data_dir, uri, job)
        _delete_earlier_attempts(client, experiment_id, record.id)
        parent = client.create_run(
            experiment_id,
            start_time=int(record.created * 1000),
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
        client.log_batch(parent, params=params)
        return Tracking(
            status=TrackingStatus.PENDING,
            mlflow_run_id=parent,
            mlflow_url=run_url(shown_uri(uri), experiment_id, parent),
            tracking_uri=shown_uri(uri),
            experiment_id=experiment_id,
        )

    def log_step(self, record: RunRecord, job: dict[str, Any], tracking: Tracking, name: str) -> None:
        """Log one finished step of a run still executing as a nested run of its MLflow run."""
        client, _uri = self._client(job)
        reads = dict((step, params) for step, params in job["steps"])[name]
        end_ms = int(time.time() * 1000)
        _track_step(
            client, tracking.experiment_id, tracking.mlflow_run_id, reads, record.step(name), record, end_ms
        )

    def finish(
        self, record: RunRecord, job: dict[str, Any], tracking: Tracking, *, status: RunStatus | None = None,
        logged: frozenset[str] = frozenset(),
    ) -> Tracking:  # fmt: skip
        """Log the final record (metrics, a nested run per step not in ``logged``: those this tracker logged
        while the run executed) into the run's MLflow run, created now if ``tracking`` has none, and terminate
        it with the run's status."""
        from mlflow.entities import Metric, RunTag

        client, _uri = self._client(job)
        if not tracking.mlflow_run_id or not _exists(client, tracking.mlflow_run_id):
            tracking, logged = self.start(record, job), frozenset()
        parent, experiment_id = tracking.mlflow_run_id, tracking.experiment_id
        for earlier in client.search_runs(
            [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'"
        ):
            if earlier.data.tags.get("cellpipe.step") not in logged:
                client.delete_run(earlier.info.run_id)  # steps a killed attempt logged
        end_ms = int((record.finished or time.time()) * 1000)  # the run's end (not yet, when tracked inline)
        metrics = [Metric(k, v, end_ms, 0) for k, v in sorted(record.metrics.items())]
        # the final record's snapshot id: cleared when the snapshot could not be stored after the run began
        tags = [RunTag("cellpipe.snapshot_id", record.snapshot_id or "")]
        client.log_batch(parent, metrics=metrics, tags=tags)
        for name, reads in job["steps"]:
            if name not in logged:
                _track_step(client, experiment_id, parent, reads, record.step(name), record, end_ms)
        client.set_terminated(parent, status=STATUS.get(status or record.status, "FAILED"), end_time=end_ms)
        return dataclasses.replace(tracking, status=TrackingStatus.OK, error=None)


def _exists(client: Any, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def _delete_earlier_attempts(client, experiment_id: str, run_id: str) -> None:
    for earlier in client.search_runs([experiment_id], filter_string=f"tags.`cellpipe.run_id` = '{run_id}'"):
        client.delete_run(earlier.info.run_id)


def shown_uri(uri: str) -> str:
    """The tracking URI as a record shows it: without a user and password written into it (MLflow's own
    MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN stay in the environment and are never written anywhere)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if not parts.netloc or "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


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
    status = {StepStatus.SUCCEEDED: "FINISHED", StepStatus.CACHED: "FINISHED"}.get(
        info.status, STATUS.get(info.status, "KILLED")
    )
    ended = int(info.finished * 1000) if info.finished is not None else end_ms  # not run: when it was known
    client.set_terminated(run_id, status=status, end_time=ended)


def _experiment(client, name: str, data_dir: str | Path, uri: str, job: dict[str, Any]) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if job.get("default_store", _default_store(uri)):
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
