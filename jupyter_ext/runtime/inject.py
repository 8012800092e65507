"""Inject parameter values into a notebook the papermill way, without importing papermill (~1.5 s).

Like papermill, a cell tagged ``injected-parameters`` goes right after the cell tagged ``parameters``
and the values are also kept in ``metadata.papermill.parameters``. Values are pipeline parameters,
already type-checked (int, float, str, bool, list, dict, None): each is written as a Python literal,
so a value is data, never code.
"""

from __future__ import annotations

import math
from typing import Any

from jupyter_ext.notebook.params import type_of


def literal(value: Any) -> str:
    """A Python literal for a parameter value; refuses anything that is not plain data."""
    if value is None or isinstance(value, bool | int | str):
        return repr(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"not a parameter value: {type(value).__name__} ({type_of(value)})")


def inject_parameters(notebook: Any, parameters: dict[str, Any]) -> Any:
    """Add the ``injected-parameters`` cell (in place) and return the notebook."""
    from nbformat.v4 import new_code_cell

    lines = ["# Parameters"] + [f"{name} = {literal(value)}" for name, value in parameters.items()]
    cell = new_code_cell("\n".join(lines) + "\n", metadata={"tags": ["injected-parameters"]})
    cells = notebook.cells
    cells[:] = [c for c in cells if "injected-parameters" not in c.metadata.get("tags", [])]
    anchor = next((i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])), -1)
    cells.insert(anchor + 1, cell)
    notebook.metadata.setdefault("papermill", {})["parameters"] = dict(parameters)
    return notebook
