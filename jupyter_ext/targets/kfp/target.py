"""The Kubeflow Pipelines target: compile the pipeline for the run's snapshot, submit it as a KFP run; the
record's handle is the KFP host and run id (plus the namespace, kubeconfig and token file the user chose,
never a token), from which any process reads its state (steps from KFP's task details) or terminates it."""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Any, ClassVar

from jupyter_ext.errors import TargetError
from jupyter_ext.pipeline.model import Pipeline
from jupyter_ext.records.models import RunRecord, RunStatus, StepStatus, new_run_id
from jupyter_ext.targets.base import (
    PENDING_SNAPSHOT,
    ClusterTarget,
    ExecutionContext,
    TargetSettings,
    default_owner,
    kept_snapshot,
)
from jupyter_ext.targets.kfp.options import KfpOptions, compile_for, kfp_image, require_steps

# KFP task states -> step statuses (the rest: still running)
_STEP_STATUS = {"SUCCEEDED": StepStatus.SUCCEEDED, "SKIPPED": StepStatus.CACHED, "FAILED": StepStatus.FAILED,
                "CANCELED": StepStatus.CANCELLED, "RUNNING": StepStatus.RUNNING}  # fmt: skip


class KfpTarget(ClusterTarget):
    name: ClassVar[str] = "kfp"
    label: ClassVar[str] = "Kubeflow Pipelines"
    options_type: ClassVar[type] = KfpOptions

    def unreachable(self, settings: TargetSettings) -> str | None:
        if not settings.kfp():
            return "no Kubeflow Pipelines host configured (CELLPIPE_KFP_HOST or the kfp_host setting)"
        return None

    def check(self, pipeline: Pipeline, options: KfpOptions) -> None:
        require_steps(
            pipeline,
            field="target",
            hint="Tag its cells step:NAME, or run it whole with papermill on Kubernetes (target job)",
        )

    def preflight(self, pipeline: Pipeline, options: KfpOptions, parameters: dict[str, Any]) -> list[str]:
        from jupyter_ext.snapshot.config import IMAGE_ENV
        from jupyter_ext.targets.kfp.connect import connect

        image, notes = kfp_image(pipeline, options.image, os.environ.get(IMAGE_ENV))
        with tempfile.TemporaryDirectory(prefix="cellpipe-kfp-") as directory:  # every check of the package
            compile_for(options, pipeline, directory, parameters=parameters, image=image,
                        snapshot_id=PENDING_SNAPSHOT, store=self.snapshot_store(options, ""),
                        owner=options.owner or default_owner(), run_id=new_run_id())  # fmt: skip
        connect(options.host, namespace=options.namespace, token=options.token, token_path=options.token_file,
                kubeconfig=options.kubeconfig, context=options.context)  # a host that does not answer: now  # fmt: skip
        return notes

    async def start(self, context: ExecutionContext) -> None:
        from jupyter_ext.snapshot.config import IMAGE_ENV
        from jupyter_ext.targets.kfp.connect import connect, resolve_host
        from jupyter_ext.targets.kfp.submit import DEFAULT_EXPERIMENT, submit_run

        options: KfpOptions = context.options
        pipeline, record = context.pipeline, context.record
        image, _notes = kfp_image(pipeline, options.image, os.environ.get(IMAGE_ENV))
        store = context.snapshot_store or self.snapshot_store(options, "")
        client = await asyncio.to_thread(
            connect, options.host, namespace=options.namespace, token=options.token, token_path=options.token_file,
            kubeconfig=options.kubeconfig, context=options.context,
        )  # fmt: skip
        experiment = options.experiment or pipeline.experiment or DEFAULT_EXPERIMENT
        with tempfile.TemporaryDirectory(prefix="cellpipe-kfp-") as directory:
            package = await asyncio.to_thread(
                compile_for, options, pipeline, directory, parameters=context.parameters, image=image,
                snapshot_id=str(context.snapshot_id), store=store, owner=options.owner or default_owner(),
                run_id=record.id,
            )  # fmt: skip
            try:
                result = await asyncio.to_thread(
                    submit_run, client, package, pipeline_name=pipeline.name, experiment=experiment,
                    parameters=context.parameters, run_name=options.name, run_id=record.id,
                    snapshot_id=context.snapshot_id, store=store, notebook=record.notebook,
                    service_account=options.service_account,
                )  # fmt: skip
            except TargetError as exc:
                raise kept_snapshot(exc, str(context.snapshot_id), store, "KFP run") from None
        record.extra["kfp"] = {"run_id": result.run_id, "experiment_id": result.experiment_id,
                               "pipeline_id": result.pipeline_id, "version_id": result.version_id,
                               "pipeline_name": result.pipeline_name, "version_name": result.version_name,
                               "experiment": experiment, "image": image}  # fmt: skip
        record.links["kfp"] = result.url
        # where to find it again, from any process: the API and the run; credentials come from there
        handle = {"host": resolve_host(options.host), "run_id": result.run_id, "namespace": options.namespace,
                  "kubeconfig": options.kubeconfig, "context": options.context, "token_file": options.token_file}  # fmt: skip
        record.handle = {key: value for key, value in handle.items() if value is not None}

    def poll(self, record: RunRecord) -> RunStatus | None:
        from jupyter_ext.targets.kfp.follow import run_status

        handle = record.handle or {}
        status = run_status(_connect(handle), handle["run_id"])
        _update_steps(record, status)
        if not status.finished:
            return None
        if status.succeeded:
            return RunStatus.SUCCEEDED
        if status.cancelled or status.state == "CANCELED":
            return RunStatus.CANCELLED
        if not record.error:
            record.error = {"message": f"KFP run {handle['run_id']} {status.outcome()}"}
        return RunStatus.FAILED

    def cancel(self, record: RunRecord) -> None:
        from jupyter_ext.targets.kfp.submit import cancel_run

        handle = record.handle or {}
        cancel_run(_connect(handle), handle["run_id"])


def _connect(handle: dict[str, Any]) -> Any:
    from jupyter_ext.targets.kfp.connect import connect

    return connect(handle.get("host"), namespace=handle.get("namespace"), token_path=handle.get("token_file"),
                   kubeconfig=handle.get("kubeconfig"), context=handle.get("context"))  # fmt: skip


def _update_steps(record: RunRecord, status: Any) -> bool:
    """Copy the KFP tasks' states into the record's steps; True when something changed."""
    changed = False
    tasks = {task.name: task for task in status.tasks}
    for step in record.steps:
        task = tasks.get(step.name)
        if task is None:
            if status.finished and not step.status.is_final:
                step.status, changed = StepStatus.NOT_RUN, True
            continue
        new = _STEP_STATUS.get(task.state, StepStatus.RUNNING if task.started else StepStatus.PENDING)
        error = {"message": task.error} if task.error else None
        if new is not step.status or error != step.error:
            step.status, step.error, changed = new, error, True
            step.cached = new is StepStatus.CACHED
            step.started = task.started.timestamp() if task.started else step.started
            if task.finished:  # timed by KFP's clock, as its start was
                step.end(new, at=task.finished.timestamp())
    return changed
