"""A KFP run's task details, as a real install reports them, folded into cellpipe's steps.

What KFP 2.x returns (read in kubeflow/pipelines at 2.5.0 and 2.17.0; see docs/kfp.md):

- ``run_details.task_details`` has one entry per node of the run's Argo workflow
  (``backend/src/apiserver/server/api_converter.go``: ``toModelTasks(util.ExecutionSpec)`` and
  ``toApiPipelineTaskDetail``). The v2 compiler (``backend/src/v2/compiler/argocompiler``) makes these nodes:
  the workflow itself (named like the workflow), ``root-driver``, ``root``, and for every task of the
  pipeline ``<task>-driver`` (a pod), ``<task>`` (a DAG) and, inside it, ``executor`` (the pod that runs
  the step's code). A step is therefore up to three entries, and every step has an entry called
  ``executor``.
- ``display_name`` is the compiled task key (the KFP SDK's ``maybe_rename_for_k8s`` of the component name:
  step ``train_model`` is ``train-model``), never the display name set with ``set_display_name``. The
  step names are in the pipeline spec (``root.dag.tasks[key].taskInfo.name``), which the pipeline version
  returns.
- ``pod_name`` is never filled; ``child_tasks[].pod_name`` holds the Argo node ids of the node's children.
  So a step's DAG entry names the node id of its executor, and the executor's pod carries that id in its
  ``workflows.argoproj.io/node-id`` annotation (see pods.py).
- ``error`` is not filled for a failed task or run (only when the server cannot convert a run), and
  ``execution_id`` is 0 for these entries. Unset times are ``0001-01-01T00:00:00Z`` (a node's zero time)
  or ``1970-01-01T00:00:00Z`` (a run's 0 seconds).
- States are Argo node phases converted by ``model.RuntimeState.ToV2``: ``Omitted`` (a task after a failed
  one) becomes ``RUNTIME_STATE_UNSPECIFIED``, which the JSON leaves out.
- A terminated run ends ``FAILED``, not ``CANCELED``: terminate sets ``CANCELING`` and patches the
  workflow's ``activeDeadlineSeconds`` to 0, and the finished workflow's ``Failed`` phase is reported next.
  Its ``state_history`` keeps the ``CANCELING``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jupyter_ext.records.models import wall_time_s

__all__ = [
    "StepError",
    "TaskStatus",
    "fold_task_details",
    "iso_time",
    "parse_time",
    "step_names",
    "step_record",
    "task_key",
]

# KFP's own nodes besides the steps' (the workflow node is recognised by having no driver).
_DRIVER_SUFFIX = "-driver"
_EXECUTOR = "executor"
_ROOT = "root"
# A step whose driver is still running (or done) and whose DAG node does not exist yet.
_DRIVER_TO_STEP = {
    "PENDING": "PENDING",
    "RUNNING": "PENDING",
    "SUCCEEDED": "PENDING",
    "FAILED": "FAILED",
    "CANCELING": "CANCELING",
}
# KFP's run and task states -> cellpipe's StepStatus values (CONTRACT.md, records/models.py).
_STEP_STATUS = {
    "PENDING": "pending",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "SKIPPED": "not_run",
    "FAILED": "failed",
    "CANCELING": "cancelled",
    "CANCELED": "cancelled",
    "PAUSED": "pending",
}


@dataclass(frozen=True)
class StepError:
    """Why a step failed: the failing cell and exception when the step runtime could say so."""

    message: str
    cell: int | None = None
    ename: str | None = None
    evalue: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "cell": self.cell, "ename": self.ename, "evalue": self.evalue}

    def summary(self) -> str:
        return f"cell {self.cell}: {self.message}" if self.cell else self.message


@dataclass(frozen=True)
class TaskStatus:
    """One cellpipe step of a KFP run, from its driver, DAG and executor entries."""

    name: str  # the step name (the task key when the pipeline spec could not be read)
    state: str  # KFP's RuntimeState for the step; PENDING before its DAG node exists
    pod_name: str | None = None  # the executor pod, when Kubernetes told us
    error: str | None = None  # one line: which cell failed and why, or what is known
    key: str = ""  # the compiled task key, as task_details name it
    node_id: str | None = None  # the Argo node id of the step's executor
    started: datetime | None = None
    finished: datetime | None = None
    detail: StepError | None = None

    @property
    def duration_s(self) -> float | None:
        """Its real wall time, both ends on KFP's clock, as a record's ``duration_s``; None until it ended."""
        if self.started is None or self.finished is None:
            return None
        return wall_time_s(self.started.timestamp(), self.finished.timestamp())


def task_key(step: str) -> str:
    """The task key the KFP compiler gives a component named ``step`` (``train_model`` -> ``train-model``)."""
    from kfp.dsl.utils import maybe_rename_for_k8s

    return maybe_rename_for_k8s(step)


def parse_time(value: Any) -> datetime | None:
    """A KFP timestamp; None for the zero times KFP sends for "not yet" (year 1 and 1970-01-01)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        text = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return None if moment.year <= 1970 and moment.timestamp() <= 0 else moment


