"""``cellpipe rerun``: run a recorded run again, from its snapshot, with its parameters."""

from __future__ import annotations

import argparse

from jupyter_ext.cli.run import add_run_options, launch, local_options
from jupyter_ext.cli.runs import add_data_dir_option, default_data_dir

HELP = """\
Run a recorded run again exactly as it was: the notebook and data come from the run's snapshot (not
from the working copy, which may have changed since), with the run's parameters. The new run records
the same snapshot id and `rerun_of`. Unchanged steps come from the step cache unless --no-cache.

examples:
  cellpipe rerun latest
  cellpipe rerun 20261122-031005-3fa2c1
  cellpipe rerun 3fa2c1 --no-cache          (any unique prefix, or the last characters)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rerun", help="run a past run again from its snapshot", description=HELP,
    )  # fmt: skip
    parser.add_argument("run_id", help="run id, unique prefix or suffix, or `latest` (see `cellpipe runs`)")
    add_data_dir_option(parser)
    add_run_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from jupyter_ext.services.runs import RunService

    service = RunService(args.data_dir or default_data_dir())
    local = service.get(args.run_id).target == "local"
    request = service.rerun_request(
        args.run_id,
        target_options=local_options(args) if local else None,  # a cluster run: its target's defaults
        use_cache=not args.no_cache,
        track=not args.no_track,
    )
    return launch(service, request, as_json=args.json)
