"""Which namespace a run goes to when the user did not say.

Order: ``--namespace`` > ``CELLPIPE_NAMESPACE`` > the namespace of the pod we run in (a JupyterHub /
KubeSpawner user pod has its service account mounted, and that is where the user may create Jobs) >
the current kubeconfig context's namespace > ``default``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from jupyter_ext.targets.k8s.names import validate_name

ENV_VAR = "CELLPIPE_NAMESPACE"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DEFAULT_NAMESPACE = "default"


def kubeconfig_namespace(kubeconfig: str | None = None, context: str | None = None) -> str | None:
    """The namespace of ``context`` (default: the current one) in the kubeconfig, or None."""
    from kubernetes import config  # deferred: importing the client costs ~0.3s

    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
    except Exception:  # no kubeconfig, or one we cannot read: fall through to the next source
        return None
    chosen = current if context is None else next((c for c in contexts if c.get("name") == context), None)
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return namespace or None


def resolve_namespace(
    explicit: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    service_account_path: str | Path = SERVICE_ACCOUNT_NAMESPACE,
    kubeconfig: str | None = None,
    context: str | None = None,
) -> str:
    """The namespace to use; each source is validated so a typo fails here, naming where it came from."""
    env = os.environ if environ is None else environ
    if explicit:
        return validate_name(explicit, kind="namespace", field="--namespace")
    if env.get(ENV_VAR):
        return validate_name(env[ENV_VAR], kind="namespace", field=ENV_VAR)
    try:
        in_pod = Path(service_account_path).read_text(encoding="utf-8").strip()
    except OSError:
        in_pod = ""
    if in_pod:
        return validate_name(in_pod, kind="namespace", field=str(service_account_path))
    if kubeconfig is None and env.get("KUBECONFIG"):
        kubeconfig = env["KUBECONFIG"]
    if kubeconfig is None:
        kubeconfig = str(Path("~/.kube/config").expanduser())
    from_kubeconfig = kubeconfig_namespace(kubeconfig, context)
    if from_kubeconfig:
        return validate_name(from_kubeconfig, kind="namespace", field=f"kubeconfig {kubeconfig}")
    return DEFAULT_NAMESPACE
