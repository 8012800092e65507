"""``cellpipe scheduler``: fire the local schedules of a data directory, in the foreground, until stopped."""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from datetime import datetime
from typing import Any

from jupyter_ext.cli.runs import add_data_dir_option

HELP = """\
Fire the local schedules (`cellpipe schedule NOTEBOOK --cron EXPR`) of this project's data directory on a
machine without a Jupyter server, e.g. under systemd. Runs happen in this process, like `cellpipe run`,
up to --max-concurrent-runs at once; each prints one line when it starts.

Several schedulers (and Jupyter servers) may share one data directory: each fire time is taken by one
of them. Fire times missed while none ran follow each schedule's catch-up policy. Stop with Ctrl-C or
SIGTERM: no new runs start, runs in progress are cancelled and recorded as cancelled.

example systemd unit (ExecStart):
  /opt/venv/bin/cellpipe scheduler --data-dir /srv/ml/.cellpipe
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scheduler", help="fire local schedules without a Jupyter server (foreground service)", description=HELP,
    )  # fmt: skip
    add_data_dir_option(parser)
    parser.add_argument("--max-concurrent-runs", type=int, default=2, metavar="N",
                        help="runs executing at once; more wait queued (default 2)")  # fmt: skip
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from jupyter_ext.snapshot.project import data_dir

    return asyncio.run(serve(args.data_dir or data_dir(), max(1, args.max_concurrent_runs)))


def _stamp() -> str:
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S")


async def serve(directory: Any, max_concurrent_runs: int) -> int:
    from jupyter_ext.services.runs import RunService
    from jupyter_ext.services.schedules import LOCAL, Fire, Scheduler

    runs = RunService(directory, max_concurrent_runs=max_concurrent_runs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def report(fire: Fire) -> None:
        when = datetime.fromtimestamp(fire.fire_time).strftime("%H:%M")
        what = f"run {fire.run_id}" if fire.run_id else f"no run: {fire.error}"
        catch_up = " (catching up)" if fire.catch_up else ""
        print(f"{_stamp()}  {fire.schedule_id} fire of {when}{catch_up}: {what}", flush=True)

    scheduler = Scheduler(runs.store, runs.submit, on_fire=report)
    local = [s for s in runs.store.list_schedules() if s.target == LOCAL]
    active = sum(s.enabled for s in local)
    print(f"{_stamp()}  cellpipe scheduler: {active} active local schedules ({len(local) - active} paused) in "
          f"{runs.data_dir}; Ctrl-C or SIGTERM stops it", flush=True)  # fmt: skip
    started = time.monotonic()
    scheduler.start()
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await scheduler.stop()
        in_progress = [f.run_id for f in scheduler.fired if f.run_id and runs.is_active_here(f.run_id)]
        await runs.shutdown()
    started_runs = sum(1 for f in scheduler.fired if f.run_id)
    cancelled = f", {len(in_progress)} in progress cancelled" if in_progress else ""
    print(f"{_stamp()}  cellpipe scheduler stopped after {time.monotonic() - started:.0f}s: "
          f"{started_runs} runs started{cancelled}", flush=True)  # fmt: skip
    return 0
