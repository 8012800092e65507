"""Compile the pipeline model to a Kubeflow Pipelines v2 package, through the real KFP compiler.

Each step becomes one lightweight Python component (``kfp.dsl.component``) whose body does nothing but call
:func:`jupyter_ext.runtime.entry.execute_step`, the code path the local runner uses, and then log the
step's metrics. Steps read different parameters and upstream steps, so each component's source is generated
(:func:`component_source`), written to a module in a temporary directory and imported: KFP embeds the
function's source (``inspect.getsource``) in the package, and the pod runs exactly that text.

The wiring, per step:

* one typed input per pipeline parameter the step reads (int/float/str/bool/list/dict); the values travel
  as KFP parameters and are never written into code;
* one ``Input[Artifact]`` per upstream step that sends it variables: a directory of marshalled variables;
* ``outputs``, an ``Output[Artifact]`` directory: the variables downstream steps read, ``_index.json``,
  ``_metrics.json`` and the executed step notebook;
* ``metrics``, an ``Output[Metrics]``, when the step produces pipeline metrics;
* ``prev:``-only edges become ``.after()``; limits, GPU scheduling, secrets, PVCs, labels, annotations
  and caching become task settings (``kfp.kubernetes`` for the Kubernetes-specific ones).

The pipeline model is embedded in each component's source as a string constant rather than passed as a
component input: it is code (the notebook's cells), not a run parameter, so it should neither show up
nor be overridable as a task input; and because each component embeds only its own step's cells, KFP's
cache key (which hashes the container command) changes for exactly the steps whose code changed.

Snapshot lineage: every pipeline has two more string parameters, ``cellpipe_snapshot_id`` and
``cellpipe_store`` (default ``""``). When a run sets them, each component restores that snapshot from the
store and runs its step in the restored notebook's directory (``execute_step(snapshot_id=, store=)``), so a
pod reads the notebook's data from the store and relative paths work as they do locally. When the snapshot
is known at compile time (``PackageSpec(snapshot_id=, store=, run_id=)``, what ``cellpipe submit``
does) it also becomes those parameters' defaults and the pods' ``cellpipe.io/*`` labels: KFP can only set
pod labels at compile time. ``env`` and ``secrets`` reach every step, e.g. the store's credentials.

Everything that KFP cannot express (an ephemeral-storage limit, two accelerator types, a parameter name
KFP rejects, a parameter without a value) is a :class:`~jupyter_ext.errors.TargetError` naming the step
or field, raised before KFP is imported. ``kfp`` costs about half a second to import: it is imported
inside functions only.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import keyword
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

from jupyter_ext import __version__
from jupyter_ext.errors import TargetError
from jupyter_ext.notebook.params import looks_like_credential, resolve
from jupyter_ext.pipeline.model import Pipeline, Secret, Step
from jupyter_ext.targets.k8s.names import is_label_value, is_qualified_name
from jupyter_ext.targets.k8s.objects import (
    DEFAULT_GID,
    DEFAULT_UID,
    LABEL_PREFIX,
    make_env,
    make_volumes,
    run_labels,
)
from jupyter_ext.targets.k8s.resources import NATIVE_RESOURCES, gpu_scheduling, make_resources
from jupyter_ext.targets.kfp.options import require_steps
from jupyter_ext.util import user_file_mode

# The image every step runs in unless the step (image:REF tag), the caller (--image) or the notebook
# (metadata docker_image) names another. It must contain cellpipe, which brings kfp, papermill and
# ipykernel, plus the libraries the notebook imports: the components install nothing at run time.
DEFAULT_IMAGE = f"cellpipe/runtime:{__version__}"

OUTPUTS = "outputs"  # name of every step's Output[Artifact] directory
METRICS = "metrics"  # name of the Output[Metrics] of steps that produce pipeline metrics

# Pipeline parameters cellpipe adds to every pipeline; user parameters may not use the prefix.
RESERVED_PREFIX = "cellpipe_"
SNAPSHOT_PARAMETER = "cellpipe_snapshot_id"
STORE_PARAMETER = "cellpipe_store"
LINEAGE_PARAMETERS = (SNAPSHOT_PARAMETER, STORE_PARAMETER)
RUN_ID_LABEL = f"{LABEL_PREFIX}run-id"
_SNAPSHOT_ID = re.compile(r"^[0-9a-f]{8,64}$")
# Query parameters that carry credentials in object-store URLs (Azure SAS, presigned S3 URLs, ...).
_CREDENTIAL_QUERY = re.compile(r"sig|signature|token|secret|password|credential|key", re.IGNORECASE)

# KFP's rule for pipeline parameter names (letters, digits, '_', starting with a letter); "Output" is the
# name KFP gives a component's return value.
_KFP_PARAMETER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_KFP_RESERVED_NAMES = {"Output"}
# KFP's own quantity checks (pipeline_task.py), stricter than Kubernetes': no fractional memory.
_KFP_CPU = re.compile(r"^([0-9]*[.])?[0-9]+m?$")
_KFP_MEMORY = re.compile(r"^[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$")
# KFP passes numbers as protobuf doubles: larger integers would silently change.
_MAX_EXACT_INT = 2**53
# A component's source travels as one argv string (``sh -c ... "$0"``); Linux caps one argument at 128 KiB.
MAX_COMPONENT_SOURCE = 120_000
_TOLERATION_KEYS = {"key", "operator", "value", "effect", "toleration_seconds"}


@dataclass
class StepPlan:
    """What one step becomes in KFP: the component's interface and the task's settings (all validated)."""

    step: str
    function: str  # the component function's name (the step name; keywords get a trailing '_')
    parameters: list[tuple[str, str]]  # (pipeline parameter, Python type name) the step reads
    inputs: dict[str, str]  # upstream step -> the Input[Artifact] argument carrying its variables
    after: list[str]  # upstream steps joined by prev: only
    metrics: bool
    image: str
    cache: bool
    cpu: str | None = None
    memory: str | None = None
    accelerator: tuple[str, str] | None = None  # (resource, count), e.g. ("nvidia.com/gpu", "1")
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)


# -- validation and planning (no kfp import) -----------------------------------------------------------
def pipeline_parameters(pipeline: Pipeline, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The pipeline's parameter defaults with ``overrides`` applied, checked for what KFP can carry."""
    values = resolve(pipeline.parameters, dict(overrides or {}))
    for parameter in pipeline.parameters:
        name, value = parameter.name, values[parameter.name]
        where = f"parameter '{name}'"
        if name.startswith(RESERVED_PREFIX):
            raise TargetError(
                f"names starting with '{RESERVED_PREFIX}' are reserved for cellpipe's own pipeline parameters "
                f"({', '.join(LINEAGE_PARAMETERS)})",
                notebook=pipeline.notebook,
                field=where,
                hint="rename it in the parameters cell",
            )
        if not _KFP_PARAMETER_NAME.match(name) or name in _KFP_RESERVED_NAMES:
            raise TargetError(
                "KFP does not accept this parameter name",
                notebook=pipeline.notebook,
                field=where,
                hint="rename it in the parameters cell: KFP names use letters, digits and '_', start with "
                "a letter, and 'Output' is reserved",
            )
        if value is None:
            raise TargetError(
                "has no value (its default is None); a KFP pipeline parameter needs one",
                notebook=pipeline.notebook,
                field=where,
                hint=f"give it a default in the parameters cell, or compile with -p {name}=VALUE",
            )
        if parameter.type == "int" and abs(value) > _MAX_EXACT_INT:
            raise TargetError(
                f"{value} is too large: KFP passes numbers as 64-bit floats and would change it",
                notebook=pipeline.notebook,
                field=where,
                hint="use a str parameter and convert it in the step",
            )
        if parameter.type in ("list", "dict") and not _json_safe(value):
            raise TargetError(
                "KFP passes list and dict parameters as JSON, which cannot hold this value",
                notebook=pipeline.notebook,
                field=where,
                hint="use string keys and JSON values (numbers, strings, bools, lists, dicts)",
            )
    return values


