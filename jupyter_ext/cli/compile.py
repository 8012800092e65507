"""``cellpipe compile``: write a notebook's pipeline as a Kubeflow Pipelines v2 package (YAML)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = """\
Compile a tagged notebook to a Kubeflow Pipelines v2 package (YAML) with the KFP compiler: one
component per step, variables passed between steps as artifacts, typed pipeline parameters with the
notebook's defaults (change them with -p), limits, GPUs, secrets, volumes, labels and caching as task
settings. Nothing is run and nothing is uploaded; the package is written atomically.

Every step runs in an image that has cellpipe installed: by default cellpipe/runtime:<cellpipe version>
(build it from hub_config/images/runtime.Dockerfile, see docs/hub.md; the output says when it is used).
--image, else the notebook's docker_image, else $CELLPIPE_IMAGE replaces it; an image:REF tag on a step
wins over all of them.

examples:
  cellpipe compile train.ipynb -o train.yaml
  cellpipe compile train.ipynb -o train.yaml -p learning_rate=0.05 --image registry.example.com/ds/runtime:1.2
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compile", help="compile the pipeline to a Kubeflow Pipelines package",
        description=HELP,
    )  # fmt: skip
    parser.add_argument("notebook", help="path to the .ipynb file")
    parser.add_argument("-o", "--output", metavar="FILE.yaml",
                        help="where to write the package (default: the notebook's name with .yaml, here)")  # fmt: skip
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="set a parameter's default in the package (type-checked; repeatable)")  # fmt: skip
    parser.add_argument("--image", metavar="REF", help="image for steps without an image:REF tag")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from jupyter_ext.cli._warnings import print_notes, print_warnings
    from jupyter_ext.notebook.params import resolve
    from jupyter_ext.pipeline.build import build_pipeline
    from jupyter_ext.snapshot.config import IMAGE_ENV
    from jupyter_ext.targets.kfp.compile import PackageSpec, compile_pipeline
    from jupyter_ext.targets.kfp.options import kfp_image

    pipeline = build_pipeline(args.notebook)
    print_warnings(pipeline)
    values = resolve(pipeline.parameters, args.param)  # bad -p fails here, before kfp is imported
    output = Path(args.output or f"{Path(args.notebook).stem}.yaml")
    # the same choice (and the same note when cellpipe's default image is used) as submit/export --target kfp
    image, notes = kfp_image(pipeline, args.image, os.environ.get(IMAGE_ENV))
    path = compile_pipeline(pipeline, output, PackageSpec(parameters=values, image=image))
    steps, parameters = len(pipeline.steps), len(pipeline.parameters)
    print(
        f"compiled '{pipeline.name}': {steps} step{'s' * (steps != 1)}, "
        f"{parameters} parameter{'s' * (parameters != 1)} -> {path}"
    )
    print_notes(notes)
    return 0
