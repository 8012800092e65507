"""The Kubernetes Job target: the run's snapshot goes to a store the pods read, one Job runs it
(``python -m jupyter_ext.services.job_main``). The record's handle is the Job's namespace and name (plus
the kubeconfig path and context the user chose, never a token): any process can poll or cancel it.

Cancelling deletes the Job (and its pod). When it ends, the record the pod wrote to the store
(``runs/<job name>/record.json``) gives the steps' statuses, errors and metrics.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, ClassVar

from jupyter_ext.errors import TargetError
from jupyter_ext.records.models import RunRecord, RunStatus, StepStatus, new_run_id
from jupyter_ext.targets.base import (
    PENDING_SNAPSHOT,
    ClusterTarget,
    ExecutionContext,
    TargetSettings,
    default_owner,
    kept_snapshot,
)
from jupyter_ext.targets.k8s.options import JobOptions, pod_options

FINAL_PHASES = ("Succeeded", "Failed")


def job_name_for(pipeline_name: str, run_id: str) -> str:
    """``<pipeline>-<run id>``, as ``cellpipe submit`` names its Jobs."""
    from jupyter_ext.targets.k8s.names import DNS_LABEL_MAX, sanitize_name

    return f"{sanitize_name(pipeline_name, DNS_LABEL_MAX - len(run_id) - 1)}-{run_id}"


class JobTarget(ClusterTarget):
    name: ClassVar[str] = "job"
    label: ClassVar[str] = "Kubernetes Job"
    options_type: ClassVar[type] = JobOptions

    def unreachable(self, settings: TargetSettings) -> str | None:
        if settings.kubernetes_credentials() is None:
            return "no Kubernetes credentials: not inside a cluster and no kubeconfig (set KUBECONFIG)"
        return None

    def check(self, pipeline: Any, options: Any) -> None:
        """Everything runs here: tagged pipelines, and plain notebooks whole with papermill."""

    def preflight(self, pipeline: Any, options: JobOptions, parameters: dict[str, Any]) -> list[str]:
        from jupyter_ext.snapshot.config import IMAGE_ENV
        from jupyter_ext.targets.k8s.namespace import resolve_namespace
        from jupyter_ext.targets.k8s.notebook_job import NotebookRun, choose_image, make_notebook_job

        image, notes = choose_image(pipeline, options.image, os.environ.get(IMAGE_ENV))
        namespace = resolve_namespace(
            options.namespace, kubeconfig=options.kubeconfig, context=options.context
        )
        run = NotebookRun(pipeline, PENDING_SNAPSHOT, self.snapshot_store(options, ""),
                          options.owner or default_owner(), parameters)  # fmt: skip
        name = options.name or job_name_for(pipeline.name, new_run_id())
        make_notebook_job(run, name, pod_options(options, image, namespace))  # every check, nothing sent
        return notes

    async def start(self, context: ExecutionContext) -> None:
        from jupyter_ext.snapshot.config import IMAGE_ENV
        from jupyter_ext.targets.k8s.client import KubernetesTarget
        from jupyter_ext.targets.k8s.notebook_job import NotebookRun, choose_image, make_notebook_job

        options: JobOptions = context.options
        record = context.record
        image, _notes = choose_image(context.pipeline, options.image, os.environ.get(IMAGE_ENV))
        store = context.snapshot_store or self.snapshot_store(options, "")
        cluster = await asyncio.to_thread(
            KubernetesTarget, namespace=options.namespace, kubeconfig=options.kubeconfig, context=options.context
        )  # fmt: skip
        with cluster:
            name = options.name or job_name_for(context.pipeline.name, record.id)
            pod = pod_options(options, image, cluster.namespace)
            run = NotebookRun(context.pipeline, str(context.snapshot_id), store, options.owner or default_owner(),
                              context.parameters)  # fmt: skip
            try:
                await asyncio.to_thread(cluster.create_job, make_notebook_job(run, name, pod))
            except TargetError as exc:
                raise kept_snapshot(exc, str(context.snapshot_id), store, "job") from None
        record.extra["job"] = {"name": name, "namespace": cluster.namespace, "store": store}
        # where to find it again, from any process: no credentials, only where the user's own are
        record.handle = _without_none({"namespace": cluster.namespace, "name": name, "store": store,
                                       "kubeconfig": options.kubeconfig, "context": options.context})  # fmt: skip

    def poll(self, record: RunRecord) -> RunStatus | None:
        handle = record.handle or {}
        with _cluster(handle) as cluster:
            status = cluster.job_status(handle["name"])
        if status["phase"] not in FINAL_PHASES:
            return None
        _merge_pod_record(record, handle["store"], handle["name"])
        if status["phase"] == "Succeeded":
            return RunStatus.SUCCEEDED
        reason = next((c.get("message") or c.get("reason") for c in status.get("conditions", [])
                       if c.get("type") == "Failed"), None)  # fmt: skip
        if reason and not record.error:
            record.error = {"message": f"job {handle['name']} failed: {reason}"}
        return RunStatus.FAILED

    def cancel(self, record: RunRecord) -> None:
        handle = record.handle or {}
        with _cluster(handle) as cluster:
            cluster.cancel_job(handle["name"])


def _cluster(handle: dict[str, Any]) -> Any:
    from jupyter_ext.targets.k8s.client import KubernetesTarget

    return KubernetesTarget(
        namespace=handle.get("namespace"), kubeconfig=handle.get("kubeconfig"), context=handle.get("context")
    )


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _merge_pod_record(record: RunRecord, store_url: str, name: str) -> None:
    """Step statuses, errors and metrics from the record the pod wrote (none if it never got that far)."""
    from jupyter_ext.records.remote import get_run_record
    from jupyter_ext.snapshot import SnapshotStore

    remote = get_run_record(SnapshotStore.open(store_url), name) or {}
    steps = {s.get("name"): s for s in remote.get("steps") or [] if isinstance(s, dict)}
    for step in record.steps:
        info = steps.get(step.name)
        if info:
            step.status = StepStatus(info.get("status", "pending"))
            step.duration_s, step.error = info.get("duration_s"), info.get("error")
            step.metrics = info.get("metrics") or {}
        elif not step.status.is_final:
            step.status = StepStatus.NOT_RUN
    record.metrics = remote.get("metrics") or record.metrics
    if remote.get("error") and not record.error:
        record.error = remote["error"]
