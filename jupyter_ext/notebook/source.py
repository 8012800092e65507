"""Turn a cell's IPython source into plain Python that ``ast`` can parse.

Magics and ``!shell`` lines are rewritten with IPython's own input transformers. Timing/capture magics
wrap ordinary code (``%time model.fit(X)``, ``%%time``), so their body is kept as code: otherwise the
names it reads and defines would be invisible to the data-flow analysis.
"""

from __future__ import annotations

import ast
import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

# Magics whose argument is Python code that runs in the user namespace.
_CODE_LINE_MAGICS = re.compile(r"^(\s*)%(?:time|timeit|prun)\s+(?:-\S+\s+)*(.*)$")
_CODE_CELL_MAGICS = re.compile(r"^%%(?:time|timeit|capture|prun)\b[^\n]*\n?")


@lru_cache(maxsize=1)
def _transformer():
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


def to_python(source: str) -> str:
    """Return plain Python for a cell's source (magics rewritten, code-running magics unwrapped)."""
    return _to_python(source)[0]


def _to_python(source: str) -> tuple[str, ast.Module | None]:
    """The plain Python, and its tree when checking it already parsed it (a big cell is parsed once)."""
    if not any(mark in source for mark in "%!?"):
        return source, None  # fast path: most cells are plain Python
    source = _CODE_CELL_MAGICS.sub("", source, count=1)
    source = "\n".join(_CODE_LINE_MAGICS.sub(r"\1\2", line) for line in source.splitlines())
    try:
        return source, ast.parse(source)
    except SyntaxError:
        return _transformer().transform_cell(source), None


MAX_AST_DEPTH = 200  # the analysis walks the tree recursively; real code nests a few dozen levels


def parse(source: str) -> ast.Module:
    """Parse a cell's IPython source; raises SyntaxError (with a line number) if it is not valid, also when
    it nests too deeply for Python's parser or for the analysis (``((((...))))`` thousands deep).

    Parsed with the garbage collector paused: parsing allocates an object per node, none of them garbage,
    and the collections those allocations trigger scan the growing tree again and again (60% of a 10 MB
    cell's time).
    """
    try:
        with collector_paused():
            python, tree = _to_python(source)
            tree = tree or ast.parse(python)
    except (RecursionError, MemoryError):
        raise _too_deep() from None
    if _depth_exceeds(tree, MAX_AST_DEPTH):
        raise _too_deep()
    return tree


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector. Keep the trees parsed under it inside the pause: re-enabled while a
    big tree is alive, the collector's next full pass walks all of it (a second for a 10 MB cell)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _too_deep() -> SyntaxError:
    error = SyntaxError(f"the code nests more than {MAX_AST_DEPTH} levels deep, too deep to analyse")
    error.lineno = 1
    return error


def _depth_exceeds(tree: ast.Module, limit: int) -> bool:
    # Each level of nesting takes at least one character of source, so a one-line statement shorter than
    # the limit cannot exceed it: only long or multi-line statements are walked (keeps big cells linear).
    pending = [
        (stmt, 1)
        for stmt in tree.body
        if stmt.end_lineno != stmt.lineno or (stmt.end_col_offset or 0) - stmt.col_offset >= limit - 8
    ]
    while pending:
        node, depth = pending.pop()
        if depth > limit:
            return True
        if isinstance(node, ast.List | ast.Tuple | ast.Set) and all(
            isinstance(e, ast.Constant) for e in node.elts
        ):
            continue  # embedded data: one level more at most, however long
        pending.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return False
