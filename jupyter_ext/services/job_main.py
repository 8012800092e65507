"""What a cellpipe Job's container runs: ``python -m jupyter_ext.services.job_main``.

    python -m jupyter_ext.services.job_main --store s3://bucket/cellpipe --snapshot <id> --run-id <id> \\
        [-p NAME=<JSON> ...] [--workdir DIR]

1. Restore the snapshot from the store into ``<workdir>/project``: the pod reads the notebook and its
   data from the store, never from the user's home volume.
2. A notebook with ``step:`` tags runs as a pipeline here, steps one after another, through the same
   :class:`~jupyter_ext.targets.local.runner.LocalRunner` as ``cellpipe run`` (step cache in the
   workdir; MLflow tracking only when ``MLFLOW_TRACKING_URI`` is set). A notebook without steps runs
   whole with papermill, the parameters injected after its ``parameters`` cell.
3. Write the executed notebook(s) and the run record to ``<store>/runs/<run id>/``
   (see :mod:`jupyter_ext.records.remote`); a ``running`` record is written first, so a run that never
   reports back is visible.

Parameters are JSON values (``-p alpha=0.5 -p label="\\"x\\""``), checked against the notebook's
parameter types. The run id defaults to ``$CELLPIPE_RUN_ID`` (a CronJob sets it to the Job's name).
Exit status: 0 succeeded, 1 failed (the user's code, or a one-line error such as a missing snapshot).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_ext.errors import CellpipeError, ParameterError
from jupyter_ext.records.models import RunStatus, StepStatus, TrackingStatus, wall_time_s
from jupyter_ext.records.remote import RUNS_PREFIX, check_run_id, put_run_file, put_run_record

PROG = "cellpipe-pod"
RUN_ID_ENV = "CELLPIPE_RUN_ID"
WORK_DIR_ENV = "CELLPIPE_WORK_DIR"


@dataclass
class PodRequest:
    store: str
    snapshot: str
    run_id: str
    overrides: dict[str, Any] = field(default_factory=dict)
    workdir: Path | None = None


# -- arguments ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--store", required=True, metavar="URL", help="snapshot store URL (s3://, gs://, ...)"
    )
    parser.add_argument("--snapshot", required=True, metavar="ID", help="snapshot id (or unique prefix)")
    parser.add_argument("--run-id", metavar="ID", help=f"run id (default: ${RUN_ID_ENV}, else generated)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=JSON",
                        help="parameter value as JSON (repeatable)")  # fmt: skip
    parser.add_argument("--workdir", metavar="DIR", help=f"scratch directory (default: ${WORK_DIR_ENV})")
    return parser


def parse_parameter_args(items: list[str]) -> dict[str, Any]:
    """``["alpha=0.5", 'label="x"']`` -> ``{"alpha": 0.5, "label": "x"}``; values are JSON, never code."""
    values: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"'{item}' is not NAME=VALUE", field="-p", hint="e.g. -p alpha=0.5")
        try:
            values[name.strip()] = json.loads(text)
        except ValueError:
            raise ParameterError(
                f"value {text!r} is not JSON",
                field=f"parameter '{name.strip()}' (-p)",
                hint='Strings need JSON quotes, e.g. -p label="\\"run\\""',
            ) from None
    return values


def request_from_args(args: argparse.Namespace) -> PodRequest:
    run_id = args.run_id or os.environ.get(RUN_ID_ENV)
    if not run_id:
        from jupyter_ext.records.models import new_run_id

        run_id = new_run_id()
        print(f"{PROG}: no --run-id or ${RUN_ID_ENV}; using {run_id}", file=sys.stderr)
    workdir = args.workdir or os.environ.get(WORK_DIR_ENV)
    return PodRequest(
        store=args.store,
        snapshot=args.snapshot,
        run_id=check_run_id(run_id),
        overrides=parse_parameter_args(args.param),
        workdir=Path(workdir) if workdir else None,
    )


# -- the run ------------------------------------------------------------------------------------------
def run_pod(request: PodRequest) -> dict[str, Any]:
    """Restore, run, report; returns the final run record (also written to the store)."""
    from jupyter_ext.snapshot import SnapshotStore

    store = SnapshotStore.open(request.store)
    workdir = Path(request.workdir or tempfile.mkdtemp(prefix="cellpipe-pod-"))
    record: dict[str, Any] = {
        "id": request.run_id,
        "target": "job",  # the target names of the run service: local, job, kfp
        "status": RunStatus.RUNNING.value,
        "store": store.url,
        "snapshot_id": request.snapshot,
        "host": socket.gethostname(),
        "created": time.time(),
    }
    put_run_record(store, record)
    try:
        outcome = _restore_and_run(store, request, workdir, record)
    except BaseException as exc:
        record.update(status=(RunStatus.FAILED if isinstance(exc, Exception) else RunStatus.CANCELLED).value)
        record["error"] = {
            "message": str(exc) if isinstance(exc, CellpipeError) else f"internal error: {exc!r}"
        }
        _finish(record)
        with contextlib.suppress(Exception):  # the original error matters more than a failed report
            put_run_record(store, record)
        raise
    record.update(outcome.record)
    record["files"] = [put_run_file(store, request.run_id, name, path.read_bytes())
                       for name, path in outcome.files.items() if path.is_file()]  # fmt: skip
    _finish(record)
    put_run_record(store, record)  # last: the record names only files that are there
    return record


@dataclass
class _Outcome:
    record: dict[str, Any]
    files: dict[str, Path]  # name under runs/<id>/ -> local file


def _restore_and_run(store: Any, request: PodRequest, workdir: Path, record: dict[str, Any]) -> _Outcome:
    from jupyter_ext.notebook.params import resolve
    from jupyter_ext.pipeline.load import load_pipeline
    from jupyter_ext.snapshot import materialize

    restored = materialize(store, request.snapshot, workdir / "project")
    pipeline = load_pipeline(restored.notebook)
    values = resolve(pipeline.parameters, request.overrides)
    record.update(
        snapshot_id=restored.id,
        notebook=restored.manifest["notebook"]["path"],
        pipeline=pipeline.name,
        parameters=values,
        mode="steps" if pipeline.steps else "notebook",
        started=time.time(),
    )
    put_run_record(store, record)
    _say(f"run {request.run_id}: snapshot {restored.id[:12]} restored ({restored.files} data files)")
    return _run(pipeline, restored, workdir, values)


def _run(pipeline: Any, restored: Any, workdir: Path, values: dict[str, Any]) -> _Outcome:
    """Through the run service, as ``cellpipe run`` does: steps one at a time (the pod's limits are sized for
    one step), or a plain notebook whole with papermill, its cell output in the pod log."""
    from jupyter_ext.services.runs import run_pipeline
    from jupyter_ext.targets.local.target import LocalOptions

    _say(f"running {len(pipeline.steps)} steps" if pipeline.steps else
         f"running the whole notebook with papermill, parameters {values}")  # fmt: skip
    record = run_pipeline(
        pipeline,
        workdir=restored.notebook.parent,
        data_dir=workdir / "cellpipe",
        parameters=values,
        options=LocalOptions(max_parallel=1, stream_output=True),
        track=bool(os.environ.get("MLFLOW_TRACKING_URI")),
        listener=_print_step_event,
        source="pod",
    )
    if record.tracking.status is TrackingStatus.FAILED:
        _say(f"MLflow tracking failed: {record.tracking.error}")
    if pipeline.is_plain:
        (step,) = record.steps
        files = {"notebook.ipynb": Path(step.notebook)} if step.notebook else {}
        if step.error and not record.error:
            record.error = step.error
    else:
        files = {f"steps/{s.name}.ipynb": Path(s.notebook) for s in record.steps if s.notebook}
    data = record.to_dict()
    keep = ("status", "steps", "metrics", "error", "tracking", "timings", "notebook_sha256")
    return _Outcome({k: data[k] for k in keep if k in data}, files)


def _finish(record: dict[str, Any]) -> None:
    record["finished"] = time.time()
    record["duration_s"] = wall_time_s(record["created"], record["finished"])  # as RunRecord.end sets it


def _print_step_event(event: str, step: str, record: dict[str, Any]) -> None:
    if step:
        _say(f"step {step}: {event}")


def _say(text: str) -> None:
    print(f"{PROG}: {text}", flush=True)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Deleting the Job sends SIGTERM: stop like Ctrl-C so the record says "cancelled" and is written.
    previous = None
    with contextlib.suppress(ValueError):  # only the main thread may install handlers
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        record = run_pod(request_from_args(args))
    except CellpipeError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: cancelled", file=sys.stderr)
        return 130
    except Exception as exc:
        traceback.print_exc()
        print(f"{PROG}: internal error: {exc!r}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    where = f"{record['store'].rstrip('/')}/{RUNS_PREFIX}/{record['id']}/"
    if record["status"] == RunStatus.SUCCEEDED:
        _say(f"run {record['id']} succeeded; results in {where}")
        return 0
    message = (record.get("error") or {}).get("message") or _failed_steps(record)
    print(
        f"{PROG}: error: run {record['id']} {record['status']}: {message}; results in {where}",
        file=sys.stderr,
    )
    return 1


def _failed_steps(record: dict[str, Any]) -> str:
    for info in record.get("steps") or []:
        if info.get("status") == StepStatus.FAILED:
            error = info.get("error") or {}
            cell = f" at cell {error['cell']}" if error.get("cell") else ""
            return f"step '{info['name']}' failed{cell}: {error.get('message', 'see its notebook')}"
    return "see the run record"


if __name__ == "__main__":
    sys.exit(main())
