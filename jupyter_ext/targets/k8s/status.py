"""Job and CronJob objects (as JSON dicts from the API) reduced to small plain dicts for the CLI and UI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_SUCCEEDED = ("Complete", "SuccessCriteriaMet")
# FailureTarget comes first on Kubernetes >= 1.31: the Job has failed, its pods are being terminated.
_FAILED = ("Failed", "FailureTarget")


def _true_conditions(status: Mapping[str, Any]) -> set[str]:
    return {c.get("type", "") for c in status.get("conditions") or () if c.get("status") == "True"}


def job_phase(job: Mapping[str, Any]) -> str:
    """One word for a Job: Succeeded, Failed, Suspended, Deleting, Running or Pending."""
    status = job.get("status") or {}
    true = _true_conditions(status)
    if true.intersection(_SUCCEEDED):
        return "Succeeded"
    if true.intersection(_FAILED):
        return "Failed"
    if "Suspended" in true:
        return "Suspended"
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return "Deleting"
    if int(status.get("active") or 0) > 0:
        return "Running"
    return "Pending"


def job_summary(job: Mapping[str, Any]) -> dict[str, Any]:
    meta = job.get("metadata") or {}
    status = job.get("status") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "labels": dict(meta.get("labels") or {}),
        "phase": job_phase(job),
        "active": int(status.get("active") or 0),
        "succeeded": int(status.get("succeeded") or 0),
        "failed": int(status.get("failed") or 0),
        "start_time": status.get("startTime"),
        "completion_time": status.get("completionTime"),
        "conditions": [
            {key: c.get(key) for key in ("type", "status", "reason", "message")}
            for c in status.get("conditions") or ()
        ],
    }


def cronjob_summary(cronjob: Mapping[str, Any]) -> dict[str, Any]:
    meta = cronjob.get("metadata") or {}
    spec = cronjob.get("spec") or {}
    status = cronjob.get("status") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "labels": dict(meta.get("labels") or {}),
        "schedule": spec.get("schedule"),
        "timezone": spec.get("timeZone"),
        "suspend": bool(spec.get("suspend")),
        "concurrency_policy": spec.get("concurrencyPolicy"),
        "active": [ref.get("name") for ref in status.get("active") or ()],
        "last_schedule_time": status.get("lastScheduleTime"),
        "last_successful_time": status.get("lastSuccessfulTime"),
    }


def newest_first(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sort API objects newest first (by creationTimestamp, then name), for listings."""
    by_name = sorted(items, key=lambda o: (o.get("metadata") or {}).get("name") or "")
    return sorted(
        by_name, key=lambda o: (o.get("metadata") or {}).get("creationTimestamp") or "", reverse=True
    )
