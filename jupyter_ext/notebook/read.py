"""Read a notebook file, with clear errors for everything that is not a usable Python notebook.

The notebook's shape is checked here, once, before anything else looks at it (:func:`parse_notebook_json`):
the JSON nests at most :data:`MAX_DEPTH` levels, every string is valid Unicode, and the fields cellpipe
reads have the types the nbformat schema gives them. Everything past this point may rely on that, so a
malformed notebook is one error line naming the cell or field, never a traceback.

Read with ``json``, not nbformat: importing nbformat imports jsonschema and its format checkers, which
compile dozens of grammars (over a second on a small machine), more than ``cellpipe inspect`` may take
in all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jupyter_ext.errors import NotebookError


def read_notebook(path: str | Path, *, content: bytes | str | None = None, label: str | None = None):
    """Return the notebook as a :class:`NotebookNode` (v4; a cell's ``source`` is one string). ``content``
    replaces the file's bytes; ``label`` names the notebook in errors (default: ``path``)."""
    path = Path(path)
    name = label or str(path)
    if content is None:
        if not path.exists():
            raise NotebookError("no such file", notebook=name, hint="check the path")
        if path.is_dir():
            raise NotebookError("is a directory, not a notebook", notebook=name)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise NotebookError(f"cannot read: {exc.strerror}", notebook=name) from None
    data = parse_notebook_json(content, notebook=name)
    notebook = _as_node(data)
    _check_kernel(notebook, name)
    return notebook


MAX_DEPTH = 100  # JSON nesting; real notebooks stay below 20 (widget state included)
CELL_TYPES = ("code", "markdown", "raw")
# Metadata fields whose type the nbformat schema fixes and that cellpipe reads: field -> (type, described as)
METADATA_TYPES = {
    "kernelspec": (dict, "an object"),
    "language_info": (dict, "an object"),
    "cellpipe": (dict, "an object"),
    "kubeflow_notebook": (dict, "an object"),
}
NAMED_OBJECT_FIELDS = {"kernelspec": ("name", "language", "display_name"), "language_info": ("name",)}


def parse_notebook_json(content: bytes | str, *, notebook: str) -> dict[str, Any]:
    """The notebook's JSON, checked for the shape cellpipe relies on (see the module's docstring)."""
    try:
        data = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise NotebookError(
            f"not a notebook: invalid JSON{where}", notebook=notebook, hint="open and re-save it in Jupyter"
        ) from None
    except RecursionError:
        raise _too_deep(notebook, None) from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise NotebookError("not a notebook: no cells", notebook=notebook, hint="pass an .ipynb file")
    major = data.get("nbformat")
    if not isinstance(major, int) or isinstance(major, bool) or major < 4:
        raise NotebookError(
            f"unsupported notebook format {major!r}; cellpipe reads nbformat 4",
            notebook=notebook,
            hint="upgrade it with `jupyter nbconvert --to notebook --nbformat 4`",
        )
    _check_values(data, notebook)
    _check_fields(data, notebook)
    return data


def _check_values(data: Any, notebook: str) -> None:
    """Depth and Unicode, walked without recursion (a hostile document must not exhaust the stack)."""
    pending: list[tuple[Any, int, tuple[Any, ...]]] = [(data, 0, ())]
    while pending:
        value, depth, where = pending.pop()
        if depth > MAX_DEPTH:
            raise _too_deep(notebook, where)
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, notebook, where)
                pending.append((item, depth + 1, (*where, key)))
        elif isinstance(value, list):
            pending.extend((item, depth + 1, (*where, index)) for index, item in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, notebook, where)


