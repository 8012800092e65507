"""Notebook-level settings: Kale's ``metadata.kubeflow_notebook`` and our ``metadata.cellpipe`` (ours wins).

Kale's JupyterLab extension writes more settings than cellpipe implements. Those that would change what
runs (Katib, Rok snapshots, a pipeline timeout...) are reported as warnings, once each and by name, never
dropped silently; Kale's bookkeeping keys (its working directory, marshal path...) mean nothing here and
are skipped quietly; any other key is reported as unknown, with the closest known key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from jupyter_ext.errors import CellpipeWarning, NotebookError
from jupyter_ext.notebook.suggest import closest
from jupyter_ext.pipeline.model import VOLUME_TYPES, Volume

KNOWN_KEYS = {
    "pipeline_name", "pipeline_description", "experiment_name", "experiment", "docker_image", "base_image",
    "enable_caching", "volumes", "steps_defaults", "data", "storage_class_name", "volume_access_mode",
}  # fmt: skip
# Kale settings cellpipe does not implement -> what they do in Kale. Reported when set to a value that
# would have an effect.
KALE_UNIMPLEMENTED = {
    "katib_run": "run the pipeline as a Katib hyperparameter-tuning experiment",
    "katib_metadata": "the Katib experiment's settings",
    "snapshot_volumes": "Rok snapshots of the notebook's volumes",
    "autosnapshot": "Rok snapshots after each step",
    "timeout": "a time limit for the whole pipeline run",
    "security_context": "the pods' user and group (cellpipe pods always run non-root, restricted profile)",
    "kfp_host": "the KFP endpoint (cellpipe: --host, $CELLPIPE_KFP_HOST or $KF_PIPELINES_ENDPOINT)",
}
# Kale's default pod security context: what cellpipe's restricted pods do anyway, so nothing is lost.
KALE_SECURITY_DEFAULTS = {"enabled": True, "run_as_user": 65534, "run_as_group": 0, "run_as_non_root": True}
# Keys Kale writes for its own bookkeeping: meaningless for cellpipe, ignored without a word.
KALE_INTERNAL = {"abs_working_dir", "marshal_path", "output_path", "notebook_path", "kale_version"}
# Kale's short access-mode names; the Kubernetes names are accepted as they are.
ACCESS_MODES = {
    "rom": "ReadOnlyMany",
    "rwo": "ReadWriteOnce",
    "rwm": "ReadWriteMany",
    "rwop": "ReadWriteOncePod",
}
DEFAULT_ACCESS_MODE = "ReadWriteMany"  # Kale's default for the claims it creates
_SIZE = re.compile(r"^[0-9]+(\.[0-9]+)?([munkMGTPE]|[KMGTPE]i)?$")


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
    warnings: list[CellpipeWarning] = field(default_factory=list)


MAX_PIPELINE_NAME = 128  # KFP's limit, and a sane one for MLflow experiments and Kubernetes labels
# The types the settings cellpipe reads must have (JSON null or "" means unset); "str list" is a list of strings.
SETTING_TYPES = {
    "pipeline_name": "str", "pipeline_description": "str", "experiment_name": "str", "experiment": "str|dict",
    "docker_image": "str", "base_image": "str", "enable_caching": "bool", "volumes": "list",
    "steps_defaults": "str list", "data": "str list", "storage_class_name": "str", "volume_access_mode": "str",
}  # fmt: skip
_DESCRIBED = {"str": "a string", "bool": "true or false", "list": "a list", "dict": "an object",
              "str list": "a list of strings"}  # fmt: skip


def read_settings(metadata: dict, *, notebook: str) -> NotebookSettings:
    merged: dict = {}
    for namespace in ("kubeflow_notebook", "cellpipe"):  # later wins
        section = metadata.get(namespace) or {}
        if not isinstance(section, dict):
            raise NotebookError(f"metadata.{namespace} must be an object", notebook=notebook)
        for key, value in section.items():
            if value not in (None, ""):
                _check_type(namespace, key, value, notebook)
                merged[key] = value
    settings = NotebookSettings(
        pipeline_name=merged.get("pipeline_name"),
        description=str(merged.get("pipeline_description") or ""),
        experiment=_experiment(merged),
        image=merged.get("docker_image") or merged.get("base_image"),
        enable_caching=bool(merged.get("enable_caching", True)),
        steps_defaults=[str(t) for t in merged.get("steps_defaults") or []],
        data=[str(p) for p in merged.get("data") or []],
    )
    settings.warnings = _unused_keys(merged, notebook)
    reader = _VolumeReader(notebook, merged, settings.warnings)
    settings.volumes = [
        volume
        for index, spec in enumerate(merged.get("volumes") or [])
        if (volume := reader.read(spec, index)) is not None
    ]
    reader.check_env_names(settings.volumes)
    return settings


def _check_type(namespace: str, key: str, value: Any, notebook: str) -> None:
    expected = SETTING_TYPES.get(key)
    if expected is None:
        return
    ok = any(_is(value, kind) for kind in expected.split("|"))
    if ok and key == "pipeline_name" and len(value) > MAX_PIPELINE_NAME:
        raise NotebookError(
            f"is {len(value)} characters long; at most {MAX_PIPELINE_NAME} are allowed",
            notebook=notebook,
            field=f"metadata.{namespace}.{key}",
            hint="shorten it (Kubeflow Pipelines refuses longer names)",
        )
    if not ok:
        described = " or ".join(_DESCRIBED[kind] for kind in expected.split("|"))
        raise NotebookError(
            f"must be {described}, not {type(value).__name__}",
            notebook=notebook,
            field=f"metadata.{namespace}.{key}",
            hint="fix the value in the notebook metadata, or remove the key",
        )


def _is(value: Any, kind: str) -> bool:
    if kind == "str list":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, {"str": str, "bool": bool, "list": list, "dict": dict}[kind])


def _experiment(merged: dict) -> str | None:
    experiment = merged.get("experiment")
    if isinstance(experiment, dict):  # newer Kale: {"id": ..., "name": ...}
        name = experiment.get("name")
        return name if isinstance(name, str) and name else None
    return merged.get("experiment_name") or experiment


def _unused_keys(merged: dict, notebook: str) -> list[CellpipeWarning]:
    warnings = []
    katib = bool(merged.get("katib_run"))
    for key, value in merged.items():
        if key in KNOWN_KEYS or key in KALE_INTERNAL:
            continue
        if key in KALE_UNIMPLEMENTED:
            if not value or (key == "katib_metadata" and not katib):  # off, or Katib's unused defaults
                continue
            if (
                key == "security_context"
                and isinstance(value, dict)
                and value.items() <= KALE_SECURITY_DEFAULTS.items()
            ):
                continue
            warnings.append(
                CellpipeWarning(
                    f"a Kale setting cellpipe does not implement ({KALE_UNIMPLEMENTED[key]}), ignored",
                    notebook=notebook,
                    field=f"metadata {key}",
                    hint="remove it from the notebook metadata to silence this warning",
                )
            )
            continue
        suggestion = closest(key, sorted(KNOWN_KEYS | set(KALE_UNIMPLEMENTED)))
        warnings.append(
            CellpipeWarning(
                "unknown setting, ignored",
                notebook=notebook,
                field=f"metadata {key}",
                hint=f"did you mean '{suggestion}'?"
                if suggestion
                else f"known settings: {', '.join(sorted(KNOWN_KEYS))}",
            )
        )
    return warnings


def kale_env_name(name: str) -> str:
    """The variable Kale sets to a volume's mount path with ``expose_as_env_var: true``."""
    return "KALE_VOLUME_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


