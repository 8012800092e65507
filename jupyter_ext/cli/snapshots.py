"""``cellpipe snapshots list|show|verify``: look into a snapshot store."""

from __future__ import annotations

import argparse
import json
from typing import Any

from jupyter_ext.cli._snapshot_text import add_store_option, human_bytes, print_skipped
from jupyter_ext.cli._warnings import print_notes

DESCRIPTION = """\
Inspect the snapshots in a store. Ids may be shortened to any unique prefix (12 characters are shown).

examples:
  cellpipe snapshots list
  cellpipe snapshots show 3f2a9c          # files, environment, what was skipped and why
  cellpipe snapshots verify               # re-hash every object of every snapshot
  cellpipe snapshots verify --repair      # and rewrite damaged objects from the project's files
  cellpipe snapshots verify 3f2a9c --store s3://bucket/cellpipe
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "snapshots",
        help="list, show and verify stored snapshots",
        description=DESCRIPTION,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="one line per snapshot, newest first (as `cellpipe runs`)")
    add_store_option(listing)
    listing.set_defaults(handler=run_list)

    show = actions.add_parser("show", help="a snapshot's notebook, data files, environment and report")
    show.add_argument("id", metavar="ID", help="snapshot id or unique prefix")
    show.add_argument("--json", action="store_true", help="print the whole manifest")
    add_store_option(show)
    show.set_defaults(handler=run_show)

    verify = actions.add_parser(
        "verify",
        help="re-hash stored objects to prove the snapshots are intact",
        description="Re-read every object a snapshot names and check its hash and size (the store's hash:\n"
        "BLAKE3, or sha256 in a store created before store.json recorded it).\n"
        "Exits 1 if anything is missing or corrupt (and, with --repair, could not be repaired).",
    )
    verify.add_argument("id", metavar="ID", nargs="?", help="snapshot id or prefix (default: all)")
    verify.add_argument(
        "--repair",
        action="store_true",
        help="rewrite missing or corrupt objects from the working copy, where a file there still has "
        "exactly the snapshot's content (re-hashed; a changed file is never used)",
    )
    verify.add_argument(
        "--from",
        dest="working_copy",
        metavar="DIR",
        help="the project directory to repair from (default: the project root the snapshot was taken in)",
    )
    add_store_option(verify)
    verify.set_defaults(handler=run_verify)


def _store(args: argparse.Namespace) -> Any:
    from jupyter_ext.snapshot import open_store

    return open_store(args.store)


def run_list(args: argparse.Namespace) -> int:
    store = _store(args)
    infos = store.list()
    if not infos:
        print(f"no snapshots in {store.url}")
        return 0
    print(f"{'ID':<12}  {'CREATED (UTC)':<19}  {'FILES':>5}  {'DATA':>10}  NOTEBOOK")
    for info in reversed(infos):  # newest first, the order of every cellpipe listing
        created = info.created[:19].replace("T", " ")
        print(
            f"{info.short_id:<12}  {created:<19}  {info.files:>5}  {human_bytes(info.bytes):>10}  {info.notebook}"
        )
    return 0


def run_show(args: argparse.Namespace) -> int:
    store = _store(args)
    snapshot_id = store.resolve(args.id)
    manifest = store.read_manifest(snapshot_id)
    if args.json:
        print(json.dumps(manifest, indent=2, sort_keys=True))
        return 0
    notebook = manifest["notebook"]
    environment = manifest.get("environment", {})
    python = environment.get("python", {})
    kernel = environment.get("kernel", {})
    git = environment.get("git")
    print(f"snapshot {snapshot_id}")
    print(f"  created   {manifest.get('created')}")
    print(f"  project   {manifest.get('project_root')}")
    edits = " (unsaved edits)" if notebook.get("unsaved_edits") else ""
    print(f"  notebook  {notebook['path']}  {human_bytes(notebook['size'])}{edits}")
    print(f"  python    {python.get('version')} ({python.get('executable')})")
    print(f"  kernel    {kernel.get('name') or '-'}")
    print(f"  packages  {len(environment.get('packages', []))}")
    print(f"  image     {environment.get('image') or '-'}")
    if git:
        state = "dirty" if git.get("dirty") else "clean"
        print(f"  git       {git.get('commit') or '(no commit)'} {git.get('branch') or ''} {state}".rstrip())
    else:
        print("  git       -")
    files = manifest.get("files", [])
    print(f"data ({len(files)} files, {human_bytes(sum(f['size'] for f in files))}):")
    for entry in files:
        cell = f" cell {entry['cell']}" if entry.get("cell") else ""
        print(
            f"  {entry['path']}  {human_bytes(entry['size'])}  {entry['origin']}{cell}  {entry['hash'][:12]}"
        )
    report = manifest.get("report", {})
    print_skipped(report.get("skipped", []))
    print_notes(report.get("notes", []))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    store = _store(args)
    ids = [store.resolve(args.id)] if args.id else store.ids()
    if not ids:
        print(f"no snapshots in {store.url}")
        return 0
    failed = 0
    for snapshot_id in ids:
        result = store.verify(snapshot_id)
        if result.ok:
            size = human_bytes(result.bytes)
            print(
                f"ok      {snapshot_id[:12]}  {result.objects} objects, {size}, {store.algorithm} re-hashed"
            )
            continue
        print(f"FAILED  {snapshot_id[:12]}")
        for problem in result.problems:
            print(f"  {problem}")
        if args.repair and result.damaged and _repaired(store, result, args.working_copy):
            print(f"ok      {snapshot_id[:12]}  repaired, verifies now")
            continue
        failed += 1
    if failed:
        hint = "" if args.repair else " (--repair rewrites damaged objects from unchanged working-copy files)"
        print(f"{failed} of {len(ids)} snapshots failed verification{hint}")
    return 1 if failed else 0


def _repaired(store: Any, result: Any, working_copy: str | None) -> bool:
    """Repair what can be repaired, say what was done, and whether the snapshot now verifies."""
    for repair in store.repair(result, working_copy):
        if repair.repaired:
            print(f"  repaired {repair.path} from {repair.source}")
        else:
            print(f"  cannot repair {repair.path} from {repair.source}: {repair.reason}")
    return store.verify(result.id).ok
