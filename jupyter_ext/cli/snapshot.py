"""``cellpipe snapshot NOTEBOOK``: store the notebook, its data and its environment."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from jupyter_ext.cli._snapshot_text import add_store_option, human_bytes, print_skipped
from jupyter_ext.cli._warnings import print_notes

DESCRIPTION = """\
Take a snapshot of a notebook: its exact bytes, the data files it uses and its environment
(Python, installed packages, kernel, container image, git commit), so a run can be reproduced.

Data files come from:
  data:PATH cell tags and the notebook metadata list cellpipe.data   (declared; files, directories, globs)
  string literals in code that name existing files or directories    (detected, e.g. pd.read_csv("data/x.csv"))
Paths are relative to the notebook's directory. Detected paths are skipped, with the reason printed, when
they are symlinks, lie outside the project root, or exceed $CELLPIPE_MAX_DETECTED_BYTES (default 1 GiB);
declare them to capture them anyway. Declared data must lie inside the project root (the notebook's git
repository, else its directory) unless --allow-outside-root is given.

Files are stored once by content (BLAKE3 hash; sha256 in stores created with --store-hash sha256 or
$CELLPIPE_STORE_HASH=sha256, or by an older cellpipe): unchanged data is recognised without re-reading it
and identical files across snapshots take no extra space. A store keeps the hash it was created with.

examples:
  cellpipe snapshot train.ipynb
  cellpipe snapshot train.ipynb --data models/ --store s3://bucket/cellpipe
  cellpipe snapshot train.ipynb --store s3://bucket/v1-store --store-hash sha256   (pod images with an
                                                         older cellpipe, which knows only sha256, can restore it)
  cellpipe snapshots list
"""

DETECTED_SHOWN = 10  # 'cellpipe snapshots show ID' lists every file
PROGRESS_MIN_BYTES = 64 << 20  # below this hashing takes well under a second: no bar


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "snapshot",
        help="store a notebook, its data and environment (content-addressed)",
        description=DESCRIPTION,
    )
    parser.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file")
    parser.add_argument(
        "--data",
        metavar="PATH",
        action="append",
        default=[],
        help="more data to capture, as if declared with a data: tag (repeatable; globs allowed)",
    )
    parser.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="capture declared data outside the project root too (e.g. a shared dataset); stored under "
        "_external/. Without it such a path is an error",
    )
    add_store_option(parser)
    parser.add_argument(
        "--store-hash",
        choices=["blake3", "sha256"],
        help="the hash that names the objects of a store created by this snapshot (default: "
        "$CELLPIPE_STORE_HASH, else blake3). sha256 makes a store that images with a cellpipe from before "
        "BLAKE3 can read. An existing store keeps its hash: asking another one for it is an error",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from jupyter_ext.snapshot import open_store, take_snapshot

    progress = _BarProgress() if sys.stderr.isatty() and not args.json else None
    snapshot = take_snapshot(
        args.notebook,
        store=open_store(args.store, notebook_path=args.notebook, new_store_hash=args.store_hash),
        extra_data=args.data,
        progress=progress,
        allow_outside_root=args.allow_outside_root,
    )
    report = snapshot.manifest["report"]
    if args.json:
        summary = {
            "id": snapshot.id,
            "store": snapshot.store_url,
            "files": snapshot.files,
            "bytes": snapshot.bytes,
            "new_bytes": snapshot.new_bytes,
            "deduplicated_bytes": snapshot.deduplicated_bytes,
            "hashed_bytes": snapshot.hashed_bytes,
            "detected": snapshot.detected,
            "skipped": report["skipped"],
            "notes": report["notes"],
        }
        print(json.dumps(summary, indent=2))
        return 0
    notebook = snapshot.manifest["notebook"]
    print(f"snapshot {snapshot.short_id}  ({snapshot.id})")
    print(f"  store     {snapshot.store_url}")
    print(f"  notebook  {notebook['path']}  {human_bytes(notebook['size'])}")
    data_bytes = snapshot.bytes - notebook["size"]
    print(
        f"  data      {snapshot.files} files, {human_bytes(data_bytes)} ({len(snapshot.detected)} detected in code)"
    )
    print(
        f"  stored    {human_bytes(snapshot.new_bytes)} new, "
        f"{human_bytes(snapshot.deduplicated_bytes)} already in the store (deduplicated)"
    )
    print(
        f"  hashed    {snapshot.hashed_files} files, {human_bytes(snapshot.hashed_bytes)} (others unchanged)"
    )
    if snapshot.detected:
        shown = ", ".join(snapshot.detected[:DETECTED_SHOWN])
        more = (
            f" and {len(snapshot.detected) - DETECTED_SHOWN} more"
            if len(snapshot.detected) > DETECTED_SHOWN
            else ""
        )
        print(f"  detected  {shown}{more}")
    print_skipped(report["skipped"])
    print_notes(report["notes"])
    return 0


class _BarProgress:
    """A rich progress bar on stderr, shown only when there is enough to hash to be worth watching."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._task: Any = None

    def start(self, total_bytes: int, files: int) -> None:
        if total_bytes < PROGRESS_MIN_BYTES:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task(f"hashing {files} files", total=total_bytes)
        self._bar.start()

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, count)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
