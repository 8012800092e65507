"""``cellpipe inspect``: show the pipeline a notebook defines."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from jupyter_ext.cli._warnings import print_warnings
from jupyter_ext.notebook.params import resolve
from jupyter_ext.pipeline.build import build_pipeline
from jupyter_ext.pipeline.model import Pipeline
from jupyter_ext.pipeline.render import text_dag, to_dot, to_svg

HELP = """\
Analyse a tagged notebook and show its pipeline: the steps (with the notebook cells they come from),
the edges between them with the variables that flow along each, the parameters with their types and
defaults, and the metrics. Nothing is run.

examples:
  cellpipe inspect train.ipynb
  cellpipe inspect train.ipynb --json | jq .steps
  cellpipe inspect train.ipynb --svg pipeline.svg
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect", help="show steps, data flow, parameters and metrics", description=HELP,
    )  # fmt: skip
    parser.add_argument("notebook", help="path to the .ipynb file")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the pipeline model as JSON")
    output.add_argument("--dot", action="store_true", help="print the DAG in Graphviz DOT")
    parser.add_argument(
        "--svg", metavar="FILE", help="also write a picture of the DAG (SVG, no Graphviz needed)"
    )
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter default (type-checked)")  # fmt: skip
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    pipeline = build_pipeline(args.notebook)
    print_warnings(pipeline)
    values = resolve(pipeline.parameters, args.param)
    for parameter in pipeline.parameters:
        parameter.default = values[parameter.name]
    if args.svg:
        from jupyter_ext.util import user_file_mode, write_atomic

        write_atomic(args.svg, to_svg(pipeline).encode(), mode=user_file_mode())
    if args.json:
        print(json.dumps(pipeline.to_dict(), indent=2, default=str))
    elif args.dot:
        print(to_dot(pipeline), end="")
    else:
        print_pipeline(pipeline)
    if args.svg:  # after the summary, on stderr when stdout is JSON or DOT for another program
        steps = len(pipeline.steps)
        print(f"wrote {args.svg} (SVG picture of {steps} step{'s' * (steps != 1)})",
              file=sys.stderr if args.json or args.dot else sys.stdout)  # fmt: skip
    return 0


def print_pipeline(pipeline: Pipeline) -> None:
    """The pipeline as ``cellpipe inspect`` shows it: steps, data flow, parameters and metrics."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    console.print(f"[bold]{pipeline.name}[/bold]  ({pipeline.notebook})")
    if pipeline.description:
        console.print(pipeline.description)
    if pipeline.is_plain:
        console.print(
            "a plain notebook: no cell is tagged step:NAME, so it runs whole, top to bottom, with its "
            "parameters cell (tag the first cell of each step step:NAME to make it a pipeline)"
        )
        print_parameters(console, pipeline)
        return

    steps = Table(title=f"Steps ({len(pipeline.steps)})", title_justify="left", box=None, pad_edge=False)
    for column in ("step", "cells", "needs", "inputs", "parameters", "resources"):
        steps.add_column(column)
    for step in pipeline.steps:
        steps.add_row(
            step.name,
            ",".join(str(c.index) for c in step.cells),
            ", ".join(step.depends_on) or "-",
            ", ".join(step.inputs) or "-",
            ", ".join(step.parameters) or "-",
            " ".join(f"{k}={v}" for k, v in step.limits.items()) or "-",
        )
    console.print(steps)

    console.print("\n[bold]Data flow[/bold]")
    for edge in pipeline.edges:
        what = ", ".join(edge.variables) if edge.variables else "(order only, prev:)"
        console.print(f"  {edge.source} -> {edge.target}: {what}")
    if not pipeline.edges:
        console.print("  (no edges: every step is independent)")

    console.print("\n[bold]DAG[/bold] (steps on one line can run in parallel)")
    for line in text_dag(pipeline):
        console.print(f"  {line}")

    print_parameters(console, pipeline)
    if pipeline.metrics:
        producers = {m: s.name for s in pipeline.steps for m in s.metrics}
        console.print("\n[bold]Metrics[/bold]")
        for metric in pipeline.metrics:
            console.print(f"  {metric} (from {producers[metric]})")


def print_parameters(console: Any, pipeline: Pipeline) -> None:
    from rich.table import Table

    if pipeline.parameters:
        params = Table(title="\nParameters", title_justify="left", box=None, pad_edge=False)
        for column in ("name", "type", "value"):
            params.add_column(column)
        for parameter in pipeline.parameters:
            params.add_row(parameter.name, parameter.type, repr(parameter.default))
        console.print(params)
