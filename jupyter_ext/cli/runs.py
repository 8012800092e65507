"""``cellpipe runs``: list runs and show one."""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

HELP = """\
List the runs recorded in this project's data directory (.cellpipe, or $CELLPIPE_HOME), newest
first, or show one run: its steps in pipeline order with status and timings, errors, metrics, artifacts,
cache keys, snapshot and MLflow run. A run id may be given whole, as any unique prefix, as its last
characters (4 or more, e.g. the random part), or as `latest`.

examples:
  cellpipe runs
  cellpipe runs --status failed --limit 10
  cellpipe runs show latest
  cellpipe runs show 20261122-031005-3fa2c1 --json
  cellpipe runs show 3fa2c1
  cellpipe runs cancel 3fa2c1                (whichever process runs it: a terminal, JupyterLab, the scheduler)
  cellpipe runs delete 3fa2c1                (a finished or crashed run)
"""


CANCEL_HELP = """\
Cancel a queued or running run, whichever process runs it: a `cellpipe run` in a terminal, a Jupyter
server (JupyterLab's Run as pipeline), `cellpipe scheduler`. The request is stored with the run (who asked
and when); the process running it notices within half a second and stops it as Ctrl-C would: kernels shut
down, the step that was running and those after it recorded as cancelled. A Job or KFP run is stopped on
its cluster. This waits until the run has ended (--wait), then says so; a finished run is left as it is.

examples:
  cellpipe runs cancel latest
  cellpipe runs cancel 3fa2c1 --wait 30
"""


def default_data_dir() -> Path:
    from jupyter_ext.snapshot.project import data_dir

    return data_dir()


def add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    """``--data-dir``: where runs and schedules are kept, for every command that reads or writes them."""
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="where runs and schedules are kept (default: $CELLPIPE_HOME, else .cellpipe at the "
                             "project root)")  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "runs", help="list runs, or show one", description=HELP,
    )  # fmt: skip
    add_data_dir_option(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--status", help="only runs with this status (succeeded, failed, running, ...)")
    parser.add_argument("--notebook", help="only runs of this notebook (path)")
    parser.add_argument("--limit", type=int, default=50, help="at most this many runs (default 50)")
    parser.set_defaults(handler=list_runs)
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    show = sub.add_parser("show", help="show one run")
    show.add_argument("run_id", help="run id, unique prefix or suffix, or `latest`")
    add_data_dir_option(show)
    show.add_argument("--json", action="store_true", help="print the run record as JSON")
    show.set_defaults(handler=show_run)
    cancel = sub.add_parser(
        "cancel", help="cancel a queued or running run, whichever process runs it",
        description=CANCEL_HELP,
    )  # fmt: skip
    cancel.add_argument("run_id", help="run id, unique prefix or suffix, or `latest`")
    add_data_dir_option(cancel)
    cancel.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for the run to stop (default 10; the request stays either way)")  # fmt: skip
    cancel.set_defaults(handler=cancel_run)
    delete = sub.add_parser("delete", help="delete a finished (or crashed) run: its record and its files")
    delete.add_argument("run_id", help="run id, unique prefix or suffix, or `latest`")
    add_data_dir_option(delete)
    delete.set_defaults(handler=delete_run)


def _service(args):
    from jupyter_ext.services.runs import RunService

    return RunService(args.data_dir or default_data_dir())


def list_runs(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from jupyter_ext.cli.progress import status_text
    from jupyter_ext.records.models import StepStatus

    service = _service(args)
    notebook = str(Path(args.notebook).resolve()) if args.notebook else None
    records, total = service.list(notebook=notebook, status=args.status, limit=args.limit)
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2, default=str))
        return 0
    console = Console(highlight=False)
    if not records:
        filtered = " matching the filters" if args.status or notebook else ""
        print(f"no runs in {service.data_dir}{filtered}; start one with `cellpipe run NOTEBOOK`")
        return 0
    table = Table(box=None, pad_edge=False)
    table.add_column(
        "run", no_wrap=True, min_width=len(records[0].id)
    )  # ids are never cut: `runs show` needs them
    table.add_column("pipeline", no_wrap=True, overflow="ellipsis")
    table.add_column("status", no_wrap=True, min_width=11)  # "✓ succeeded"
    for column in ("started", "time", "steps", "metrics"):  # these give way when the terminal is narrow
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    for r in records:
        counts = {
            s.value: sum(1 for i in r.steps if i.status is s)
            for s in (StepStatus.SUCCEEDED, StepStatus.CACHED, StepStatus.FAILED)
        }
        table.add_row(
            r.id,
            r.pipeline,
            status_text(r.status.value),
            datetime.datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M:%S"),
            f"{r.duration_s:.1f}s" if r.duration_s else "",
            " ".join(f"{n} {k}" for k, n in counts.items() if n),
            ", ".join(f"{k}={v:.4g}" for k, v in r.metrics.items()),
        )
    console.print(table)
    if total > len(records):
        console.print(f"{len(records)} of {total} runs; --limit N shows more", style="dim")
    return 0


