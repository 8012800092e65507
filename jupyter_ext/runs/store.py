"""Run records: one directory per run with a JSON record, written atomically after every change.

``<data dir>/runs/<run id>/record.json`` holds the notebook and its hash, the snapshot id, parameters,
each step's status, timings, cache key, metrics, error and artifacts. A record is rewritten whole with
an atomic rename, so a reader never sees half of one. A record still "running" whose process is gone
(the runner was killed) is reported as "crashed", never left looking alive.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

from jupyter_ext.errors import CellpipeError
from jupyter_ext.util import write_json_atomic

RECORD_FILE = "record.json"
FINAL_STATES = ("succeeded", "failed", "cancelled", "crashed")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


class RunStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, run_id: str) -> Path:
        return self.root / run_id

    def create(self, record: dict[str, Any]) -> dict[str, Any]:
        record.setdefault("id", new_run_id())
        record.setdefault("created", time.time())
        record.setdefault("status", "running")
        record["pid"] = os.getpid()
        record["host"] = socket.gethostname()
        self.save(record)
        return record

    def save(self, record: dict[str, Any]) -> None:
        # Progress updates need not survive a power cut (a lost one is re-derived as "crashed");
        # a final state must.
        durable = record.get("status") in FINAL_STATES
        write_json_atomic(self.path(record["id"]) / RECORD_FILE, record, durable=durable)

    def load(self, run_id: str) -> dict[str, Any]:
        matches = [p.name for p in self._dirs() if p.name == run_id or p.name.startswith(run_id)]
        if not matches:
            raise CellpipeError(f"no run '{run_id}' in {self.root}", hint="list runs with `cellpipe runs`")
        if len(matches) > 1 and run_id not in matches:
            raise CellpipeError(
                f"run id '{run_id}' is ambiguous: {', '.join(matches[:5])}", hint="give more characters"
            )
        run = run_id if run_id in matches else matches[0]
        return self._check_alive(json.loads((self.path(run) / RECORD_FILE).read_text()))

    def list(self) -> list[dict[str, Any]]:
        records = []
        for directory in self._dirs():
            try:
                records.append(self._check_alive(json.loads((directory / RECORD_FILE).read_text())))
            except (OSError, json.JSONDecodeError):
                continue  # a directory without a complete record is not a run
        return sorted(records, key=lambda r: r.get("created", 0), reverse=True)

    def _dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if (p / RECORD_FILE).is_file()]

    def _check_alive(self, record: dict[str, Any]) -> dict[str, Any]:
        """Mark a running record whose runner process has died as crashed (and save that)."""
        mine = record.get("host") == socket.gethostname()
        if record.get("status") == "running" and mine and not _pid_alive(record.get("pid")):
            record["status"] = "crashed"
            record["error"] = {"message": "the runner process stopped before the run finished"}
            for step in record.get("steps", {}).values():
                if step.get("status") in ("running", "pending"):
                    step["status"] = "crashed" if step["status"] == "running" else "not run"
            self.save(record)
        return record


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True
