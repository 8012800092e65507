"""What a target is: a place a prepared run executes (this machine, a Kubernetes Job, Kubeflow Pipelines).

A target is a small object with a name, a typed options dataclass, an availability check and one coroutine,
:meth:`Target.execute`, that runs a prepared pipeline for a record the run service created and returns the
outcome. The service owns everything around it (validation, snapshot, record, tracking, final status):
adding a target is a new module plus one line in :data:`jupyter_ext.targets.registry.TARGETS`.

Cancelling a run cancels the task awaiting ``execute``: a target stops its work on ``CancelledError``
(shuts kernels down) and re-raises. Cluster targets (:class:`ClusterTarget`) are detached instead: ``start``
creates the Job / KFP run and records its handle, ``poll`` and ``cancel`` work from that handle in any process.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import urlparse

from jupyter_ext.errors import TargetError
from jupyter_ext.pipeline.model import Pipeline, Secret
from jupyter_ext.records.models import RunRecord, RunStatus

Listener = Callable[[str, str, RunRecord], None]  # (event, step name or "", the whole run record)
PENDING_SNAPSHOT = "0" * 64  # stands in for the id in the dry manifest built before the upload
_LOCAL_SCHEMES = ("file", "local", "memory")
IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


@dataclass
class TargetSettings:
    """What decides which targets a server or CLI can use; empty fields fall back to the environment."""

    store_url: str | None = None  # $CELLPIPE_STORE
    kfp_host: str | None = None  # $CELLPIPE_KFP_HOST, $KF_PIPELINES_ENDPOINT
    kubeconfig: str | None = None  # $KUBECONFIG, ~/.kube/config

    def store(self) -> str | None:
        return self.store_url or os.environ.get("CELLPIPE_STORE") or None

    def kfp(self) -> str | None:
        return self.kfp_host or os.environ.get("CELLPIPE_KFP_HOST") or os.environ.get("KF_PIPELINES_ENDPOINT")

    def kubernetes_credentials(self) -> str | None:
        """Where Kubernetes credentials come from ("in-cluster" or a kubeconfig path), None when nowhere."""
        if os.environ.get("KUBERNETES_SERVICE_HOST") and IN_CLUSTER_TOKEN.is_file():
            return "in-cluster"
        for candidate in (
            self.kubeconfig,
            *os.environ.get("KUBECONFIG", "").split(os.pathsep),
            "~/.kube/config",
        ):
            if candidate and Path(candidate).expanduser().is_file():
                return str(Path(candidate).expanduser())
        return None


def settings_of(settings: Any) -> TargetSettings:
    """A :class:`TargetSettings` from itself, None (the environment), or an object with the same attributes
    (the server's ExtensionApp)."""
    if isinstance(settings, TargetSettings):
        return settings
    return TargetSettings(
        store_url=getattr(settings, "store_url", None) or None,
        kfp_host=getattr(settings, "kfp_host", None) or None,
        kubeconfig=getattr(settings, "kubeconfig", None) or None,
    )


def default_owner() -> str:
    """Who runs it: the JupyterHub user in a hub, else the login name."""
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def require_pod_store(url: str | None) -> str:
    """The store URL if pods on a cluster can read it, else TargetError saying why and what to use."""
    from jupyter_ext.snapshot.config import STORE_ENV

    example = "e.g. --store s3://my-bucket/cellpipe (see docs/kubernetes.md)"
    if not url:
        raise TargetError(
            "no snapshot store for the cluster: pods read the notebook and its data from the store",
            field="--store",
            hint=f"Pass --store or set {STORE_ENV} to a bucket the pods can reach, {example}",
        )
    parsed = urlparse(url)
    scheme = parsed.scheme.lower() if "://" in url else ""
    if not scheme or scheme in _LOCAL_SCHEMES:
        where = "lives in this process only" if scheme == "memory" else "is on this machine"
        raise TargetError(
            f"snapshot store '{url}' {where}; pods on the cluster cannot read it",
            field="--store",
            hint=f"Use an object store both this machine and the pods can reach, {example}",
        )
    if parsed.password:
        raise TargetError(
            f"snapshot store URL for '{parsed.hostname}' contains a password; it would be readable in the "
            "Job's arguments",
            field="--store",
            hint="Drop it from the URL and give the pods credentials with --secret SECRET:KEY:ENV",
        )
    return url


def kept_snapshot(exc: TargetError, snapshot_id: str, store: str, kind: str) -> TargetError:
    """The creation error, plus what did get made: the snapshot (harmless; its files are deduplicated)."""
    return TargetError(
        f"{exc.message} (no {kind} was created; snapshot {snapshot_id[:12]} was uploaded to "
        f"{store} and stays there, a retry uploads no file twice)",
        notebook=exc.notebook,
        field=exc.field,
        hint=exc.hint,
    )


def pod_store_problem(settings: TargetSettings) -> str | None:
    try:
        require_pod_store(settings.store())
    except TargetError as exc:
        return exc.message
    return None


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
    notebook: Path  # the notebook file to run (the snapshot's copy, or one holding unsaved content)
    run_dir: Path  # <data dir>/runs/<id>: executed notebooks, logs
    data_dir: Path
    options: Any  # the target's options dataclass
    use_cache: bool = True
    snapshot_id: str | None = None
    snapshot_store: str | None = None  # URL of the store the snapshot is in
    kernel_pool: Any = None  # warm kernels of a long-lived process (targets.local.kernels.WarmKernelPool)
    save: Callable[[RunRecord], None] = field(default=lambda record: None)
    listener: Listener = field(default=lambda event, step, record: None)

    def emit(self, event: str, step: str = "") -> None:
        self.listener(event, step, self.record)


class ClusterTarget:
    """What the cluster targets share: the snapshot goes to a store the pods read, and the target is available
    when the cluster can be reached (:meth:`unreachable` says why not) and such a store is configured.

    A cluster run is detached from the process that submits it: :meth:`start` creates the Job / KFP run and
    puts its handle in the record (from then on the cluster owns the run); :meth:`poll` and :meth:`cancel`
    work from that handle alone, in any process (the run service calls them when a record is read, when
    a run is followed, and to cancel it). They block (call them in a thread) and raise CellpipeError when
    the cluster cannot be reached or refuses.
    """

    detached: ClassVar[bool] = True
    poll_seconds: float = 5.0  # how often a followed run is checked

    def preflight(self, pipeline: Pipeline, options: Any, parameters: dict[str, Any]) -> list[str]:
        """Every check that can fail on user input (image, names, resources, the cluster's address), made
        on a dry object before the snapshot is uploaded; returns notes for the user (which image, ...)."""
        raise NotImplementedError

    async def start(self, context: ExecutionContext) -> None:
        """Create the cluster object for ``context.record``; set ``record.handle`` (and links, extra)."""
        raise NotImplementedError

    def poll(self, record: RunRecord) -> RunStatus | None:
        """Update ``record``'s steps from the cluster; the final status once it ended, else None."""
        raise NotImplementedError

    def cancel(self, record: RunRecord) -> None:
        """Stop the run on the cluster (the Job deleted, the KFP run terminated)."""
        raise NotImplementedError

    def unreachable(self, settings: TargetSettings) -> str | None:
        raise NotImplementedError

    def availability(self, settings: Any) -> tuple[bool, str | None]:
        settings = settings_of(settings)
        problem = self.unreachable(settings) or pod_store_problem(settings)
        return problem is None, problem

    def snapshot_store(self, options: ClusterOptions, default: str) -> str:
        from jupyter_ext.snapshot.config import STORE_ENV

        return require_pod_store(options.store or os.environ.get(STORE_ENV))


class Target(Protocol):
    name: ClassVar[str]
    label: ClassVar[str]
    options_type: ClassVar[type]

    def availability(self, settings: Any) -> tuple[bool, str | None]:
        """Whether runs can go here with these settings, and why not."""

    def snapshot_store(self, options: Any, default: str) -> str:
        """Where the run's snapshot must be stored for this target to read it (``default``: the local one).
        Raises TargetError when the options name no store the target can use."""

    def check(self, pipeline: Pipeline, options: Any) -> None:
        """Refuse (TargetError) what this target cannot run, before anything is snapshotted or recorded."""

    async def execute(self, context: ExecutionContext) -> RunStatus:
        """Run it; returns succeeded / failed / cancelled. Raises CellpipeError for a refusal it can explain.
        (A :class:`ClusterTarget` has ``start``/``poll``/``cancel`` instead: the run service follows it.)"""
