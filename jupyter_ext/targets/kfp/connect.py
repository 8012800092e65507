"""Connect to a Kubeflow Pipelines API server: host, credentials and the user's namespace, checked up front.

:func:`connect` returns a real ``kfp.client.Client``. Before building it, it asks the server's healthz
route once (with a short timeout and no retries), so a wrong host, a login page or refused credentials
fail here as one line instead of as the client's five retries and a traceback; the answer also says whether
the deployment is multi-user, which decides whether a namespace is sent at all.

Credentials, first match wins:

1. ``token`` (or ``existing_token``, the same thing under the KFP client's name): a bearer token;
2. ``kubeconfig``: the bearer token the kubeconfig's user has (a static token, OIDC or an exec plugin);
3. a token file, re-read on every request because the kubelet rotates it: ``token_path``, else
   ``$KF_PIPELINES_SA_TOKEN_PATH`` or ``/var/run/secrets/kfp/token`` (the token Kubeflow projects into
   notebook pods for the KFP API), else the pod's service-account token;
4. none, e.g. a port-forward to a single-user KFP.

Tokens go into the ``Authorization`` header only; they never appear in errors or logs.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from jupyter_ext.errors import TargetError
from jupyter_ext.targets.k8s.objects import resolve_namespace

if TYPE_CHECKING:
    from kfp.client import Client

HOST_ENVS = ("CELLPIPE_KFP_HOST", "KF_PIPELINES_ENDPOINT")
KFP_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
KFP_TOKEN_PATH = "/var/run/secrets/kfp/token"
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
HEALTHZ = "/apis/v2beta1/healthz"
HEALTHZ_TIMEOUT = 10.0  # seconds; a host that does not answer in this time is reported unreachable
REQUEST_TIMEOUT = 120.0  # seconds per API call (an upload of a large package included)
_PORT_FORWARD = (
    "kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80, then --host http://localhost:8080"
)


# -- host and credentials ---------------------------------------------------------------------------
def resolve_host(host: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The KFP API URL: ``host``, else ``$CELLPIPE_KFP_HOST``, else ``$KF_PIPELINES_ENDPOINT``.

    Without a scheme, ``https://`` is assumed (as the KFP client does); a trailing '/' is dropped.
    """
    env = os.environ if environ is None else environ
    text = (host or next((env[name] for name in HOST_ENVS if env.get(name)), "")).strip()
    if not text:
        raise TargetError(
            "no KFP host: pass --host or set KF_PIPELINES_ENDPOINT/CELLPIPE_KFP_HOST",
            field="--host",
            hint=f"e.g. for a local cluster: {_PORT_FORWARD}",
        )
    if "://" not in text:
        text = f"https://{text}"
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise TargetError(
            f"'{text}' is not an http(s) URL",
            field="--host",
            hint="e.g. https://kubeflow.example.com/pipeline",
        )
    if parsed.username or parsed.password:
        raise TargetError(
            "the KFP host URL contains credentials",
            field="--host",
            hint="drop them from the URL and pass a token (--token) instead",
        )
    return text.rstrip("/")


class _Auth:
    """How requests authenticate: a fixed bearer token, a token file re-read per request, or nothing."""

    def __init__(self, mode: str, token: str | None = None, path: Path | None = None) -> None:
        self.mode = mode  # "token" | "kubeconfig" | "token-file" | "none"
        self.token = token
        self.path = path

    def credentials(self) -> Any:
        """The KFP client's ``credentials`` object for a token file, else None."""
        if self.path is None:
            return None
        from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

        return ServiceAccountTokenVolumeCredentials(path=str(self.path))

    def apply(self, config: Any) -> None:
        """Set the ``Authorization`` header on a ``kfp_server_api.Configuration`` (what the client does)."""
        credentials = self.credentials()
        if self.token:
            config.api_key["authorization"] = self.token
        elif credentials is not None:
            # The generated client only sends the header when a key is present; the hook replaces it.
            config.api_key["authorization"] = "placeholder"
            config.refresh_api_key_hook = credentials.refresh_api_key_hook
        else:
            return
        config.api_key_prefix["authorization"] = "Bearer"


