"""``cellpipe schedule``: run a notebook on a cron schedule (a Kubernetes CronJob); list and delete them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from jupyter_ext.cli._cluster import (
    add_cluster_options,
    add_kfp_options,
    add_pod_options,
    print_notes,
    request_from_args,
)
from jupyter_ext.errors import TargetError

HELP = """\
Run a notebook on a schedule. cellpipe snapshots the notebook and its data into the store (--store or
$CELLPIPE_STORE) and creates a Kubernetes CronJob; every scheduled run restores that same snapshot,
so later edits do not change what runs until you schedule again (--replace updates the CronJob).
Each run's id is the name of the Job the CronJob starts; results go to <store>/runs/<run id>/.

  cellpipe schedule NOTEBOOK --cron EXPR [options]   create (or with --replace, update) a CronJob
  cellpipe schedule list [--all]                     your scheduled notebooks (--all: everyone's)
  cellpipe schedule delete NAME                      delete one, with the Jobs it started

Cron has 5 fields: minute hour day-of-month month day-of-week, in the cluster's time zone (usually
UTC) unless --timezone.

targets:
  cronjob   a Kubernetes CronJob (batch/v1)
  kfp       a Kubeflow Pipelines recurring run (--host) of a new version of the pipeline; it lives in KFP,
            so it survives a culled notebook server. --name names it; list, delete, --timezone and
            --replace are for CronJobs: manage recurring runs in the KFP UI. See docs/kfp.md.

examples:
  cellpipe schedule train.ipynb --cron "0 3 * * *" --image ghcr.io/acme/cellpipe-runtime:1.0
  cellpipe schedule train.ipynb --cron "30 6 * * MON-FRI" --timezone Europe/Berlin --name weekday-train
  cellpipe schedule train.ipynb --cron "0 3 * * *" --target kfp --host http://localhost:8080
  cellpipe schedule list -n team-a
  cellpipe schedule delete weekday-train
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "schedule", help="run a notebook on a cron schedule (CronJob, KFP); list, delete", description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("what", metavar="NOTEBOOK|list|delete", help="a notebook to schedule, or an action")
    parser.add_argument("cronjob", nargs="?", metavar="NAME", help="the CronJob to delete")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter for every scheduled run (repeatable)")  # fmt: skip
    parser.add_argument("--cron", metavar="EXPR", help='schedule, e.g. "0 3 * * *" (daily at 03:00)')
    parser.add_argument("--timezone", metavar="TZ", help="IANA time zone for --cron, e.g. Europe/Berlin")
    parser.add_argument("--target", default="cronjob", metavar="TARGET", help="cronjob (default), kfp")
    parser.add_argument("--replace", action="store_true", help="update a CronJob of that name if it exists")
    parser.add_argument("--all", action="store_true", help="list: every cellpipe CronJob, not only yours")
    add_pod_options(parser)
    add_cluster_options(parser)
    add_kfp_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # "list"/"delete" are actions unless a file of that name is what the user means.
    if args.what == "list" and not Path("list").is_file():
        return list_schedules(args)
    if args.what == "delete" and not Path("delete").is_file():
        return delete_schedule(args)
    return create_schedule(args)


def create_schedule(args: argparse.Namespace) -> int:
    from jupyter_ext.services.kfp_cluster import KFP_RECURRING_RUN
    from jupyter_ext.services.submission import SCHEDULE_TARGETS, pick

    schedule = pick(SCHEDULE_TARGETS, args.target, "--target")
    if args.cronjob:
        raise TargetError(f"unexpected argument '{args.cronjob}'", hint="Give the name with --name NAME")
    if not args.cron:
        raise TargetError(
            "no schedule", field="--cron", hint='Pass --cron EXPR, e.g. --cron "0 3 * * *" (daily at 03:00)'
        )
    args.notebook = args.what
    created = schedule(request_from_args(args), cron=args.cron, timezone=args.timezone, replace=args.replace)
    if created.kind == KFP_RECURRING_RUN:
        from jupyter_ext.cli.kfp import print_recurring_run

        print_recurring_run(created)
        return 0
    ns, name = created.namespace, created.name
    summary = created.summary
    tz = f" ({summary['timezone']})" if summary.get("timezone") else ""
    print(f"cronjob {name} {'created or updated' if args.replace else 'created'} in namespace {ns}")
    print(f"  schedule  {summary.get('schedule')}{tz}")
    print(f"  snapshot  {created.snapshot_id[:12]} in {created.store} (every run uses it)")
    print(f"  image     {created.image}")
    print(f"  results   {created.store.rstrip('/')}/runs/<job name>/")
    print(f"  runs      kubectl get jobs -n {ns} -l cellpipe.io/schedule={name}")
    print(f"  run now   kubectl create job -n {ns} --from=cronjob/{name} {name}-manual-1")
    print_notes(created.notes)
    return 0


def _target(args: argparse.Namespace) -> Any:
    from jupyter_ext.targets.k8s.client import KubernetesTarget

    return KubernetesTarget(namespace=args.namespace, kubeconfig=args.kubeconfig, context=args.context)


def list_schedules(args: argparse.Namespace) -> int:
    from jupyter_ext.services.cluster import default_owner

    with _target(args) as target:
        cronjobs = target.list_cronjobs(owner=None if args.all else default_owner())
        namespace = target.namespace
    if not cronjobs:
        print(
            f"no scheduled notebooks in namespace {namespace}"
            + ("" if args.all else " (yours; --all for all)")
        )
        return 0
    rows = [("NAME", "SCHEDULE", "SUSPENDED", "LAST RUN", "PIPELINE", "OWNER")]
    for c in cronjobs:
        labels = c["labels"]
        schedule = c["schedule"] + (f" ({c['timezone']})" if c.get("timezone") else "")
        rows.append((c["name"], schedule, "yes" if c["suspend"] else "no", c.get("last_schedule_time") or "-",
                     labels.get("cellpipe.io/pipeline", "-"), labels.get("cellpipe.io/owner", "-")))  # fmt: skip
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def delete_schedule(args: argparse.Namespace) -> int:
    if not args.cronjob:
        raise TargetError(
            "which CronJob?", field="delete", hint="cellpipe schedule delete NAME (see `schedule list`)"
        )
    with _target(args) as target:
        # Only CronJobs cellpipe made: a typo must not delete someone else's CronJob.
        ours = {c["name"] for c in target.list_cronjobs()}
        if args.cronjob not in ours:
            raise TargetError(
                f"no cellpipe CronJob '{args.cronjob}' in namespace '{target.namespace}'",
                hint="`cellpipe schedule list --all` shows them; check --namespace",
            )
        target.delete_cronjob(args.cronjob)
        print(f"cronjob {args.cronjob} deleted from namespace {target.namespace}, with the Jobs it started")
    return 0