def step_names(pipeline_spec: Mapping[str, Any] | None) -> dict[str, str]:
    """``{task key: step name}`` of the pipeline's root DAG, in pipeline order (upstream first).

    ``pipeline_spec`` is what KFP returns for a pipeline version: the spec itself, or
    ``{"pipeline_spec": ..., "platform_spec": ...}`` for a package with a Kubernetes platform spec
    (``api_util.go: YamlStringToPipelineSpecStruct``).
    """
    spec = dict(pipeline_spec or {})
    if "pipeline_spec" in spec:
        spec = dict(spec["pipeline_spec"] or {})
    tasks = (((spec.get("root") or {}).get("dag") or {}).get("tasks")) or {}
    order: dict[str, str] = {}

    def visit(key: str, seen: tuple[str, ...] = ()) -> None:
        if key in order or key in seen or key not in tasks:
            return
        for upstream in tasks[key].get("dependentTasks") or []:
            visit(upstream, (*seen, key))
        order[key] = str((tasks[key].get("taskInfo") or {}).get("name") or key)

    for key in tasks:
        visit(key)
    return order


def _children(entry: Mapping[str, Any]) -> list[str]:
    return [c["pod_name"] for c in entry.get("child_tasks") or [] if c.get("pod_name")]


def _step_dag(key: str, candidates: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The step's DAG entry among the entries with its key.

    Only a step named like one of KFP's own nodes (``executor``, ``root``) shares its key; then its DAG is
    the entry with children and the fewest of them (one: its executor).
    """
    if len(candidates) <= 1 and key not in (_EXECUTOR, _ROOT):
        return candidates[0] if candidates else None
    with_children = sorted((e for e in candidates if _children(e)), key=lambda e: len(_children(e)))
    return with_children[0] if with_children else None


def _guess_keys(names: Iterable[str]) -> dict[str, str]:
    """Step keys when the spec is unknown: every ``<key>-driver`` but the root's."""
    keys = {}
    for name in names:
        if name.endswith(_DRIVER_SUFFIX) and name != _ROOT + _DRIVER_SUFFIX:
            key = name[: -len(_DRIVER_SUFFIX)]
            keys[key] = key
    return keys


def fold_task_details(
    task_details: Iterable[Mapping[str, Any]], steps: Mapping[str, str] | None = None
) -> list[TaskStatus]:
    """One :class:`TaskStatus` per step, in ``steps`` order (``{task key: step name}``, see step_names).

    Driver, DAG and executor entries are folded into their step; KFP's own nodes (the workflow, ``root``,
    ``root-driver``) are dropped. A step with no entry yet is left out. Without ``steps``, the steps are
    the keys that have a driver, named by their key.
    """
    entries = [dict(e) for e in task_details or []]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_name.setdefault(str(entry.get("display_name") or ""), []).append(entry)
    known = dict(steps) if steps else _guess_keys(by_name)
    folded = []
    for key, name in known.items():
        drivers = by_name.get(key + _DRIVER_SUFFIX) or []
        driver = drivers[0] if len(drivers) == 1 else None
        dag = _step_dag(key, by_name.get(key) or [])
        if dag is not None:
            # no state: Argo's Omitted (a step after a failed one), which KFP's JSON leaves out
            state = str(dag.get("state") or "SKIPPED")
        elif driver is not None:
            state = _DRIVER_TO_STEP.get(str(driver.get("state") or ""), "SKIPPED")
        else:
            continue
        error = None
        if dag is None and state == "FAILED":
            error = "KFP's driver failed before the step started (resolving its inputs or cache)"
        children = _children(dag) if dag else []
        source = dag if dag is not None else driver
        started = parse_time((dag or {}).get("start_time")) or parse_time((driver or {}).get("start_time"))
        final = state not in ("PENDING", "RUNNING", "CANCELING")
        finished = parse_time((source or {}).get("end_time")) if final else None
        folded.append(
            TaskStatus(
                name=name,
                state=state,
                error=error,
                key=key,
                node_id=children[0] if children else None,
                started=started,
                finished=finished,
                detail=StepError(error) if error else None,
            )
        )
    return folded


def iso_time(moment: datetime | None) -> str | None:
    """``moment`` as ISO 8601 UTC, to the second (``2026-01-01T12:00:00Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def step_record(task: TaskStatus, *, cancelled: bool = False) -> dict[str, Any]:
    """``task`` as a step of a run record (CONTRACT.md "Run record JSON"); times are ISO 8601 UTC.

    ``cancelled``: the run was terminated, so a step that failed without an error of its own was stopped.
    """
    status = _STEP_STATUS.get(task.state, "pending")
    if cancelled and status in ("failed", "running", "pending") and task.detail is None:
        status = "cancelled"
    detail = task.detail
    return {
        "name": task.name,
        "status": status,
        "started": iso_time(task.started),
        "finished": iso_time(task.finished),
        "duration_s": task.duration_s,
        "cached": False,  # KFP reports a cached step's skipped executor in a way that names no step
        "cell": detail.cell if detail else None,
        "error": detail.to_dict() if detail else None,
        "notebook": None,  # the executed notebook is in the step's output artifact, in KFP's storage
        "pod": task.pod_name,
        "kfp_task": task.key,
        "kfp_state": task.state,
    }