def _resolve_auth(
    token: str | None,
    existing_token: str | None,
    kubeconfig: str | Path | None,
    context: str | None,
    token_path: str | Path | None,
    env: Mapping[str, str],
    host: str = "",
) -> _Auth:
    if token and existing_token and token != existing_token:
        raise TargetError(
            "two different tokens given", field="token", hint="pass one of token and existing_token"
        )
    explicit = (token or existing_token or "").strip()
    if explicit:
        return _Auth("token", token=explicit)
    if kubeconfig:
        return _Auth("kubeconfig", token=kubeconfig_token(kubeconfig, context))
    if token_path:
        path = Path(token_path)
        if not path.is_file():
            raise TargetError(f"token file {path} does not exist", field="token_path")
        return _Auth("token-file", path=path)
    if env.get(KFP_TOKEN_ENV):  # named by the user: as explicit as --token-file
        token_path = Path(env[KFP_TOKEN_ENV])
        if not token_path.is_file():
            raise TargetError(f"token file {token_path} does not exist", field=KFP_TOKEN_ENV)
        return _Auth("token-file", path=token_path)
    if in_cluster_host(host):  # the pod's own tokens go only to a service inside the cluster
        for candidate in (KFP_TOKEN_PATH, SERVICE_ACCOUNT_TOKEN):
            if Path(candidate).is_file():
                return _Auth("token-file", path=Path(candidate))
    return _Auth("none")


def in_cluster_host(host: str) -> bool:
    """Whether ``host`` names a service inside the cluster: ``*.svc``, ``*.svc.cluster.local`` or a bare
    service name (``ml-pipeline``).

    The pod's service-account token must not be sent to an arbitrary ``--host``: whoever runs that server
    could replay it. Outside the cluster, pass ``--token-file`` (or a kubeconfig) explicitly."""
    from urllib.parse import urlparse

    name = (urlparse(host if "://" in host else f"http://{host}").hostname or "").lower()
    if name.endswith((".svc", ".svc.cluster.local")):
        return True
    return bool(name) and "." not in name and name != "localhost"  # a service in the pod's own namespace


def kubeconfig_token(kubeconfig: str | Path, context: str | None = None) -> str:
    """The bearer token of the kubeconfig's user in ``context`` (default: the current context)."""
    path = Path(kubeconfig).expanduser()
    if not path.is_file():
        raise TargetError(f"kubeconfig {path} does not exist", field="--kubeconfig")
    from kubernetes import client, config  # deferred: importing the Kubernetes client costs ~0.3 s

    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=str(path), context=context, client_configuration=configuration)
    except Exception as exc:  # the loader raises ConfigException, ValueError, OSError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TargetError(f"cannot load kubeconfig {path}: {first}", field="--kubeconfig") from None
    header = configuration.api_key.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        raise TargetError(
            f"the user of kubeconfig {path} has no bearer token (client certificates or basic auth cannot "
            "authenticate to the KFP API)",
            field="--kubeconfig",
            hint=f"pass --token, or for a local cluster {_PORT_FORWARD}",
        )
    return value