def _json_safe(value: Any) -> bool:
    try:
        same = json.loads(json.dumps(value, allow_nan=False)) == value
    except (TypeError, ValueError, RecursionError):
        return False
    return same and not _holds_none(value)  # KFP's protobuf Struct refuses None inside a value


def _holds_none(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if item is None:
            return True
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def plan_steps(
    pipeline: Pipeline,
    *,
    image: str | None = None,
    gpu_node_selector: Mapping[str, str] | None = None,
    gpu_tolerations: Sequence[Mapping[str, Any]] | None = None,
) -> list[StepPlan]:
    """Validate every step for KFP and describe its component and task, in pipeline order."""
    types = {p.name: p.type for p in pipeline.parameters}
    return [
        _plan_step(pipeline, step, types, image, gpu_node_selector, gpu_tolerations)
        for step in pipeline.steps
    ]


def _plan_step(
    pipeline: Pipeline,
    step: Step,
    types: dict[str, str],
    image: str | None,
    gpu_node_selector: Mapping[str, str] | None,
    gpu_tolerations: Sequence[Mapping[str, Any]] | None,
) -> StepPlan:
    senders = [e.source for e in pipeline.edges if e.target == step.name and e.variables]
    # Artifact arguments share the function signature with the parameters: make their names unique.
    taken = set(step.parameters) | {OUTPUTS, METRICS, *LINEAGE_PARAMETERS}
    inputs: dict[str, str] = {}
    for upstream in dict.fromkeys(senders):
        inputs[upstream] = _unique_name(f"from_{upstream}", taken)
        taken.add(inputs[upstream])
    plan = StepPlan(
        step=step.name,
        function=f"{step.name}_" if keyword.iskeyword(step.name) else step.name,
        parameters=[(name, types[name]) for name in step.parameters],
        inputs=inputs,
        after=[u for u in step.depends_on if u not in inputs],
        metrics=bool(step.metrics),
        image=step.image or image or pipeline.image or DEFAULT_IMAGE,
        cache=pipeline.step_cache(step),
    )
    _plan_resources(plan, step, gpu_node_selector, gpu_tolerations)
    _check_pod_metadata(step)
    try:
        make_env(secrets=step.secrets)  # the k8s target's checks: names, keys, env names, duplicates
    except TargetError as exc:
        exc.step = exc.step or step.name
        raise
    return plan


def _unique_name(name: str, taken: set[str]) -> str:
    candidate = name
    while candidate in taken:
        candidate += "_"
    return candidate


def _plan_resources(
    plan: StepPlan,
    step: Step,
    gpu_node_selector: Mapping[str, str] | None,
    gpu_tolerations: Sequence[Mapping[str, Any]] | None,
) -> None:
    resources = make_resources(step.limits, step=step.name)  # Kubernetes quantity and count rules
    limits = resources.get("limits", {})
    if "ephemeral-storage" in limits:
        raise TargetError(
            "KFP cannot set an ephemeral-storage limit",
            step=step.name,
            field=f"limit:ephemeral-storage:{limits['ephemeral-storage']}",
            hint="remove the limit, or use the Kubernetes target, which supports it",
        )
    for name, pattern, example in (("cpu", _KFP_CPU, "2 or 500m"), ("memory", _KFP_MEMORY, "1536Mi")):
        if name in limits and not pattern.match(limits[name]):
            raise TargetError(
                f"KFP does not accept the {name} limit '{limits[name]}'",
                step=step.name,
                field=f"limit:{name}:{limits[name]}",
                hint=f"write it as a whole number with a unit, e.g. {example}",
            )
    plan.cpu, plan.memory = limits.get("cpu"), limits.get("memory")
    extended = [name for name in limits if name not in NATIVE_RESOURCES]
    if len(extended) > 1:
        raise TargetError(
            f"KFP gives a task one accelerator type, this step asks for {', '.join(extended)}",
            step=step.name,
            field=f"limit:{extended[1]}",
            hint="keep one accelerator limit per step",
        )
    if extended:
        plan.accelerator = (extended[0], limits[extended[0]])
    selector, tolerations = gpu_scheduling(
        resources, gpu_node_selector=gpu_node_selector, gpu_tolerations=gpu_tolerations
    )
    for key, value in selector.items():
        if not is_qualified_name(key) or not is_label_value(str(value)):
            raise TargetError(
                f"invalid node selector {key}={value}",
                step=step.name,
                field="gpu node selector",
                hint="use a node label, e.g. nvidia.com/gpu.product=NVIDIA-A100-SXM4-40GB",
            )
    plan.node_selector = {k: str(v) for k, v in selector.items()}
    plan.tolerations = [_toleration(t, step.name) for t in tolerations]


def _toleration(spec: Mapping[str, Any], step: str) -> dict[str, Any]:
    # Accept the Kubernetes spelling too, since GPU tolerations are usually copied from a manifest.
    toleration = {("toleration_seconds" if k == "tolerationSeconds" else k): v for k, v in spec.items()}
    unknown = set(toleration) - _TOLERATION_KEYS
    operator, effect = toleration.get("operator"), toleration.get("effect")
    if (
        unknown
        or operator not in (None, "Equal", "Exists")
        or effect not in (None, "NoSchedule", "PreferNoSchedule", "NoExecute")
    ):
        raise TargetError(
            f"invalid toleration {dict(spec)}",
            step=step,
            field="gpu tolerations",
            hint="keys: key, operator (Equal|Exists), value, effect (NoSchedule|PreferNoSchedule|NoExecute), "
            "tolerationSeconds",
        )
    return toleration


def _check_pod_metadata(step: Step) -> None:
    for kind, items in (("label", step.labels), ("annotation", step.annotations)):
        for key, value in items.items():
            if not is_qualified_name(key) or (kind == "label" and not is_label_value(value)):
                raise TargetError(
                    f"Kubernetes does not accept the {kind} {key}={value}",
                    step=step.name,
                    field=f"{kind}:{key}:{value}",
                    hint="keys are [prefix/]name, names and label values use letters, digits, '-', '_', '.' "
                    "(at most 63 characters)",
                )


def _check_volumes(pipeline: Pipeline) -> dict[str, str]:
    """Validate the PVC mounts like the Kubernetes target does; return the env vars exposing mount points.

    Unlike a Job, a KFP run can create claims (``new_pvc``, ``pv`` volumes): see :func:`_create_claims`.
    """
    _, _, env = make_volumes(pipeline.volumes, created_ok=True)
    return env


# -- lineage ---------------------------------------------------------------------------------------
def lineage_metadata(
    pipeline: Pipeline,
    *,
    snapshot_id: str | None = None,
    store: str | None = None,
    run_id: str | None = None,
    owner: str | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """The pod labels and annotations that tie a compiled package to its snapshot and run (checked).

    The same ``cellpipe.io/*`` keys as the Kubernetes target (:func:`run_labels`): the label holds the
    short snapshot id (label values stop at 63 characters), the annotation the full one.
    """
    if snapshot_id is not None and not _SNAPSHOT_ID.match(snapshot_id):
        raise TargetError(
            f"'{snapshot_id}' is not a snapshot id",
            field="snapshot_id",
            hint="pass the id take_snapshot returned (hexadecimal; 'cellpipe snapshots' lists them)",
        )
    if snapshot_id and not store:
        raise TargetError(
            "a snapshot id without the store that holds it",
            field="store",
            hint="pass the store URL the pods read the snapshot from, e.g. s3://bucket/cellpipe",
        )
    if store:
        check_store_url(store)
    if not (snapshot_id or run_id):
        return {}, {}
    from jupyter_ext.snapshot.manifest import short_id  # deferred: the snapshot package costs ~50 ms

    labels, annotations = run_labels(
        owner or "", pipeline.notebook, run_id or "", short_id(snapshot_id) if snapshot_id else None,
        pipeline.name,
    )  # fmt: skip
    # No owner or run id known (e.g. a recurring run: each of its runs has its own id): no empty labels.
    labels = {key: value for key, value in labels.items() if value}
    annotations = {key: value for key, value in annotations.items() if value}
    if snapshot_id:
        annotations[f"{LABEL_PREFIX}snapshot-id"] = snapshot_id
        annotations[f"{LABEL_PREFIX}store"] = store or ""
    if run_id:
        annotations[RUN_ID_LABEL] = run_id
    return labels, annotations


def check_store_url(url: str) -> str:
    """``url`` if it carries no credentials: it is written into the package and shown in the KFP UI."""
    parsed = urlparse(url)
    query = [name for name, _ in parse_qsl(parsed.query, keep_blank_values=True)]
    if parsed.password or any(_CREDENTIAL_QUERY.search(name) for name in query):
        raise TargetError(
            "the store URL contains credentials, which would be written into the pipeline package",
            field="store",
            hint="drop them from the URL and give the pods credentials with secrets (a Kubernetes Secret)",
        )
    return url


def _check_plain_env(env: Mapping[str, str] | None) -> dict[str, str]:
    for name in env or {}:
        # the same words as a credential-named notebook parameter: those go through ``secrets`` (a secretKeyRef)
        if looks_like_credential(str(name)):
            raise TargetError(
                f"'{name}' looks like a credential; plain env values are written into the package",
                field=f"env:{name}",
                hint="pass it as a secret (SECRET:KEY:ENV), which the package only references",
            )
    return {str(name): str(value) for name, value in (env or {}).items()}


# -- component source ------------------------------------------------------------------------------
def step_spec(pipeline: Pipeline, step: str) -> str:
    """What ``step``'s component embeds and runs: the pipeline reduced to that step (``Pipeline.for_step``)."""
    data = pipeline.for_step(step).to_dict()
    # The file name is enough for error messages in the pod, and unlike the path as typed it does not
    # change (and so invalidate KFP's cache) when the package is compiled from another directory.
    data["notebook"] = Path(pipeline.notebook).name
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def component_source(pipeline: Pipeline, plan: StepPlan) -> str:
    """The Python source of ``plan``'s component function.

    The body refers only to its arguments and to ``_``-prefixed locals: KFP rejects parameter names that
    start with '_', so no notebook parameter (which may well be called ``json`` or ``open``) can shadow
    what the body uses. The only literals are the step spec and names, written with ``repr``.
    """
    arguments = [f"{name}: {kind}" for name, kind in plan.parameters]
    arguments += [f"{name}: str" for name in LINEAGE_PARAMETERS]
    arguments += [f"{argument}: Input[Artifact]" for argument in plan.inputs.values()]
    arguments.append(f"{OUTPUTS}: Output[Artifact]")
    if plan.metrics:
        arguments.append(f"{METRICS}: Output[Metrics]")
    parameters = ", ".join(f"{name!r}: {name}" for name, _ in plan.parameters)
    inputs = ", ".join(f"{upstream!r}: {argument}.path" for upstream, argument in plan.inputs.items())
    lines = [
        f"def {plan.function}(",
        *(f"    {argument}," for argument in arguments),
        "):",
        f'    """Run step {plan.step!r} of the notebook pipeline with cellpipe (generated code)."""',
        "    from jupyter_ext.runtime.entry import execute_step as _execute_step",
        "",
        f"    _pipeline_json = {step_spec(pipeline, plan.step)!r}",
        "    _execute_step(",
        "        _pipeline_json,",
        f"        {plan.step!r},",
        f"        parameters={{{parameters}}},",
        f"        input_dirs={{{inputs}}},",
        f"        output_dir={OUTPUTS}.path,",
        f"        snapshot_id={SNAPSHOT_PARAMETER} or None,",
        f"        store={STORE_PARAMETER} or None,",
        "    )",
    ]
    if plan.metrics:
        lines += [
            "    import json as _json",
            "    import pathlib as _pathlib",
            "",
            f"    _values = _json.loads(_pathlib.Path({OUTPUTS}.path, '_metrics.json').read_text())",
            "    for _name, _value in _values.items():",
            f"        {METRICS}.log_metric(_name, _value)",
        ]
    return "\n".join(lines) + "\n"


def _make_components(pipeline: Pipeline, plans: list[StepPlan]) -> dict[str, Any]:
    """Build one KFP component per step from generated modules (KFP needs the functions' source files)."""
    from kfp import dsl

    header = '"""Generated by cellpipe; KFP copies only the function."""\n\nfrom kfp.dsl import Artifact, Input, Metrics, Output\n\n\n'
    components: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cellpipe-kfp-") as directory:
        for index, plan in enumerate(plans):
            source = component_source(pipeline, plan)
            if len(source.encode()) > MAX_COMPONENT_SOURCE:
                raise TargetError(
                    f"the step's code is {len(source.encode()) // 1024} KiB; a KFP component carries at most "
                    f"{MAX_COMPONENT_SOURCE // 1024} KiB",
                    notebook=pipeline.notebook,
                    step=plan.step,
                    hint="move large literals (embedded data) out of the notebook into files in the image "
                    "or on a volume",
                )
            # One module per step: a step called e.g. 'int' must not shadow the annotations of the others.
            path = Path(directory, f"cellpipe_step_{index}.py")
            path.write_text(header + source, encoding="utf-8")
            spec = importlib.util.spec_from_file_location(f"_cellpipe_kfp_{index}_{plan.function}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            function = getattr(module, plan.function)
            components[plan.step] = dsl.component(function, base_image=plan.image, install_kfp_package=False)
    return components


# -- the pipeline ---------------------------------------------------------------------------------
_PYTHON_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}


@dataclass(frozen=True)
class PackageSpec:
    """What a package bakes in besides the pipeline (all optional): one object, so that the callers (compile,
    submit, schedule, export, the KFP target) pass the same choices the same way."""

    parameters: Mapping[str, Any] | None = None
    image: str | None = None
    gpu_node_selector: Mapping[str, str] | None = None
    gpu_tolerations: Sequence[Mapping[str, Any]] | None = None
    snapshot_id: str | None = None
    store: str | None = None
    run_id: str | None = None
    owner: str | None = None
    env: Mapping[str, str] | None = None
    secrets: Sequence[Secret] = ()


def build_kfp_pipeline(pipeline: Pipeline, spec: PackageSpec | None = None) -> Any:
    """The ``@dsl.pipeline`` object (a KFP ``GraphComponent``) for ``pipeline``, ready to compile or submit.

    The fields of ``spec``: ``parameters`` overrides the notebook's defaults (the pipeline parameters' defaults in KFP).
    ``image`` replaces the notebook's image for steps without an ``image:`` tag; the default is
    :data:`DEFAULT_IMAGE`. GPU steps get ``gpu_node_selector`` and ``gpu_tolerations`` (default: tolerate
    ``<gpu resource> Exists NoSchedule``).

    ``snapshot_id`` and ``store``: the defaults of ``cellpipe_snapshot_id``/``cellpipe_store`` (each run
    may still set others), plus pod labels ``cellpipe.io/snapshot-id`` (short id), ``cellpipe.io/run-id``
    (``run_id``), ``cellpipe.io/owner`` and ``cellpipe.io/pipeline``, with the full ids as annotations.
    ``env`` (plain values, never credentials) and ``secrets`` (Secret references) go to every step, e.g.
    what the pods need to read the store.
    """
    require_steps(
        pipeline,
        hint="tag the first cell of each step step:NAME, or run the notebook whole on Kubernetes "
        "(cellpipe submit NOTEBOOK)",
    )
    spec = spec or PackageSpec()
    values = pipeline_parameters(pipeline, spec.parameters)
    plans = plan_steps(
        pipeline, image=spec.image, gpu_node_selector=spec.gpu_node_selector,
        gpu_tolerations=spec.gpu_tolerations,
    )  # fmt: skip
    lineage = lineage_metadata(
        pipeline, snapshot_id=spec.snapshot_id, store=spec.store, run_id=spec.run_id, owner=spec.owner
    )
    volume_env = _check_volumes(pipeline)
    plain_env = {**volume_env, **_check_plain_env(spec.env)}
    secrets = list(spec.secrets)
    for plan in plans:  # secrets, plain settings and volume paths share the env: no name twice
        try:
            make_env(plain_env, [*pipeline.step(plan.step).secrets, *secrets])
        except TargetError as exc:
            exc.step = exc.step or plan.step
            raise

    from kfp import dsl

    components = _make_components(pipeline, plans)
    names = [p.name for p in pipeline.parameters] + list(LINEAGE_PARAMETERS)
    settings = _TaskSettings(plain_env, secrets, lineage)

    def pipeline_function(*channels: Any) -> None:
        # KFP calls this once, positionally, with one channel per parameter of __signature__.
        inputs = dict(zip(names, channels, strict=True))
        claims = _create_claims(pipeline)
        tasks: dict[str, Any] = {}
        for plan in plans:
            arguments = {name: inputs[name] for name, _ in plan.parameters}
            arguments.update({name: inputs[name] for name in LINEAGE_PARAMETERS})
            arguments.update({arg: tasks[up].outputs[OUTPUTS] for up, arg in plan.inputs.items()})
            task = components[plan.step](**arguments)
            if plan.after:  # prev:-only edges carry no artifact, so KFP needs the order spelled out
                task.after(*(tasks[up] for up in plan.after))
            _configure_task(task, plan, pipeline.step(plan.step), pipeline, settings, claims)
            tasks[plan.step] = task

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    lineage_defaults = {SNAPSHOT_PARAMETER: spec.snapshot_id or "", STORE_PARAMETER: spec.store or ""}
    pipeline_function.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(p.name, kind, default=values[p.name], annotation=_PYTHON_TYPES[p.type])
            for p in pipeline.parameters
        ]
        + [
            inspect.Parameter(name, kind, default=lineage_defaults[name], annotation=str)
            for name in names[-2:]
        ]
    )
    return dsl.pipeline(
        pipeline_function,
        name=pipeline.name,
        display_name=pipeline.name,
        description=pipeline.description or None,
    )


