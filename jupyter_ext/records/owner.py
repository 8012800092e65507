"""Who owns a running run, in a way that survives PID reuse.

A JupyterHub pod restarts with the same hostname and often the same pid, so ``(host, pid)`` alone would
call a dead run alive. The owner also records the process's start time (``/proc/<pid>/stat`` field 22,
clock ticks since boot) and the kernel's boot id: a different process that reuses the pid, or the same pid
after a reboot, has a different start time or boot id.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from jupyter_ext.util import pid_running

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def current_owner() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": process_start(pid), "boot_id": boot_id()}


def owner_alive(owner: dict[str, Any] | None) -> bool | None:
    """True/False when this machine can tell; None when the owner is on another host (we cannot see it)."""
    if not owner or not isinstance(owner.get("pid"), int):
        return False
    if owner.get("host") != socket.gethostname():
        return None
    if owner.get("boot_id") and boot_id() and owner["boot_id"] != boot_id():
        return False  # the machine rebooted since
    pid = owner["pid"]
    if pid <= 0:
        return False
    started = process_start(pid)
    if started is None:
        return False if Path("/proc/self/stat").exists() else pid_running(pid)  # no /proc: ask the kernel
    return owner.get("pid_start") in (None, started)


def process_start(pid: int) -> int | None:
    """The start time of a live, non-zombie process, in clock ticks since boot; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its closing parenthesis
    rest = stat[stat.rfind(")") + 2 :].split()
    if rest[0] == "Z":
        return None
    return int(rest[19])


def boot_id() -> str | None:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return None
