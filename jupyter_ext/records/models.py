"""Typed run, step and schedule records, and the one definition of their statuses.

A record is a dataclass with ``to_dict()`` (JSON-ready, the shape the HTTP API serves) and ``from_dict()``.
Statuses are ``StrEnum``s (``str`` and ``Enum``), so ``RunStatus.SUCCEEDED == "succeeded"`` and they serialise as plain strings.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from typing import Any


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CRASHED = "crashed"  # its owner process went away before it finished

    @property
    def is_final(self) -> bool:
        return self in FINAL_RUN_STATES


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    CACHED = "cached"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    NOT_RUN = "not_run"  # an upstream step did not succeed, or the run stopped first
    CRASHED = "crashed"

    @property
    def is_final(self) -> bool:
        return self not in (StepStatus.PENDING, StepStatus.RUNNING)

    @property
    def ok(self) -> bool:
        """Its outputs exist: downstream steps may run."""
        return self in (StepStatus.SUCCEEDED, StepStatus.CACHED)


FINAL_RUN_STATES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.CRASHED})
ACTIVE_RUN_STATES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})


class TrackingStatus(StrEnum):
    OFF = "off"
    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"


def new_run_id() -> str:
    """Sortable by time, unique without coordination, and valid as a Kubernetes label value."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


class _WallTime:
    """A record's end: ``finished`` and ``duration_s`` are set together, by :meth:`end` only, with one meaning:
    the real wall time from the record's start (:attr:`began`) to its end, both read on the clock that timed
    it (this machine's, or the cluster's that timed a KFP task: never one of each)."""

    @property
    def began(self) -> float | None:
        return self.started  # type: ignore[attr-defined]

    def end(self, status: RunStatus | StepStatus, at: float | None = None) -> None:
        """Make it ``status`` (a final one) at ``at`` (epoch seconds; now if not given)."""
        self.status = status
        self.finished = time.time() if at is None else at
        self.duration_s = wall_time_s(self.began, self.finished)

    def elapsed_s(self, now: float | None = None) -> float | None:
        """Its duration once it ended; until then the seconds since it began (None before it began)."""
        if self.status.is_final:  # type: ignore[attr-defined]
            return self.duration_s  # type: ignore[attr-defined]
        return wall_time_s(self.began, time.time() if now is None else now)


def wall_time_s(start: float | None, end: float | None) -> float | None:
    """Seconds from ``start`` to ``end`` (epoch seconds, one clock), to the millisecond; None without both."""
    if start is None or end is None:
        return None
    return round(max(0.0, end - start), 3)  # not negative if the wall clock was set back in between


@dataclass
class StepRecord(_WallTime):
    name: str
    status: StepStatus = StepStatus.PENDING
    started: float | None = None
    finished: float | None = None
    duration_s: float | None = None
    cached: bool = False
    cached_from: str | None = None  # the run whose outputs a cached step reused
    cell: int | None = None  # first cell of the step (1-based, as in errors)
    cells: list[int] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None  # {message, cell, ename, evalue, kind, traceback}
    reason: str | None = None  # why a step did not run
    notebook: str | None = None  # the executed step notebook (a file path in the data directory)
    cache_key: str | None = None
    outputs: dict[str, dict] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        values = _known(cls, data)
        values["status"] = StepStatus(values.get("status", "pending"))
        return cls(**values)


@dataclass
class Tracking:
    status: TrackingStatus = TrackingStatus.OFF
    error: str | None = None
    mlflow_run_id: str | None = None
    mlflow_url: str | None = None  # a web link when the tracking server has one (http/https URIs)
    tracking_uri: str | None = None
    experiment_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Tracking:
        values = _known(cls, data or {})
        values["status"] = TrackingStatus(values.get("status", "off"))
        return cls(**values)