@dataclass
class _TaskSettings:
    """What every task gets besides its own step's settings."""

    env: dict[str, str]  # volume mount paths and the caller's plain settings
    secrets: list[Secret]
    lineage: tuple[dict[str, str], dict[str, str]]  # (pod labels, pod annotations)


def _create_claims(pipeline: Pipeline) -> dict[str, Any]:
    """A CreatePVC task per ``new_pvc``/``pv`` volume (inside the pipeline function), by volume name.

    The claim is named ``<run>-<volume>`` and kept after the run, like Kale's, so its data can be read;
    a ``pv`` volume's claim binds the existing PersistentVolume of that name (no storage class).
    """
    from kfp import kubernetes

    claims: dict[str, Any] = {}
    for volume in pipeline.volumes:
        if volume.type == "pvc":
            continue
        # KFP refuses None for an argument: leave out what is not set. For a pv volume, storage class ""
        # binds statically; for a new_pvc without one, leaving it out asks for the cluster's default.
        options: dict[str, Any] = (
            {"volume_name": volume.pvc, "storage_class_name": ""} if volume.type == "pv" else {}
        )
        if volume.type == "new_pvc" and volume.storage_class:
            options["storage_class_name"] = volume.storage_class
        if volume.annotations:
            options["annotations"] = volume.annotations
        claims[volume.pvc] = kubernetes.CreatePVC(
            pvc_name_suffix=f"-{volume.pvc}", access_modes=volume.access_modes, size=volume.size, **options
        ).set_display_name(f"create volume {volume.pvc}")
        claims[volume.pvc].set_caching_options(False)  # a cached result would name an earlier run's claim
    return claims


