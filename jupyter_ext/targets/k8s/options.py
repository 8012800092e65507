"""The options of the Kubernetes Job target."""

from __future__ import annotations

from dataclasses import dataclass, field

from jupyter_ext.targets.base import ClusterOptions


@dataclass
class JobOptions(ClusterOptions):
    active_deadline_seconds: int | None = None  # stop the run after this long
    backoff_limit: int = 0  # retries of a failed pod
    ttl_seconds_after_finished: int | None = 86400  # finished Jobs are deleted after a day
    limits: dict[str, str] = field(default_factory=dict)  # --limit: the pod's resources over the tags
