"""``cellpipe runs``: list runs and show one."""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

HELP = """\
List the runs recorded in this project's data directory (.cellpipe/runs, or $CELLPIPE_HOME), newest
first, or show one run: its steps with status and timings, errors, metrics, artifacts, cache keys,
snapshot and MLflow run. A run id may be abbreviated to any unique prefix.

examples:
  cellpipe runs
  cellpipe runs show 20261122-0310
  cellpipe runs show 20261122-0310 --json
"""


def default_data_dir() -> Path:
    from jupyter_ext.snapshot.project import data_dir

    return data_dir()


def add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="cellpipe data directory (default: $CELLPIPE_HOME, else .cellpipe at the project root)")  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "runs", help="list runs, or show one", description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add_data_dir_option(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=list_runs)
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    show = sub.add_parser("show", help="show one run")
    show.add_argument("run_id", help="run id or unique prefix")
    add_data_dir_option(show)
    show.add_argument("--json", action="store_true", help="print the run record as JSON")
    show.set_defaults(handler=show_run)


def _store(args):
    from jupyter_ext.runs.store import RunStore

    return RunStore((args.data_dir or default_data_dir()) / "runs")


def list_runs(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from jupyter_ext.cli.progress import status_text

    records = _store(args).list()
    if args.json:
        print(json.dumps(records, indent=2, default=str))
        return 0
    console = Console(highlight=False)
    if not records:
        console.print("no runs yet: start one with `cellpipe run NOTEBOOK`")
        return 0
    table = Table(box=None, pad_edge=False)
    for column in ("run", "pipeline", "status", "started", "time", "steps", "metrics"):
        table.add_column(column)
    for r in records:
        steps = r.get("steps", {}).values()
        counts = {s: sum(1 for i in steps if i.get("status") == s) for s in ("succeeded", "cached", "failed")}
        table.add_row(
            r["id"],
            r.get("pipeline", ""),
            status_text(r.get("status", "?")),
            datetime.datetime.fromtimestamp(r.get("created", 0)).strftime("%Y-%m-%d %H:%M:%S"),
            f"{r['duration']:.1f}s" if r.get("duration") else "",
            " ".join(f"{n} {k}" for k, n in counts.items() if n),
            ", ".join(f"{k}={v:.4g}" for k, v in (r.get("metrics") or {}).items()),
        )
    console.print(table)
    return 0


def show_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from jupyter_ext.cli.progress import print_summary

    record = _store(args).load(args.run_id)
    if args.json:
        print(json.dumps(record, indent=2, default=str))
        return 0
    console = Console(highlight=False)
    print_summary(console, record)
    console.print(f"notebook: {record['notebook']} (sha256 {str(record.get('notebook_sha256'))[:12]})")
    console.print(f"parameters: {record.get('parameters')}")
    for name, info in record.get("steps", {}).items():
        outputs = ", ".join(
            f"{k} ({v.get('backend')}, {v.get('bytes')} B)" for k, v in (info.get("outputs") or {}).items()
        )
        console.print(
            f"  {name}: cache key {str(info.get('cache_key', ''))[:12]}"
            + (f"; outputs {outputs}" if outputs else "")
        )
    return 0