def _configure_task(
    task: Any, plan: StepPlan, step: Step, pipeline: Pipeline, settings: _TaskSettings, claims: dict[str, Any]
) -> None:
    from kfp import kubernetes

    task.set_display_name(plan.step)
    task.set_caching_options(plan.cache)
    # Non-root, as Kale's steps and our Jobs run (the image's jovyan user). KFP's backend adds the rest of
    # the restricted profile itself (no privilege escalation, all capabilities dropped, RuntimeDefault
    # seccomp); values an administrator set in the KFP platform configuration take precedence.
    kubernetes.set_security_context(
        task, run_as_user=DEFAULT_UID, run_as_group=DEFAULT_GID, run_as_non_root=True
    )
    if plan.cpu:
        task.set_cpu_limit(plan.cpu)
    if plan.memory:
        task.set_memory_limit(plan.memory)
    if plan.accelerator:
        resource, count = plan.accelerator
        task.set_accelerator_type(resource)
        task.set_accelerator_limit(count)
    for key, value in plan.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for toleration in plan.tolerations:
        kubernetes.add_toleration(task, **toleration)
    for secret in [*step.secrets, *settings.secrets]:  # a secretKeyRef: the value never enters the package
        kubernetes.use_secret_as_env(
            task, secret_name=secret.secret, secret_key_to_env={secret.key: secret.env}
        )
    for volume in pipeline.volumes:
        claim = claims[volume.pvc].outputs["name"] if volume.pvc in claims else volume.pvc
        kubernetes.mount_pvc(task, pvc_name=claim, mount_path=volume.mount_point.rstrip("/"))
    for name, value in settings.env.items():
        task.set_env_variable(name, value)
    labels, annotations = settings.lineage
    for key, value in {**step.labels, **labels}.items():
        kubernetes.add_pod_label(task, label_key=key, label_value=value)
    for key, value in {**step.annotations, **annotations}.items():
        kubernetes.add_pod_annotation(task, annotation_key=key, annotation_value=value)


def compile_pipeline(pipeline: Pipeline, output: str | Path, spec: PackageSpec | None = None) -> Path:
    """Compile ``pipeline`` to a KFP v2 YAML package at ``output`` (written atomically); return the path.

    See :func:`build_kfp_pipeline` for what ``spec`` sets.
    """
    output = Path(output)
    if output.suffix not in (".yaml", ".yml"):
        raise TargetError(
            f"the package must be a .yaml file, got '{output.name}'",
            field="output",
            hint="e.g. -o pipeline.yaml",
        )
    graph = build_kfp_pipeline(pipeline, spec)
    from kfp import compiler

    output.parent.mkdir(parents=True, exist_ok=True)
    # The compiler picks the format from the suffix, so the temporary file keeps it.
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=output.suffix)
    os.close(fd)
    try:
        compiler.Compiler().compile(graph, package_path=tmp)
        os.chmod(
            tmp, user_file_mode()
        )  # the user's file, not cellpipe's: the normal mode, not mkstemp's 0600
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return output
