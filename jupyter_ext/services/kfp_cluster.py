"""The Kubeflow Pipelines side of ``cellpipe schedule`` (recurring runs) and ``export`` (packages); single
runs (``submit``, ``run --target kfp``) go through the run service and :mod:`jupyter_ext.targets.kfp.target`.

The same order as the Kubernetes target (:mod:`jupyter_ext.services.cluster`), so that nothing is half-created:

1. every check that can fail on user input: parameters, options, a store the pods can reach, the cron,
   and a compile of the package with a placeholder snapshot id (whatever KFP cannot express fails here);
2. the KFP host and credentials: one read-only healthz call (``connect``), nothing created;
3. the snapshot upload;
4. the package compiled again for that snapshot (its id, cellpipe's run id and the owner become the pods'
   ``cellpipe.io/*`` labels) and submitted as a new version of the pipeline of the same name.

If KFP fails in step 4, the error names the kept snapshot and, from ``submit_run``, what KFP already made.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from jupyter_ext.errors import TargetError
from jupyter_ext.pipeline.model import Pipeline
from jupyter_ext.services.cluster import (
    PENDING_SNAPSHOT,
    ClusterRequest,
    Created,
    Exported,
    Plan,
    export_header,
    kept_snapshot_error,
    plan,
    preview_header,
    preview_name,
    upload_snapshot,
)
from jupyter_ext.targets.kfp.options import KfpOptions, compile_for, kfp_image, require_steps

if TYPE_CHECKING:
    from kfp.client import Client

KFP_RECURRING_RUN = "kfp-recurring-run"


# -- checks -------------------------------------------------------------------------------------------
def refuse(option: str, message: str, hint: str) -> NoReturn:
    """An option this target cannot honour, as a one-line error naming it."""
    raise TargetError(message, field=option, hint=hint)


def kfp_options(request: ClusterRequest) -> KfpOptions:
    """The request's options, which must be KFP's (Job-only settings have no KFP equivalent: refused)."""
    if not isinstance(request.options, KfpOptions):
        raise TargetError(f"the KFP target takes KfpOptions, not {type(request.options).__name__}")
    return request.options


def kfp_plan(request: ClusterRequest, *, preview: bool = False) -> Plan:
    """:func:`~jupyter_ext.services.cluster.plan` for KFP: a pipeline of steps."""
    kfp_options(request)
    planned = plan(request, kfp_image, preview=preview)
    require_steps(
        planned.pipeline,
        notebook=request.notebook,
        field="kfp",
        hint="Tag its cells step:NAME, or run it whole with papermill on Kubernetes (--target job)",
    )
    return planned


def experiment_for(request: ClusterRequest, pipeline: Pipeline) -> str:
    """--experiment, else the notebook's ``experiment_name``, else KFP's "Default"."""
    from jupyter_ext.targets.kfp.submit import DEFAULT_EXPERIMENT

    return kfp_options(request).experiment or pipeline.experiment or DEFAULT_EXPERIMENT


def connect_kfp(options: Any) -> Client:
    """A checked KFP client from :class:`KfpOptions` (or anything with its connection attributes: CLI args)."""
    from jupyter_ext.targets.kfp.connect import connect

    return connect(
        options.host,
        namespace=options.namespace,
        token=options.token,
        token_path=options.token_file,
        kubeconfig=options.kubeconfig,
        context=options.context,
    )


def _compile(
    request: ClusterRequest, planned: Plan, directory: str, snapshot_id: str, run_id: str | None = None
) -> Path:
    """The package for ``snapshot_id`` in ``directory``, named after the pipeline (KFP shows the file name)."""
    return compile_for(kfp_options(request), planned.pipeline, directory, parameters=planned.parameters,
                       image=planned.image, snapshot_id=snapshot_id, store=planned.store, owner=planned.owner,
                       run_id=run_id)  # fmt: skip


# -- targets ------------------------------------------------------------------------------------------
def schedule_kfp(
    request: ClusterRequest, *, cron: str, timezone: str | None = None, replace: bool = False
) -> Created:
    """Snapshot the notebook and create a KFP recurring run of that snapshot on ``cron`` (5 fields)."""
    from jupyter_ext.targets.kfp.connect import client_namespace
    from jupyter_ext.targets.kfp.submit import kfp_cron, schedule_recurring

    planned = kfp_plan(request)
    if timezone:
        refuse("--timezone", "KFP recurring runs have no time zone setting",
               "Drop it and write --cron in the KFP scheduler's time zone (usually UTC)")  # fmt: skip
    if replace:
        refuse("--replace", "cellpipe does not replace KFP recurring runs",
               "Drop it; after scheduling, disable or delete the old recurring run in the KFP UI")  # fmt: skip
    kfp_cron(cron)  # the error names the field
    name = request.options.name or planned.pipeline.name
    experiment = experiment_for(request, planned.pipeline)
    with tempfile.TemporaryDirectory(prefix="cellpipe-kfp-") as directory:
        # No run id: each run of the schedule is its own; KFP labels its pods pipeline/runid.
        _compile(request, planned, directory, PENDING_SNAPSHOT)
        client = connect_kfp(request.options)
        snapshot = upload_snapshot(request, planned)
        package = _compile(request, planned, directory, snapshot.id)
        try:
            result = schedule_recurring(
                client, package, cron=cron, name=name, pipeline_name=planned.pipeline.name,
                experiment=experiment, parameters=planned.parameters, snapshot_id=snapshot.id,
                store=planned.store, notebook=request.notebook, service_account=request.options.service_account,
            )  # fmt: skip
        except TargetError as exc:
            raise kept_snapshot_error(exc, snapshot, "recurring run") from None
    summary = {**asdict(result), "experiment": experiment}
    return Created(KFP_RECURRING_RUN, name, client_namespace(client) or "", snapshot.id, planned.store,
                   planned.image, None, summary, planned.notes)  # fmt: skip


def export_kfp(
    request: ClusterRequest,
    out_dir: str | Path,
    *,
    cron: str | None = None,
    timezone: str | None = None,
    preview: bool = False,
) -> Exported:
    """Write the KFP package for a snapshot of the notebook as ``<name>.kfp.yaml``; no KFP contact.

    The package's lineage parameters default to the snapshot, so a run started from it in the KFP UI restores
    that snapshot; it has no run id (every run of an uploaded package is a different run). ``preview``:
    upload nothing and write ``<name>.kfp.preview.yaml``, marked not runnable.
    """
    from jupyter_ext.targets.k8s.names import sanitize_name
    from jupyter_ext.util import user_file_mode, write_atomic

    if cron or timezone:
        refuse("--cron" if cron else "--timezone", "a KFP package has no schedule",
               "Create a KFP recurring run with: cellpipe schedule NOTEBOOK --target kfp --cron EXPR")  # fmt: skip
    planned = kfp_plan(request, preview=preview)
    path = Path(out_dir) / f"{sanitize_name(request.options.name or planned.pipeline.name)}.kfp.yaml"
    with tempfile.TemporaryDirectory(prefix="cellpipe-kfp-") as directory:
        dry = _compile(request, planned, directory, PENDING_SNAPSHOT)
        if preview:
            path = path.with_name(preview_name(path.name))
            write_atomic(path, preview_header(request).encode() + dry.read_bytes(), mode=user_file_mode())
            return Exported([path], PENDING_SNAPSHOT, planned.store, planned.notes, preview=True)
        snapshot = upload_snapshot(request, planned)
        package = _compile(request, planned, directory, snapshot.id)
        header = export_header(request, snapshot.id, planned.store)
        write_atomic(path, header.encode() + package.read_bytes(), mode=user_file_mode())
    return Exported([path], snapshot.id, planned.store, planned.notes)
