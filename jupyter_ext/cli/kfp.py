"""``cellpipe kfp status|logs|cancel RUN_ID``: a Kubeflow Pipelines run, through the KFP API.

Also what ``schedule --target kfp`` prints.
"""

from __future__ import annotations

import argparse
from typing import Any

from jupyter_ext.cli._cluster import add_cluster_options, add_kfp_options
from jupyter_ext.cli._warnings import print_notes

HELP = """\
Look at or stop a run that `cellpipe submit --target kfp` started, through the KFP API. RUN_ID is KFP's
run id, which submit prints (cellpipe's own run id is for `cellpipe runs show|cancel`); the host and
credentials are the ones submit takes (--host or $CELLPIPE_KFP_HOST, ...).

  cellpipe kfp status RUN_ID              the run's state and each step's: times, pod, and for a
                                          failed step the cell and error
  cellpipe kfp logs RUN_ID [--task STEP]  the steps' logs (STEP as in the notebook, e.g. train_model)
  cellpipe kfp cancel RUN_ID              terminate it: KFP stops its pods

Step pods, their errors and logs are read from Kubernetes when you have cluster credentials (in a
notebook pod, or a kubeconfig for the cluster, as kubectl finds it); the KFP API does not report which
cell failed. Without them, logs come from the KFP API server's log route (--host http://localhost:8888
after kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888), or from the KFP UI's own log route
when --host is the UI.

examples:
  export CELLPIPE_KFP_HOST=https://kubeflow.example.com/pipeline
  cellpipe kfp status 0b6f1c6e-2d2a-4c1e-9a3f-1f1d9c2e7a10
  cellpipe kfp logs 0b6f1c6e-2d2a-4c1e-9a3f-1f1d9c2e7a10 --task train
  cellpipe kfp cancel 0b6f1c6e-2d2a-4c1e-9a3f-1f1d9c2e7a10 --host http://localhost:8080
See docs/kfp.md for credentials and namespaces.
"""
ACTIONS = ("status", "logs", "cancel")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "kfp", help="status, logs and cancel of a Kubeflow Pipelines run", description=HELP,
    )  # fmt: skip
    parser.add_argument("action", choices=ACTIONS, metavar="|".join(ACTIONS), help="what to do with the run")
    parser.add_argument("run_id", metavar="RUN_ID", help="KFP's run id (submit prints it)")
    parser.add_argument("--task", metavar="STEP", help="logs: only this step's")
    add_kfp_options(parser, experiment=False)
    add_cluster_options(parser)
    parser.set_defaults(handler=run)


def kubernetes(options: Any, client: Any) -> Any:
    """The user's cluster credentials for the run's pods (None without any); see follow.kubernetes_for."""
    from jupyter_ext.targets.kfp.follow import kubernetes_for

    return kubernetes_for(client, kubeconfig=getattr(options, "kubeconfig", None),
                          context=getattr(options, "context", None), namespace=getattr(options, "namespace", None))  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from jupyter_ext.services.kfp_cluster import connect_kfp
    from jupyter_ext.targets.kfp.submit import cancel_run, run_status, step_logs

    client = connect_kfp(args)
    if args.action == "status":
        print_status(run_status(client, args.run_id, kubernetes=kubernetes(args, client)))
    elif args.action == "logs":
        for log in step_logs(client, args.run_id, task=args.task, kubernetes=kubernetes(args, client)):
            print(f"==> step {log.step}: pod {log.pod} (from {log.source}) <==")
            print(log.text, end="" if log.text.endswith("\n") else "\n")
    else:
        cancel_run(client, args.run_id)
        print(f"KFP run {args.run_id}: cancel requested; KFP stops its pods")
    return 0


def _duration(task: Any) -> str:
    if task.duration_s is not None:
        return f"  {task.duration_s:.0f}s"
    return f"  since {task.started:%H:%M:%S}" if task.started and task.state == "RUNNING" else ""


def print_status(status: Any) -> None:
    title = f" ({status.display_name})" if status.display_name else ""
    print(f"KFP run {status.run_id}{title}: {status.outcome()}")
    started = {task.name for task in status.tasks}
    waiting = [name for name in status.steps if name not in started]
    width = max((len(name) for name in (*started, *waiting)), default=0)
    for task in status.tasks:
        pod = f"  pod {task.pod_name}" if task.pod_name else ""
        error = f"  error: {task.error}" if task.error else ""
        print(f"  {task.name.ljust(width)}  {task.state}{_duration(task)}{pod}{error}")
    for name in waiting:
        print(f"  {name.ljust(width)}  {'not run' if status.finished else 'not started'}")
    for note in status.notes:
        print(f"  note: {note}")


# -- what schedule prints ------------------------------------------------------------------------------
def _made(created: Any) -> str:
    summary = created.summary
    return (f"pipeline '{summary['pipeline_name']}', version '{summary['version_name']}', "
            f"experiment '{summary['experiment']}'")  # fmt: skip


def print_recurring_run(created: Any) -> None:
    where = f" in namespace {created.namespace}" if created.namespace else ""
    summary = created.summary
    print(f"KFP recurring run '{created.name}' created{where} ({_made(created)})")
    print(f"  url       {summary['url']}")
    print(f"  schedule  {summary['cron']} (KFP's cron, seconds first; scheduler's time zone, usually UTC)")
    print(f"  snapshot  {created.snapshot_id[:12]} in {created.store} (every run uses it)")
    print(f"  image     {created.image}")
    print("  stop      disable or delete it in the KFP UI")
    print_notes(created.notes)
