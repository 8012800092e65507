"""A KFP run's step pods, read from Kubernetes with the user's own cluster credentials.

This is how the KFP UI itself reads a step's log (``frontend/server/handlers/pod-logs.ts``: the pod's
``main`` container from Kubernetes, then the log archive), and the one way to read a failed pod's
termination message, which the KFP API does not return. What identifies the pods (kubeflow/pipelines
2.5.0-2.17.0):

- KFP labels every pod of a run ``pipeline/runid=<KFP run id>`` (``util.LabelKeyWorkflowRunId``, set with
  ``SetPodMetadataLabels`` in ``backend/src/apiserver/template/v2_template.go``).
- Argo annotates each pod with its node: ``workflows.argoproj.io/node-id`` (the id that a step's DAG entry
  lists in ``child_tasks[].pod_name``) and ``workflows.argoproj.io/node-name``
  (``<workflow>.root.<task key>.executor`` for a step's executor, ``...<task key>-driver`` for its driver).
- The step's code runs in the executor pod's ``main`` container (the API server's log route reads the same
  container: ``resource_manager.go: readRunLogFromPod``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jupyter_ext.errors import TargetError
from jupyter_ext.runtime.termination import read_step_error

RUN_LABEL = "pipeline/runid"
NODE_ID = "workflows.argoproj.io/node-id"
NODE_NAME = "workflows.argoproj.io/node-name"
MAIN_CONTAINER = "main"
_EXECUTOR_SUFFIX = ".executor"
_TIMEOUT = (5.0, 30.0)  # connect, read


@dataclass(frozen=True)
class StepPod:
    """An executor pod of a KFP run: which step it ran and how its main container ended."""

    name: str
    task_key: str  # from the Argo node name <workflow>.root.<task key>.executor
    node_id: str | None
    phase: str
    exit_code: int | None = None
    reason: str | None = None  # Kubernetes' reason, e.g. Error, OOMKilled
    message: str | None = None  # the termination message

    def step_error(self) -> dict[str, Any] | None:
        """What the pod says about a failure: cellpipe's own error, else Kubernetes' reason."""
        written = read_step_error(self.message)
        if written is not None:
            return written
        if self.exit_code:
            reason = f"{self.reason or 'exited'} (exit code {self.exit_code})"
            return {"message": f"{reason}: {self.message.strip()}" if self.message else reason,
                    "cell": None, "ename": None, "evalue": None}  # fmt: skip
        return None


def _api_error(exc: Any, what: str) -> TargetError:
    try:
        message = json.loads(exc.body or "{}").get("message") or exc.reason
    except (ValueError, AttributeError):
        message = getattr(exc, "reason", None) or str(exc)
    status = getattr(exc, "status", None)
    return TargetError(f"Kubernetes answered {status} to {what} ({str(message).strip()})", field="kubernetes")


def _request(what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
    """A ``CoreV1Api`` call's raw response; failures become one-line TargetErrors naming ``what``."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return method(*args, _preload_content=False, _request_timeout=_TIMEOUT, **kwargs)
    except ApiException as exc:
        raise _api_error(exc, what) from None
    except (HTTPError, OSError) as exc:
        reason = str(getattr(exc, "reason", None) or exc).split(">: ", 1)[-1]
        raise TargetError(f"cannot reach Kubernetes for {what} ({reason})", field="kubernetes") from None


def _main_state(pod: dict[str, Any]) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == MAIN_CONTAINER:
            state = status.get("state") or {}
            return state.get("terminated") or (status.get("lastState") or {}).get("terminated") or {}
    return {}


def step_pods(api_client: Any, namespace: str, run_id: str) -> list[StepPod]:
    """The executor pods of KFP run ``run_id`` in ``namespace`` (one per step that started one)."""
    from kubernetes import client

    response = _request(
        f"listing the pods of run {run_id} in namespace {namespace}",
        client.CoreV1Api(api_client).list_namespaced_pod,
        namespace,
        label_selector=f"{RUN_LABEL}={run_id}",
    )
    pods = []
    for pod in json.loads(response.data or b"{}").get("items") or []:
        meta = pod.get("metadata") or {}
        if (meta.get("labels") or {}).get(RUN_LABEL) != run_id:
            continue
        annotations = meta.get("annotations") or {}
        node_name = str(annotations.get(NODE_NAME) or "")
        if not node_name.endswith(_EXECUTOR_SUFFIX):
            continue  # a driver pod, not a step's code
        terminated = _main_state(pod)
        pods.append(
            StepPod(
                name=str(meta.get("name") or ""),
                task_key=node_name[: -len(_EXECUTOR_SUFFIX)].rsplit(".", 1)[-1],
                node_id=annotations.get(NODE_ID),
                phase=str((pod.get("status") or {}).get("phase") or ""),
                exit_code=terminated.get("exitCode"),
                reason=terminated.get("reason"),
                message=terminated.get("message"),
            )
        )
    return pods


def pod_log(api_client: Any, namespace: str, pod: str) -> str:
    """The log of ``pod``'s main container (what ``kubectl logs -c main`` prints)."""
    from kubernetes import client

    response = _request(
        f"reading the log of pod {pod}",
        client.CoreV1Api(api_client).read_namespaced_pod_log,
        pod,
        namespace,
        container=MAIN_CONTAINER,
    )
    return (response.data or b"").decode("utf-8", "replace")
