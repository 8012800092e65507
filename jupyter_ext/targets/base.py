"""What a target is: a place a prepared run executes (this machine, a Kubernetes Job, Kubeflow Pipelines).

A target is a small object with a name, a typed options dataclass, an availability check and one coroutine,
:meth:`Target.execute`, that runs a prepared pipeline for a record the run service created and returns the
outcome. The service owns everything around it (validation, snapshot, record, tracking, final status):
adding a target is a new module plus one line in :data:`jupyter_ext.targets.registry.TARGETS`.

Cancelling a run cancels the task awaiting ``execute``: a target stops its work on ``CancelledError``
(shuts kernels down, deletes the Job, terminates the KFP run) and re-raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from jupyter_ext.pipeline.model import Pipeline, Secret
from jupyter_ext.records.models import RunRecord, RunStatus

Listener = Callable[[str, str, RunRecord], None]  # (event, step name or "", the whole run record)


@dataclass
class TargetInfo:
    name: str
    label: str
    available: bool
    reason: str | None = None  # why not, when not available

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "available": self.available, "reason": self.reason}


@dataclass
class ClusterOptions:
    """What every cluster target needs: where pods read the snapshot, which image, which credentials."""

    store: str | None = None  # snapshot store the pods read from; default $CELLPIPE_STORE
    image: str | None = None  # default: the notebook's, else $CELLPIPE_IMAGE
    namespace: str | None = None
    name: str | None = None  # object / run name; default from the pipeline name
    owner: str | None = None  # default: $JUPYTERHUB_USER, else the login name
    env: dict[str, str] = field(default_factory=dict)  # plain settings for the pods (never secrets)
    secrets: list[Secret] = field(default_factory=list)  # Kubernetes Secret keys as environment variables
    service_account: str | None = None
    gpu_node_selector: dict[str, str] | None = None
    kubeconfig: str | None = None
    context: str | None = None


@dataclass
class ExecutionContext:
    """Everything a target needs to execute one run."""

    record: RunRecord  # steps in pipeline order; the target updates step statuses and calls save()
    pipeline: Pipeline
    parameters: dict[str, Any]  # every parameter, typed
    workdir: Path  # the notebook's directory (restored snapshot for a rerun)
    run_dir: Path  # <data dir>/runs/<id>: executed notebooks, logs
    data_dir: Path
    options: Any  # the target's options dataclass
    use_cache: bool = True
    snapshot_id: str | None = None
    snapshot_store: str | None = None  # URL of the store the snapshot is in
    save: Callable[[RunRecord], None] = field(default=lambda record: None)
    listener: Listener = field(default=lambda event, step, record: None)

    def emit(self, event: str, step: str = "") -> None:
        self.listener(event, step, self.record)


class Target(Protocol):
    name: ClassVar[str]
    label: ClassVar[str]
    options_type: ClassVar[type]

    def availability(self, settings: Any) -> tuple[bool, str | None]:
        """Whether runs can go here with these settings, and why not."""

    def snapshot_store(self, options: Any, default: str) -> str:
        """Where the run's snapshot must be stored for this target to read it (``default``: the local one)."""

    async def execute(self, context: ExecutionContext) -> RunStatus:
        """Run it; returns succeeded / failed / cancelled. Raises CellpipeError for a refusal it can explain."""
