"""``cellpipe schedule``: run a notebook on a cron schedule, here (local) or on a cluster (job, kfp)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from jupyter_ext.cli._cluster import add_cluster_options, add_kfp_options, add_pod_options
from jupyter_ext.cli._warnings import print_notes
from jupyter_ext.cli.runs import add_data_dir_option
from jupyter_ext.errors import CellpipeError

HELP = """\
Run a notebook on a cron schedule. Every fire takes a fresh snapshot of the notebook and its data and is
an ordinary run: a run record (`cellpipe runs`), MLflow tracking, lineage back to the schedule.
Scheduling the same notebook under the same --name again replaces that schedule (no second one).
The target names are the same as in `cellpipe submit` and `export`.

targets:
  local   fires on this machine, from the Jupyter server's scheduler or `cellpipe scheduler`. It stops
          when they stop: a culled or stopped Jupyter server fires nothing (missed times follow
          --catch-up when it is back). Runs go to this project's data directory.
  job     a Kubernetes CronJob: keeps firing when the Jupyter server is culled. Needs --store (a bucket
          the pods can read) and an image; see docs/kubernetes.md.
  kfp     a Kubeflow Pipelines recurring run (--host): keeps firing when the Jupyter server is culled.
          KFP has no time zone setting: write the cron in UTC. See docs/kfp.md.

Cron has 5 fields: minute hour day-of-month month day-of-week (or @hourly, @daily, @weekly, ...), read
in --timezone (default UTC). The cron and time zone are checked before anything else: no credentials are
loaded and no cluster is contacted for a schedule that cannot work.

examples:
  cellpipe schedule train.ipynb --cron "0 3 * * *"                       # daily 03:00 UTC, here
  cellpipe schedule train.ipynb --cron "30 6 * * MON-FRI" --timezone Europe/Berlin -p epochs=5
  cellpipe schedule report.ipynb --cron "@hourly" --catch-up once         # after downtime: run once
  cellpipe schedule train.ipynb --cron "0 3 * * *" --target job --store s3://ml/cellpipe --image REF
  cellpipe schedule train.ipynb --cron "0 3 * * *" --target kfp --host http://localhost:8080
  cellpipe scheduler                                   # fire local schedules without a Jupyter server
  cellpipe schedules list                              # then: show, pause, resume, delete
"""

CATCH_UP_HELP = (
    "fire times missed while no scheduler ran (local target): skip them (default) or run once to catch up; "
    "either way `cellpipe schedules show` lists them"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "schedule", help="run a notebook on a cron schedule (local, job, kfp)", description=HELP,
    )  # fmt: skip
    parser.add_argument(
        "notebook", metavar="NOTEBOOK", help="the .ipynb file (tagged, or plain for papermill)"
    )
    parser.add_argument("--cron", metavar="EXPR", help='when, e.g. "0 3 * * *" (daily at 03:00)')
    parser.add_argument(
        "--timezone", default="UTC", metavar="TZ", help="IANA time zone of --cron (default UTC)"
    )
    parser.add_argument("--target", default="local", metavar="TARGET", help="local (default), job or kfp")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="parameter for every fire (type-checked against its default; repeatable)")  # fmt: skip
    parser.add_argument("--catch-up", default="skip", metavar="POLICY", help=CATCH_UP_HELP)
    parser.add_argument(
        "--paused", action="store_true", help="create it paused (`cellpipe schedules resume`)"
    )
    parser.add_argument("--json", action="store_true", help="print the schedule as JSON")
    # Re-scheduling a notebook under the same name always replaces it now; the old flag is accepted.
    parser.add_argument("--replace", action="store_true", help=argparse.SUPPRESS)
    add_data_dir_option(parser)
    add_pod_options(parser)
    add_cluster_options(parser)
    add_kfp_options(parser)
    parser.set_defaults(handler=run)


def service_for(args: argparse.Namespace, notebook: str | None = None) -> Any:
    from jupyter_ext.services.schedules import ScheduleService
    from jupyter_ext.snapshot.project import data_dir

    return ScheduleService(args.data_dir or data_dir(notebook))


# Cluster settings and the option that sets each (for refusing them on the local target).
_CLUSTER_OPTIONS = {
    "store": "--store", "image": "--image", "namespace": "--namespace", "env": "--env", "secrets": "--secret",
    "service_account": "--service-account", "active_deadline_seconds": "--deadline", "backoff_limit": "--retries",
    "ttl_seconds_after_finished": "--ttl", "gpu_node_selector": "--gpu-node-selector",
    "kubeconfig": "--kubeconfig", "context": "--context", "host": "--host", "token": "--token",
    "token_file": "--token-file", "experiment": "--experiment",
}  # fmt: skip


def given_cluster_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The cluster settings given on the command line (defaults left out), secrets as [secret, key, env].

    The schedule's name is its own setting (``--name``), not one of these."""
    from dataclasses import fields

    from jupyter_ext.cli._cluster import request_from_args

    options = request_from_args(args).options
    given: dict[str, Any] = {}
    for spec in fields(options):
        value = getattr(options, spec.name)
        if spec.name in _CLUSTER_OPTIONS and value != spec.default and value not in (None, [], {}):
            given[spec.name] = value
    if "secrets" in given:
        given["secrets"] = [[s.name, s.key, s.env] for s in given["secrets"]]
    return given


