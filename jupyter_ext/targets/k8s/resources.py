"""Step resource limits (``limit:nvidia.com/gpu:1``) to container resources, and GPU scheduling.

Kubernetes rules we enforce up front so that the user gets one clear line instead of a 422 from the API:
quantities must parse; extended resources (``vendor.domain/name``: GPUs and friends) must be whole numbers
and are never overcommitted, so requests must equal limits - we set them only in ``limits`` and let the
API server default the request to the same value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from jupyter_ext.errors import TargetError

NATIVE_RESOURCES = ("cpu", "memory", "ephemeral-storage")
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"

# A Kubernetes quantity: a non-negative decimal with a binary (Ki..Ei), decimal (n..E) or exponent suffix.
_QUANTITY = re.compile(
    r"^(?P<number>\d+(\.\d*)?|\.\d+)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$"
)
# vendor.domain/name, e.g. nvidia.com/gpu, amd.com/gpu, gpu.intel.com/i915, nvidia.com/mig-1g.5gb
_EXTENDED = re.compile(
    r"^(?P<domain>[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+)"
    r"/(?P<name>[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$"
)
_COMMON_TYPOS = {"GB": "Gi", "MB": "Mi", "KB": "Ki", "TB": "Ti", "gb": "Gi", "mb": "Mi", "g": "G"}


def is_extended_resource(name: str) -> bool:
    match = _EXTENDED.match(name)
    # kubernetes.io is reserved for native resources; an extended resource cannot live there.
    return bool(match) and not match["domain"].endswith("kubernetes.io") and len(name) <= 253


def is_gpu_resource(name: str) -> bool:
    """nvidia.com/gpu, amd.com/gpu, gpu.intel.com/i915, nvidia.com/mig-1g.5gb: anything that is a GPU."""
    match = _EXTENDED.match(name)
    return bool(match) and ("gpu" in name.lower() or match["name"].startswith("mig-"))


def parse_quantity(value: str) -> Decimal:
    """The numeric part of a Kubernetes quantity, or ValueError. Suffixes only scale, so >0 survives."""
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(value)
    return Decimal(match["number"])


def _bad(name: str, value: Any, message: str, hint: str, step: str | None) -> TargetError:
    return TargetError(message, field=f"limit:{name}:{value}", step=step, hint=hint)


def _check_quantity(name: str, value: str, step: str | None) -> str:
    text = str(value).strip()
    try:
        number = parse_quantity(text)
    except ValueError:
        typo = next((s for s in _COMMON_TYPOS if text.endswith(s) and text[: -len(s)].isdigit()), None)
        example = (
            f"{text[: -len(typo)]}{_COMMON_TYPOS[typo]}" if typo else ("4Gi" if name != "cpu" else "500m")
        )
        raise _bad(
            name,
            value,
            f"'{name}' is not a Kubernetes quantity, got '{value}'",
            f"Write it like '{example}' (cpu: 2 or 500m; memory: 512Mi, 4Gi)",
            step,
        ) from None
    if number <= 0:
        raise _bad(
            name,
            value,
            f"'{name}' must be greater than zero, got '{value}'",
            "Leave the limit out instead",
            step,
        )
    return text


def _check_count(name: str, value: str, step: str | None) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"[1-9][0-9]*", text):
        what = "GPU count" if is_gpu_resource(name) else "extended resource count"
        raise _bad(
            name,
            value,
            f"{what} for '{name}' must be a positive whole number, got '{value}'",
            f"Kubernetes cannot share a device between pods; use e.g. limit:{name}:1",
            step,
        )
    return text


def make_resources(
    limits: Mapping[str, Any] | None = None,
    requests: Mapping[str, Any] | None = None,
    *,
    step: str | None = None,
) -> dict[str, dict[str, str]]:
    """Container ``resources`` from a step's limits, e.g. ``{"nvidia.com/gpu": "1", "memory": "4Gi"}``.

    Native resources (cpu, memory, ephemeral-storage) are requested at their limit unless ``requests``
    says otherwise, so the scheduler reserves what the step may use (no OOM kill on a busy node).
    Extended resources appear only in ``limits``. Anything else raises TargetError.
    """
    out: dict[str, dict[str, str]] = {"limits": {}, "requests": {}}
    for kind, values in (("limits", limits or {}), ("requests", requests or {})):
        for name, value in values.items():
            if name in NATIVE_RESOURCES:
                out[kind][name] = _check_quantity(name, value, step)
            elif is_extended_resource(name):
                if kind == "requests":
                    continue  # requests must equal limits for extended resources; the server fills them
                out[kind][name] = _check_count(name, value, step)
            else:
                raise _bad(
                    name,
                    value,
                    f"unknown resource '{name}'",
                    "Use cpu, memory, ephemeral-storage or an extended resource like nvidia.com/gpu",
                    step,
                )
    for name, value in out["limits"].items():
        if name in NATIVE_RESOURCES:
            out["requests"].setdefault(name, value)
    return {kind: values for kind, values in out.items() if values}


def gpu_resources(resources: Mapping[str, Any] | None) -> list[str]:
    """The GPU resource names a container's ``resources`` ask for (empty when none)."""
    limits = (resources or {}).get("limits") or {}
    return sorted(name for name in limits if is_gpu_resource(name))


def gpu_scheduling(
    resources: Mapping[str, Any] | None,
    *,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] | None = None,
    gpu_node_selector: Mapping[str, str] | None = None,
    gpu_tolerations: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Node selector and tolerations for a pod, with the GPU ones added when a GPU is requested.

    GPU nodes are usually tainted so that CPU work stays off them; by default each requested GPU resource
    gets a toleration ``<resource> Exists NoSchedule`` (the taint the NVIDIA/AMD operators document).
    ``gpu_tolerations`` replaces that default; ``gpu_node_selector`` (e.g. a GPU model label) is merged
    under the explicit ``node_selector``.
    """
    selector = dict(node_selector or {})
    result = [dict(t) for t in tolerations or ()]
    gpus = gpu_resources(resources)
    if gpus:
        selector = {**(gpu_node_selector or {}), **selector}
        if gpu_tolerations is None:
            extra = [{"key": gpu, "operator": "Exists", "effect": "NoSchedule"} for gpu in gpus]
        else:
            extra = [dict(t) for t in gpu_tolerations]
        result += [t for t in extra if t not in result]
    return selector, result
