"""The ``cellpipe`` command.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``, which adds
its parser and sets ``handler`` (a function taking the parsed args and returning an exit code).
A :class:`~jupyter_ext.errors.CellpipeError` raised by a handler is printed as one line, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from jupyter_ext import __version__
from jupyter_ext.errors import CellpipeError
from jupyter_ext.startup import defer_iri_grammars

defer_iri_grammars()  # 1.5 s of grammar compiling at import, for a check the CLI never makes

# Subcommand modules, in the order --help lists them.
COMMANDS = [
    "inspect",
    "compile",
    "run",
    "rerun",
    "runs",
    "snapshot",
    "snapshots",
    "restore",
    "gc",
    "submit",
    "schedule",
    "schedules",
    "scheduler",
    "export",
    "kfp",
]

DESCRIPTION = """\
Take a tagged Jupyter notebook to production: inspect its pipeline, run it locally,
compile it for Kubeflow Pipelines or run it on Kubernetes.

Tag cells in JupyterLab (cell metadata "tags"); the tags are Kale's, plus papermill's:
  imports                 cell runs before every step (imports)
  functions               cell runs before every step (helper functions)
  pipeline-parameters     literal assignments = typed pipeline parameters (alias: parameters)
  pipeline-metrics        names of variables to report as metrics, one per line
  step:NAME               starts a step (legacy: block:NAME); untagged cells join the step above
  prev:NAME               explicit ordering edge, on top of the data flow
  skip                    cell is left out
  limit:RESOURCE:VALUE    e.g. limit:nvidia.com/gpu:1  limit:cpu:2  limit:memory:4Gi
  image:REF  cache:enabled|disabled  label:K:V  annotation:K:V  secret:SECRET:KEY:ENV_VAR  data:PATH

Example notebook:
  [imports]             import pandas as pd
  [parameters]          n_rows = 100
  [step:load]           df = pd.DataFrame({"x": range(n_rows)})
  [step:train]          total = int(df.x.sum())
  [pipeline-metrics]    total

  $ cellpipe inspect example.ipynb      # steps, edges with the variables on them, parameters, metrics
  $ cellpipe run example.ipynb -p n_rows=1000
"""


class CommandParser(argparse.ArgumentParser):
    """The parser of ``cellpipe`` and, through ``add_subparsers`` (which makes parsers of its parser's class),
    of every subcommand: descriptions are printed as written, as they hold examples and tag tables."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with ``only`` one subcommand: its module alone is imported (start-up time is
    most of a quick command's time, and some subcommands import heavy libraries)."""
    parser = CommandParser(prog="cellpipe", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"cellpipe {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in [only] if only in COMMANDS else COMMANDS:
        try:
            module = importlib.import_module(f"jupyter_ext.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"jupyter_ext.cli.{name}":
                continue  # subcommand not built yet
            raise
        module.register(subparsers)
    return parser


def command_name(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(command_name(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except CellpipeError as exc:
        print(f"cellpipe: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cellpipe: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
