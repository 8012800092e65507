"""``cellpipe submit``: run a notebook once on a cluster, recorded like any run, without waiting for it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jupyter_ext.cli._cluster import (
    add_cluster_options,
    add_kfp_options,
    add_notebook_options,
    add_pod_options,
)
from jupyter_ext.cli._warnings import print_notes

HELP = """\
Run a notebook once on a cluster and return: the run is recorded like a local one (`cellpipe runs`,
`cellpipe runs show RUN_ID`, JupyterLab's runs view) and belongs to the cluster, not to this command:
whoever reads its record later sees it running, then its final status and steps, whether or not anyone
waited. cellpipe snapshots the notebook and the data it uses into a store the cluster can reach (--store
or $CELLPIPE_STORE, e.g. s3://bucket/cellpipe), then starts it there:
  a notebook with step: tags runs as a pipeline; a plain notebook runs whole with papermill (-p values go
  after its 'parameters' cell; Kubernetes Job only).
Everything that can be checked before the upload (notebook, parameters, store, image, names, resources,
the KFP host) is checked first. `cellpipe run --target job|kfp` is the same run, followed to its end.

targets:
  job     a Kubernetes Job (batch/v1), created with your kubeconfig's credentials. Its pod writes the
          executed notebooks and its record to <store>/runs/<job name>/. The pod gets the largest resource
          limits of the steps (a GPU if any step asks for one), their secret: tags as Secret references,
          and the notebook's PVCs.
  kfp     a Kubeflow Pipelines run (--host): the package, compiled for the snapshot, is uploaded as a new
          version of the pipeline named like the notebook's, one pod per step; --name names the run.
          `cellpipe kfp status|logs KFP_RUN_ID` shows its pods and logs. See docs/kfp.md.

--wait follows the run here until it ends (exit 0 when it succeeded); Ctrl-C stops waiting, not the run.
`cellpipe runs cancel RUN_ID` stops it from anywhere (the Job is deleted, the KFP run terminated).

examples:
  export CELLPIPE_STORE=s3://ml-bucket/cellpipe
  cellpipe submit train.ipynb --image ghcr.io/acme/cellpipe-runtime:1.0
  cellpipe submit train.ipynb -p epochs=20 -n team-a --wait
  cellpipe submit report.ipynb --secret s3-creds:access-key:AWS_ACCESS_KEY_ID \\
      --secret s3-creds:secret-key:AWS_SECRET_ACCESS_KEY --env MLFLOW_TRACKING_URI=http://mlflow:5000
  cellpipe submit train.ipynb --target kfp --host http://localhost:8080 --experiment nightly --wait
  cellpipe runs show RUN_ID        (from any terminal, any time: asks the cluster while it runs)
See docs/kubernetes.md for the image, the store and its credentials.
"""
CLUSTER_TARGETS = ("job", "kfp")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit", help="run a notebook once on Kubernetes (a Job) or Kubeflow Pipelines", description=HELP,
    )  # fmt: skip
    add_notebook_options(parser)
    parser.add_argument("--target", default="job", metavar="TARGET", help="where to run: job (default), kfp")
    parser.add_argument("--wait", action="store_true",
                        help="follow the run until it finishes; Ctrl-C stops waiting, not the run")  # fmt: skip
    parser.add_argument("--wait-timeout", type=float, default=6 * 3600, metavar="SECONDS",
                        help="give up waiting after this long (default 6 hours)")  # fmt: skip
    parser.add_argument("--poll", type=float, default=5.0, metavar="SECONDS",
                        help="how often --wait checks the run (default 5)")  # fmt: skip
    parser.add_argument("--no-track", action="store_true", help="do not log the run to MLflow when it ends")
    add_pod_options(parser)
    add_cluster_options(parser)
    add_kfp_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from jupyter_ext.cli._warnings import print_warnings
    from jupyter_ext.cli.run import cluster_options
    from jupyter_ext.errors import TargetError
    from jupyter_ext.services.runs import RunRequest, RunService
    from jupyter_ext.snapshot.project import data_dir

    if args.target not in CLUSTER_TARGETS:
        raise TargetError(f"unknown target '{args.target}'", field="--target",
                          hint=f"Use one of: {', '.join(CLUSTER_TARGETS)}")  # fmt: skip
    notebook = Path(args.notebook).absolute()
    request = RunRequest(notebook=notebook, parameters=args.param, target=args.target,
                         target_options=cluster_options(args), track=not args.no_track)  # fmt: skip
    service = RunService(data_dir(notebook))
    prepared = service.prepare(request)  # every check, then the snapshot upload
    print_warnings(prepared.pipeline)
    record = service.create_record(prepared)
    record = asyncio.run(service.execute(record, prepared, follow=False))
    if not record.on_cluster:  # it could not be started: the record says why
        print(f"cellpipe: error: {failure_text(record)}", file=sys.stderr)
        return 1
    print_submitted(record, prepared.snapshot_store or "", prepared.notes)
    if not args.wait:
        return 0
    return wait(service, record, timeout=args.wait_timeout, poll=args.poll)


def failure_text(record: Any) -> str:
    error = record.error or {}
    return str(error.get("text") or error.get("message") or f"run {record.id} {record.status.value}")


def where(record: Any) -> str:
    """The cluster object, as its owner's tools name it."""
    handle = record.handle
    if record.target == "kfp":
        return f"KFP run {handle['run_id']}"
    return f"job {handle['name']}"


def print_submitted(record: Any, store: str, notes: list[str]) -> None:
    handle = record.handle
    if record.target == "kfp":
        kfp, kfp_id = record.extra.get("kfp", {}), handle["run_id"]
        where_ns = f" in namespace {handle['namespace']}" if handle.get("namespace") else ""
        print(f"KFP run {kfp_id} created{where_ns} (pipeline '{kfp.get('pipeline_name')}', version "
              f"'{kfp.get('version_name')}', experiment '{kfp.get('experiment')}')")  # fmt: skip
        print(
            f"  run id    {record.id} (cellpipe runs show {record.id}; pods are labelled cellpipe.io/run-id)"
        )
        print(f"  url       {record.links.get('kfp')}")
        print(f"  snapshot  {str(record.snapshot_id)[:12]} in {store}")
        print(f"  image     {kfp.get('image')}")
        print(f"  status    cellpipe runs show {record.id}   (steps: cellpipe kfp status {kfp_id})")
        print(f"  logs      cellpipe kfp logs {kfp_id}")
    else:
        ns, name = handle["namespace"], handle["name"]
        print(f"job {name} created in namespace {ns}")
        print(f"  run id    {record.id} (cellpipe runs show {record.id})")
        print(f"  snapshot  {str(record.snapshot_id)[:12]} in {store}")
        print(f"  results   {handle['store'].rstrip('/')}/runs/{name}/")
        print(
            f"  status    cellpipe runs show {record.id}   (kubectl get job -n {ns} -l cellpipe.io/run-id={name})"
        )
        print(f"  logs      kubectl logs -n {ns} job/{name} -f")
    print(f"  cancel    cellpipe runs cancel {record.id}")
    print_notes(notes)


def wait(service: Any, record: Any, *, timeout: float, poll: float) -> int:
    """Follow the run, printing its and its steps' changes; Ctrl-C or the timeout stops waiting, not the run."""
    import asyncio

    from jupyter_ext.records.models import RunStatus

    changes = _Changes(where(record))
    try:
        asyncio.run(asyncio.wait_for(service.follow(record, changes, poll=poll), timeout))
    except KeyboardInterrupt:
        print(f"stopped waiting; {where(record)} keeps running (cellpipe runs cancel {record.id} stops it)",
              file=sys.stderr)  # fmt: skip
        return 130
    except TimeoutError:
        print(f"cellpipe: error: {where(record)} is still {record.status.value} after {timeout:.0f}s; it keeps "
              f"running (cellpipe runs show {record.id})", file=sys.stderr)  # fmt: skip
        return 1
    if record.status is RunStatus.SUCCEEDED:
        print(f"{where(record)} succeeded (run {record.id})")
        return 0
    see = f"cellpipe kfp logs {record.handle['run_id']}" if record.target == "kfp" else (
        f"kubectl logs -n {record.handle['namespace']} job/{record.handle['name']}")  # fmt: skip
    print(f"cellpipe: error: run {record.id} {record.status.value}: {failure_text(record).rstrip('.')}. See {see}",
          file=sys.stderr)  # fmt: skip
    return 130 if record.status is RunStatus.CANCELLED else 1


class _Changes:
    """The follow listener: prints the run's status and each step's when they change."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status: str | None = None
        self.steps: dict[str, tuple[str, Any]] = {}

    def __call__(self, event: str, step: str, record: Any) -> None:
        if record.status.value != self.status:
            self.status = record.status.value
            print(f"{self.name}: {self.status}", file=sys.stderr, flush=True)
        for info in record.steps:
            seen = (info.status.value, (info.error or {}).get("message"))
            if info.status.value != "pending" and self.steps.get(info.name) != seen:
                self.steps[info.name] = seen
                error = f" ({seen[1]})" if seen[1] else ""
                print(f"  step {info.name}: {seen[0]}{error}", file=sys.stderr, flush=True)
        if record.refresh_error and event == "progress":
            print(f"  note: cannot ask the cluster now: {record.refresh_error}", file=sys.stderr, flush=True)
