"""``cellpipe export``: write the manifests that would run a notebook, for review or GitOps."""

from __future__ import annotations

import argparse
import sys

from jupyter_ext.cli._cluster import (
    add_cluster_options,
    add_notebook_options,
    add_pod_options,
    request_from_args,
)
from jupyter_ext.cli._warnings import print_notes
from jupyter_ext.errors import TargetError

HELP = """\
Write the Kubernetes manifests (or the KFP package) that run a notebook as YAML files instead of creating
them: review them, commit them to a GitOps repository, or `kubectl create -f` them yourself. The cluster is
not contacted (the kubeconfig is read only for the default namespace), but the notebook is snapshotted to
the store (--store or $CELLPIPE_STORE): the manifests name that snapshot, which their pods will restore.
Everything that can be checked without the store (notebook, parameters, store URL, image, cron, names,
resources) is checked first, and all problems are reported together, before anything is uploaded.

--preview writes the files without a store, an image or an upload, to look at: they are named
*.preview.yaml, start with a NOT RUNNABLE comment, and name a placeholder snapshot (and store or image
where none was given).

Files, written atomically into DIR:
  <job name>.job.yaml           a Job that runs the notebook once (its name is the run id)
  <cronjob name>.cronjob.yaml   with --cron: a CronJob that runs it on that schedule
--name names both objects; by default the Job is <pipeline>-<run id> and the CronJob <pipeline>.

targets (the same names as submit and schedule):
  job    Kubernetes batch/v1 Job and CronJob (the default)
  kfp    <name>.kfp.yaml: the Kubeflow Pipelines package, compiled for the snapshot (its runs restore it;
         --name names the file, default the pipeline); upload it in the KFP UI. No --cron: schedule it
         with `cellpipe schedule --target kfp`.
(--format k8s|kfp, the old spelling, still works and says to use --target.)

examples:
  cellpipe export train.ipynb -o deploy/ --image ghcr.io/acme/cellpipe-runtime:1.0
  cellpipe export train.ipynb -o deploy/ --cron "0 3 * * *" -n team-a -p epochs=20
  kubectl create -f deploy/
  cellpipe export train.ipynb -o deploy/ --target kfp --image ghcr.io/acme/cellpipe-runtime:1.0
  cellpipe export train.ipynb -o review/ --preview       # no store or image needed, not runnable
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="write Job/CronJob YAML or a KFP package for a notebook (no cluster contact)",
        description=HELP,
    )  # fmt: skip
    add_notebook_options(parser)
    parser.add_argument(
        "--target", default=None, metavar="TARGET", help="what to write for: job (default), kfp"
    )
    parser.add_argument("--format", default=None, metavar="FORMAT", help=argparse.SUPPRESS)  # deprecated
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the YAML files")
    parser.add_argument(
        "--cron", metavar="EXPR", help='also write a CronJob with this schedule, e.g. "0 3 * * *"'
    )
    parser.add_argument("--timezone", metavar="TZ", help="IANA time zone for --cron, e.g. Europe/Berlin")
    parser.add_argument("--preview", action="store_true",
                        help="write *.preview.yaml files to look at: no store, image or upload needed; "
                             "NOT runnable")  # fmt: skip
    add_pod_options(parser)
    add_cluster_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from jupyter_ext.services.submission import EXPORT_TARGETS, pick

    args.target = export_target(args)
    export = pick(EXPORT_TARGETS, args.target, "--target")
    exported = export(
        request_from_args(args), args.output, cron=args.cron, timezone=args.timezone, preview=args.preview
    )
    for path in exported.paths:
        print(f"wrote {path}")
    if exported.preview:
        print(
            "PREVIEW: nothing was uploaded and the files are NOT runnable; export without --preview to run them"
        )
    else:
        print(f"snapshot {exported.snapshot_id[:12]} in {exported.store} (the manifests' pods restore it)")
    print_notes(exported.notes)
    return 0


# --format's values, which were named after the files, not the targets: the target each one means
FORMAT_TARGETS = {"k8s": "job", "kfp": "kfp"}


def export_target(args: argparse.Namespace) -> str:
    """--target, or the target a (deprecated) --format names, which says so on stderr."""
    if args.format is None:
        return args.target or "job"
    target = FORMAT_TARGETS.get(args.format)
    if target is None:
        raise TargetError(f"unknown format '{args.format}'", field="--format",
                          hint="--format is deprecated: use --target job or --target kfp")  # fmt: skip
    if args.target not in (None, target):
        raise TargetError(f"--format {args.format} means --target {target}, not {args.target}", field="--format",
                          hint="Drop --format: it is deprecated")  # fmt: skip
    print(f"cellpipe: warning: --format {args.format} is deprecated; use --target {target}", file=sys.stderr)
    return target
