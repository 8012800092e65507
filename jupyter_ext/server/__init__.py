"""Jupyter server extension: the HTTP API the JupyterLab front end calls (``{base_url}cellpipe/api/``).

:mod:`.app` is the ``ExtensionApp`` (settings, lifecycle), :mod:`.base` the handler base (authorization,
body limits, errors), :mod:`.handlers` the config/analyse/run routes; the contract is ``openapi.yaml``.
Enabled by ``jupyter-config/jupyter_server_config.d/cellpipe.json``, installed with the package.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from jupyter_ext.server.app import CellpipeApp

    return [{"module": "jupyter_ext.server", "app": CellpipeApp}]
