"""Jupyter server extension: the HTTP API the JupyterLab front end calls ("Run as pipeline").

Handlers stay thin (:mod:`.handlers`); the work is done by :class:`.manager.RunManager`, which uses the
same launch path as the CLI (snapshot -> analyse -> local run -> MLflow).
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jupyter_ext.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from jupyter_ext.server.handlers import setup_handlers
    from jupyter_ext.server.manager import RunManager

    manager = RunManager(root_dir=serverapp.root_dir, log=serverapp.log)
    serverapp.web_app.settings["cellpipe_manager"] = manager
    setup_handlers(serverapp.web_app)
    serverapp.log.info("cellpipe server extension loaded (root %s)", serverapp.root_dir)
