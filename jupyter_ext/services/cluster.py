"""Run a notebook on a cluster: check everything, snapshot it to a store pods can read, create the object.

Used by ``cellpipe schedule`` and ``cellpipe export`` (through the registries of
:mod:`jupyter_ext.services.submission`); single runs (``submit``, ``run --target job``) go through the run
service and :mod:`jupyter_ext.targets.k8s.target`, in the same order. Order matters so that nothing is
half-created: every check that can fail on user input (parameters, image, names, resources, cron,
credentials) runs on a dry manifest before anything is uploaded; the snapshot is uploaded next; the Job
or CronJob is created last, and if that fails the error says which snapshot was kept.

This module holds what both cluster targets share plus the Kubernetes one; Kubeflow Pipelines is in
:mod:`jupyter_ext.services.kfp_cluster`, which imports this one (never the other way round).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_ext.errors import CellpipeError, TargetError
from jupyter_ext.pipeline.model import Pipeline
from jupyter_ext.targets.base import (
    PENDING_SNAPSHOT,
    ClusterOptions,
    default_owner,
    kept_snapshot,
    require_pod_store,
)
from jupyter_ext.targets.k8s.options import JobOptions

# What a preview (export --preview) writes where the store and image would go: visibly not real.
PREVIEW_STORE = "preview://no-snapshot-uploaded"
PREVIEW_IMAGE = "preview.invalid/set-an-image-with--image:not-runnable"
PREVIEW_SUFFIX = ".preview.yaml"


@dataclass
class ClusterRequest:
    """One notebook to run on a cluster, with the options of its target (JobOptions or KfpOptions)."""

    notebook: str
    overrides: list[str] | dict[str, Any] = field(default_factory=list)
    options: ClusterOptions = field(default_factory=JobOptions)


@dataclass
class Plan:
    pipeline: Pipeline
    parameters: dict[str, Any]
    store: str
    owner: str
    image: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Created:
    """What a cluster command made: the object, and the snapshot it runs."""

    kind: str  # "job" | "cronjob" | "kfp-run" | "kfp-recurring-run"
    name: str
    namespace: str
    snapshot_id: str
    store: str
    image: str
    run_id: str | None = None  # a Job's; a CronJob's runs are named by the controller
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Exported:
    paths: list[Path]
    snapshot_id: str
    store: str
    notes: list[str] = field(default_factory=list)
    preview: bool = False  # nothing uploaded: the files are marked not runnable


# -- checks -------------------------------------------------------------------------------------------
class Problems:
    """Mistakes found by checks that do not depend on each other, reported together: one try shows them all."""

    def __init__(self) -> None:
        self.errors: list[CellpipeError] = []

    def check(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``, or None with its error kept for :meth:`raise_all`."""
        try:
            return function(*args, **kwargs)
        except CellpipeError as exc:
            self.errors.append(exc)
            return None

    def raise_all(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            listing = "\n".join(f"  - {error}" for error in self.errors)
            raise TargetError(f"{len(self.errors)} problems, nothing was uploaded or written:\n{listing}")


ImageChoice = Callable[[Pipeline, str | None, str | None], tuple[str, list[str]]]


def plan(
    request: ClusterRequest,
    choose: ImageChoice | None = None,
    *,
    preview: bool = False,
    checks: list[Callable[[], Any]] | None = None,
) -> Plan:
    """Analyse the notebook and settle parameters, store, owner and image; uploads nothing.

    ``choose(pipeline, --image, $CELLPIPE_IMAGE) -> (image, notes)``: the target's image rule (default: one
    image for the single pod of a Job). Every check runs, and ``checks`` (more cheap ones, e.g. the cron
    expression) too, before any error is raised: all mistakes are reported at once. ``preview``: a missing
    store or image is not a mistake; placeholders stand in (:data:`PREVIEW_STORE`, :data:`PREVIEW_IMAGE`).
    """
    from jupyter_ext.notebook.params import resolve
    from jupyter_ext.pipeline.load import load_pipeline
    from jupyter_ext.snapshot.config import IMAGE_ENV, STORE_ENV
    from jupyter_ext.targets.k8s.notebook_job import choose_image

    options = request.options
    problems = Problems()
    pipeline = problems.check(load_pipeline, request.notebook)
    parameters = problems.check(resolve, pipeline.parameters, request.overrides) if pipeline else None
    store_url = options.store or os.environ.get(STORE_ENV)
    store = PREVIEW_STORE if preview and not store_url else problems.check(require_pod_store, store_url)
    default_image = os.environ.get(IMAGE_ENV) or (PREVIEW_IMAGE if preview else None)
    chosen = (
        problems.check(choose or choose_image, pipeline, options.image, default_image) if pipeline else None
    )
    for check in checks or []:
        problems.check(check)
    problems.raise_all()
    image, notes = chosen
    if image == PREVIEW_IMAGE:  # the image rule's note would name the placeholder as if it were chosen
        notes = [
            "no image given: the preview names a placeholder image (--image or $CELLPIPE_IMAGE to set one)"
        ]
    owner = options.owner or default_owner()
    # the analysis warnings (tag typos, cells left out...) reach the user with the other notes
    notes = [f"warning: {warning['text']}" for warning in pipeline.warnings] + notes
    return Plan(pipeline, parameters, store, owner, image, notes)


def job_options(request: ClusterRequest) -> JobOptions:
    """The request's options, which must be the Job target's."""
    if not isinstance(request.options, JobOptions):
        raise TargetError(f"the Kubernetes Job target takes JobOptions, not {type(request.options).__name__}")
    return request.options


def _pod_options(request: ClusterRequest, image: str, namespace: str) -> Any:
    from jupyter_ext.targets.k8s.options import pod_options

    return pod_options(job_options(request), image, namespace)


def _run_for(planned: Plan, snapshot_id: str) -> Any:
    from jupyter_ext.targets.k8s.notebook_job import NotebookRun

    return NotebookRun(planned.pipeline, snapshot_id, planned.store, planned.owner, planned.parameters)


def upload_snapshot(request: ClusterRequest, planned: Plan) -> Any:
    from jupyter_ext.snapshot import take_snapshot

    return take_snapshot(request.notebook, store=planned.store)


def kept_snapshot_error(exc: TargetError, snapshot: Any, kind: str) -> TargetError:
    """The creation error, plus what did get made: the snapshot (harmless; its files are deduplicated)."""
    return kept_snapshot(exc, snapshot.id, snapshot.store_url, kind)


def kubernetes_client(options: ClusterOptions) -> Any:
    """Loads credentials and settles the namespace without contacting the cluster."""
    from jupyter_ext.targets.k8s.client import KubernetesTarget

    return KubernetesTarget(
        namespace=options.namespace, kubeconfig=options.kubeconfig, context=options.context
    )


# -- targets ------------------------------------------------------------------------------------------
def schedule_cronjob(
    request: ClusterRequest, *, cron: str, timezone: str | None = None, replace: bool = False
) -> Created:
    """Snapshot the notebook and create a CronJob that runs that snapshot on ``cron``."""
    from jupyter_ext.targets.k8s.notebook_job import default_cronjob_name, make_notebook_cronjob
    from jupyter_ext.targets.k8s.schedule import validate_cron

    planned = plan(request)
    validate_cron(cron)  # a typo in the schedule is reported before any credentials are needed
    with kubernetes_client(request.options) as target:
        name = request.options.name or default_cronjob_name(planned.pipeline.name)
        options = _pod_options(request, planned.image, target.namespace)

        def build(snapshot_id: str) -> dict[str, Any]:
            run = _run_for(planned, snapshot_id)
            return make_notebook_cronjob(run, name, options, schedule=cron, timezone=timezone)

        build(PENDING_SNAPSHOT)
        snapshot = upload_snapshot(request, planned)
        try:
            summary = target.create_cronjob(build(snapshot.id), replace=replace)
        except TargetError as exc:
            raise kept_snapshot_error(exc, snapshot, "cronjob") from None
    return Created("cronjob", name, target.namespace, snapshot.id, planned.store, planned.image, None,
                   summary, planned.notes)  # fmt: skip


def export_k8s(
    request: ClusterRequest,
    out_dir: str | Path,
    *,
    cron: str | None = None,
    timezone: str | None = None,
    preview: bool = False,
) -> Exported:
    """Write the Job (and with ``cron`` the CronJob) as YAML files; uploads the snapshot, no cluster contact.

    ``request.options.name`` names both objects (they are different kinds); by default the Job gets
    ``<pipeline>-<run id>`` and the CronJob ``<pipeline>``. ``preview``: upload nothing and write
    ``*.preview.yaml`` files, marked not runnable (no snapshot, perhaps no store or image).
    """
    from jupyter_ext.targets.k8s.namespace import resolve_namespace
    from jupyter_ext.targets.k8s.notebook_job import (
        default_cronjob_name,
        make_notebook_cronjob,
        make_notebook_job,
        new_job_name,
    )
    from jupyter_ext.targets.k8s.schedule import validate_cron

    planned = plan(request, preview=preview, checks=[lambda: validate_cron(cron)] if cron else [])
    namespace = resolve_namespace(
        request.options.namespace, kubeconfig=request.options.kubeconfig, context=request.options.context
    )
    options = _pod_options(request, planned.image, namespace)
    job_name = request.options.name or new_job_name(planned.pipeline.name)
    cron_name = request.options.name or default_cronjob_name(planned.pipeline.name)

    def build(snapshot_id: str) -> list[tuple[str, dict[str, Any]]]:
        run = _run_for(planned, snapshot_id)
        out = [(f"{job_name}.job.yaml", make_notebook_job(run, job_name, options))]
        if cron:
            cronjob = make_notebook_cronjob(run, cron_name, options, schedule=cron, timezone=timezone)
            out.append((f"{cron_name}.cronjob.yaml", cronjob))
        return out

    dry = build(PENDING_SNAPSHOT)  # every check of the objects themselves, before anything is uploaded
    if preview:
        header = preview_header(request)
        paths = [
            write_manifest(Path(out_dir) / preview_name(name), manifest, header) for name, manifest in dry
        ]
        return Exported(paths, PENDING_SNAPSHOT, planned.store, planned.notes, preview=True)
    snapshot = upload_snapshot(request, planned)
    header = export_header(request, snapshot.id, planned.store)
    paths = [write_manifest(Path(out_dir) / name, manifest, header) for name, manifest in build(snapshot.id)]
    return Exported(paths, snapshot.id, planned.store, planned.notes)


def export_header(request: ClusterRequest, snapshot_id: str, store: str) -> str:
    """The comment line exported files start with: which notebook, which snapshot, which store."""
    return f"# cellpipe export of {request.notebook}: snapshot {snapshot_id} in {store}\n"


def preview_header(request: ClusterRequest) -> str:
    """The first lines of a previewed file: it cannot run, and why."""
    return (
        f"# PREVIEW of the cellpipe export of {request.notebook}: NOT RUNNABLE.\n"
        f"# No snapshot was uploaded (snapshot id {PENDING_SNAPSHOT[:12]}... is a placeholder); the store and\n"
        "# image may be placeholders too. Export without --preview for files that run.\n"
    )


def preview_name(name: str) -> str:
    """``x.job.yaml`` -> ``x.job.preview.yaml``: a previewed file never takes a runnable one's name."""
    return name.removesuffix(".yaml") + PREVIEW_SUFFIX


def write_manifest(path: Path, manifest: Mapping[str, Any], header: str = "") -> Path:
    """One manifest as a YAML file, written atomically (a reviewer never sees half a file), with the mode
    any file the user writes gets (it holds no secret: Secrets are referenced by name)."""
    import yaml

    from jupyter_ext.util import user_file_mode, write_atomic

    text = yaml.safe_dump(dict(manifest), sort_keys=False, default_flow_style=False)
    write_atomic(path, (header + text).encode(), mode=user_file_mode())
    return path
