"""A thin service over the official ``kubernetes`` client: create, inspect, list and delete cellpipe Jobs
and CronJobs, with every API or network failure turned into one readable :class:`TargetError`.

Responses are read as raw JSON (``_preload_content=False``) and returned as small plain dicts (see
:mod:`.status`): that skips the client's model classes, which reject partial objects, and keeps the
results easy to print or send to the UI.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from jupyter_ext.errors import TargetError
from jupyter_ext.targets.k8s.names import label_value, validate_name
from jupyter_ext.targets.k8s.namespace import resolve_namespace
from jupyter_ext.targets.k8s.objects import LABEL_PREFIX, MANAGED_BY
from jupyter_ext.targets.k8s.status import cronjob_summary, job_summary, newest_first

OWNER_LABEL = f"{LABEL_PREFIX}owner"
_CONNECT_HINT = "Check your kubeconfig (kubectl cluster-info), your network/VPN, and --namespace"
_AUTH_HINT = "Check the user/token in your kubeconfig (kubectl auth whoami); it may have expired"
_PAGE = 500


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient from the pod's service account (in a cluster) or else from the kubeconfig.

    An explicit ``kubeconfig`` or ``context`` skips the in-cluster attempt. Nothing is sent to the cluster.
    """
    configuration = client.Configuration()
    if kubeconfig is None and context is None:
        try:
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        except config.ConfigException:
            pass  # not in a pod (KUBERNETES_SERVICE_HOST unset or no token): try the kubeconfig
    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    try:
        config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration, persist_config=False
        )
    except (config.ConfigException, OSError, ValueError, KeyError) as exc:
        raise TargetError(
            f"no Kubernetes credentials: not running in a cluster, and kubeconfig '{path}' is unusable "
            f"({str(exc).strip() or type(exc).__name__})",
            hint="Set KUBECONFIG or create ~/.kube/config so that `kubectl get jobs` works",
        ) from None
    return client.ApiClient(configuration)


def _network_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    # urllib3 prefixes the connection object's repr: "<...HTTPConnection object at 0x..>: Failed to ..."
    return text.split(">: ", 1)[-1]


def _server_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason or "").strip()
    except (ValueError, AttributeError):
        return str(exc.reason or "").strip()


