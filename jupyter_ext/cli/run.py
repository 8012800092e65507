"""``cellpipe run``: run a tagged notebook as a pipeline on this machine."""

from __future__ import annotations

import argparse
import json

HELP = """\
Run a tagged notebook as a pipeline here, no cluster needed. Each step runs in a fresh kernel;
variables flow between steps as files (Parquet for DataFrames, .npy for arrays, joblib for models,
cloudpickle otherwise). Independent steps run in parallel. Steps whose code, parameters and inputs
are unchanged are reused from the step cache. A plain notebook (no step: tags, a papermill `parameters`
cell or none) runs whole with papermill, as the run's one step; -p works the same way.

Every run first snapshots the notebook and the data it references, then writes a run record
(`cellpipe runs show ID`), keeps each executed step notebook, and is tracked in MLflow
(default: sqlite in .cellpipe/mlflow.db; `mlflow ui --backend-store-uri sqlite:///.cellpipe/mlflow.db`).

examples:
  cellpipe run train.ipynb
  cellpipe run train.ipynb -p learning_rate=0.05 -p epochs=20
  cellpipe run train.ipynb --no-cache --max-parallel 1
  cellpipe run report.ipynb -p region=emea        (a plain papermill notebook)
  cellpipe run train.ipynb --target job --store s3://bucket/cellpipe --image ghcr.io/me/runtime:1
"""


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-parallel", type=int, default=0, metavar="N",
                        help="steps running at once (default: number of cores)")  # fmt: skip
    parser.add_argument("--no-cache", action="store_true", help="execute every step, ignoring the step cache")
    parser.add_argument("--no-track", action="store_true", help="do not log the run to MLflow")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="fail a step whose cell runs longer than this")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the run record as JSON at the end")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="run a notebook as a pipeline (locally, or followed on a cluster)", description=HELP,
    )  # fmt: skip
    parser.add_argument("notebook", help="path to the .ipynb file (tagged, or plain for papermill)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter (type-checked against its default)")  # fmt: skip
    add_run_options(parser)
    parser.add_argument("--target", choices=("local", "job", "kfp"), default="local",
                        help="where: this machine (default), a Kubernetes Job, or Kubeflow Pipelines; the run is "
                             "followed to its end here, Ctrl-C cancels it (`cellpipe submit` starts the same run "
                             "and returns)")  # fmt: skip
    from jupyter_ext.cli._cluster import add_cluster_options, add_kfp_options, add_pod_options

    add_pod_options(parser)
    add_cluster_options(parser)
    add_kfp_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from jupyter_ext.services.runs import RunRequest, RunService
    from jupyter_ext.snapshot.project import data_dir

    notebook = Path(args.notebook).absolute()
    request = RunRequest(
        notebook=notebook,
        parameters=args.param,
        target=args.target,
        target_options=local_options(args) if args.target == "local" else cluster_options(args),
        use_cache=not args.no_cache,
        track=not args.no_track,
    )
    return launch(RunService(data_dir(notebook)), request, as_json=args.json)


def cluster_options(args: argparse.Namespace):
    """JobOptions or KfpOptions from the same options `cellpipe submit` takes."""
    from jupyter_ext.cli._cluster import request_from_args

    return request_from_args(args).options


def local_options(args: argparse.Namespace):
    from jupyter_ext.targets.local.target import LocalOptions

    return LocalOptions(max_parallel=args.max_parallel, step_timeout=args.timeout)


def launch(service, request, *, as_json: bool = False) -> int:
    """Prepare (analyse, snapshot), then run in the foreground with a live view; print the summary."""
    from rich.console import Console

    from jupyter_ext.cli._warnings import print_warnings
    from jupyter_ext.cli.progress import LiveRun, print_summary, process_wall_s
    from jupyter_ext.records.models import RunStatus

    console = Console(stderr=as_json, highlight=False)
    with console.status("Analysing and snapshotting the notebook..."):
        prepared = service.prepare(request)
    pipeline, snap = prepared.pipeline, prepared.snapshot
    print_warnings(pipeline)  # tag typos, cells left out: the run goes on, but the user must know
    console.print(
        f"[bold]{pipeline.name}[/bold]: {len(pipeline.steps)} steps, parameters {prepared.parameters}"
    )
    if snap is not None:
        console.print(f"snapshot {snap.short_id}: {snap.files} data files, {snap.new_bytes} new bytes")
    record = service.create_record(prepared)
    view = LiveRun(console)
    try:
        with view.live:
            record = service.run_prepared(record, prepared, listener=lambda event, step, rec: view.event(rec))
    except KeyboardInterrupt:
        record = service.get(record.id)
    print_summary(console, record, wall_s=process_wall_s())
    if as_json:
        print(json.dumps(record.to_dict(), indent=2, default=str))
    return {RunStatus.SUCCEEDED: 0, RunStatus.CANCELLED: 130}.get(record.status, 1)
