"""Notebook-level settings: Kale's ``metadata.kubeflow_notebook`` and our ``metadata.cellpipe`` (ours wins)."""

from __future__ import annotations

from dataclasses import dataclass, field

from jupyter_ext.errors import NotebookError
from jupyter_ext.pipeline.model import Volume

KNOWN_KEYS = {
    "pipeline_name", "pipeline_description", "experiment_name", "experiment", "docker_image", "base_image",
    "enable_caching", "volumes", "steps_defaults", "data",
}  # fmt: skip


@dataclass
class NotebookSettings:
    pipeline_name: str | None = None
    description: str = ""
    experiment: str | None = None
    image: str | None = None
    enable_caching: bool = True
    volumes: list[Volume] = field(default_factory=list)
    steps_defaults: list[str] = field(default_factory=list)  # tags applied to every step
    data: list[str] = field(default_factory=list)


def read_settings(metadata: dict, *, notebook: str) -> NotebookSettings:
    merged: dict = {}
    for namespace in ("kubeflow_notebook", "cellpipe"):  # later wins
        section = metadata.get(namespace) or {}
        if not isinstance(section, dict):
            raise NotebookError(f"metadata.{namespace} must be an object", notebook=notebook)
        merged.update({k: v for k, v in section.items() if v not in (None, "")})
    settings = NotebookSettings(
        pipeline_name=merged.get("pipeline_name"),
        description=str(merged.get("pipeline_description") or ""),
        experiment=_experiment(merged),
        image=merged.get("docker_image") or merged.get("base_image"),
        enable_caching=bool(merged.get("enable_caching", True)),
        steps_defaults=[str(t) for t in merged.get("steps_defaults") or []],
        data=[str(p) for p in merged.get("data") or []],
    )
    settings.volumes = [_volume(v, i, notebook) for i, v in enumerate(merged.get("volumes") or [])]
    return settings


def _experiment(merged: dict) -> str | None:
    experiment = merged.get("experiment")
    if isinstance(experiment, dict):  # newer Kale: {"id": ..., "name": ...}
        return experiment.get("name")
    return merged.get("experiment_name") or experiment


def _volume(spec: dict, index: int, notebook: str) -> Volume:
    field_name = f"metadata volumes[{index}]"
    if not isinstance(spec, dict):
        raise NotebookError("must be an object", notebook=notebook, field=field_name)
    kind = spec.get("type", "pvc")
    if kind != "pvc":
        raise NotebookError(
            f"volume type '{kind}' is not supported",
            notebook=notebook,
            field=field_name,
            hint="cellpipe mounts existing PersistentVolumeClaims: use type 'pvc' with the claim's name",
        )
    name, mount_point = spec.get("name"), spec.get("mount_point")
    if not name or not mount_point:
        raise NotebookError(
            "needs 'name' (an existing PVC) and 'mount_point'", notebook=notebook, field=field_name
        )
    return Volume(
        pvc=str(name), mount_point=str(mount_point), expose_as_env_var=spec.get("expose_as_env_var")
    )
