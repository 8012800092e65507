"""A failed step's error as its pod's termination message, so that whoever follows the run sees it.

Kubernetes keeps the last 4096 bytes a container writes to ``/dev/termination-log`` in the pod's status
(``status.containerStatuses[].state.terminated.message``), after the pod ends and while the pod exists.
KFP's launcher does not upload a failed step's output artifacts, so the pod status is where a KFP step's
failing cell and exception survive; ``cellpipe kfp status`` and the run service read it from there.

The message is one JSON object ``{"cellpipe": "step-error", "step", "cell", "ename", "evalue", "message"}``.
It is written only where the kubelet created the file (in a pod), never elsewhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

TERMINATION_LOG = "/dev/termination-log"
MARKER = "step-error"
LIMIT = 4096  # bytes the kubelet keeps of a termination message
_FIELD_LIMIT = 1000  # characters of evalue/message kept, so the JSON always fits


def termination_log() -> Path:
    """Where the message goes: ``$CELLPIPE_TERMINATION_LOG`` or Kubernetes' default path."""
    return Path(os.environ.get("CELLPIPE_TERMINATION_LOG") or TERMINATION_LOG)


def step_error_message(
    step: str, message: str, *, cell: int | None = None, ename: str | None = None, evalue: str | None = None
) -> str:
    """The JSON termination message for a failed step, at most :data:`LIMIT` bytes."""

    def cut(text: str | None) -> str | None:
        if text is None:
            return None
        text = str(text)
        return text if len(text) <= _FIELD_LIMIT else text[: _FIELD_LIMIT - 1] + "…"

    data = {"cellpipe": MARKER, "step": step, "cell": cell, "ename": ename, "evalue": cut(evalue),
            "message": cut(message)}  # fmt: skip
    text = json.dumps(data, ensure_ascii=False)
    while len(text.encode()) > LIMIT:  # multi-byte characters: shorten until it fits
        data["evalue"] = (data["evalue"] or "")[: len(data["evalue"] or "") // 2] or None
        data["message"] = (data["message"] or "")[: len(data["message"] or "") // 2]
        text = json.dumps(data, ensure_ascii=False)
    return text


def write_step_error(
    step: str, message: str, *, cell: int | None = None, ename: str | None = None, evalue: str | None = None
) -> bool:
    """Write the step's error to the termination log if this process runs in a pod; True if written."""
    path = termination_log()
    if not path.exists():  # not in a pod (the kubelet creates the file): write nothing anywhere
        return False
    try:
        with path.open("w", encoding="utf-8") as stream:
            stream.write(step_error_message(step, message, cell=cell, ename=ename, evalue=evalue))
    except OSError:
        return False  # a read-only or missing mount must not hide the step's own error
    return True


def read_step_error(text: str | None) -> dict[str, Any] | None:
    """The error a termination message holds, if cellpipe wrote it; None for anything else."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("cellpipe") != MARKER:
        return None
    cell = data.get("cell")
    return {
        "step": str(data.get("step") or ""),
        "message": str(data.get("message") or ""),
        "cell": cell if isinstance(cell, int) and not isinstance(cell, bool) else None,
        "ename": data.get("ename") if isinstance(data.get("ename"), str) else None,
        "evalue": data.get("evalue") if isinstance(data.get("evalue"), str) else None,
    }
