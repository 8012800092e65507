"""Terminal views of a run: a live per-step status table while it runs, a summary when it ends."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

STYLE = {
    "pending": ("·", "dim"),
    "running": ("▶", "cyan"),
    "succeeded": ("✓", "green"),
    "cached": ("↺", "blue"),
    "failed": ("✗", "red"),
    "skipped": ("-", "yellow"),
    "cancelled": ("■", "yellow"),
    "crashed": ("✗", "red"),
    "not run": ("-", "dim"),
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


def steps_table(record: dict[str, Any], *, title: str | None = None, live: bool = False) -> Table:
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for column in ("step", "status", "time", "notebook / note"):
        table.add_column(column)
    for name, info in record.get("steps", {}).items():
        status = info.get("status", "pending")
        if status == "running" and live:
            seconds = time.time() - info.get("started", time.time())
        else:
            seconds = info.get("duration")
        when = f"{seconds:.1f}s" if seconds is not None else ""
        note = info.get("reason") or ""
        if status == "cached":
            note = f"from run {info.get('cached_from', '?')}"
        elif status in ("succeeded", "failed"):
            note = display_path(info.get("notebook", ""))
        table.add_row(name, status_text(status), when, note)
    return table


class LiveRun:
    """A rich Live view fed by the runner's events."""

    def __init__(self, console: Console) -> None:
        from rich.live import Live

        self.record: dict[str, Any] = {}
        self.live = Live(self, console=console, refresh_per_second=4, transient=True)

    def __rich__(self) -> Table:
        return steps_table(self.record, live=True)

    def event(self, record: dict[str, Any]) -> None:
        self.record = record


def print_summary(console: Console, record: dict[str, Any]) -> None:
    console.print(steps_table(record, title=f"Run {record['id']}: {record['pipeline']}"))
    status = record["status"]
    mark, style = STYLE.get(status, ("?", ""))
    duration = record.get("duration")
    line = f"[{style}]{mark} {status}[/{style}]" + (f" in {duration:.1f}s" if duration else "")
    console.print(line)
    for name, info in record.get("steps", {}).items():
        error = info.get("error")
        if info.get("status") == "failed" and error:
            where = f"cell {error['cell']}, " if error.get("cell") else ""
            console.print(
                f"\n[red]step '{name}' failed[/red] ({where}{record['notebook']}): {error['message']}"
            )
            for line in error.get("traceback", [])[-6:]:
                console.print(f"    {line}", markup=False, highlight=False)
            console.print(f"  executed notebook: {display_path(info.get('notebook', ''))}")
    if record.get("metrics"):
        console.print("metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in record["metrics"].items()))
    if record.get("snapshot_id"):
        console.print(f"snapshot: {record['snapshot_id'][:12]}")
    if record.get("mlflow"):
        m = record["mlflow"]
        console.print(f"mlflow: run {m['run_id']} in {m['tracking_uri']}")
        console.print(f"  view it: mlflow ui --backend-store-uri {m['tracking_uri']}", style="dim")