def _check_text(text: str, notebook: str, where: tuple[Any, ...]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        cell, field = _located(where)
        raise NotebookError(
            f"{field or 'the notebook'} holds an invalid character (a lone surrogate, "
            f"U+{ord(text[exc.start]):04X}) that cannot be saved or run",
            notebook=notebook,
            cell=cell,
            hint="remove the character, or re-save the notebook from Jupyter",
        ) from None


def _too_deep(notebook: str, where: tuple[Any, ...] | None) -> NotebookError:
    cell, field = _located(where or ())
    return NotebookError(
        f"{field or 'the notebook'} nests more than {MAX_DEPTH} levels deep",
        notebook=notebook,
        cell=cell,
        hint="it is not a notebook Jupyter writes; re-save it from Jupyter or remove the deep value",
    )


def _located(where: tuple[Any, ...]) -> tuple[int | None, str]:
    """(1-based cell number, field path inside it or in the notebook) for a position in the JSON."""
    if len(where) >= 2 and where[0] == "cells" and isinstance(where[1], int):
        return where[1] + 1, ".".join(str(part) for part in where[2:3])
    return None, ".".join(str(part) for part in where[:3])


def _check_fields(data: dict[str, Any], notebook: str) -> None:
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise NotebookError("must be an object", notebook=notebook, field="metadata")
    for key, (kind, described) in METADATA_TYPES.items():
        if key in metadata and not isinstance(metadata[key], kind):
            raise NotebookError(
                f"must be {described}, not {_json_type(metadata[key])}",
                notebook=notebook,
                field=f"metadata.{key}",
                hint="re-save the notebook from Jupyter, or fix or remove the field",
            )
    for key, names in NAMED_OBJECT_FIELDS.items():
        for name in names:
            value = metadata.get(key, {}).get(name)
            if value is not None and not isinstance(value, str):
                raise NotebookError(
                    f"must be a string, not {_json_type(value)}",
                    notebook=notebook,
                    field=f"metadata.{key}.{name}",
                )
    cells = data.get("cells")
    if not isinstance(cells, list):
        raise NotebookError("must be a list", notebook=notebook, field="cells", hint="pass an .ipynb file")
    for index, cell in enumerate(cells, start=1):
        _check_cell(cell, index, notebook)


def _check_cell(cell: Any, index: int, notebook: str) -> None:
    def bad(message: str, field: str | None = None) -> NotebookError:
        return NotebookError(
            message, notebook=notebook, cell=index, field=field, hint="re-save the notebook from Jupyter"
        )

    if not isinstance(cell, dict):
        raise bad(f"a cell must be an object, not {_json_type(cell)}")
    if "cell_type" not in cell:
        raise bad("the cell has no cell_type")
    if cell["cell_type"] not in CELL_TYPES:
        raise bad(f"unknown cell_type {str(cell['cell_type'])[:40]!r} (code, markdown or raw)", "cell_type")
    if "source" not in cell:
        raise bad("the cell has no source")
    source = cell["source"]
    if not isinstance(source, str) and not (
        isinstance(source, list) and all(isinstance(line, str) for line in source)
    ):
        raise bad(f"must be a string or a list of strings, not {_json_type(source)}", "source")
    metadata = cell.get("metadata", {})
    if not isinstance(metadata, dict):
        raise bad(f"must be an object, not {_json_type(metadata)}", "metadata")
    tags = metadata.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise NotebookError(
            f"must be a list of strings, not {_json_type(tags)}",
            notebook=notebook,
            cell=index,
            field="metadata.tags",
            hint="edit the cell's tags in JupyterLab's property inspector",
        )


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


class NotebookNode(dict):
    """A dict with attribute access to its keys, like nbformat's ``NotebookNode``."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _as_node(data: dict[str, Any]) -> NotebookNode:
    """The checked notebook with attribute access and each cell's source joined into one string. The file
    is never rewritten (cells without ids stay so: analysis does not need them)."""
    cells = []
    for cell in data.get("cells", []):
        source = cell.get("source", "")
        metadata = NotebookNode(cell.get("metadata") or {})
        cells.append(
            NotebookNode(
                cell, source=source if isinstance(source, str) else "".join(source), metadata=metadata
            )
        )
    return NotebookNode(data, cells=cells, metadata=NotebookNode(data.get("metadata") or {}))


def _check_kernel(notebook, name: str) -> None:
    metadata = notebook.get("metadata", {})
    language = metadata.get("kernelspec", {}).get("language") or metadata.get("language_info", {}).get("name")
    if language and language.lower() != "python":
        raise NotebookError(
            f"the kernel language is {language}; cellpipe runs Python notebooks",
            notebook=name,
            field="metadata.kernelspec",
            hint="switch the notebook to a Python kernel",
        )


def kernel_name(notebook) -> str:
    return notebook.get("metadata", {}).get("kernelspec", {}).get("name") or "python3"