def run(args: argparse.Namespace) -> int:
    from jupyter_ext.services.cron import check_cron, check_timezone
    from jupyter_ext.services.schedules import (
        CATCH_UP_POLICIES,
        ScheduleRequest,
        check_choice,
        check_name,
        check_target,
        check_target_timezone,
    )

    if args.notebook in ("list", "show", "pause", "resume", "delete") and not Path(args.notebook).is_file():
        raise CellpipeError(
            f"'{args.notebook}' is not a notebook",
            field="NOTEBOOK",
            hint=f"Schedules are managed with `cellpipe schedules {args.notebook}`",
        )
    if not args.cron:
        raise CellpipeError(
            "no schedule", field="--cron", hint='Pass --cron EXPR, e.g. --cron "0 3 * * *" (daily at 03:00)'
        )
    # Everything the user typed is checked before any notebook, credentials or cluster is touched.
    cron = check_cron(args.cron, field="--cron")
    timezone = check_timezone(args.timezone, field="--timezone")
    target = check_target(args.target, "--target")
    check_target_timezone(target, timezone, "--timezone")
    catch_up = check_choice(args.catch_up, CATCH_UP_POLICIES, "--catch-up")
    name = check_name(args.name, "--name") if args.name is not None else None
    options = given_cluster_settings(args)
    if target == "local" and options:
        option = _CLUSTER_OPTIONS[next(iter(options))]
        raise CellpipeError(
            "applies to cluster schedules only", field=option, hint="Drop it, or use --target job or kfp"
        )
    request = ScheduleRequest(
        notebook=Path(args.notebook).resolve(),
        cron=cron,
        timezone=timezone,
        parameters=list(args.param),
        target=target,
        target_options=options,
        enabled=not args.paused,
        catch_up=catch_up,
        name=name,
    )
    service = service_for(args, args.notebook)
    schedule = service.create(request)
    view = service.view(schedule)
    if args.json:
        import json

        print(json.dumps(view, indent=2, default=str))
        return 0
    print_created(view, replaced=schedule.created != schedule.updated)
    return 0


def print_created(view: dict[str, Any], *, replaced: bool) -> None:
    print(
        f"schedule {view['name']} ({view['id']}) {'replaced' if replaced else 'created'}: {view['notebook']}"
    )
    print_schedule(view)


def print_schedule(view: dict[str, Any]) -> None:
    rows = [
        ("when", f"{view['description']}   [{view['cron']}]"),
        ("next", ", ".join(view["next_fire_times"][:3]) or "- (paused)"),
        ("target", view["target"]),
        ("fires", view["fires_from"]),
    ]
    if view["parameters"]:
        rows.append(("params", " ".join(f"{k}={v!r}" for k, v in view["parameters"].items())))
    if view["target"] == "local":
        rows.append(("catch-up", f"{view['catch_up']}: " + ("missed fire times are listed, not run"
                                                                if view["catch_up"] == "skip"
                                                                else "after downtime, one run catches up")))  # fmt: skip
    cluster = view.get("cluster") or {}
    if cluster.get("kind") == "cronjob":
        rows.append(("cronjob", f"{cluster['name']} in namespace {cluster['namespace']}"))
        rows.append(("snapshot", f"{cluster['snapshot_id'][:12]} in {cluster['store']} (each Job runs it)"))
    elif cluster.get("kind") == "kfp-recurring-run":
        rows.append(
            ("kfp", f"recurring run {cluster['recurring_run_id']}  {cluster.get('url') or ''}".rstrip())
        )
        rows.append(("snapshot", f"{cluster['snapshot_id'][:12]} in {cluster['store']} (each run uses it)"))
    for label, text in rows:
        print(f"  {label:<9} {text}")
    if view["target"] == "local":
        print("  note: local schedules fire only while the Jupyter server or `cellpipe scheduler` runs")
    print_notes(list(cluster.get("notes") or []))
