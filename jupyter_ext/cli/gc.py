"""``cellpipe gc``: remove what nothing needs any more from the snapshot store and the data directory."""

from __future__ import annotations

import argparse
from typing import Any

from jupyter_ext.cli._snapshot_text import add_store_option, human_bytes

DESCRIPTION = """\
Remove store objects that no snapshot references (left by interrupted snapshots, or by snapshot
manifests deleted by hand), temporary files of killed snapshots, step-cache staging directories of
killed runs, and connection files (ports and signing key) of kernels whose runner was killed.
Snapshots themselves are never removed. Run with --dry-run first to see what would go.

A local store is locked while it is collected, so snapshots taken meanwhile wait; a remote store
(s3://, gs://...) has no lock: collect it when nobody is taking snapshots into it.

examples:
  cellpipe gc --dry-run
  cellpipe gc --store s3://bucket/cellpipe
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gc",
        help="remove unreferenced store objects and leftovers of killed runs",
        description=DESCRIPTION,
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    add_store_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from jupyter_ext.runtime.kernel import clean_kernel_leftovers
    from jupyter_ext.snapshot import open_store
    from jupyter_ext.snapshot.gc import collect_garbage
    from jupyter_ext.snapshot.project import data_dir
    from jupyter_ext.targets.local.cache import StepCache

    store = open_store(args.store)
    report = collect_garbage(store, dry_run=args.dry_run)
    staging = StepCache(data_dir() / "cache").clean_leftovers(dry_run=args.dry_run)
    kernel_leftovers = clean_kernel_leftovers(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"store {store.url}: {report.snapshots} snapshots, {report.kept_objects} objects in use")
    print(
        f"  {verb} {len(report.removed_objects)} unreferenced objects ({human_bytes(report.removed_bytes)})"
    )
    for digest in report.removed_objects if args.dry_run else []:
        print(f"    {digest[:12]}")
    print(f"  {verb} {len(report.removed_temp)} temporary files of killed snapshots")
    print(f"{verb} {len(staging)} step-cache staging directories of killed runs")
    print(f"{verb} {len(kernel_leftovers)} kernel connection files and socket directories of killed runs")
    return 0
