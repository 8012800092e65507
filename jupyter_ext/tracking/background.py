"""MLflow tracking off the critical path: a detached process logs a finished run from its durable record.

Importing MLflow and writing a run with a nested run per step costs seconds of CPU, more than many
pipelines. So the run service finalizes the record first (status final, ``tracking.status`` ``pending``)
and starts ``python -m jupyter_ext.tracking.background DATA_DIR RUN_ID`` in its own session: the result
is shown at once, and the worker outlives the command that started it (and Ctrl-C in its terminal).
The worker reads everything from the record store and ``runs/<id>/tracking-job.json`` (written when the
record is created), logs the run, and turns the record's tracking ``ok`` or ``failed`` (with the error).

Nothing is lost when a process ends: a run whose tracking is still pending and that no worker holds
(``runs/<id>/tracking.lock``) is picked up again by the next run service that opens the store
(:func:`resume_pending`); a retry replaces the MLflow runs a killed attempt left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jupyter_ext.records.models import RunRecord, Tracking, TrackingStatus
from jupyter_ext.records.store import RecordStore
from jupyter_ext.util import open_private, private_dir, write_json_atomic

JOB_FILE = "tracking-job.json"
LOCK_FILE = "tracking.lock"
LOG_FILE = "tracking.log"
RESUME_WITHIN_S = 7 * 24 * 3600  # older pending runs are left alone (their MLflow store may be gone)

_workers: list[subprocess.Popen] = []  # started here; polled so that finished ones are reaped


def write_job(run_dir: Path, job: dict[str, Any]) -> None:
    """Keep what tracking needs besides the record (see :func:`~jupyter_ext.tracking.mlflow.tracking_job`)."""
    write_json_atomic(private_dir(run_dir) / JOB_FILE, job)


def start_worker(data_dir: Path, run_id: str) -> int:
    """Start a detached tracking process for a finalized run; returns its pid."""
    import jupyter_ext

    _workers[:] = [w for w in _workers if w.poll() is None]
    run_dir = private_dir(Path(data_dir) / "runs" / run_id)
    package_root = str(Path(jupyter_ext.__file__).resolve().parents[1])  # the same cellpipe as ours
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    with open_private(run_dir / LOG_FILE, "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "jupyter_ext.tracking.background", str(Path(data_dir).resolve()), run_id],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, close_fds=True,
        )  # fmt: skip
    _workers.append(worker)
    return worker.pid


def track_pending(data_dir: Path, run_id: str) -> Tracking | None:
    """Log a final run whose tracking is pending (the worker's body); None when there was nothing to do."""
    store = RecordStore(data_dir)
    run_dir = store.run_dir(run_id)
    try:
        with _held(run_dir / LOCK_FILE, wait=True):
            record = store.update_run(run_id, lambda r: None)  # the current record, if it still exists
            if record is None or not record.is_final or record.tracking.status is not TrackingStatus.PENDING:
                return None
            began = time.perf_counter()
            tracking = _track(record, run_dir, data_dir)
            seconds = round(time.perf_counter() - began, 3)

            def finish(current: RunRecord) -> None:
                current.tracking = tracking
                current.timings["tracking_background_s"] = seconds  # not in the wall time
                if tracking.mlflow_url:
                    current.links["mlflow"] = tracking.mlflow_url

            store.update_run(run_id, finish)
            return tracking
    except FileNotFoundError:  # the run was deleted meanwhile
        return None
    finally:
        store.close()


def _track(record: RunRecord, run_dir: Path, data_dir: Path) -> Tracking:
    try:
        job = json.loads((run_dir / JOB_FILE).read_text())
        from jupyter_ext.tracking.mlflow import track_record

        return track_record(record, job, data_dir=data_dir, status=record.status)
    except Exception as exc:  # MLflow down, disk full, job file lost: the record says why
        return Tracking(status=TrackingStatus.FAILED, error=f"{type(exc).__name__}: {exc}")


def resume_pending(store: RecordStore) -> list[str]:
    """Start a worker for every recent final run whose tracking is pending and held by no worker."""
    resumed = []
    for run_id in store.pending_tracking(since=time.time() - RESUME_WITHIN_S):
        try:
            with _held(store.run_dir(run_id) / LOCK_FILE, wait=False):
                pass
        except (BlockingIOError, FileNotFoundError):
            continue  # a worker holds it, or the run's directory is gone
        start_worker(store.data_dir, run_id)
        resumed.append(run_id)
    return resumed


@contextlib.contextmanager
def _held(path: Path, *, wait: bool) -> Iterator[None]:
    """An exclusive lock on ``path`` (released by the kernel if the holder dies)."""
    if not path.parent.is_dir():
        raise FileNotFoundError(path.parent)
    with open_private(path, "ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        yield


def main(argv: list[str] | None = None) -> int:
    from jupyter_ext.startup import defer_iri_grammars

    defer_iri_grammars()
    data_dir, run_id = argv if argv is not None else sys.argv[1:]
    tracking = track_pending(Path(data_dir), run_id)
    if tracking is not None and tracking.status is TrackingStatus.FAILED:
        print(f"cellpipe: MLflow tracking of run {run_id} failed: {tracking.error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
