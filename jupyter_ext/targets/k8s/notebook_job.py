"""Job and CronJob manifests that run a whole notebook (or pipeline) in one pod, as pure functions.

The pod runs ``python -m jupyter_ext.services.job_main``: it reads the notebook and its data from the snapshot
store, runs the steps in order (or the whole notebook with papermill), and writes results back to
``<store>/runs/<run id>/``. All steps share that pod, so it gets the union of what they ask for:
the largest limit of each resource (a GPU if any step wants one; cpu and memory nobody set get the
defaults of :func:`default_resources`, so a plain notebook never runs BestEffort), every step's secrets (as
``secretKeyRef``), the notebook's PVCs and the steps' labels and annotations.

Run ids: a Job's run id is its name (``--run-id`` in the args). A CronJob's Jobs are named by the
controller (``<cronjob>-<minutes since epoch>``), so there the pod reads its Job's name from the
``batch.kubernetes.io/job-name`` label through the downward API (``CELLPIPE_RUN_ID``). Either way
``runs/<run id>/`` in the store and ``kubectl get job <run id>`` name the same run.

Parameters travel as ``-p NAME=<JSON>`` arguments: values, never code; the pod type-checks them again.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from jupyter_ext.errors import TargetError
from jupyter_ext.pipeline.model import Pipeline, Secret
from jupyter_ext.records.models import new_run_id
from jupyter_ext.snapshot.manifest import short_id
from jupyter_ext.targets.k8s.names import CRONJOB_NAME_MAX, DNS_LABEL_MAX
from jupyter_ext.targets.k8s.objects import (
    LABEL_PREFIX,
    make_cronjob,
    make_job,
    make_resources,
    run_labels,
    sanitize_name,
    validate_name,
)
from jupyter_ext.targets.k8s.resources import NATIVE_RESOURCES

POD_COMMAND = ("python", "-m", "jupyter_ext.services.job_main")
RUN_ID_ENV = "CELLPIPE_RUN_ID"
# Set by the Job controller on every pod it creates (Kubernetes >= 1.27).
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
RUN_ID_LABEL = f"{LABEL_PREFIX}run-id"
SCHEDULE_LABEL = f"{LABEL_PREFIX}schedule"
_RUN_ID_LEN = len(new_run_id())
_QUANTITY = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


@dataclass(frozen=True)
class NotebookRun:
    """What to run: the analysed notebook, where its snapshot is, who runs it, with which values."""

    pipeline: Pipeline
    snapshot_id: str
    store: str
    owner: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PodOptions:
    """How to run it; ``image`` must already be chosen (see :func:`choose_image`)."""

    image: str
    namespace: str
    active_deadline_seconds: int | None = None
    backoff_limit: int = 0
    ttl_seconds_after_finished: int | None = 86400
    gpu_node_selector: Mapping[str, str] | None = None
    gpu_tolerations: Sequence[Mapping[str, Any]] | None = None
    service_account: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)  # plain settings, e.g. MLFLOW_TRACKING_URI
    secrets: Sequence[Secret] = ()  # extra Secret keys for the pod, e.g. the store's credentials
    image_pull_policy: str | None = None
    limits: Mapping[str, str] = field(default_factory=dict)  # --limit: over the steps' limit: tags
    defaults: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: default_resources())


# -- names and images ---------------------------------------------------------------------------------
def new_job_name(pipeline_name: str) -> str:
    """``<pipeline>-<run id>``: unique, sortable by time, and the run id of the Job it names."""
    prefix = sanitize_name(pipeline_name, DNS_LABEL_MAX - _RUN_ID_LEN - 1)
    return f"{prefix}-{new_run_id()}"


def default_cronjob_name(pipeline_name: str) -> str:
    return sanitize_name(pipeline_name, CRONJOB_NAME_MAX)


def notebook_images(pipeline: Pipeline) -> dict[str, str]:
    """Images the notebook names: ``{"notebook": metadata image, step name: image tag}``."""
    images = {"notebook": pipeline.image} if pipeline.image else {}
    images.update({s.name: s.image for s in pipeline.steps if s.image})
    return images


def choose_image(pipeline: Pipeline, explicit: str | None, default: str | None) -> tuple[str, list[str]]:
    """The one image for the pod and notes for the user: ``explicit`` > the notebook's > ``default``.

    All steps share one pod here, so a notebook naming two different images cannot be run as is.
    """
    images = notebook_images(pipeline)
    distinct = sorted(set(images.values()))
    if explicit:
        others = {k: v for k, v in images.items() if v != explicit}
        notes = [f"--image {explicit} replaces the notebook's {_listing(others)}"] if others else []
        return explicit, notes
    if len(distinct) > 1:
        raise TargetError(
            f"the notebook names {len(distinct)} images ({_listing(images)}) but this target runs all "
            "steps in one pod",
            notebook=pipeline.notebook,
            field="--image",
            hint="Pass --image with an image that has everything the steps need",
        )
    if distinct:
        return distinct[0], []
    if default:  # e.g. set by the hub for every server: say so, the user did not choose it here
        return default, [f"no --image: the pod runs {default}, from $CELLPIPE_IMAGE"]
    raise TargetError(
        "no container image for the pod",
        notebook=pipeline.notebook,
        field="--image",
        hint="Pass --image REF, set CELLPIPE_IMAGE, or set docker_image in the notebook's metadata; the "
        "image needs cellpipe installed (see docs/kubernetes.md)",
    )


def _listing(images: Mapping[str, str]) -> str:
    return ", ".join(f"{'metadata' if k == 'notebook' else 'step ' + k}: {v}" for k, v in images.items())


# -- the union of the steps' needs ---------------------------------------------------------------------
def quantity_value(text: str) -> Decimal:
    """A Kubernetes quantity as a number, so '500m' < '2' and '512Mi' < '1Gi' compare correctly."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(text)
    number, suffix = Decimal(match[1]), match[2] or ""
    if suffix in _BINARY:
        return number * (1024 ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    return number.scaleb(int(suffix[1:]))


# For cpu and memory that neither a limit: tag nor --limit sets: a modest request, so the scheduler counts
# the pod, and a limit, so one notebook cannot take a node. A set limit is also requested in full.
DEFAULT_REQUESTS = {"cpu": "250m", "memory": "1Gi"}
DEFAULT_LIMITS = {"cpu": "2", "memory": "4Gi"}
REQUESTS_ENV = "CELLPIPE_JOB_REQUESTS"
LIMITS_ENV = "CELLPIPE_JOB_LIMITS"


def default_resources(environ: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """``{"requests": ..., "limits": ...}`` for resources nobody set: ``$CELLPIPE_JOB_REQUESTS`` and
    ``$CELLPIPE_JOB_LIMITS`` (``cpu=1,memory=2Gi``; ``none`` for no default), else the built-in ones."""
    environ = os.environ if environ is None else environ
    out = {}
    for kind, variable, builtin in (
        ("requests", REQUESTS_ENV, DEFAULT_REQUESTS),
        ("limits", LIMITS_ENV, DEFAULT_LIMITS),
    ):
        text = environ.get(variable, "").strip()
        out[kind] = dict(builtin) if not text else {} if text.lower() == "none" else _pairs(text, variable)
    return out


def _pairs(text: str, variable: str) -> dict[str, str]:
    pairs = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise TargetError(
                f"'{item.strip()}' is not RESOURCE=VALUE", field=variable, hint="e.g. cpu=1,memory=2Gi"
            )
        pairs[name.strip()] = value.strip()
    make_resources(pairs)  # a bad quantity or resource fails here, naming it
    return pairs


def merged_resources(
    pipeline: Pipeline,
    limits: Mapping[str, str] | None = None,
    defaults: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, dict[str, str]]:
    """The largest limit of each resource over all steps (each step's limits checked on its own first),
    then ``limits`` (``--limit``) over them; cpu and memory left unset take ``defaults``."""
    largest: dict[str, str] = {}
    for step in pipeline.steps:
        step_limits = make_resources(step.limits, step=step.name).get("limits", {})
        for name, value in step_limits.items():
            measure = quantity_value if name in NATIVE_RESOURCES else int
            if name not in largest or measure(value) > measure(largest[name]):
                largest[name] = value
    chosen = {**largest, **make_resources(limits, step=None).get("limits", {})}
    defaults = defaults or {}
    requests = {}
    for name, value in (defaults.get("limits") or {}).items():
        chosen.setdefault(name, value)
    for name, value in (defaults.get("requests") or {}).items():
        if name not in largest and name not in (limits or {}):
            ceiling = chosen.get(name)
            fits = ceiling is None or quantity_value(value) <= quantity_value(ceiling)
            requests[name] = value if fits else ceiling
    return make_resources(chosen, requests)


def merged_secrets(pipeline: Pipeline, extra: Iterable[Secret] = ()) -> list[Secret]:
    """Every step's secrets plus ``extra``, once each; one variable may not name two secret keys."""
    chosen: dict[str, tuple[Secret, str]] = {}
    sources = [(s, f"step '{step.name}'") for step in pipeline.steps for s in step.secrets]
    sources += [(s, "--secret") for s in extra]
    for secret, origin in sources:
        known = chosen.get(secret.env)
        if known is None:
            chosen[secret.env] = (secret, origin)
        elif (known[0].secret, known[0].key) != (secret.secret, secret.key):
            raise TargetError(
                f"environment variable '{secret.env}' is {known[0].secret}:{known[0].key} in {known[1]} "
                f"but {secret.secret}:{secret.key} in {origin}",
                notebook=pipeline.notebook,
                field=f"secret:{secret.env}",
                hint="All steps share one pod on this target; give the variables different names",
            )
    return [secret for secret, _ in chosen.values()]


def _merged_tags(pipeline: Pipeline, kind: str) -> dict[str, str]:
    """The steps' ``label:``/``annotation:`` tags; two steps may not set one key to different values."""
    merged: dict[str, tuple[str, str]] = {}
    for step in pipeline.steps:
        for key, value in getattr(step, kind).items():
            if key in merged and merged[key][0] != value:
                raise TargetError(
                    f"{kind[:-1]} '{key}' is '{merged[key][0]}' in step '{merged[key][1]}' but '{value}' in "
                    f"step '{step.name}'",
                    notebook=pipeline.notebook,
                    field=f"{kind[:-1]}:{key}",
                    hint="All steps share one pod on this target; use one value",
                )
            merged[key] = (value, step.name)
    return {key: value for key, (value, _) in merged.items()}


# -- args ---------------------------------------------------------------------------------------------
def parameter_args(parameters: Mapping[str, Any]) -> list[str]:
    """``-p NAME=<JSON>`` pairs; refuses values that JSON would change (non-string dict keys)."""
    args: list[str] = []
    for name, value in parameters.items():
        text = json.dumps(value, allow_nan=True, separators=(",", ":"))
        if json.loads(text) != value:
            raise TargetError(
                f"value {value!r} does not survive JSON (dict keys must be strings)",
                field=f"parameter '{name}'",
                hint="Use string keys, e.g. {'1': 2}",
            )
        args += ["-p", f"{name}={text}"]
    return args


def pod_args(run: NotebookRun, run_id: str | None) -> list[str]:
    args = ["--store", run.store, "--snapshot", run.snapshot_id]
    if run_id:
        args += ["--run-id", run_id]
    return args + parameter_args(run.parameters)


# -- manifests ----------------------------------------------------------------------------------------
def _job_kwargs(run: NotebookRun, run_id: str | None, options: PodOptions) -> dict[str, Any]:
    pipeline = run.pipeline
    if RUN_ID_ENV in options.env:
        raise TargetError(f"{RUN_ID_ENV} is set by cellpipe", field="--env", hint="Leave it out")
    meta = run_labels(run.owner, pipeline.notebook, run_id or "", short_id(run.snapshot_id), pipeline.name)
    labels = {**_merged_tags(pipeline, "labels"), **meta.labels}
    if not run_id:
        labels.pop(RUN_ID_LABEL)  # a CronJob's runs each get their own id; none fits the template
    annotations = {
        **_merged_tags(pipeline, "annotations"),
        **meta.annotations,
        f"{LABEL_PREFIX}snapshot-id": run.snapshot_id,
        f"{LABEL_PREFIX}store": run.store,
        f"{LABEL_PREFIX}parameters": json.dumps(dict(run.parameters), sort_keys=True),
    }
    return {
        "image": options.image,
        "command": list(POD_COMMAND),
        "args": pod_args(run, run_id),
        "env": dict(options.env),
        "secret_env": merged_secrets(pipeline, options.secrets),
        "resources": merged_resources(pipeline, options.limits, options.defaults),
        "gpu_node_selector": options.gpu_node_selector,
        "gpu_tolerations": options.gpu_tolerations,
        "labels": labels,
        "annotations": annotations,
        "volumes": pipeline.volumes,
        "active_deadline_seconds": options.active_deadline_seconds,
        "backoff_limit": options.backoff_limit,
        "ttl_seconds_after_finished": options.ttl_seconds_after_finished,
        "service_account": options.service_account,
        "image_pull_policy": options.image_pull_policy,
    }


def make_notebook_job(run: NotebookRun, name: str, options: PodOptions) -> dict[str, Any]:
    """A Job named ``name`` whose run id is ``name``."""
    validate_name(name, kind="job", field="--name")
    return make_job(name, options.namespace, **_job_kwargs(run, name, options))


def make_notebook_cronjob(
    run: NotebookRun,
    name: str,
    options: PodOptions,
    *,
    schedule: str,
    timezone: str | None = None,
    suspend: bool = False,
) -> dict[str, Any]:
    """A CronJob named ``name``; each Job it starts runs the same snapshot with its own run id."""
    validate_name(name, kind="cronjob", field="--name", max_len=CRONJOB_NAME_MAX)
    kwargs = _job_kwargs(run, None, options)
    kwargs["labels"][SCHEDULE_LABEL] = name
    manifest = make_cronjob(name, options.namespace, schedule=schedule, timezone=timezone, suspend=suspend,
                            **kwargs)  # fmt: skip
    (container,) = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    # objects.make_env has plain values and secrets only; the run id is the Job's name, known in the pod.
    field_path = f"metadata.labels['{JOB_NAME_LABEL}']"
    container["env"].append({"name": RUN_ID_ENV, "valueFrom": {"fieldRef": {"fieldPath": field_path}}})
    return manifest
