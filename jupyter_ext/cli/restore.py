"""``cellpipe restore ID DIR``: write a snapshot's notebook and data back out, byte for byte."""

from __future__ import annotations

import argparse
from typing import Any

from jupyter_ext.cli._snapshot_text import add_store_option, human_bytes

DESCRIPTION = """\
Restore a snapshot into DIR: the notebook and its data files at their paths relative to the project
root, with their permissions, each re-hashed on the way out. Data declared from outside the project
root comes back under DIR/_external/<its original absolute path>.

DIR must be empty or new; --force writes into a non-empty DIR, replacing the snapshot's files and
leaving everything else there alone.

examples:
  cellpipe restore 3f2a9c /tmp/run-3f2a9c
  cellpipe restore 3f2a9c . --force --store s3://bucket/cellpipe
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="write a snapshot's notebook and data into a directory",
        description=DESCRIPTION,
    )
    parser.add_argument("id", metavar="ID", help="snapshot id or unique prefix ('cellpipe snapshots list')")
    parser.add_argument("directory", metavar="DIR", help="where to write the files")
    parser.add_argument("--force", action="store_true", help="write into a non-empty directory")
    add_store_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from jupyter_ext.snapshot import open_store, restore

    restored = restore(open_store(args.store), args.id, args.directory, force=args.force)
    print(f"restored {restored.id[:12]} into {restored.directory}")
    print(f"  notebook  {restored.notebook}")
    print(f"  data      {restored.files} files, {human_bytes(restored.bytes)} in all")
    for source, path in restored.external.items():
        print(f"  external  {source} -> {path}")
    return 0
