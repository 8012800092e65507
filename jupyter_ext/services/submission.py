"""Which function exports each cluster target's manifests (name -> "module:function").

Above both :mod:`.cluster` (Kubernetes) and :mod:`.kfp_cluster`, so neither imports the other's registry;
modules are imported on first use, so the Kubernetes commands never load KFP.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from jupyter_ext.errors import TargetError

# Runs (`cellpipe submit`, `run --target`) go through services.runs.RunService, whatever the target.
# Schedules (local, job = CronJob, kfp = recurring run) go through services.schedules.ScheduleService.
EXPORT_TARGETS: dict[str, str] = {
    "job": "jupyter_ext.services.cluster:export_k8s",
    "kfp": "jupyter_ext.services.kfp_cluster:export_kfp",
}


def pick(registry: Mapping[str, str], name: str, option: str) -> Callable[..., Any]:
    """The function registered as ``name``; an unknown one is a one-line error listing the known."""
    if name not in registry:
        raise TargetError(
            f"unknown {option.lstrip('-')} '{name}'", field=option, hint=f"Use one of: {', '.join(registry)}"
        )
    module, _, function = registry[name].partition(":")
    return getattr(importlib.import_module(module), function)
