"""``cellpipe submit``: run a notebook once on a cluster."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jupyter_ext.cli._cluster import (
    add_cluster_options,
    add_kfp_options,
    add_notebook_options,
    add_pod_options,
    print_notes,
    request_from_args,
)

HELP = """\
Run a notebook once on a cluster. cellpipe snapshots the notebook and the data it uses into a store
the cluster can reach (--store or $CELLPIPE_STORE, e.g. s3://bucket/cellpipe), then creates a
Kubernetes Job whose pod restores that snapshot and runs it:
  a notebook with step: tags runs as a pipeline, its steps one after another in that pod;
  a plain notebook runs whole with papermill (-p values go after its 'parameters' cell).
The pod writes the executed notebooks and a run record to <store>/runs/<run id>/.
The Job's name is the run id. The pod gets the largest resource limits of the steps (a GPU if any step
asks for one), their secret: tags as Secret references, and the notebook's PVCs.

targets:
  job     a Kubernetes Job (batch/v1), created with your kubeconfig's credentials
  kfp     a Kubeflow Pipelines run (--host): the package, compiled for the snapshot, is uploaded as a new
          version of the pipeline named like the notebook's, one pod per step; --name names the run.
          Follow it with --wait or `cellpipe kfp status|logs|cancel RUN_ID`. See docs/kfp.md.

examples:
  export CELLPIPE_STORE=s3://ml-bucket/cellpipe
  cellpipe submit train.ipynb --image ghcr.io/acme/cellpipe-runtime:1.0
  cellpipe submit train.ipynb -p epochs=20 -n team-a --wait
  cellpipe submit report.ipynb --secret s3-creds:access-key:AWS_ACCESS_KEY_ID \\
      --secret s3-creds:secret-key:AWS_SECRET_ACCESS_KEY --env MLFLOW_TRACKING_URI=http://mlflow:5000
  cellpipe submit train.ipynb --target kfp --host http://localhost:8080 --experiment nightly --wait
See docs/kubernetes.md for the image, the store and its credentials.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit", help="run a notebook once on Kubernetes (a Job) or Kubeflow Pipelines", description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add_notebook_options(parser)
    parser.add_argument("--target", default="job", metavar="TARGET", help="where to run: job (default), kfp")
    parser.add_argument("--wait", action="store_true",
                        help="follow the run until it finishes; Ctrl-C stops waiting, not the run")  # fmt: skip
    parser.add_argument("--wait-timeout", type=float, default=6 * 3600, metavar="SECONDS",
                        help="give up waiting after this long (default 6 hours)")  # fmt: skip
    parser.add_argument("--poll", type=float, default=5.0, metavar="SECONDS",
                        help="how often --wait checks the run (default 5)")  # fmt: skip
    add_pod_options(parser)
    add_cluster_options(parser)
    add_kfp_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from jupyter_ext.services.kfp_cluster import KFP_RUN
    from jupyter_ext.services.submission import SUBMIT_TARGETS, pick

    submit = pick(SUBMIT_TARGETS, args.target, "--target")
    request = request_from_args(args)
    created = submit(request)
    if created.kind == KFP_RUN:
        from jupyter_ext.cli.kfp import follow_run, print_run

        print_run(created)
        if not args.wait:
            return 0
        return follow_run(request.options, created.name, timeout=args.wait_timeout, poll=args.poll)
    print_created(created)
    if not args.wait:
        return 0
    return wait(request, created, timeout=args.wait_timeout, interval=args.poll)


def print_created(created: Any) -> None:
    ns, name = created.namespace, created.name
    print(f"job {name} created in namespace {ns}")
    print(f"  run id    {created.run_id}")
    print(f"  snapshot  {created.snapshot_id[:12]} in {created.store}")
    print(f"  image     {created.image}")
    print(f"  results   {created.store.rstrip('/')}/runs/{created.run_id}/")
    print(f"  status    kubectl get job -n {ns} -l cellpipe.io/run-id={created.run_id}")
    print(f"  logs      kubectl logs -n {ns} job/{name} -f")
    print_notes(created.notes)


def wait(request: Any, created: Any, *, timeout: float, interval: float) -> int:
    from jupyter_ext.services.cluster import wait_for_job
    from jupyter_ext.targets.k8s.client import KubernetesTarget

    def show(status: dict[str, Any]) -> None:
        print(f"job {created.name}: {status['phase']}", file=sys.stderr, flush=True)

    options = request.options
    with KubernetesTarget(namespace=created.namespace, kubeconfig=options.kubeconfig,
                          context=options.context) as target:  # fmt: skip
        try:
            status = wait_for_job(target, created.name, timeout=timeout, interval=interval, on_change=show)
        except KeyboardInterrupt:
            print(f"stopped waiting; job {created.name} keeps running "
                  f"(kubectl delete job -n {created.namespace} {created.name} stops it)", file=sys.stderr)  # fmt: skip
            return 130
    if status["phase"] == "Succeeded":
        print(f"job {created.name} succeeded")
        return 0
    if status["phase"] == "Failed":
        reason = next((c.get("message") or c.get("reason") for c in status["conditions"]
                       if c.get("type") == "Failed"), None)  # fmt: skip
        print(f"cellpipe: error: job {created.name} failed{': ' + reason if reason else ''}. "
              f"See kubectl logs -n {created.namespace} job/{created.name}", file=sys.stderr)  # fmt: skip
        return 1
    print(f"cellpipe: error: job {created.name} is still {status['phase']} after {timeout:.0f}s; it keeps "
          "running", file=sys.stderr)  # fmt: skip
    return 1
