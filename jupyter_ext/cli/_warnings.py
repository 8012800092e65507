"""Show what the user must know beside a command's result: the analysis warnings of a pipeline (tag typos,
cells left out, Kale settings ignored) and the notes a command's services return."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the commands that only print notes do not import the pipeline model
    from jupyter_ext.pipeline.model import Pipeline


def print_warnings(pipeline: Pipeline) -> None:
    """One line each on stderr, like errors, so that piping ``--json``/``--dot`` output stays clean."""
    for warning in pipeline.warnings:
        print(f"cellpipe: warning: {warning['text']}", file=sys.stderr)


def print_notes(notes: list[str]) -> None:
    """One line each on stdout: ``note: ...``; an analysis warning among them keeps its ``warning:``."""
    for note in notes:
        print(note if note.startswith("warning: ") else f"note: {note}")
