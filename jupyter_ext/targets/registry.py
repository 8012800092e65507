"""The targets registry: name -> target. A new target is a module and one entry here."""

from __future__ import annotations

import importlib
from typing import Any

from jupyter_ext.errors import CellpipeError
from jupyter_ext.targets.base import Target, TargetInfo

# name -> "module:Class", imported on first use (the KFP and Kubernetes clients are slow to import)
TARGETS: dict[str, str] = {
    "local": "jupyter_ext.targets.local.target:LocalTarget",
    "job": "jupyter_ext.targets.k8s.target:JobTarget",
    "kfp": "jupyter_ext.targets.kfp.target:KfpTarget",
}


def get_target(name: str) -> Target:
    spec = TARGETS.get(name)
    if spec is None:
        raise CellpipeError(
            f"unknown target '{name}'", field="target", hint=f"use one of: {', '.join(TARGETS)}"
        )
    module, _, cls = spec.partition(":")
    return getattr(importlib.import_module(module), cls)()


def options_for(name: str, options: Any) -> Any:
    """The target's options object: ``options`` itself, a dict of its fields, or the defaults for None."""
    options_type = get_target(name).options_type
    if options is None:
        return options_type()
    if isinstance(options, dict):
        try:
            return options_type(**options)
        except TypeError as exc:
            raise CellpipeError(
                f"invalid options for target '{name}': {exc}", field="target_options"
            ) from None
    if not isinstance(options, options_type):
        raise CellpipeError(
            f"target '{name}' takes {options_type.__name__}, not {type(options).__name__}",
            field="target_options",
        )
    return options


def available_targets(settings: Any = None) -> list[TargetInfo]:
    """Every registered target, whether it can be used with ``settings`` (a TargetSettings, an object with
    ``store_url``/``kfp_host``/``kubeconfig`` attributes, or None for the environment) and why not."""
    infos = []
    for name in TARGETS:
        target = get_target(name)
        available, reason = target.availability(settings)
        infos.append(TargetInfo(name, target.label, available, None if available else reason))
    return infos
