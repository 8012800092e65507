"""The options of the Kubernetes Job target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jupyter_ext.targets.base import ClusterOptions


@dataclass
class JobOptions(ClusterOptions):
    active_deadline_seconds: int | None = None  # stop the run after this long
    backoff_limit: int = 0  # retries of a failed pod
    ttl_seconds_after_finished: int | None = 86400  # finished Jobs are deleted after a day
    limits: dict[str, str] = field(default_factory=dict)  # --limit: the pod's resources over the tags


def pod_options(options: JobOptions, image: str, namespace: str) -> Any:
    """The Job manifest's PodOptions from the target's options, once the image and namespace are settled."""
    from jupyter_ext.targets.k8s.notebook_job import PodOptions

    return PodOptions(
        image=image,
        namespace=namespace,
        active_deadline_seconds=options.active_deadline_seconds,
        backoff_limit=options.backoff_limit,
        ttl_seconds_after_finished=options.ttl_seconds_after_finished,
        gpu_node_selector=options.gpu_node_selector,
        service_account=options.service_account,
        env=dict(options.env),
        secrets=list(options.secrets),
        limits=dict(options.limits),
    )
