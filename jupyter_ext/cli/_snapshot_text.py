"""Text shared by the snapshot commands: the --store option, sizes, a snapshot's summary."""

from __future__ import annotations

import argparse
import sys
from typing import Any

STORE_HELP = (
    "snapshot store: a directory, file:///path, s3://bucket/prefix, gs://bucket/prefix, memory://name "
    "(default: $CELLPIPE_STORE, else .cellpipe/store at the project root, i.e. the git repository root "
    "or the notebook's directory)"
)


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)


def human_bytes(size: int) -> str:
    from jupyter_ext.snapshot.config import human_bytes as format_size

    return format_size(size)


def print_skipped(skipped: list[dict[str, Any]], file: Any = None) -> None:
    # sys.stdout is looked up at call time: a default bound at import would outlive redirections
    file = file or sys.stdout
    if not skipped:
        return
    print("skipped (named in the notebook but not captured):", file=file)
    for item in skipped:
        where = f"cell {item['cell']}: " if item.get("cell") else ""
        print(f"  {where}{item['path']}: {item['reason']}", file=file)