class KubernetesTarget:
    """Jobs and CronJobs in one namespace.

    ``api_client``: an explicit :class:`kubernetes.client.ApiClient` (tests, custom auth); otherwise one is
    loaded in-cluster or from the kubeconfig. ``namespace``: see :func:`resolve_namespace` when omitted.
    ``timeout``: (connect, read) seconds for each request.
    """

    def __init__(
        self,
        api_client: client.ApiClient | None = None,
        namespace: str | None = None,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self._owns_client = api_client is None
        self.api_client = api_client or load_api_client(kubeconfig, context)
        self.namespace = resolve_namespace(namespace, kubeconfig=kubeconfig, context=context)
        self.timeout = timeout
        self.batch = client.BatchV1Api(self.api_client)

    @property
    def host(self) -> str:
        return str(self.api_client.configuration.host)

    def close(self) -> None:
        if self._owns_client:
            self.api_client.close()

    def __enter__(self) -> KubernetesTarget:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------------------
    def _request(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call one API method; network failures become TargetError, API errors stay ApiException."""
        try:
            response = method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
        except ApiException as exc:
            if exc.status == 0:  # the client reports TLS failures this way, before any HTTP status
                raise self._unreachable(exc.reason) from None
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unreachable(exc) from None
        return json.loads(response.data or b"null")

    def _unreachable(self, exc: Any) -> TargetError:
        return TargetError(
            f"cannot reach the Kubernetes API at {self.host}: {_network_reason(exc)}", hint=_CONNECT_HINT
        )

    def _api_error(self, exc: ApiException, action: str, kind: str, name: str | None) -> TargetError:
        status, message = exc.status, _server_message(exc)
        what = f"{kind} '{name}'" if name else f"{kind}s"
        if status == 401:
            return TargetError(
                f"the Kubernetes API at {self.host} rejected the credentials (401)", hint=_AUTH_HINT
            )
        if status == 403:
            return TargetError(
                f"not allowed to {action} {what} in namespace '{self.namespace}' (403): {message}",
                hint="Ask for RBAC access to batch jobs/cronjobs there, or choose another --namespace",
            )
        if status == 404 and action == "create":  # the collection URL is 404 when the namespace is missing
            return TargetError(
                f"cannot create {what}: namespace '{self.namespace}' not found ({message})",
                hint="Check --namespace (kubectl get namespaces)",
            )
        if status == 404 and name:
            return TargetError(
                f"{kind} '{name}' not found in namespace '{self.namespace}'",
                hint=f"Check the name and --namespace (kubectl get {kind}s -n {self.namespace})",
            )
        if status == 404:
            return TargetError(
                f"the Kubernetes API at {self.host} does not serve batch/v1 {kind}s (404)",
                hint="cellpipe needs Kubernetes 1.21 or newer",
            )
        if status in (400, 422):
            return TargetError(f"the Kubernetes API refused {what} ({status}): {message}")
        return TargetError(f"Kubernetes API error {status} while trying to {action} {what}: {message}")

    def _call(
        self, action: str, kind: str, name: str | None, method: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any:
        try:
            return self._request(method, *args, **kw)
        except ApiException as exc:
            raise self._api_error(exc, action, kind, name) from None

    def _manifest_target(self, manifest: Mapping[str, Any], kind: str) -> str:
        meta = manifest.get("metadata") or {}
        name = validate_name(str(meta.get("name") or ""), kind=kind)
        namespace = meta.get("namespace") or self.namespace
        if namespace != self.namespace:
            raise TargetError(
                f"the {kind} manifest is for namespace '{namespace}' but this target uses '{self.namespace}'",
                field="--namespace",
                hint="Build the manifest for the target's namespace",
            )
        return name

    def _conflict(self, kind: str, name: str) -> TargetError:
        return TargetError(
            f"{kind} '{name}' already exists in namespace '{self.namespace}'",
            hint=f"Pick another name (e.g. '{name}-2'), replace it, or delete it first "
            f"(kubectl delete {kind} {name} -n {self.namespace})",
        )

    def _list(self, kind: str, method: Callable[..., Any], owner: str | None) -> list[dict[str, Any]]:
        wanted = {MANAGED_BY: "cellpipe"}
        if owner:
            wanted[OWNER_LABEL] = label_value(owner)
        selector = ",".join(f"{k}={v}" for k, v in wanted.items())
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self._call(
                "list",
                kind,
                None,
                method,
                self.namespace,
                label_selector=selector,
                limit=_PAGE,
                **({"_continue": token} if token else {}),
            )
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
        # Filter again client-side: cheap, and correct even where a server (or mock) ignores the selector.
        mine = [i for i in items if wanted.items() <= ((i.get("metadata") or {}).get("labels") or {}).items()]
        return newest_first(mine)

    # -- jobs ------------------------------------------------------------------------------------------
    def create_job(
        self, manifest: Mapping[str, Any], *, replace: bool = False, delete_timeout: float = 60.0
    ) -> dict:
        """Create a Job; returns its summary (see :func:`job_summary`).

        If a Job of that name exists: ``replace=False`` (default) raises TargetError naming it and how to
        choose another name; ``replace=True`` deletes it (with its pods), waits up to ``delete_timeout``
        seconds for it to disappear, then creates the new one - a Job's pod template cannot be updated.
        """
        name = self._manifest_target(manifest, "job")
        try:
            created = self._request(self.batch.create_namespaced_job, self.namespace, dict(manifest))
        except ApiException as exc:
            if exc.status != 409:
                raise self._api_error(exc, "create", "job", name) from None
            if not replace:
                raise self._conflict("job", name) from None
            self.cancel_job(name)
            self._wait_deleted(name, delete_timeout)
            created = self._call(
                "create", "job", name, self.batch.create_namespaced_job, self.namespace, dict(manifest)
            )
        return job_summary(created)

    def _wait_deleted(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._request(self.batch.read_namespaced_job, name, self.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise self._api_error(exc, "read", "job", name) from None
            time.sleep(0.5)
        raise TargetError(
            f"job '{name}' is still being deleted after {timeout:.0f}s",
            hint="Its pods may be slow to stop; try again shortly or pick another name",
        )

    def job_status(self, name: str) -> dict[str, Any]:
        """Summary of a Job: phase, active/succeeded/failed pod counts, conditions, times."""
        # read_namespaced_job, not ..._status: plain `get jobs` is the RBAC users most often have.
        return job_summary(
            self._call("read", "job", name, self.batch.read_namespaced_job, name, self.namespace)
        )

    def list_jobs(self, owner: str | None = None) -> list[dict[str, Any]]:
        """cellpipe's Jobs in the namespace (only ``owner``'s if given), newest first, as summaries."""
        return [job_summary(j) for j in self._list("job", self.batch.list_namespaced_job, owner)]

    def cancel_job(self, name: str) -> None:
        """Delete a Job and, first, its pods (foreground propagation), stopping a running step."""
        self._call(
            "delete",
            "job",
            name,
            self.batch.delete_namespaced_job,
            name,
            self.namespace,
            propagation_policy="Foreground",
        )

    # -- cronjobs --------------------------------------------------------------------------------------
    def create_cronjob(self, manifest: Mapping[str, Any], *, replace: bool = False) -> dict[str, Any]:
        """Create a CronJob; with ``replace=True`` an existing one of that name is updated in place (PUT)."""
        name = self._manifest_target(manifest, "cronjob")
        try:
            created = self._request(self.batch.create_namespaced_cron_job, self.namespace, dict(manifest))
        except ApiException as exc:
            if exc.status != 409:
                raise self._api_error(exc, "create", "cronjob", name) from None
            if not replace:
                raise self._conflict("cronjob", name) from None
            method = self.batch.replace_namespaced_cron_job
            created = self._call("replace", "cronjob", name, method, name, self.namespace, dict(manifest))
        return cronjob_summary(created)

    def list_cronjobs(self, owner: str | None = None) -> list[dict[str, Any]]:
        return [cronjob_summary(c) for c in self._list("cronjob", self.batch.list_namespaced_cron_job, owner)]

    def cronjob_status(self, name: str) -> dict[str, Any]:
        """Summary of a CronJob: schedule, time zone, suspended, active Jobs, last schedule time."""
        method = self.batch.read_namespaced_cron_job
        return cronjob_summary(self._call("read", "cronjob", name, method, name, self.namespace))

    def suspend_cronjob(self, name: str, suspend: bool = True) -> dict[str, Any]:
        """Pause (``suspend=True``) or resume a CronJob: a suspended one starts no Job; running Jobs go on."""
        method = self.batch.patch_namespaced_cron_job
        patch = {"spec": {"suspend": suspend}}
        return cronjob_summary(self._call("patch", "cronjob", name, method, name, self.namespace, patch))

    def delete_cronjob(self, name: str) -> None:
        """Delete a CronJob together with the Jobs it started (foreground propagation)."""
        method = self.batch.delete_namespaced_cron_job
        self._call("delete", "cronjob", name, method, name, self.namespace, propagation_policy="Foreground")
