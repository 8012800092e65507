"""What data a notebook names: declared paths (``data:PATH`` tags, ``metadata.cellpipe.data``) and string
literals in code cells that may be paths.

Pure functions over the notebook's JSON (read with ``json``: importing nbformat costs over a second,
which every ``cellpipe run`` would pay).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from jupyter_ext.errors import NotebookError, SnapshotError
from jupyter_ext.notebook.read import parse_notebook_json

DATA_TAG = "data:"
METADATA_FIELD = "metadata.cellpipe.data"

# Cell magics whose body is Python: their literals still count. Any other %%magic (bash, html...) is not.
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug", "writefile"}
_MAGIC_ASSIGNMENT = re.compile(r"^(\s*[\w.,\s\[\]()*]+=\s*)[%!]")
_MAGIC_LINE = re.compile(r"^(\s*)[%!]")
# A literal is reported as "not found" only if it looks like a path, so that ordinary strings
# ("mean", "x") are not listed as missing files.
_PATHLIKE = re.compile(r"^[~.\w/\\-]+$")
DATA_EXTENSIONS = {
    "arrow", "avro", "bz2", "ckpt", "csv", "db", "feather", "gz", "h5", "hdf", "hdf5", "jpeg", "jpg",
    "joblib", "json", "jsonl", "npy", "npz", "onnx", "orc", "parquet", "pickle", "pkl", "png", "pq", "pt",
    "pth", "sqlite", "tar", "tgz", "tif", "tiff", "tsv", "txt", "wav", "xls", "xlsx", "xml", "xz", "yaml",
    "yml", "zip",
}  # fmt: skip


@dataclass(frozen=True)
class DeclaredPath:
    spec: str  # as written: a path or glob relative to the notebook's directory
    cell: int | None  # 1-based cell number for a data: tag
    field: str  # where it was declared: "data:PATH tag", "metadata.cellpipe.data", "--data"


@dataclass(frozen=True)
class Literal:
    text: str
    cell: int


def parse_notebook(data: bytes, *, notebook: str) -> dict[str, Any]:
    """The notebook's JSON, its shape checked as analysis checks it (one error line, never a traceback)."""
    try:
        return parse_notebook_json(data, notebook=notebook)
    except NotebookError as exc:
        raise SnapshotError(
            f"not a readable notebook: {exc.message}",
            notebook=notebook,
            cell=exc.cell,
            field=exc.field,
            hint=exc.hint or "Save it from Jupyter and retry.",
        ) from None


def cell_source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def cell_tags(cell: dict[str, Any]) -> list[str]:
    tags = (cell.get("metadata") or {}).get("tags") or []
    return [tag for tag in tags if isinstance(tag, str)]


def declared_paths(notebook: dict[str, Any], *, notebook_label: str) -> list[DeclaredPath]:
    """data:PATH tags in cell order, then the entries of metadata.cellpipe.data."""
    declared = []
    for index, cell in enumerate(notebook["cells"], start=1):
        for tag in cell_tags(cell):
            if tag.startswith(DATA_TAG):
                spec = tag[len(DATA_TAG) :].strip()
                if not spec:
                    raise SnapshotError(
                        "tag 'data:' has no path",
                        notebook=notebook_label,
                        cell=index,
                        hint="Write e.g. data:data/train.csv (relative to the notebook; globs allowed).",
                    )
                declared.append(DeclaredPath(spec, index, f"tag '{tag}'"))
    listed = ((notebook.get("metadata") or {}).get("cellpipe") or {}).get("data", [])
    if isinstance(listed, str) or not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
        raise SnapshotError(
            "must be a list of paths",
            notebook=notebook_label,
            field=METADATA_FIELD,
            hint='Write e.g. "data": ["data/train.csv", "images/"].',
        )
    declared.extend(DeclaredPath(spec, None, METADATA_FIELD) for spec in listed if spec.strip())
    return declared


def python_source(source: str) -> str | None:
    """The cell as plain Python with IPython magics and shell lines neutralised; None for a non-Python
    cell magic (%%bash...). Lines keep their numbers and indentation so the result still parses."""
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        magic = lines[0].lstrip()[2:].split(maxsplit=1)
        if not magic or magic[0] not in PYTHON_CELL_MAGICS:
            return None
        lines = ["", *lines[1:]]
    cleaned = []
    for line in lines:
        if _MAGIC_ASSIGNMENT.match(line):
            line = _MAGIC_ASSIGNMENT.match(line).group(1) + "None"
        elif _MAGIC_LINE.match(line):
            line = _MAGIC_LINE.match(line).group(1) + "pass"
        cleaned.append(line)
    return "\n".join(cleaned)


def string_literals(source: str) -> list[str] | None:
    """Every plain string constant in the code (f-string parts excluded); None if it does not parse."""
    python = python_source(source)
    if python is None:
        return []
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return None
    in_fstrings = {
        id(node) for joined in ast.walk(tree) if isinstance(joined, ast.JoinedStr) for node in joined.values
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in in_fstrings
    ]


def path_literals(notebook: dict[str, Any]) -> tuple[list[Literal], list[int]]:
    """Candidate path literals in code cells, first mention first, and the cells that did not parse."""
    found: list[Literal] = []
    seen: set[str] = set()
    unparsed: list[int] = []
    for index, cell in enumerate(notebook["cells"], start=1):
        if cell.get("cell_type") != "code" or "skip" in cell_tags(cell):
            continue
        literals = string_literals(cell_source(cell))
        if literals is None:
            unparsed.append(index)
            continue
        for text in literals:
            if text in seen or not _plausible(text):
                continue
            seen.add(text)
            found.append(Literal(text, index))
    return found, unparsed


def _plausible(text: str) -> bool:
    """Cheap filter before touching the filesystem: one line, no NUL, not a URL, not absurdly long."""
    stripped = text.strip()
    return (
        bool(stripped)
        and stripped == text
        and len(text) < 1024
        and "\n" not in text
        and "\0" not in text
        and "://" not in text
    )


def looks_like_path(text: str) -> bool:
    if not _PATHLIKE.match(text):
        return False
    if "/" in text:
        return True
    suffix = text.rsplit(".", 1)[-1].lower() if "." in text else ""
    return suffix in DATA_EXTENSIONS
