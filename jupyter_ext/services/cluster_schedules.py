"""Cluster schedules: the CronJob (target ``job``) and the KFP recurring run (target ``kfp``) behind a schedule.

Each backend creates the cluster object for a :class:`~jupyter_ext.records.models.ScheduleRecord` (a fresh
snapshot uploaded to the pod store, every check before anything is made; see :mod:`jupyter_ext.services.cluster`),
pauses and resumes it, deletes it, and reads its state. ``options`` are the schedule's cluster settings
(JobOptions / KfpOptions fields: namespace, store, image, host, ...) plus, for one
call, credentials that are never stored (a bearer token).

What ``create`` returns is kept as the schedule's ``extra["cluster"]``; its ``ref`` identifies the object,
so a replaced schedule's old object is deleted only when it is a different one.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, Protocol

from jupyter_ext.errors import CellpipeError, TargetError
from jupyter_ext.records.models import ScheduleRecord
from jupyter_ext.services.schedules import check_target_timezone

if TYPE_CHECKING:
    from jupyter_ext.services.cluster import Created


def _cluster_info(created: Created, ref: str, **specific: Any) -> dict[str, Any]:
    """What a schedule keeps (``extra["cluster"]``) of the CronJob or recurring run made for it."""
    return {"kind": created.kind, "ref": ref, "name": created.name, "namespace": created.namespace, **specific,
            "snapshot_id": created.snapshot_id, "store": created.store, "image": created.image,
            "notes": created.notes}  # fmt: skip


class ClusterSchedules(Protocol):
    def create(self, schedule: ScheduleRecord, options: dict[str, Any]) -> dict[str, Any]: ...

    def set_enabled(self, schedule: ScheduleRecord, enabled: bool, options: dict[str, Any]) -> None: ...

    def delete(self, schedule: ScheduleRecord, options: dict[str, Any]) -> None: ...

    def status(self, schedule: ScheduleRecord, options: dict[str, Any]) -> dict[str, Any]: ...


def options_type(target: str) -> type:
    """The typed options of a cluster target: JobOptions (job) or KfpOptions (kfp)."""
    from jupyter_ext.targets.k8s.options import JobOptions
    from jupyter_ext.targets.kfp.options import KfpOptions

    return KfpOptions if target == "kfp" else JobOptions


def cluster_request(schedule: ScheduleRecord, options: dict[str, Any]) -> Any:
    """The ClusterRequest for a schedule: its notebook, name and typed parameters, plus the cluster settings."""
    from jupyter_ext.pipeline.model import Secret
    from jupyter_ext.services.cluster import ClusterRequest

    kind = options_type(schedule.target)
    known = {f.name for f in fields(kind)} - {"name"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise CellpipeError(
            f"unknown {schedule.target} setting '{unknown[0]}'",
            field="target_options",
            hint=f"known: {', '.join(sorted(known))}",
        )
    values = {k: v for k, v in options.items() if v is not None}
    if "secrets" in values:  # stored as [secret, key, env] triples
        values["secrets"] = [s if isinstance(s, Secret) else Secret(*s) for s in values["secrets"]]
    # resolve() takes typed values as a dict, so the stored overrides need no round trip through text
    return ClusterRequest(
        notebook=schedule.notebook,
        overrides=dict(schedule.parameters),
        options=kind(name=schedule.name, **values),
    )


def _gone(exc: TargetError) -> bool:
    return "not found" in exc.message or "404" in exc.message


class CronJobSchedules:
    """Target ``job``: a Kubernetes CronJob named after the schedule; re-creating it updates it in place."""

    @staticmethod
    def _target(schedule: ScheduleRecord, options: dict[str, Any]) -> Any:
        from jupyter_ext.targets.k8s.client import KubernetesTarget

        cluster = (schedule.extra or {}).get("cluster") or {}
        return KubernetesTarget(
            namespace=cluster.get("namespace") or options.get("namespace"),
            kubeconfig=options.get("kubeconfig"),
            context=options.get("context"),
        )

    def create(self, schedule: ScheduleRecord, options: dict[str, Any]) -> dict[str, Any]:
        from jupyter_ext.services.cluster import schedule_cronjob

        request = cluster_request(schedule, options)
        created = schedule_cronjob(request, cron=schedule.cron, timezone=schedule.timezone, replace=True)
        info = _cluster_info(created, f"cronjob/{created.namespace}/{created.name}")
        if not schedule.enabled:
            with self._target(schedule, {**options, "namespace": created.namespace}) as target:
                target.suspend_cronjob(created.name, True)
        return info

    def set_enabled(self, schedule: ScheduleRecord, enabled: bool, options: dict[str, Any]) -> None:
        with self._target(schedule, options) as target:
            target.suspend_cronjob(schedule.extra["cluster"]["name"], not enabled)

    def delete(self, schedule: ScheduleRecord, options: dict[str, Any]) -> None:
        with self._target(schedule, options) as target:
            try:
                target.delete_cronjob(schedule.extra["cluster"]["name"])
            except TargetError as exc:
                if not _gone(exc):  # already deleted (kubectl): nothing left to do
                    raise

    def status(self, schedule: ScheduleRecord, options: dict[str, Any]) -> dict[str, Any]:
        with self._target(schedule, options) as target:
            return target.cronjob_status(schedule.extra["cluster"]["name"])


class KfpSchedules:
    """Target ``kfp``: a recurring run of a new pipeline version; re-creating makes a new one, then the
    schedule service deletes the old one. KFP's scheduler has no time zone setting: UTC only."""

    @staticmethod
    def _client(schedule: ScheduleRecord, options: dict[str, Any]) -> Any:
        from jupyter_ext.services.kfp_cluster import connect_kfp

        cluster = (schedule.extra or {}).get("cluster") or {}
        host = options.get("host") or cluster.get("host")
        return connect_kfp(cluster_request(schedule, {**options, "host": host}).options)

    def create(self, schedule: ScheduleRecord, options: dict[str, Any]) -> dict[str, Any]:
        from jupyter_ext.services.kfp_cluster import schedule_kfp
        from jupyter_ext.targets.kfp.submit import set_recurring_run_enabled

        check_target_timezone("kfp", schedule.timezone)
        request = cluster_request(schedule, options)
        created = schedule_kfp(request, cron=schedule.cron)
        summary = created.summary
        info = _cluster_info(
            created,
            f"kfp/{summary['recurring_run_id']}",
            recurring_run_id=summary["recurring_run_id"],
            host=request.options.host,
            url=summary.get("url"),
            experiment=summary.get("experiment"),
        )
        if not schedule.enabled:
            set_recurring_run_enabled(self._client(schedule, options), info["recurring_run_id"], False)
        return info

    def set_enabled(self, schedule: ScheduleRecord, enabled: bool, options: dict[str, Any]) -> None:
        from jupyter_ext.targets.kfp.submit import set_recurring_run_enabled

        client = self._client(schedule, options)
        set_recurring_run_enabled(client, schedule.extra["cluster"]["recurring_run_id"], enabled)

    def delete(self, schedule: ScheduleRecord, options: dict[str, Any]) -> None:
        from jupyter_ext.targets.kfp.submit import delete_recurring_run

        try:
            delete_recurring_run(
                self._client(schedule, options), schedule.extra["cluster"]["recurring_run_id"]
            )
        except TargetError as exc:
            if not _gone(exc):
                raise

    def status(self, schedule: ScheduleRecord, options: dict[str, Any]) -> dict[str, Any]:
        from dataclasses import asdict

        from jupyter_ext.targets.kfp.submit import get_recurring_run

        found = get_recurring_run(
            self._client(schedule, options), schedule.extra["cluster"]["recurring_run_id"]
        )
        return {**asdict(found), "suspend": found.status == "DISABLED"}


CLUSTER_SCHEDULES: dict[str, ClusterSchedules] = {"job": CronJobSchedules(), "kfp": KfpSchedules()}