def show_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from jupyter_ext.cli.progress import print_summary

    record = _service(args).get(args.run_id)
    if args.json:
        print(json.dumps(record.to_dict(), indent=2, default=str))
        return 0
    console = Console(highlight=False)
    print_summary(console, record)
    console.print(f"notebook: {record.notebook} (sha256 {str(record.notebook_sha256)[:12]})")
    console.print(f"parameters: {record.parameters}")
    if record.on_cluster:
        console.print(f"on the cluster: {cluster_place(record)}")
    if record.refresh_error and not record.is_final:
        console.print(
            f"[yellow]cannot ask the cluster now[/yellow] (shown as last seen): {record.refresh_error}"
        )
    for info in record.steps:  # pipeline order
        outputs = ", ".join(f"{k} ({v.get('backend')}, {v.get('bytes')} B)" for k, v in info.outputs.items())
        console.print(
            f"  {info.name}: cache key {str(info.cache_key or '')[:12]}"
            + (f"; outputs {outputs}" if outputs else "")
        )
    return 0


def cluster_place(record) -> str:
    """Where a cluster run lives, as the cluster's own tools name it."""
    handle = record.handle or {}
    if "run_id" in handle:
        return f"KFP run {handle['run_id']} at {handle.get('host')} (cellpipe kfp status {handle['run_id']})"
    return f"job {handle.get('name')} in namespace {handle.get('namespace')}"


def cancel_run(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from jupyter_ext.records.models import RunStatus, StepStatus

    service = _service(args)
    record = service.get(args.run_id)
    if record.is_final:
        print(f"run {record.id} already ended ({record.status.value}); nothing to cancel")
        return 0
    began = time.monotonic()
    record = asyncio.run(service.cancel(record.id, wait_s=max(0.0, args.wait)))
    took = time.monotonic() - began
    if not record.is_final:
        print(f"cancel of run {record.id} requested; it is still {record.status.value} after {took:.1f} s "
              f"(the process running it stops it when it next looks); `cellpipe runs show {record.id}` follows it")  # fmt: skip
        return 0
    if record.status is not RunStatus.CANCELLED:
        print(f"run {record.id} ended {record.status.value} before the cancel took effect")
        return 0
    stopped = [s.name for s in record.steps if s.status is StepStatus.CANCELLED and s.started]
    steps = f" (stopped in step {', '.join(stopped)})" if stopped else ""
    print(f"run {record.id} cancelled in {took:.1f} s{steps}")
    return 0


def delete_run(args: argparse.Namespace) -> int:
    service = _service(args)
    record = service.get(args.run_id)
    service.delete(record.id)  # refuses a run still queued or running
    print(
        f"run {record.id} deleted ({record.status.value}), with its files in {service.store.run_dir(record.id)}"
    )
    return 0
