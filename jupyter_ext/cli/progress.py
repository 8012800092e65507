"""Terminal views of a run: a live per-step status table while it runs, a summary when it ends."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from jupyter_ext.records.models import RunRecord, RunStatus, StepStatus, TrackingStatus

STYLE = {
    StepStatus.PENDING: ("·", "dim"),
    StepStatus.RUNNING: ("▶", "cyan"),
    StepStatus.SUCCEEDED: ("✓", "green"),
    StepStatus.CACHED: ("↺", "blue"),
    StepStatus.FAILED: ("✗", "red"),
    RunStatus.QUEUED: ("·", "dim"),
    StepStatus.NOT_RUN: ("-", "yellow"),
    StepStatus.CANCELLED: ("■", "yellow"),
    StepStatus.CRASHED: ("✗", "red"),
}


def status_text(status: str) -> Text:
    mark, style = STYLE.get(status, ("?", ""))
    return Text(f"{mark} {status}", style=style)


def display_path(path: str) -> str:
    """A path relative to the current directory when it is below it (shorter in tables)."""
    import os

    if not path:
        return ""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def steps_table(record: RunRecord | None, *, title: str | None = None, live: bool = False) -> Table:
    """The steps in pipeline order: status, time, and the executed notebook or why a step did not run."""
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for column in ("step", "status", "time", "notebook / note"):
        table.add_column(column)
    for info in record.steps if record else []:
        seconds = info.elapsed_s() if live else info.duration_s
        when = f"{seconds:.1f}s" if seconds is not None else ""
        note = info.reason or ""
        if info.status is StepStatus.CACHED:
            note = f"from run {info.cached_from or '?'}"
        elif info.status in (StepStatus.SUCCEEDED, StepStatus.FAILED):
            note = display_path(info.notebook or "")
        table.add_row(info.name, status_text(info.status.value), when, note)
    return table


class LiveRun:
    """A rich Live view fed by the run service's events."""

    def __init__(self, console: Console) -> None:
        from rich.live import Live

        self.record: RunRecord | None = None
        self.live = Live(self, console=console, refresh_per_second=4, transient=True)

    def __rich__(self) -> Table:
        return steps_table(self.record, live=True)

    def event(self, record: RunRecord) -> None:
        self.record = record


def wall_time_line(record: RunRecord, wall_s: float | None = None) -> str:
    """The real wall time, from the request (or ``wall_s``: this process's start) to the final record, and
    what it went to. Background MLflow tracking is not in it (the result does not wait for it), only the time
    finalize waited for a starting tracking worker to create the MLflow run."""
    t = record.timings
    prepare, execute = t.get("prepare_s", 0.0), t.get("execute_s")
    if execute is None:
        return f" after {record.duration_s or 0:.1f}s" if record.duration_s else ""
    run_wall = prepare + (record.duration_s or 0.0)
    wall = max(wall_s, run_wall) if wall_s is not None else run_wall
    kernels = t.get("kernel_wait_s", 0.0)
    parts = [("start-up", wall - run_wall), ("analyse and snapshot", prepare), ("kernel start", kernels),
             ("steps", execute - kernels),
             ("tracking", t.get("tracking_s", 0.0) + t.get("tracking_wait_s", 0.0))]  # fmt: skip
    shown = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in parts if seconds >= 0.05)
    return f" in {wall:.1f}s" + (f" ({shown})" if shown else "")


def process_wall_s() -> float | None:
    """Seconds since this process started, interpreter start-up and imports included (None off Linux)."""
    import os
    from pathlib import Path

    from jupyter_ext.records.owner import process_start

    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        ticks = process_start(os.getpid())
        return None if ticks is None else max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError):
        return None


def print_summary(console: Console, record: RunRecord, *, wall_s: float | None = None) -> None:
    console.print(steps_table(record, title=f"Run {record.id}: {record.pipeline}"))
    mark, style = STYLE.get(record.status.value, ("?", ""))
    line = f"[{style}]{mark} {record.status.value}[/{style}]{wall_time_line(record, wall_s)}"
    console.print(line, soft_wrap=True)  # one line, whatever the width: tools and eyes look for it
    if record.error:
        console.print(f"[red]{record.error.get('message', '')}[/red]", highlight=False)
    if record.cancel_requested:  # cancelled from elsewhere (or about to be): say by whom
        state = "cancelled" if record.status is RunStatus.CANCELLED else "cancel requested"
        console.print(f"{state} by {record.cancel_requested.get('by')}", highlight=False)
    for info in record.steps:
        error = info.error
        if info.status is StepStatus.FAILED and error:
            where = f"cell {error['cell']}, " if error.get("cell") else ""
            console.print(
                f"\n[red]step '{info.name}' failed[/red] ({where}{record.notebook}): {error['message']}"
            )
            for line in error.get("traceback", [])[-6:]:
                console.print(f"    {line}", markup=False, highlight=False)
            console.print(f"  executed notebook: {display_path(info.notebook or '')}")
    if record.metrics:
        console.print("metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in record.metrics.items()))
    if record.snapshot_id:
        console.print(f"snapshot: {record.snapshot_id[:12]}")
    tracking = record.tracking
    if tracking.status is TrackingStatus.OK:
        console.print(f"mlflow: run {tracking.mlflow_run_id} in {tracking.tracking_uri}")
        console.print(
            f"  view it: {tracking.mlflow_url or 'mlflow ui --backend-store-uri ' + str(tracking.tracking_uri)}",
            style="dim",
        )
    elif tracking.status is TrackingStatus.FAILED:
        console.print(f"[yellow]MLflow tracking failed[/yellow]: {tracking.error}", highlight=False)
    elif tracking.status is TrackingStatus.PENDING and tracking.mlflow_run_id:
        console.print(
            f"mlflow: run {tracking.mlflow_run_id} in {tracking.tracking_uri} (finishing in the background)"
        )
    elif tracking.status is TrackingStatus.PENDING:
        console.print(
            f"mlflow: logging in the background (`cellpipe runs show {record.id}` shows when it is done)",
            style="dim",
        )
