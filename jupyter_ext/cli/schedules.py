"""``cellpipe schedules list|show|pause|resume|delete``: the schedules of this project, local and cluster."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from jupyter_ext.cli.runs import add_data_dir_option
from jupyter_ext.cli.schedule import print_schedule, service_for

HELP = """\
The schedules made with `cellpipe schedule` (or in JupyterLab) for this project's data directory: local
ones, and the CronJobs and KFP recurring runs made from here. Pausing a local schedule stops its fires
until it is resumed (the paused time does not count as missed); pausing a cluster schedule suspends the
CronJob or disables the recurring run. Deleting removes the schedule and its cluster object; the runs it
made stay. ID is a schedule id, a unique prefix of one, or a schedule name.

  cellpipe schedules list [--notebook NB] [--json]
  cellpipe schedules show ID [--json]       times, missed fire times, recent runs, the cluster's view
  cellpipe schedules pause ID | resume ID | delete ID

Local schedules fire only while the Jupyter server or `cellpipe scheduler` runs; cluster ones (job, kfp)
keep firing when the Jupyter server is culled.
"""


def add_credential_options(parser: argparse.ArgumentParser) -> None:
    """Credentials for reaching a cluster schedule's CronJob or recurring run (never stored)."""
    group = parser.add_argument_group("cluster credentials (job and kfp schedules)")
    group.add_argument(
        "--kubeconfig", metavar="PATH", help="kubeconfig file (default: the one used to create it)"
    )
    group.add_argument("--context", metavar="NAME", help="kubeconfig context")
    group.add_argument("--token-file", metavar="PATH", help="file with a KFP bearer token")
    group.add_argument("--token", metavar="TOKEN", help="KFP bearer token (prefer --token-file)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "schedules", help="list, show, pause, resume, delete schedules", description=HELP,
    )  # fmt: skip
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="every schedule: target, when, next fire, state")
    listing.add_argument("--notebook", metavar="NB", help="only this notebook's")
    listing.add_argument("--json", action="store_true", help="as JSON")
    add_data_dir_option(listing)
    listing.set_defaults(handler=list_schedules)
    for name, text, handler in (
        ("show", "one schedule in full", show_schedule),
        ("pause", "stop firing until resumed", pause_schedule),
        ("resume", "fire again", resume_schedule),
        ("delete", "delete it (and its CronJob or recurring run); its runs stay", delete_schedule),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("id", metavar="ID", help="schedule id, unique prefix, or name")
        if name == "show":
            action.add_argument("--json", action="store_true", help="as JSON")
        add_data_dir_option(action)
        add_credential_options(action)
        action.set_defaults(handler=handler)
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)


def _credentials(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("kubeconfig", "context", "token_file", "token")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None)}


def _when(view: dict[str, Any]) -> str:
    return view["next_fire_times"][0] if view["next_fire_times"] else "-"


def list_schedules(args: argparse.Namespace) -> int:
    from pathlib import Path

    service = service_for(args)
    notebook = str(Path(args.notebook).resolve()) if args.notebook else None
    views = [service.view(s) for s in service.list(notebook)]
    if args.json:
        print(json.dumps({"schedules": views}, indent=2, default=str))
        return 0
    if not views:
        print(
            f"no schedules in {service.data_dir} (create one with `cellpipe schedule NOTEBOOK --cron EXPR`)"
        )
        return 0
    rows = [("ID", "NAME", "TARGET", "CRON", "TZ", "STATE", "NEXT", "MISSED", "NOTEBOOK")]
    for view in views:
        state = "active" if view["enabled"] else "paused"
        rows.append((view["id"], view["name"], view["target"], view["cron"], view["timezone"], state,
                     _when(view), str(len(view["missed"])), view["notebook"]))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if any(v["target"] == "local" for v in views):
        print("local schedules fire only while the Jupyter server or `cellpipe scheduler` runs")
    return 0


def show_schedule(args: argparse.Namespace) -> int:
    service = service_for(args)
    schedule = service.get(args.id)
    view = service.view(schedule)
    if schedule.target != "local":
        view["cluster_status"] = service.cluster_status(schedule, _credentials(args))
    if args.json:
        print(json.dumps(view, indent=2, default=str))
        return 0
    print(
        f"schedule {view['name']} ({view['id']}): {view['notebook']}  [{'active' if view['enabled'] else 'paused'}]"
    )
    print_schedule(view)
    status = view.get("cluster_status") or {}
    if status:
        state = "suspended" if status.get("suspend") else "active"
        last = status.get("last_schedule_time")
        print(f"  cluster   {state}" + (f", last scheduled {last}" if last else ""))
    if view["missed"]:
        shown = view["missed"][-5:]
        more = f" (and {len(view['missed']) - 5} earlier)" if len(view["missed"]) > 5 else ""
        print(f"  missed    {', '.join(shown)}{more}")
    if view.get("last_error"):
        print(f"  error     {view['last_error']['message']}")
    for run in view["recent_runs"]:
        created = datetime.fromtimestamp(run["created"]).strftime("%Y-%m-%d %H:%M:%S")
        print(f"  run       {run['id']}  {run['status']:<10} {created}")
    if not view["recent_runs"] and schedule.target == "local":
        print("  runs      none yet")
    return 0


def _set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    service = service_for(args)
    schedule = service.update(args.id, credentials=_credentials(args), enabled=enabled)
    state = "resumed" if enabled else "paused"
    print(f"schedule {schedule.name} ({schedule.id}) {state}")
    return 0


def pause_schedule(args: argparse.Namespace) -> int:
    return _set_enabled(args, False)


def resume_schedule(args: argparse.Namespace) -> int:
    return _set_enabled(args, True)


def delete_schedule(args: argparse.Namespace) -> int:
    service = service_for(args)
    schedule = service.delete(args.id, credentials=_credentials(args))
    what = {"job": " and its CronJob", "kfp": " and its KFP recurring run"}.get(schedule.target, "")
    print(f"schedule {schedule.name} ({schedule.id}) deleted{what}; its runs stay (`cellpipe runs`)")
    return 0