class _VolumeReader:
    """Kale's volume specs -> :class:`Volume`, with the notebook-wide storage class and access mode."""

    def __init__(self, notebook: str, merged: dict, warnings: list[CellpipeWarning]) -> None:
        self.notebook = notebook
        self.warnings = warnings
        self.storage_class = merged.get("storage_class_name")
        self.access_mode = merged.get("volume_access_mode")

    def error(self, message: str, index: int, hint: str | None = None) -> NotebookError:
        return NotebookError(message, notebook=self.notebook, field=f"metadata volumes[{index}]", hint=hint)

    def read(self, spec: Any, index: int) -> Volume | None:
        if not isinstance(spec, dict):
            raise self.error("must be an object", index)
        kind = spec.get("type") or "pvc"
        if kind == "clone":  # Rok's clone of the notebook's own volume
            self._unimplemented(
                index, "type 'clone' (a Rok clone of a notebook volume); the volume is not mounted"
            )
            return None
        if kind not in VOLUME_TYPES:
            suggestion = closest(str(kind), VOLUME_TYPES)
            raise self.error(
                f"volume type '{kind}' is not supported",
                index,
                f"did you mean '{suggestion}'?" if suggestion else f"use one of {', '.join(VOLUME_TYPES)}",
            )
        name, mount_point = spec.get("name"), spec.get("mount_point")
        if not name or not mount_point:
            what = {"pvc": "an existing PVC", "new_pvc": "the claim to create", "pv": "an existing PV"}[kind]
            raise self.error(f"needs 'name' ({what}) and 'mount_point'", index)
        if spec.get("snapshot"):
            self._unimplemented(
                index, "'snapshot' (a Rok snapshot of the volume); the volume is mounted as is"
            )
        volume = Volume(
            pvc=str(name),
            mount_point=str(mount_point),
            expose_as_env_var=self._env_name(spec.get("expose_as_env_var"), str(name), index),
            type=kind,
        )
        if kind != "pvc":  # a claim cellpipe creates needs what a PersistentVolumeClaim spec needs
            volume.size = self._size(spec, index)
            volume.storage_class = spec.get("storage_class_name") or self.storage_class
            volume.access_modes = [
                self._access_mode(spec.get("volume_access_mode") or self.access_mode, index)
            ]
            volume.annotations = self._annotations(spec.get("annotations"), index)
        return volume

    def _unimplemented(self, index: int, what: str) -> None:
        self.warnings.append(
            CellpipeWarning(
                f"Kale volume setting {what}: not implemented by cellpipe",
                notebook=self.notebook,
                field=f"metadata volumes[{index}]",
                hint="use type 'pvc' (an existing claim), 'new_pvc' or 'pv'",
            )
        )

    def _env_name(self, value: Any, name: str, index: int) -> str | None:
        if value is True:  # Kale: a boolean, the name derived from the claim's
            return kale_env_name(name)
        if not value:
            return None
        if not isinstance(value, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
            raise self.error(
                f"expose_as_env_var must be true, false or an environment variable name, not {value!r}",
                index,
                f"true sets {kale_env_name(name)} to the mount point, as Kale does",
            )
        return value

    def _size(self, spec: dict, index: int) -> str:
        size, unit = spec.get("size"), spec.get("size_type") or ""
        text = f"{size}{unit}" if isinstance(size, int | float) and not isinstance(size, bool) else size
        if not isinstance(text, str) or not _SIZE.match(text):
            raise self.error(
                f"a '{spec.get('type')}' volume needs a size, got {size!r}",
                index,
                'e.g. "size": 5, "size_type": "Gi" (Kale\'s form) or "size": "5Gi"',
            )
        return text

    def _access_mode(self, mode: Any, index: int) -> str:
        if not mode:
            return DEFAULT_ACCESS_MODE
        if mode in ACCESS_MODES.values():
            return str(mode)
        if str(mode).lower() in ACCESS_MODES:
            return ACCESS_MODES[str(mode).lower()]
        raise self.error(
            f"unknown volume access mode {mode!r}",
            index,
            f"use one of {', '.join(ACCESS_MODES)} or {', '.join(ACCESS_MODES.values())}",
        )

    def _annotations(self, value: Any, index: int) -> dict[str, str]:
        if not value:
            return {}
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        if isinstance(value, list) and all(
            isinstance(a, dict) and "key" in a and "value" in a for a in value
        ):
            return {str(a["key"]): str(a["value"]) for a in value if a["key"] != "" and a["value"] != ""}
        raise self.error(
            "annotations must be an object or a list of {key, value} objects", index, 'e.g. {"team": "ml"}'
        )

    def check_env_names(self, volumes: list[Volume]) -> None:
        seen: dict[str, str] = {}
        for volume in volumes:
            env = volume.expose_as_env_var
            if env and env in seen:
                raise NotebookError(
                    f"volumes '{seen[env]}' and '{volume.pvc}' both set the environment variable {env}",
                    notebook=self.notebook,
                    field="metadata volumes",
                    hint="rename one of them, or turn expose_as_env_var off for one",
                )
            if env:
                seen[env] = volume.pvc