@dataclass
class RunRecord(_WallTime):
    id: str
    notebook: str  # the notebook's path (absolute in the store; the server shows it relative to its root)
    target: str = "local"
    status: RunStatus = RunStatus.QUEUED
    source: str = "cli"  # "cli" | "jupyterlab" | "schedule" | "pod"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    duration_s: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    snapshot_id: str | None = None
    schedule_id: str | None = None
    rerun_of: str | None = None
    error: dict[str, Any] | None = None  # {message, ...}: why the run failed outside any step
    steps: list[StepRecord] = field(default_factory=list)  # pipeline order
    tracking: Tracking = field(default_factory=Tracking)
    links: dict[str, str | None] = field(default_factory=dict)  # {"mlflow": url, "kfp": url}
    pipeline: str = ""
    mode: str = "steps"  # "steps": a tagged pipeline; "notebook": a plain notebook run whole by papermill
    notebook_sha256: str | None = None
    use_cache: bool = True
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(
        default_factory=dict
    )  # where the wall time went: kernel_start, steps, ...
    owner: dict[str, Any] = field(default_factory=dict)  # who runs it: {host, pid, pid_start, boot_id}
    cancel_requested: dict[str, Any] | None = None  # {"at": epoch, "by": who asked}, until and after it ends
    extra: dict[str, Any] = field(default_factory=dict)  # target-specific facts (KFP run id, Job name, ...)
    # Where a cluster run lives ({"namespace", "name"} of a Job, {"host", "run_id"} of a KFP run; never
    # credentials). Once set the cluster owns the run: no process's exit makes it crashed, and reading it
    # while active asks the cluster (see RunService.refresh).
    handle: dict[str, Any] | None = None
    refreshed: float | None = None  # when the cluster was last asked
    refresh_error: str | None = None  # why the last ask failed (the record stays as it was)

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    @property
    def began(self) -> float:
        """A run begins when it is created (requested, its snapshot taken): the time it waited in a queue
        for a slot is time its user waited, and its MLflow run starts then too."""
        return self.created

    @property
    def on_cluster(self) -> bool:
        """Owned by a cluster (a Job or KFP run exists), not by the process that submitted it."""
        return bool(self.handle)

    def step(self, name: str) -> StepRecord:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        values = _known(cls, data)
        values["status"] = RunStatus(values.get("status", "queued"))
        values["steps"] = [StepRecord.from_dict(s) for s in values.get("steps") or []]
        values["tracking"] = Tracking.from_dict(values.get("tracking"))
        return cls(**values)


@dataclass
class ScheduleRecord:
    """A schedule: fire ``notebook`` with ``parameters`` on ``target`` at each ``cron`` time in ``timezone``.
    (The schedule service fills in the logic; this is the stored shape.)"""

    id: str
    notebook: str
    cron: str
    timezone: str = "UTC"
    name: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    target: str = "local"
    target_options: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    catch_up: str = "skip"  # "skip" | "once"
    missed: list[str] = field(default_factory=list)  # ISO 8601 fire times that passed while nothing ran
    last_fire: float | None = None  # the last fire time handled (epoch seconds)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)  # cluster objects (CronJob / recurring run ids)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScheduleRecord:
        return cls(**_known(cls, data))


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The fields ``cls`` has (records written by another version may carry more or fewer)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    if names.issuperset(data):  # written by this version: a plain copy (a third of the time of filtering)
        return dict(data)
    return {k: v for k, v in data.items() if k in names}


def _plain(value: Any) -> Any:
    """A JSON-ready copy: records as dicts of their fields in order, statuses as strings, tuples as lists.
    (What ``dataclasses.asdict`` gives, without its deep copy of every value: a page of runs is encoded
    for each request, and asdict was most of that time.)"""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    names = _RECORD_FIELDS.get(kind)
    if names is None and hasattr(kind, "__dataclass_fields__"):
        names = _RECORD_FIELDS[kind] = tuple(f.name for f in fields(kind))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    return value


_ATOMS = frozenset({str, int, float, bool, type(None)})
_RECORD_FIELDS: dict[type, tuple[str, ...]] = {}
