"""Following a KFP run as a real install reports it: the run's and each step's state, errors and logs.

    status = run_status(client, run_id, kubernetes=Kubernetes(api_client, "kubeflow"))
    record = run_steps(client, run_id)                  # the run record's status, error and steps
    for log in step_logs(client, run_id, task="train_model"): print(log.step, log.text)

The KFP API gives the run's state and one task entry per Argo node; tasks.py folds those into steps,
named from the pipeline version's spec. It does not give a step's pod name or error: those come from
Kubernetes when the caller has cluster credentials (``kubernetes=``, pods.py), where the step runtime's
termination message says which cell failed and why. Logs come from Kubernetes, else from the API server's
log route, which only the API server itself serves (not the KFP UI in front of it), and which answers
200 with a JSON error body when it cannot read the pod; when the host is the KFP UI, from the UI's own
log route, which reads the pod with the UI's service account.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jupyter_ext.errors import TargetError
from jupyter_ext.targets.kfp.connect import call_api
from jupyter_ext.targets.kfp.pods import StepPod, pod_log, step_pods
from jupyter_ext.targets.kfp.tasks import (
    StepError,
    TaskStatus,
    fold_task_details,
    iso_time,
    parse_time,
    step_names,
    step_record,
    task_key,
)

if TYPE_CHECKING:
    from kfp.client import Client

__all__ = [
    "FINAL_STATES",
    "Kubernetes",
    "KfpRunStatus",
    "StepLog",
    "TaskStatus",
    "cancel_run",
    "kubernetes_for",
    "run_logs",
    "run_status",
    "run_steps",
    "step_logs",
    "wait_for_run",
]

FINAL_STATES = ("SUCCEEDED", "SKIPPED", "FAILED", "CANCELED")
LOG_ROUTE = "/apis/v1alpha1/runs/{run_id}/nodes/{node_id}/log"  # the API server's
UI_LOG_ROUTE = "/k8s/pod/logs"  # the KFP UI's (frontend/server/app.ts)
# The executor template of a step (backend/src/v2/compiler/argocompiler/container.go): since KFP 2.14 a
# step with pod labels or annotations (cellpipe's always has them) runs in
# "metadata-<annotations>-<labels>-system-container-impl", before that in "system-container-impl".
_EXECUTOR_TEMPLATE = "system-container-impl"
_RETRYABLE_POLLS = 3  # consecutive failed status polls wait_for_run tolerates (a restarting API server)
_SPEC_CACHE: dict[tuple[str, str], dict[str, Any]] = {}  # (host, version id) -> spec (versions never change)
_SPEC_CACHE_SIZE = 32
_RUN_STATUS = {"PENDING": "queued", "RUNNING": "running", "CANCELING": "running", "PAUSED": "running",
               "SUCCEEDED": "succeeded", "SKIPPED": "succeeded", "FAILED": "failed", "CANCELED": "cancelled"}  # fmt: skip
NO_KUBERNETES = "no Kubernetes credentials (run in a notebook pod, or set up a kubeconfig for the cluster)"


@dataclass(frozen=True)
class Kubernetes:
    """The user's own cluster credentials and the namespace the run's pods are in."""

    api_client: Any  # kubernetes.client.ApiClient
    namespace: str


@dataclass(frozen=True)
class KfpRunStatus:
    """A KFP run as KFP reports it (its state words, tasks, errors); not cellpipe's status of a run
    (:class:`jupyter_ext.records.models.RunStatus`), which ``KfpTarget.poll`` derives from it."""

    run_id: str
    state: str  # PENDING, RUNNING, SUCCEEDED, SKIPPED, FAILED, CANCELING, CANCELED, PAUSED, ...
    tasks: tuple[TaskStatus, ...] = ()  # the steps that started, in pipeline order
    error: str | None = None  # the run's own error: KFP fills it only when it cannot read the run
    display_name: str = ""
    cancelled: bool = False  # terminate was asked for: KFP then ends the run FAILED, not CANCELED
    created_at: datetime | None = None
    finished_at: datetime | None = None
    steps: tuple[str, ...] = ()  # every step of the pipeline, in order (empty if the spec is unknown)
    workflow: str = ""  # the Argo workflow's name
    notes: tuple[str, ...] = ()  # what could not be read, and why
    spec: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # the pipeline spec

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"

    @property
    def failed_task(self) -> TaskStatus | None:
        """The first step that failed of its own accord (not one stopped by a cancel)."""
        for task in self.tasks:
            if task.state == "FAILED" and (task.detail is not None or not self.cancelled):
                return task
        return None

    def outcome(self) -> str:
        """One line: how the run ended (or stands), naming the failing step, cell and error."""
        if self.cancelled and self.state in ("FAILED", "CANCELED", "CANCELING"):
            return "cancelled" if self.state != "CANCELING" else "cancelling"
        failed = self.failed_task
        if failed is not None:
            why = f": {failed.error}" if failed.error else ""
            return f"{self.state.lower()}: step {failed.name} failed{why}"
        return self.state.lower() + (f": {self.error}" if self.error else "")


@dataclass(frozen=True)
class StepLog:
    step: str
    pod: str
    text: str
    source: str  # "kubernetes", "KFP API" (the API server's route) or "KFP UI" (the UI's route)


def kubernetes_for(
    client: Client, *, kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
) -> Kubernetes | None:
    """The user's Kubernetes credentials for the run's pods, or None when there are none.

    In-cluster (a notebook pod's service account), else ``kubeconfig``/``context`` or the default
    kubeconfig, as ``kubectl`` finds them; nothing is sent yet. The pods are in the profile namespace on
    multi-user KFP, else in ``namespace``, else in ``kubeflow`` (where standalone KFP runs them).
    """
    from jupyter_ext.targets.k8s.client import load_api_client
    from jupyter_ext.targets.kfp.connect import client_namespace

    try:
        api_client = load_api_client(kubeconfig, context)
    except TargetError:
        return None
    return Kubernetes(api_client, client_namespace(client) or namespace or "kubeflow")


# -- reading the run --------------------------------------------------------------------------------------
def _get_json(what: str, function: Callable[..., Any], *args: Any) -> dict[str, Any]:
    response = call_api(what, function, *args, _preload_content=False)
    try:
        return json.loads(response.data or b"{}")
    except ValueError:
        raise TargetError(f"{what}: KFP answered something that is not JSON", field="KFP") from None


def _pipeline_spec(client: Client, run: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The run's pipeline spec (from its pipeline version, cached) and, when it cannot be read, why."""
    if run.get("pipeline_spec"):
        return run["pipeline_spec"], None
    reference = run.get("pipeline_version_reference") or {}
    pipeline_id, version_id = reference.get("pipeline_id"), reference.get("pipeline_version_id")
    if not (pipeline_id and version_id):
        return None, "the run names no pipeline version, so steps are named by their KFP task keys"
    cache_key = (str(client.runs.api_client.configuration.host), str(version_id))
    if cache_key not in _SPEC_CACHE:
        try:
            version = _get_json(f"reading pipeline version {version_id}",
                                client.pipelines.pipeline_service_get_pipeline_version, pipeline_id, version_id)  # fmt: skip
        except TargetError as exc:
            return None, f"{exc.message}; steps are named by their KFP task keys"
        if len(_SPEC_CACHE) >= _SPEC_CACHE_SIZE:
            _SPEC_CACHE.pop(next(iter(_SPEC_CACHE)))
        _SPEC_CACHE[cache_key] = version.get("pipeline_spec") or {}
    return _SPEC_CACHE[cache_key], None


def _workflow_name(entries: list[dict[str, Any]], keys: list[str]) -> str:
    """The Argo workflow's name: the one entry that is neither KFP's own node nor a step's."""
    own = {"root", "root-driver", "executor"} | set(keys) | {f"{k}-driver" for k in keys}
    names = [str(e.get("display_name") or "") for e in entries]
    others = [n for n in names if n and n not in own and not n.endswith("-driver")]
    return others[0] if len(others) == 1 else ""


def _read_status(client: Client, run_id: str) -> KfpRunStatus:
    run = _get_json(f"reading run {run_id}", client.runs.run_service_get_run, run_id)
    spec, note = _pipeline_spec(client, run)
    names = step_names(spec)
    entries = list((run.get("run_details") or {}).get("task_details") or [])
    tasks = fold_task_details(entries, names or None)
    history = [str(h.get("state") or "") for h in run.get("state_history") or []]
    state = str(run.get("state") or "RUNTIME_STATE_UNSPECIFIED")
    return KfpRunStatus(
        run_id=str(run.get("run_id") or run_id),
        state=state,
        tasks=tuple(tasks),
        error=((run.get("error") or {}).get("message") or None),
        display_name=str(run.get("display_name") or ""),
        cancelled=state in ("CANCELING", "CANCELED") or "CANCELING" in history,
        created_at=parse_time(run.get("created_at")),
        finished_at=parse_time(run.get("finished_at")),
        steps=tuple(names.values()),
        workflow=_workflow_name(entries, [t.key for t in tasks] + list(names)),
        notes=(note,) if note else (),
        spec=spec,
    )


def _with_pods(status: KfpRunStatus, kubernetes: Kubernetes) -> KfpRunStatus:
    """``status`` with each step's pod, and the failed steps' errors from their termination messages."""
    try:
        pods = step_pods(kubernetes.api_client, kubernetes.namespace, status.run_id)
    except TargetError as exc:
        return replace(status, notes=(*status.notes, f"no pods or step errors: {exc.message}"))
    by_node = {p.node_id: p for p in pods if p.node_id}
    by_key: dict[str, StepPod] = {}
    for pod in pods:
        by_key.setdefault(pod.task_key, pod)
    tasks, gone = [], []
    for task in status.tasks:
        pod = by_node.get(task.node_id) or by_key.get(task.key)
        if pod is None:
            if task.state == "FAILED" and task.node_id:
                gone.append(task.name)
            tasks.append(task)
            continue
        found = pod.step_error() if task.state == "FAILED" else None
        if found is None:
            tasks.append(replace(task, pod_name=pod.name))
            continue
        detail = StepError(found["message"], found["cell"], found["ename"], found["evalue"])
        tasks.append(replace(task, pod_name=pod.name, detail=detail, error=_one_line(detail)))
    notes = status.notes
    if gone:
        notes = (*notes, f"no pod of {', '.join(gone)} in namespace {kubernetes.namespace}, so its error is "
                         "unknown: KFP deletes a finished run's pods after its workflow TTL (7 days by default)")  # fmt: skip
    return replace(status, tasks=tuple(tasks), notes=notes)


def _one_line(error: StepError) -> str:
    text = error.summary()
    if error.ename and error.ename not in text:
        text += f" ({error.ename}: {error.evalue})" if error.evalue else f" ({error.ename})"
    return " ".join(text.split())


def _explain_missing_errors(status: KfpRunStatus, kubernetes: Kubernetes | None) -> KfpRunStatus:
    unexplained = [t.name for t in status.tasks if t.state == "FAILED" and t.detail is None]
    if not unexplained or kubernetes is not None:
        return status
    note = (f"which cell of {', '.join(unexplained)} failed is in its pod's termination message, which KFP's "
            f"API does not return; cellpipe reads it from Kubernetes, and found {NO_KUBERNETES}")  # fmt: skip
    return replace(status, notes=(*status.notes, note))


def run_status(client: Client, run_id: str, *, kubernetes: Kubernetes | None = None) -> KfpRunStatus:
    """The run's state and its steps' states and times; with ``kubernetes``, also pods and errors."""
    status = _read_status(client, run_id)
    if kubernetes is not None:
        status = _with_pods(status, kubernetes)
    return _explain_missing_errors(status, kubernetes)


def wait_for_run(
    client: Client,
    run_id: str,
    *,
    poll: float = 5.0,
    timeout: float | None = None,
    on_update: Callable[[KfpRunStatus], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    kubernetes: Kubernetes | None = None,
) -> KfpRunStatus:
    """Poll the run until it finishes or ``timeout`` seconds pass; return the last status.

    ``on_update`` is called with the first status and then whenever the run's or a step's state changes.
    With ``kubernetes``, a failed step's error is read from its pod when it fails. After a timeout the
    run keeps going: check ``status.finished``. A few failed polls in a row (an API server restarting)
    are retried; more, or a failed first poll, raise TargetError.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: tuple[Any, ...] | None = None
    failures = 0
    cancelling = False  # seen CANCELING: KFP's history may miss it if the workflow stopped at once
    while True:
        try:
            status = _read_status(client, run_id)
            failures = 0
            cancelling = cancelling or status.cancelled
            status = replace(status, cancelled=cancelling)
        except TargetError:
            failures += 1
            # A first poll that fails is a wrong id or host, not a hiccup: no point in retrying it.
            if seen is None or failures > _RETRYABLE_POLLS:
                raise
            sleep(poll)
            continue
        key = (status.state, tuple((task.name, task.state) for task in status.tasks))
        timed_out = deadline is not None and time.monotonic() >= deadline
        if key != seen or status.finished or timed_out:
            if kubernetes is not None and any(t.state == "FAILED" for t in status.tasks):
                status = _with_pods(status, kubernetes)
            status = _explain_missing_errors(status, kubernetes)
        if key != seen:
            seen = key
            if on_update is not None:
                on_update(status)
        if status.finished or timed_out:
            return status
        sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))


def cancel_run(client: Client, run_id: str) -> None:
    """Terminate the run: KFP stops its pods; the state becomes CANCELING, then FAILED (see tasks.py)."""
    call_api(f"cancelling run {run_id}", client.runs.run_service_terminate_run, run_id)


def run_steps(
    client: Client, run_id: str, *, kubernetes: Kubernetes | None = None, order: Sequence[str] | None = None
) -> dict[str, Any]:
    """The run in the shape of cellpipe's run record (CONTRACT.md): status, error, times and steps.

    ``steps`` lists every step of the pipeline in order, each ``{name, status, started, finished,
    duration_s, cached, cell, error: {message, cell, ename, evalue} | None, notebook: None}`` plus the
    KFP details ``pod``, ``kfp_task`` and ``kfp_state``. Statuses are cellpipe's (``pending``, ``running``,
    ``succeeded``, ``failed``, ``cancelled``, ``not_run``); a step that has not started is ``pending`` while
    the run goes on and ``not_run`` after it ended. Times are ISO 8601 UTC strings. ``order``: the step
    names in the pipeline's order, as the caller's pipeline model has them; by default the package's
    (upstream steps first, parallel ones by task key).
    """
    status = run_status(client, run_id, kubernetes=kubernetes)
    started = {task.name: task for task in status.tasks}
    final = status.finished
    steps = []
    names = list(status.steps or started)
    if order:
        rank = {name: index for index, name in enumerate(order)}
        names.sort(key=lambda name: rank.get(name, len(rank)))
    for name in names:
        task = started.get(name)
        if task is None:
            task = TaskStatus(name=name, state="SKIPPED" if final else "PENDING", key=task_key(name))
        steps.append(step_record(task, cancelled=status.cancelled))
    record_status = _RUN_STATUS.get(status.state, "running")
    if status.cancelled and record_status == "failed":
        record_status = "cancelled"
    failed = status.failed_task
    error = None
    if record_status == "failed":
        message = status.outcome().split(": ", 1)[-1]
        error = {"message": message, "step": failed.name if failed else None,
                 "cell": failed.detail.cell if failed and failed.detail else None}  # fmt: skip
    return {
        "id": status.run_id,
        "status": record_status,
        "kfp_state": status.state,
        "created": iso_time(status.created_at),
        "finished": iso_time(status.finished_at) if final else None,
        "error": error,
        "steps": steps,
        "notes": list(status.notes),
    }


# -- logs ---------------------------------------------------------------------------------------------------
def _select(status: KfpRunStatus, task: str | None) -> list[TaskStatus]:
    if task is None:
        return list(status.tasks)
    chosen = [t for t in status.tasks if task in (t.name, t.key) or t.key == task_key(task)]
    if not chosen:
        names = ", ".join(t.name for t in status.tasks) or "none yet"
        known = f"{names}" if not status.steps else f"{names} (steps: {', '.join(status.steps)})"
        raise TargetError(f"run {status.run_id} has no started step '{task}'", field="task",
                          hint=f"started: {known}")  # fmt: skip
    return chosen


def _executor_templates(spec: dict[str, Any] | None, key: str) -> list[str]:
    """The Argo templates a step's executor may have run in, most likely first (see _EXECUTOR_TEMPLATE)."""
    spec = dict(spec or {})
    platform = spec.get("platform_spec") or {}
    spec = spec.get("pipeline_spec") or spec
    task = (((spec.get("root") or {}).get("dag") or {}).get("tasks") or {}).get(key) or {}
    component = (spec.get("components") or {}).get((task.get("componentRef") or {}).get("name") or "") or {}
    executors = ((platform.get("platforms") or {}).get("kubernetes") or {}).get("deploymentSpec") or {}
    metadata = ((executors.get("executors") or {}).get(component.get("executorLabel") or "") or {}).get(
        "podMetadata"
    )
    templates = [_EXECUTOR_TEMPLATE]
    if metadata is not None:
        annotations, labels = len(metadata.get("annotations") or {}), len(metadata.get("labels") or {})
        templates.insert(0, f"metadata-{annotations}-{labels}-{_EXECUTOR_TEMPLATE}")
    return templates


def _pod_names(status: KfpRunStatus, task: TaskStatus) -> list[str]:
    """The executor pod's possible names (Argo's v2 pod names, as KFP's ``util.RetrievePodName``)."""
    if task.pod_name:
        return [task.pod_name]
    if not (task.node_id and status.workflow):
        return []
    suffix = task.node_id.rsplit("-", 1)[-1]
    return [
        f"{status.workflow}-{template}-{suffix}" for template in _executor_templates(status.spec, task.key)
    ]


def _route_error(text: str) -> str | None:
    """The message of the log route's JSON error body (``{"error_message", "error_details"}``), if any."""
    start = text.rfind('{"error_message"')
    if start < 0:
        return None
    try:
        body = json.loads(text[start:])
    except ValueError:
        return None
    return str(body.get("error_message") or "unknown error") if isinstance(body, dict) else None


def _get(client: Client, what: str, path: str, **options: Any) -> Any:
    """A GET with the client's authenticated session, outside the generated services."""
    api_client = client.runs.run_service_get_run.__self__.api_client
    return call_api(what, api_client.call_api, path, "GET", auth_settings=["Bearer"], _preload_content=False,
                    _return_http_data_only=True, **options)  # fmt: skip


def _is_page(response: Any, text: str) -> bool:
    kind = str(response.getheader("Content-Type") or "")
    return "html" in kind or text.lstrip()[:15].lower().startswith(("<!doctype html", "<html"))


def _route_log(client: Client, run_id: str, pod: str) -> tuple[str | None, str, bool]:
    """The log through the API server's route: (text or None, why not, whether the host is the KFP UI).

    The route (``backend/src/apiserver/server/run_log_server.go``) writes 200 before it reads the pod, so a
    failure is a 200 whose body is (or ends with) a JSON error. A KFP UI answers this path with its web
    page: only the API server serves it.
    """
    try:
        response = _get(client, f"reading the log of pod {pod}", LOG_ROUTE,
                        path_params={"run_id": run_id, "node_id": pod})  # fmt: skip
    except TargetError as exc:
        return None, exc.message, False
    text = (response.data or b"").decode("utf-8", "replace")
    if _is_page(response, text):
        return None, "served by the KFP API server (service ml-pipeline, port 8888), not by the KFP UI", True
    error = _route_error(text)
    if error is not None:
        before = text[: text.rfind('{"error_message"')]
        if before.strip():  # the stream broke after some of the log was read
            return before + f"\n[cellpipe: the log ends here: {error}]\n", "", False
        return None, f"the KFP API server could not read pod {pod}: {error}", False
    return text, "", False


def _ui_log(client: Client, run_id: str, pod: str) -> tuple[str | None, str]:
    """The log through the KFP UI's own route (``frontend/server/handlers/pod-logs.ts``), or None and why.

    The UI reads the pod's main container from Kubernetes with its own service account, then the log
    archive. On multi-user KFP it wants the pod's namespace and checks that you may view it.
    """
    from jupyter_ext.targets.kfp.connect import client_namespace

    query = [("podname", pod), ("runid", run_id)]
    if client_namespace(client):
        query.append(("podnamespace", str(client_namespace(client))))
    try:
        response = _get(client, f"reading the log of pod {pod} through the KFP UI", UI_LOG_ROUTE,
                        query_params=query)  # fmt: skip
    except TargetError as exc:
        return None, exc.message
    text = (response.data or b"").decode("utf-8", "replace")
    if _is_page(response, text):
        return None, "the host has no KFP UI log route either"
    return text, ""


def _kfp_log(client: Client, run_id: str, pod: str) -> tuple[str | None, str, str]:
    """A pod's log through the KFP host: (text or None, where from, why not)."""
    text, reason, is_ui = _route_log(client, run_id, pod)
    if text is not None or not is_ui:
        return text, "KFP API", f"KFP log route: {reason}"
    text, ui_reason = _ui_log(client, run_id, pod)
    return text, "KFP UI", f"KFP log route: {reason}; KFP UI log route: {ui_reason}"


def step_logs(
    client: Client, run_id: str, *, task: str | None = None, kubernetes: Kubernetes | None = None
) -> list[StepLog]:
    """The main container's log of each started step (or of step ``task``), in pipeline order.

    From Kubernetes with ``kubernetes``; else (or when that fails) from the API server's log route, which
    reads the pod, or KFP's log archive when one is configured; or, when the host is the KFP UI, from the
    UI's log route. A TargetError says which of them failed and why, when no log could be read.
    """
    status = run_status(client, run_id, kubernetes=kubernetes)
    chosen = _select(status, task)
    logs: list[StepLog] = []
    problems: list[str] = []
    for step in chosen:
        kube_reason = NO_KUBERNETES if kubernetes is None else ""
        if kubernetes is not None and step.pod_name:
            try:
                text = pod_log(kubernetes.api_client, kubernetes.namespace, step.pod_name)
                logs.append(StepLog(step.name, step.pod_name, text, "kubernetes"))
                continue
            except TargetError as exc:
                kube_reason = exc.message
        elif kubernetes is not None:
            kube_reason = f"Kubernetes has no pod of step {step.name} in namespace {kubernetes.namespace}"
        candidates = _pod_names(status, step)
        if not candidates:
            problems.append(f"step {step.name} has no pod yet ({step.state})")
            continue
        route_reason = ""
        for pod in candidates:
            text, source, route_reason = _kfp_log(client, run_id, pod)
            if text is not None:
                logs.append(StepLog(step.name, pod, text, source))
                break
        else:
            problems.append(f"step {step.name}: Kubernetes: {kube_reason}; {route_reason}")
    if problems and (task is not None or not logs):
        raise TargetError(f"no log for run {run_id}: " + " | ".join(problems), field="logs",
                          hint="give cellpipe cluster credentials (a kubeconfig, or run in a notebook pod), "
                               "or point --host at the KFP API server (kubectl port-forward -n kubeflow "
                               "svc/ml-pipeline 8888:8888; --host http://localhost:8888)")  # fmt: skip
    return logs


def run_logs(
    client: Client, run_id: str, *, task: str | None = None, kubernetes: Kubernetes | None = None
) -> dict[str, str]:
    """``{pod name: log}`` of the run's started steps (or of step ``task``); see :func:`step_logs`."""
    return {log.pod: log.text for log in step_logs(client, run_id, task=task, kubernetes=kubernetes)}
