"""Options shared by ``cellpipe submit``, ``schedule`` and ``export``, and how they become a request."""

from __future__ import annotations

import argparse
from typing import Any

from jupyter_ext.errors import TargetError

STORE_HELP = (
    "snapshot store the pods read from: s3://bucket/prefix, gs://bucket/prefix, ... "
    "(default: $CELLPIPE_STORE; a local directory will not do, pods cannot see this machine)"
)


def add_notebook_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "notebook", metavar="NOTEBOOK", help="the .ipynb file (tagged, or plain for papermill)"
    )
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter (type-checked against its default; repeatable)")  # fmt: skip


def add_pod_options(parser: argparse.ArgumentParser) -> None:
    pod = parser.add_argument_group("pod")
    pod.add_argument("--image", metavar="REF",
                     help="container image with cellpipe installed (default: the notebook's docker_image "
                          "metadata or image: tags, else $CELLPIPE_IMAGE)")  # fmt: skip
    pod.add_argument("--store", metavar="URL", help=STORE_HELP)
    pod.add_argument("--name", metavar="NAME", help="object name (default: from the pipeline name)")
    pod.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                     help="plain environment variable for the pod, e.g. MLFLOW_TRACKING_URI=http://mlflow:5000 "
                          "(not for secrets; repeatable)")  # fmt: skip
    pod.add_argument("--secret", action="append", default=[], metavar="SECRET:KEY:ENV",
                     help="expose key KEY of Kubernetes Secret SECRET as $ENV, e.g. the store's credentials "
                          "(repeatable; steps' secret: tags are added too)")  # fmt: skip
    pod.add_argument(
        "--service-account", metavar="NAME", help="service account (default: none, no API token)"
    )
    pod.add_argument("--deadline", type=int, metavar="SECONDS", help="stop the run after this long")
    pod.add_argument(
        "--retries", type=int, default=0, metavar="N", help="retry a failed pod N times (default 0)"
    )
    pod.add_argument("--ttl", type=int, default=86400, metavar="SECONDS",
                     help="delete finished Jobs after this long (default 86400, a day)")  # fmt: skip
    pod.add_argument("--limit", action="append", default=[], metavar="RESOURCE=VALUE",
                     help="the Job pod's limit (and request) for a resource, over the steps' limit: tags, e.g. "
                          "--limit memory=8Gi --limit cpu=4; cpu and memory nobody sets get a default request and "
                          "limit ($CELLPIPE_JOB_REQUESTS, $CELLPIPE_JOB_LIMITS; built in: 250m/1Gi, 2/4Gi)")  # fmt: skip
    pod.add_argument("--gpu-node-selector", action="append", default=[], metavar="KEY=VALUE",
                     help="node label for GPU runs, e.g. nvidia.com/gpu.product=NVIDIA-A100-SXM4-40GB")  # fmt: skip


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    cluster = parser.add_argument_group("cluster")
    cluster.add_argument("-n", "--namespace", metavar="NS",
                         help="namespace (default: $CELLPIPE_NAMESPACE, the pod's own, the kubeconfig "
                              "context's, else 'default')")  # fmt: skip
    cluster.add_argument(
        "--kubeconfig", metavar="PATH", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    cluster.add_argument("--context", metavar="NAME", help="kubeconfig context (default: the current one)")


def add_kfp_options(parser: argparse.ArgumentParser, *, experiment: bool = True) -> None:
    """The KFP API and its credentials (see connect()); with --kubeconfig, that user's bearer token."""
    kfp = parser.add_argument_group("KFP API")
    kfp.add_argument("--host", metavar="URL",
                     help="the KFP API, e.g. https://kubeflow.example.com/pipeline or http://localhost:8080 "
                          "(default: $CELLPIPE_KFP_HOST, $KF_PIPELINES_ENDPOINT)")  # fmt: skip
    if experiment:
        kfp.add_argument("--experiment", metavar="NAME",
                         help="KFP experiment (default: the notebook's experiment_name, else Default)")  # fmt: skip
    kfp.add_argument("--token-file", metavar="PATH",
                     help="file holding a bearer token, re-read per request (default: "
                          "$KF_PIPELINES_SA_TOKEN_PATH, /var/run/secrets/kfp/token, the pod's service account)")  # fmt: skip
    kfp.add_argument("--token", metavar="TOKEN",
                     help="bearer token; avoid: shell history and ps show it, prefer --token-file")  # fmt: skip


def parse_pairs(items: list[str], option: str) -> dict[str, str]:
    """``["A=1", "B=x=y"]`` -> ``{"A": "1", "B": "x=y"}``."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TargetError(f"'{item}' is not KEY=VALUE", field=option, hint=f"e.g. {option} NAME=value")
        pairs[key.strip()] = value
    return pairs


def parse_secrets(items: list[str]) -> list[Any]:
    from jupyter_ext.pipeline.model import Secret

    secrets = []
    for item in items:
        parts = item.split(":")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise TargetError(
                f"'{item}' is not SECRET:KEY:ENV",
                field="--secret",
                hint="e.g. --secret s3-creds:access-key:AWS_ACCESS_KEY_ID (the value stays in the Secret)",
            )
        secrets.append(Secret(*(p.strip() for p in parts)))
    return secrets


def request_from_args(args: argparse.Namespace) -> Any:
    """The ClusterRequest of submit/schedule/export: KfpOptions for the kfp target, else JobOptions."""
    from jupyter_ext.services.cluster import ClusterRequest
    from jupyter_ext.targets.k8s.options import JobOptions
    from jupyter_ext.targets.kfp.options import KfpOptions

    shared = {
        "store": args.store,
        "image": args.image,
        "namespace": args.namespace,
        "name": args.name,
        "env": parse_pairs(args.env, "--env"),
        "secrets": parse_secrets(args.secret),
        "service_account": args.service_account,
        "gpu_node_selector": parse_pairs(args.gpu_node_selector, "--gpu-node-selector") or None,
        "kubeconfig": args.kubeconfig,
        "context": args.context,
    }
    if getattr(args, "target", None) == "kfp":
        refuse_job_only_options(args)
        options: Any = KfpOptions(
            **shared,
            host=getattr(args, "host", None),  # `export` has no KFP options (no KFP contact)
            token=getattr(args, "token", None),
            token_file=getattr(args, "token_file", None),
            experiment=getattr(args, "experiment", None),
        )
    else:
        options = JobOptions(
            **shared,
            active_deadline_seconds=args.deadline,
            backoff_limit=args.retries,
            ttl_seconds_after_finished=args.ttl,
            limits=parse_pairs(args.limit, "--limit"),
        )
    return ClusterRequest(notebook=args.notebook, overrides=list(args.param), options=options)


# Job settings KFP has no per-run equivalent for: refused rather than silently dropped.
_JOB_ONLY = (
    ("deadline", "--deadline", None),
    ("retries", "--retries", 0),
    ("ttl", "--ttl", 86400),
    ("limit", "--limit", []),  # KFP steps take their limits from limit: tags
)


def refuse_job_only_options(args: argparse.Namespace) -> None:
    for attribute, option, default in _JOB_ONLY:
        if getattr(args, attribute, default) != default:
            raise TargetError(
                "applies to Kubernetes Jobs only",
                field=option,
                hint="Drop it for kfp: KFP has no such run setting",
            )
