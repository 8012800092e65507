"""Runs started from JupyterLab: background runs through the run service, status and cancel.

Runs go through :class:`~jupyter_ext.services.runs.RunService` (the same lifecycle as the CLI); the blocking
parts (snapshot hashing, MLflow logging) go to worker threads so the server stays responsive.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from jupyter_ext.errors import CellpipeError
from jupyter_ext.records.models import RunStatus
from jupyter_ext.services.runs import RunRequest, RunService
from jupyter_ext.snapshot.project import data_dir


class RunManager:
    def __init__(self, root_dir: str | Path, log: logging.Logger | None = None) -> None:
        self.root = Path(root_dir).resolve()
        self.log = log or logging.getLogger(__name__)
        self.service = RunService(data_dir(self.root / "notebook.ipynb"), root=self.root, log=self.log)

    # -- paths -------------------------------------------------------------------------------------
    def resolve(self, path: str) -> Path:
        """A notebook path from the UI (relative to the server root) as a real path inside the root."""
        if not path or not isinstance(path, str):
            raise CellpipeError("no notebook path given", field="path", hint="send the notebook's path")
        candidate = (self.root / path.lstrip("/")).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            raise CellpipeError(f"'{path}' is outside the server's root directory", field="path")
        return candidate

    # -- runs --------------------------------------------------------------------------------------
    async def start(
        self, path: str, *, parameters: dict[str, Any] | None = None, content: bytes | None = None,
        use_cache: bool = True, track: bool = True,
    ) -> dict[str, Any]:  # fmt: skip
        """Validate and snapshot now (errors go back to the caller), then run in the background."""
        request = RunRequest(
            notebook=self.resolve(path),
            parameters=parameters or {},
            content=content,
            use_cache=use_cache,
            track=track,
            source="jupyterlab",
        )
        return (await self.service.submit(request)).to_dict()

    def list(self, path: str | None = None) -> list[dict[str, Any]]:
        notebook = str(self.resolve(path)) if path else None
        return [r.to_dict() for r in self.service.list(notebook=notebook, limit=1000)[0]]

    def get(self, run_id: str, path: str | None = None) -> dict[str, Any]:
        return self.service.get(run_id).to_dict()

    async def cancel(self, run_id: str) -> bool:
        """True when an active run of this server was cancelled."""
        try:
            record = self.service.get(run_id)
        except CellpipeError:
            return False
        if record.is_final or not self.service.is_active_here(record.id):
            return False
        return (await self.service.cancel(record.id)).status is RunStatus.CANCELLED

    async def shutdown(self) -> None:
        await self.service.shutdown()
