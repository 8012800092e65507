"""Show the analysis warnings of a pipeline (tag typos, cells left out, Kale settings ignored)."""

from __future__ import annotations

import sys

from jupyter_ext.pipeline.model import Pipeline


def print_warnings(pipeline: Pipeline) -> None:
    """One line each on stderr, like errors, so that piping ``--json``/``--dot`` output stays clean."""
    for warning in pipeline.warnings:
        print(f"cellpipe: warning: {warning['text']}", file=sys.stderr)
