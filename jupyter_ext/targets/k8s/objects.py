"""Kubernetes manifests for cellpipe runs, as pure functions (in the style of kubespawner's objects.py).

Plain values in, plain dicts out: nothing here talks to a cluster, so every manifest can be checked
against the Kubernetes OpenAPI schemas in tests. Defaults are the restricted Pod Security Standard
(non-root, no privilege escalation, no capabilities, read-only root filesystem, RuntimeDefault seccomp);
writable ``emptyDir`` volumes at ``/tmp`` and the work dir give papermill and the kernel room to write.

Secrets only ever enter a pod as ``secretKeyRef``: there is no parameter that takes a secret's value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from jupyter_ext.errors import TargetError
from jupyter_ext.targets.k8s.names import (
    CRONJOB_NAME_MAX,
    DNS_LABEL_MAX,
    is_label_value,
    is_qualified_name,
    label_value,
    sanitize_name,
    validate_name,
)
from jupyter_ext.targets.k8s.namespace import resolve_namespace
from jupyter_ext.targets.k8s.resources import gpu_scheduling, make_resources
from jupyter_ext.targets.k8s.schedule import validate_cron, validate_timezone

__all__ = [
    "RunMeta",
    "make_container",
    "make_cronjob",
    "make_env",
    "make_job",
    "make_pod_spec",
    "make_resources",
    "make_volumes",
    "resolve_namespace",
    "run_labels",
    "sanitize_name",
    "secret_env",
    "validate_cron",
    "validate_name",
]

MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PREFIX = "cellpipe.io/"
CONTAINER_NAME = "step"
TMP_DIR = "/tmp"
WORK_DIR = "/home/cellpipe/work"
# jupyter/docker-stacks images run as jovyan 1000:100 (group "users"); their files are group-writable.
DEFAULT_UID = 1000
DEFAULT_GID = 100
# With a read-only root filesystem the kernel, IPython and matplotlib must keep their state under /tmp.
SCRATCH_ENV = {
    "JUPYTER_RUNTIME_DIR": f"{TMP_DIR}/jupyter-runtime",
    "IPYTHONDIR": f"{TMP_DIR}/ipython",
    "MPLCONFIGDIR": f"{TMP_DIR}/matplotlib",
    "XDG_CACHE_HOME": f"{TMP_DIR}/cache",
    "CELLPIPE_WORK_DIR": WORK_DIR,
}
_RESERVED_MOUNTS = (TMP_DIR, WORK_DIR)
# emptyDir volumes count against the node's disk: bounded, so that one run cannot fill it (the kubelet
# evicts a pod that writes past the limit). The work dir holds the restored snapshot and the outputs.
TMP_SIZE_LIMIT = "2Gi"
WORK_SIZE_LIMIT = "20Gi"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # C identifiers: what every shell and kubelet accepts
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


# -- labels -------------------------------------------------------------------------------------------
class RunMeta(NamedTuple):
    labels: dict[str, str]
    annotations: dict[str, str]


def run_labels(
    owner: str,
    notebook: str,
    run_id: str,
    snapshot_id: str | None = None,
    pipeline: str | None = None,
) -> RunMeta:
    """Labels that find a run again (``cellpipe.io/owner=...``) plus annotations with the exact values.

    Label values are sanitised (owners are often e-mail addresses); the notebook path, which rarely fits
    a label, and the unsanitised owner go into annotations.
    """
    labels = {MANAGED_BY: "cellpipe", f"{LABEL_PREFIX}owner": label_value(owner)}
    labels[f"{LABEL_PREFIX}run-id"] = label_value(run_id)
    if snapshot_id:
        labels[f"{LABEL_PREFIX}snapshot-id"] = label_value(snapshot_id)
    if pipeline:
        labels[f"{LABEL_PREFIX}pipeline"] = label_value(pipeline)
    annotations = {f"{LABEL_PREFIX}notebook": str(notebook), f"{LABEL_PREFIX}owner": owner}
    return RunMeta(labels, annotations)


# -- environment --------------------------------------------------------------------------------------
def _env_name(name: str, field: str) -> str:
    if not _ENV_NAME.match(name):
        raise TargetError(
            f"invalid environment variable name '{name}'",
            field=field,
            hint="Use letters, digits and '_', not starting with a digit",
        )
    return name


def _secret_triple(item: Any) -> tuple[str, str, str]:
    if isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 3:
        return str(item[0]), str(item[1]), str(item[2])
    try:
        return item.secret, item.key, item.env
    except AttributeError:
        raise TypeError(f"expected a Secret or a (secret, key, env) triple, got {item!r}") from None


def secret_env(secrets: Iterable[Any]) -> list[dict[str, Any]]:
    """``env`` entries for Secret keys: each (secret, key, env) triple becomes a ``secretKeyRef``."""
    out = []
    for item in secrets:
        secret, key, env = _secret_triple(item)
        validate_name(secret, kind="secret", field=f"secret:{secret}", subdomain=True)
        if len(key) > 253 or not _SECRET_KEY.match(key):
            raise TargetError(
                f"invalid key '{key}' for secret '{secret}'",
                field=f"secret:{secret}",
                hint="Secret keys use letters, digits, '-', '_' and '.'",
            )
        ref = {"secretKeyRef": {"name": secret, "key": key}}
        out.append({"name": _env_name(env, f"secret:{secret}"), "valueFrom": ref})
    return out


def make_env(
    env: Mapping[str, Any] | None = None,
    secrets: Iterable[Any] = (),
) -> list[dict[str, Any]]:
    """The container ``env``: plain settings (not secrets) then Secret references, names unique."""
    out = [{"name": _env_name(str(k), "env"), "value": str(v)} for k, v in (env or {}).items()]
    out += secret_env(secrets)
    seen: set[str] = set()
    for entry in out:
        if entry["name"] in seen:
            raise TargetError(
                f"environment variable '{entry['name']}' is set twice",
                field="env",
                hint="A variable comes either from a secret or from a plain setting, not both",
            )
        seen.add(entry["name"])
    return out


# -- volumes ------------------------------------------------------------------------------------------
def _volume_triple(item: Any, *, created_ok: bool) -> tuple[str, str, str | None]:
    if isinstance(item, Sequence) and not isinstance(item, str) and len(item) in (2, 3):
        return str(item[0]), str(item[1]), (str(item[2]) if len(item) == 3 and item[2] else None)
    try:
        pvc, mount_point, env = item.pvc, item.mount_point, item.expose_as_env_var
    except AttributeError:
        raise TypeError(f"expected a Volume or a (pvc, mount_point[, env]) tuple, got {item!r}") from None
    kind = getattr(item, "type", "pvc")
    if kind != "pvc" and not created_ok:
        raise TargetError(
            f"volume '{pvc}' has type '{kind}': this target mounts existing PersistentVolumeClaims only",
            field=f"volume:{pvc}",
            hint="create the claim first and give the volume type 'pvc', or use the KFP target, which creates it",
        )
    return pvc, mount_point, env


def make_volumes(
    volumes: Iterable[Any] = (), *, created_ok: bool = False
) -> tuple[list[dict], list[dict], dict[str, str]]:
    """Existing PVCs as (pod volumes, container mounts, env vars holding the mount paths).

    Each item is a Volume-like (``pvc``, ``mount_point``, ``expose_as_env_var``, ``type``) or a tuple of
    them. Volumes of another type than ``pvc`` (claims the run creates) are refused unless ``created_ok``:
    then only their names, mount points and variables are checked.
    """
    pod_volumes: list[dict] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}},
        {"name": "work", "emptyDir": {"sizeLimit": WORK_SIZE_LIMIT}},
    ]
    mounts: list[dict] = [
        {"name": "tmp", "mountPath": TMP_DIR},
        {"name": "work", "mountPath": WORK_DIR},
    ]
    env: dict[str, str] = {}
    for item in volumes:
        pvc, mount_point, env_var = _volume_triple(item, created_ok=created_ok)
        field = f"volume:{pvc}"
        validate_name(pvc, kind="PersistentVolumeClaim", field=field, subdomain=True)
        mount_point = mount_point.rstrip("/") or "/"
        if not mount_point.startswith("/") or mount_point == "/" or ":" in mount_point:
            raise TargetError(
                f"mount point '{mount_point}' must be an absolute path below /",
                field=field,
                hint="e.g. /data",
            )
        if mount_point in _RESERVED_MOUNTS or any(m["mountPath"] == mount_point for m in mounts):
            raise TargetError(f"mount point '{mount_point}' is already in use", field=field)
        name = sanitize_name(f"pvc-{pvc}", DNS_LABEL_MAX)
        if any(v["name"] == name for v in pod_volumes):
            raise TargetError(f"volume '{pvc}' is mounted twice", field=field, hint="Mount each PVC once")
        pod_volumes.append({"name": name, "persistentVolumeClaim": {"claimName": pvc}})
        mounts.append({"name": name, "mountPath": mount_point})
        if env_var:
            env[_env_name(env_var, field)] = mount_point
    return pod_volumes, mounts, env


# -- security -----------------------------------------------------------------------------------------
def pod_security_context(
    run_as_user: int = DEFAULT_UID, run_as_group: int = DEFAULT_GID, fs_group: int | None = DEFAULT_GID
) -> dict[str, Any]:
    if run_as_user == 0:
        raise TargetError("pods may not run as root (uid 0)", field="run_as_user", hint="Use a uid like 1000")
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": run_as_user,
        "runAsGroup": run_as_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if fs_group is not None:
        context["fsGroup"] = fs_group  # so the mounted PVCs are writable by the step's group
    return context


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


# -- container, pod, job, cronjob ---------------------------------------------------------------------
def make_container(
    *,
    image: str,
    command: Sequence[str],
    args: Sequence[str] = (),
    env: Mapping[str, Any] | None = None,
    secret_env: Iterable[Any] = (),
    resources: Mapping[str, Mapping[str, str]] | None = None,
    volume_mounts: Sequence[Mapping[str, Any]] = (),
    image_pull_policy: str | None = None,
    name: str = CONTAINER_NAME,
    working_dir: str = WORK_DIR,
) -> dict[str, Any]:
    """One hardened container; ``env`` is plain settings only, secrets go through ``secret_env``."""
    if not image or not str(image).strip():
        raise TargetError(
            "no container image given", field="image", hint="Set an image for the step or pipeline"
        )
    if image_pull_policy not in (None, "Always", "IfNotPresent", "Never"):
        raise TargetError(
            f"invalid image pull policy '{image_pull_policy}'",
            field="image_pull_policy",
            hint="Use Always, IfNotPresent or Never",
        )
    container: dict[str, Any] = {
        "name": name,
        "image": str(image).strip(),
        "command": [str(c) for c in command],
        "args": [str(a) for a in args],
        "workingDir": working_dir,
        "env": make_env({**SCRATCH_ENV, **(env or {})}, secret_env),
        "securityContext": container_security_context(),
        "volumeMounts": [dict(m) for m in volume_mounts],
    }
    if resources:
        # Re-checked here so a hand-built dict gets the same errors as step limits; idempotent.
        checked = make_resources(resources.get("limits"), resources.get("requests"))
        if checked:
            container["resources"] = checked
    if image_pull_policy:
        container["imagePullPolicy"] = image_pull_policy
    return container


def make_pod_spec(
    container: Mapping[str, Any],
    *,
    volumes: Sequence[Mapping[str, Any]] = (),
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] | None = None,
    gpu_node_selector: Mapping[str, str] | None = None,
    gpu_tolerations: Sequence[Mapping[str, Any]] | None = None,
    service_account: str | None = None,
    run_as_user: int = DEFAULT_UID,
    run_as_group: int = DEFAULT_GID,
    fs_group: int | None = DEFAULT_GID,
) -> dict[str, Any]:
    """A pod spec around one container, with GPU scheduling added when the container asks for a GPU."""
    selector, tolerations_out = gpu_scheduling(
        container.get("resources"),
        node_selector=node_selector,
        tolerations=tolerations,
        gpu_node_selector=gpu_node_selector,
        gpu_tolerations=gpu_tolerations,
    )
    spec: dict[str, Any] = {
        "restartPolicy": "Never",  # the Job's backoffLimit decides about retries, not the kubelet
        "securityContext": pod_security_context(run_as_user, run_as_group, fs_group),
        "containers": [dict(container)],
        "volumes": [dict(v) for v in volumes],
    }
    if selector:
        spec["nodeSelector"] = selector
    if tolerations_out:
        spec["tolerations"] = tolerations_out
    if service_account:
        spec["serviceAccountName"] = validate_name(
            service_account, kind="service account", field="service_account", subdomain=True
        )
    else:
        # The step runs user code; without an explicit account it gets no API token at all.
        spec["automountServiceAccountToken"] = False
    return spec


def _non_negative(value: int | None, field: str) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise TargetError(f"{field} must be a whole number >= 0, got {value!r}", field=field)
    return value


def _check_key(key: str, what: str) -> str:
    if not isinstance(key, str) or not is_qualified_name(key):
        raise TargetError(
            f"invalid {what} key '{key}'",
            field=f"{what}:{key}",
            hint="Keys are [prefix/]name: name up to 63 letters, digits, '-', '_' or '.', prefix a DNS "
            "domain like example.com",
        )
    return key


def _metadata(
    name: str, namespace: str, labels: Mapping[str, str] | None, annotations: Mapping[str, str] | None
) -> dict[str, Any]:
    labels = {MANAGED_BY: "cellpipe", **(labels or {})}
    for key, value in labels.items():
        _check_key(key, "label")
        if not isinstance(value, str) or not is_label_value(value):
            raise TargetError(
                f"label '{key}' has an invalid value '{value}'",
                field=f"label:{key}",
                hint="Label values are at most 63 letters, digits, '-', '_' or '.', starting and ending "
                "with a letter or digit",
            )
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if annotations:
        meta["annotations"] = {_check_key(k, "annotation"): str(v) for k, v in annotations.items()}
    return meta


def _template_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """What a template (a Job's pod template, a CronJob's job template) carries of its object's metadata:
    the labels and annotations, so what it makes is found and described alike; not the name or namespace."""
    return {k: v for k, v in metadata.items() if k in ("labels", "annotations")}


def make_job(
    name: str,
    namespace: str,
    *,
    image: str,
    command: Sequence[str],
    args: Sequence[str] = (),
    env: Mapping[str, Any] | None = None,
    secret_env: Iterable[Any] = (),
    resources: Mapping[str, Mapping[str, str]] | None = None,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] | None = None,
    gpu_node_selector: Mapping[str, str] | None = None,
    gpu_tolerations: Sequence[Mapping[str, Any]] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    volumes: Iterable[Any] = (),
    active_deadline_seconds: int | None = None,
    backoff_limit: int = 0,
    ttl_seconds_after_finished: int | None = 86400,
    service_account: str | None = None,
    image_pull_policy: str | None = None,
    run_as_user: int = DEFAULT_UID,
) -> dict[str, Any]:
    """A batch/v1 Job running ``command args`` once (``backoff_limit`` retries), deleted a day after.

    ``resources`` is a ``{"limits": ..., "requests": ...}`` dict (see :func:`make_resources`);
    ``volumes`` are existing PVCs as Volume-likes or ``(pvc, mount_point[, env])`` tuples.
    """
    validate_name(name, kind="job")
    validate_name(namespace, kind="namespace", field="--namespace")
    pod_volumes, mounts, volume_env = make_volumes(volumes)
    container = make_container(
        image=image,
        command=command,
        args=args,
        env={**volume_env, **(env or {})},
        secret_env=secret_env,
        resources=resources,
        volume_mounts=mounts,
        image_pull_policy=image_pull_policy,
    )
    pod_spec = make_pod_spec(
        container,
        volumes=pod_volumes,
        node_selector=node_selector,
        tolerations=tolerations,
        gpu_node_selector=gpu_node_selector,
        gpu_tolerations=gpu_tolerations,
        service_account=service_account,
        run_as_user=run_as_user,
    )
    metadata = _metadata(name, namespace, labels, annotations)
    spec: dict[str, Any] = {
        "backoffLimit": _non_negative(backoff_limit, "backoff_limit"),
        "template": {"metadata": _template_metadata(metadata), "spec": pod_spec},
    }
    if _non_negative(active_deadline_seconds, "active_deadline_seconds"):
        spec["activeDeadlineSeconds"] = active_deadline_seconds
    if _non_negative(ttl_seconds_after_finished, "ttl_seconds_after_finished") is not None:
        spec["ttlSecondsAfterFinished"] = ttl_seconds_after_finished
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def make_cronjob(
    name: str,
    namespace: str,
    *,
    schedule: str,
    concurrency_policy: str = "Forbid",
    starting_deadline_seconds: int | None = None,
    suspend: bool = False,
    timezone: str | None = None,
    successful_jobs_history_limit: int = 3,
    failed_jobs_history_limit: int = 3,
    **job: Any,
) -> dict[str, Any]:
    """A batch/v1 CronJob; ``**job`` takes the keyword arguments of :func:`make_job` for its job template.

    ``Forbid`` by default: a notebook that runs longer than its interval should not pile up copies.
    """
    validate_name(name, kind="cronjob", max_len=CRONJOB_NAME_MAX)
    if concurrency_policy not in ("Allow", "Forbid", "Replace"):
        raise TargetError(
            f"invalid concurrency policy '{concurrency_policy}'",
            field="concurrency_policy",
            hint="Use Allow, Forbid or Replace",
        )
    template = make_job(name, namespace, **job)
    metadata = template["metadata"]
    spec: dict[str, Any] = {
        "schedule": validate_cron(schedule),
        "concurrencyPolicy": concurrency_policy,
        "suspend": bool(suspend),
        "successfulJobsHistoryLimit": _non_negative(
            successful_jobs_history_limit, "successful_jobs_history_limit"
        ),
        "failedJobsHistoryLimit": _non_negative(failed_jobs_history_limit, "failed_jobs_history_limit"),
        "jobTemplate": {
            "metadata": _template_metadata(metadata),
            "spec": template["spec"],
        },
    }
    if timezone:
        spec["timeZone"] = validate_timezone(timezone)
    if _non_negative(starting_deadline_seconds, "starting_deadline_seconds") is not None:
        spec["startingDeadlineSeconds"] = starting_deadline_seconds
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": metadata, "spec": spec}
