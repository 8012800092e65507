"""Read a notebook file, with clear errors for everything that is not a usable Python notebook."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from jupyter_ext.errors import NotebookError


def read_notebook(path: str | Path, *, content: bytes | str | None = None, label: str | None = None):
    """Return the notebook as an ``nbformat.NotebookNode`` (v4). ``content`` replaces the file's bytes;
    ``label`` names the notebook in errors (default: ``path``)."""
    import nbformat
    from nbformat.warnings import MissingIDFieldWarning

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
    try:
        data = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise NotebookError(
            f"not a notebook: invalid JSON{where}", notebook=name, hint="open and re-save it in Jupyter"
        ) from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise NotebookError("not a notebook: no cells", notebook=name, hint="pass an .ipynb file")
    major = data.get("nbformat")
    if not isinstance(major, int) or major < 4:
        raise NotebookError(
            f"unsupported notebook format {major!r}; cellpipe reads nbformat 4",
            notebook=name,
            hint="upgrade it with `jupyter nbconvert --to notebook --nbformat 4`",
        )
    try:
        with warnings.catch_warnings():
            # nbformat < 4.5 notebooks and older tools omit cell ids; nbformat fills them in (in memory: the
            # file is never rewritten) and warns on every read, which is noise to a user who cannot act on it
            warnings.simplefilter("ignore", MissingIDFieldWarning)
            notebook = nbformat.reads(json.dumps(data), as_version=4)
    except Exception as exc:  # nbformat raises several types for malformed documents
        raise NotebookError(f"not a valid notebook: {exc}", notebook=name) from None
    _check_kernel(notebook, name)
    return notebook


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