# -- errors -------------------------------------------------------------------------------------------
def server_message(body: Any) -> str:
    """The one-line reason in a KFP error body (``{"error": ..., "message": ...}``), else its first line."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = str(body or "").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        text = str(data.get("message") or data.get("error") or text)
    line = text.splitlines()[0].strip() if text else ""
    return line[:300] + ("..." if len(line) > 300 else "")


def _status_hint(status: int) -> str | None:
    if status in (401, 403):
        return (
            "check the token and, for a multi-user Kubeflow, the namespace (your profile's, --namespace or "
            "CELLPIPE_NAMESPACE)"
        )
    if status >= 500:
        return "the KFP API server failed; its log says why (kubectl logs -n kubeflow deploy/ml-pipeline)"
    return None


def call_api(
    what: str,
    function: Callable[..., Any],
    *args: Any,
    created: Sequence[str] = (),
    **kwargs: Any,
) -> Any:
    """Call a ``kfp_server_api`` method; any failure becomes a TargetError saying what failed and why.

    ``created``: what earlier calls of the same operation already made, so that the error says so.
    """
    import kfp_server_api
    import urllib3

    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    try:
        return function(*args, **kwargs)
    except kfp_server_api.ApiException as exc:
        status = exc.status or 0
        reason = server_message(exc.body) or str(exc.reason or "").strip().splitlines()[0]
        message = f"{what} failed: KFP answered {status} ({reason})" if status else f"{what} failed: {reason}"
        hint = _status_hint(status)
    except urllib3.exceptions.HTTPError as exc:  # connection refused, reset, timed out
        message = f"{what} failed: no answer from KFP ({_network_reason(exc)})"
        hint = "check that the KFP API is up and reachable from here"
    if created:
        message += f"; already created: {', '.join(created)}"
        hint = "they stay in KFP (see or delete them in the KFP UI); " + (
            hint or "fix the cause and run again"
        )
    raise TargetError(message, field="KFP", hint=hint) from None


def _network_reason(exc: Exception) -> str:
    cause = getattr(exc, "reason", None) or exc
    text = str(cause)
    # urllib3 wraps the socket error: keep its last, readable part ("[Errno 111] Connection refused").
    if "]" in text and "Errno" in text:
        text = "[Errno" + text.rsplit("[Errno", 1)[1].rstrip("')\"")
    return text.strip()[:200] or type(cause).__name__


# -- connect -----------------------------------------------------------------------------------------
def check_health(host: str, auth: _Auth) -> dict[str, Any]:
    """One GET of the healthz route: the server's answer, or a TargetError naming ``host``."""
    import kfp_server_api
    import urllib3

    configuration = kfp_server_api.Configuration(host=host)
    auth.apply(configuration)
    api = kfp_server_api.HealthzServiceApi(kfp_server_api.ApiClient(configuration))
    try:
        response = api.healthz_service_get_healthz(_preload_content=False, _request_timeout=HEALTHZ_TIMEOUT)
    except kfp_server_api.ApiException as exc:
        if exc.status in (401, 403):
            raise TargetError(
                f"KFP at {host} refused the credentials ({exc.status}, auth: {auth.mode})",
                field="--host",
                hint="pass a valid token (--token), or a kubeconfig whose user has one (--kubeconfig)",
            ) from None
        reason = server_message(exc.body) or str(exc.reason or "").strip().splitlines()[0]
        raise TargetError(
            f"KFP at {host} answered {exc.status or 'nothing'} on {HEALTHZ} ({reason})",
            field="--host",
            hint="is this the KFP API? e.g. https://kubeflow.example.com/pipeline, or " + _PORT_FORWARD,
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise TargetError(
            f"cannot reach KFP at {host} ({_network_reason(exc)})",
            field="--host",
            hint="check the URL and that you can reach it from here (http:// for a port-forward: "
            f"{_PORT_FORWARD})",
        ) from None
    try:
        health = json.loads(response.data)
    except ValueError:
        health = None
    if not isinstance(health, dict) or "multi_user" not in health:
        raise TargetError(
            f"{host} did not answer like the KFP API on {HEALTHZ} (a login page?)",
            field="--host",
            hint="behind Kubeflow's login, pass a token (--token) or use the in-cluster URL "
            "http://ml-pipeline-ui.kubeflow",
        )
    return health


def connect(
    host: str | None = None,
    *,
    namespace: str | None = None,
    token: str | None = None,
    kubeconfig: str | Path | None = None,
    existing_token: str | None = None,
    context: str | None = None,
    token_path: str | Path | None = None,
    ui_host: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Client:
    """A ``kfp.client.Client`` for ``host``, authenticated and checked (see the module docstring).

    On a multi-user deployment, requests carry the user's profile namespace: ``namespace`` >
    ``$CELLPIPE_NAMESPACE`` > the pod's namespace > the kubeconfig context's (``resolve_namespace``); a
    single-user deployment gets none. ``ui_host``: base URL of the KFP UI for run links (default: the host,
    or ``$KF_PIPELINES_UI_ENDPOINT``).
    """
    env = os.environ if environ is None else environ
    url = resolve_host(host, env)
    auth = _resolve_auth(token, existing_token, kubeconfig, context, token_path, env, url)
    health = check_health(url, auth)
    user_namespace = None
    if health.get("multi_user") is True:
        kubeconfig_path = str(kubeconfig) if kubeconfig else None
        user_namespace = resolve_namespace(
            namespace, environ=env, kubeconfig=kubeconfig_path, context=context
        )

    from kfp.client import Client

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "This client only works with KFP v2.0.0-beta.2..."
        client = Client(
            host=url,
            # A namespace here also spares the client its own healthz call (and its retries).
            namespace=user_namespace or "kubeflow",
            existing_token=auth.token,
            credentials=auth.credentials(),
            ui_host=ui_host,
        )
    # What set_user_namespace() sets, without its side effect of writing ~/.config/kfp/context.json; a
    # namespace left there by another tool must not leak into a single-user deployment's requests.
    client._context_setting["namespace"] = user_namespace or ""
    return client


def client_namespace(client: Client) -> str | None:
    """The namespace requests carry: the profile namespace on multi-user KFP, None on single-user."""
    return client.get_user_namespace() or None
