"""cellpipe on JupyterHub with KubeSpawner: settings, profiles and every Kubernetes object, as pure functions.

``jupyterhub_config.py`` applies them to a hub (:func:`configure`); the Zero to JupyterHub values file
``z2jh/config.yaml`` is rendered from the same functions (``python hub_config/cellpipe_hub.py z2jh``) and a
test keeps the committed file in step. The module needs only the standard library at import time, so the
hub's image needs nothing of cellpipe's (the provisioning hook imports KubeSpawner's client when it runs).

Isolation model (docs/hub.md): one namespace per user. In it the user's server runs under the user's own
ServiceAccount, bound to the ``cellpipe-user`` rules (Jobs, CronJobs, reading pods and their logs; Kubeflow
Pipelines through its multi-user RBAC) for that namespace only; a NetworkPolicy admits only the hub and the
proxy; the snapshot store is the user's own prefix, reached with credentials from the Secret of that namespace.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, replace
from typing import Any

VERSION = "0.1.0"  # cellpipe's version: the default image tags (a test checks it against pyproject.toml)
USER_ROLE = "cellpipe-user"  # the ClusterRole with the per-user rules, and each user's ServiceAccount
STORE_SECRET = "cellpipe-store"  # in each user namespace: that user's own store credentials
KFP_TOKEN_DIR = "/var/run/secrets/kubeflow/pipelines"
NOTEBOOK_UID, NOTEBOOK_GID = 1000, 100  # jovyan:users, the Jupyter docker-stacks convention
USER_NAMESPACE_LABEL = "cellpipe.dev/user-namespace"
PROFILE_SLUGS = ("cpu", "gpu", "gpu-4")


@dataclass(frozen=True)
class HubSettings:
    """Everything a deployment chooses. :meth:`from_env` reads the ``CELLPIPE_*`` variables."""

    hub_namespace: str = "jupyterhub"
    notebook_image: str = f"cellpipe/notebook:{VERSION}"
    runtime_image: str = f"cellpipe/runtime:{VERSION}"  # what the users' Jobs and KFP steps run in
    namespace_template: str = "{hubnamespace}-{username}"
    gpu_node_label: tuple[str, str] = ("nvidia.com/gpu.present", "true")
    store_bucket: str = ""  # S3/MinIO bucket; each user's snapshots live under <store_prefix>/<username>/
    store_prefix: str = "cellpipe/users"
    store_endpoint: str = ""  # e.g. http://minio.minio.svc:9000 for MinIO; empty for AWS S3
    kfp: bool = False  # Kubeflow Pipelines multi-user: namespaces are Kubeflow profiles
    kfp_namespace: str = "kubeflow"
    cull_timeout: int = 3600  # seconds of inactivity before the idle culler stops a server
    egress_cidrs: tuple[str, ...] = ()  # besides DNS, the hub and KFP: the store, the API server (CIDRs)
    home_size: str = "10Gi"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> HubSettings:
        env = os.environ if environ is None else environ
        base = cls()
        gpu_key, _, gpu_value = env.get("CELLPIPE_GPU_NODE_LABEL", "=".join(base.gpu_node_label)).partition(
            "="
        )
        cidrs = tuple(c.strip() for c in env.get("CELLPIPE_EGRESS_CIDRS", "").split(",") if c.strip())
        return replace(
            base,
            hub_namespace=env.get("POD_NAMESPACE", base.hub_namespace),  # z2jh sets it in the hub pod
            notebook_image=env.get("CELLPIPE_NOTEBOOK_IMAGE", base.notebook_image),
            runtime_image=env.get("CELLPIPE_IMAGE", base.runtime_image),
            namespace_template=env.get("CELLPIPE_NAMESPACE_TEMPLATE", base.namespace_template),
            gpu_node_label=(gpu_key, gpu_value),
            store_bucket=env.get("CELLPIPE_STORE_BUCKET", base.store_bucket),
            store_prefix=env.get("CELLPIPE_STORE_PREFIX", base.store_prefix).strip("/"),
            store_endpoint=env.get("CELLPIPE_STORE_ENDPOINT", base.store_endpoint),
            kfp=env.get("CELLPIPE_KFP", "") in ("1", "true", "yes"),
            kfp_namespace=env.get("CELLPIPE_KFP_NAMESPACE", base.kfp_namespace),
            cull_timeout=int(env.get("CELLPIPE_CULL_TIMEOUT", base.cull_timeout)),
            egress_cidrs=cidrs,
        )

    def user_namespace(self, username: str) -> str:
        return self.namespace_template.format(hubnamespace=self.hub_namespace, username=username)

    def store_url(self, username: str) -> str:
        return f"s3://{self.store_bucket}/{self.store_prefix}/{username}" if self.store_bucket else ""


# -- profiles -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    slug: str
    display_name: str
    cpu: tuple[float, float]  # guarantee, limit
    memory: tuple[str, str]
    gpus: int = 0
    default: bool = False
    description: str = ""


PROFILES = (
    Profile("cpu", "CPU: 2 cores, 8 GiB", (1, 2), ("4G", "8G"), default=True,
            description="Notebooks, small models; pipelines run as Jobs or on KFP"),
    Profile("gpu", "1 GPU: 8 cores, 32 GiB", (4, 8), ("16G", "32G"), gpus=1,
            description="One NVIDIA GPU for interactive training"),
    Profile("gpu-4", "4 GPUs: 32 cores, 128 GiB", (16, 32), ("64G", "128G"), gpus=4,
            description="Four NVIDIA GPUs on one node, for multi-GPU training"),
)  # fmt: skip


def profile_list(settings: HubSettings) -> list[dict[str, Any]]:
    """KubeSpawner's ``profile_list``: guarantees and limits; GPU profiles also a node selector and toleration."""
    gpu_key, gpu_value = settings.gpu_node_label
    profiles = []
    for profile in PROFILES:
        override: dict[str, Any] = {
            "cpu_guarantee": profile.cpu[0],
            "cpu_limit": profile.cpu[1],
            "mem_guarantee": profile.memory[0],
            "mem_limit": profile.memory[1],
        }
        if profile.gpus:
            override |= {
                "extra_resource_guarantees": {"nvidia.com/gpu": str(profile.gpus)},
                "extra_resource_limits": {"nvidia.com/gpu": str(profile.gpus)},
                "node_selector": {gpu_key: gpu_value},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            }
        entry = {"display_name": profile.display_name, "slug": profile.slug, "description": profile.description,
                 "kubespawner_override": override}  # fmt: skip
        if profile.default:
            entry["default"] = True
        profiles.append(entry)
    return profiles


# -- the user's pod: restricted Pod Security Standard ----------------------------------------------------
def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": NOTEBOOK_UID,
        "runAsGroup": NOTEBOOK_GID,
        "fsGroup": NOTEBOOK_GID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": NOTEBOOK_UID,
        "runAsGroup": NOTEBOOK_GID,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def server_environment(settings: HubSettings) -> dict[str, str]:
    """The server's environment; ``{username}`` is expanded by KubeSpawner. No secret values here."""
    env = {  # (the owner of runs is $JUPYTERHUB_USER, which JupyterHub sets)
        "CELLPIPE_NAMESPACE": settings.user_namespace("{username}"),
        "CELLPIPE_IMAGE": settings.runtime_image,
    }
    if settings.store_bucket:
        env["CELLPIPE_STORE"] = f"s3://{settings.store_bucket}/{settings.store_prefix}/{{username}}"
    if settings.store_endpoint:
        env["AWS_ENDPOINT_URL"] = settings.store_endpoint
    if settings.kfp:
        env["KF_PIPELINES_SA_TOKEN_PATH"] = f"{KFP_TOKEN_DIR}/token"
    return env


def server_volumes(settings: HubSettings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The home volume (a PVC) and, for KFP, a projected ServiceAccount token for the KFP API's audience."""
    volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-{username}"}}]
    mounts = [{"name": "home", "mountPath": "/home/jovyan"}]
    if settings.kfp:
        token = {"serviceAccountToken": {"path": "token", "audience": "pipelines.kubeflow.org",
                                         "expirationSeconds": 7200}}  # fmt: skip
        volumes.append({"name": "kfp-token", "projected": {"sources": [token]}})
        mounts.append({"name": "kfp-token", "mountPath": KFP_TOKEN_DIR, "readOnly": True})
    return volumes, mounts


def namespace_labels(settings: HubSettings) -> dict[str, str]:
    """Labels of the namespaces KubeSpawner creates. Without KFP the namespace itself enforces "restricted",
    so the users' Jobs must comply too (cellpipe's do). Kubeflow's own pipeline pods (Argo's) do not, so a
    KFP profile namespace can only enforce "baseline" and warns on "restricted"; the servers comply anyway."""
    level = "baseline" if settings.kfp else "restricted"
    return {
        USER_NAMESPACE_LABEL: "true",
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }


def kubespawner_config(settings: HubSettings) -> dict[str, Any]:
    """Every ``c.KubeSpawner.<trait>`` value, as plain data (the Python config and the z2jh values share it)."""
    volumes, mounts = server_volumes(settings)
    return {
        "image": settings.notebook_image,
        "default_url": "/lab",
        "cmd": ["jupyterhub-singleuser"],
        "uid": NOTEBOOK_UID,
        "gid": NOTEBOOK_GID,
        "fs_gid": NOTEBOOK_GID,
        "allow_privilege_escalation": False,
        "pod_security_context": pod_security_context(),
        "container_security_context": container_security_context(),
        "enable_user_namespaces": True,
        # {hubnamespace} expanded here: KubeSpawner reads it from the pod's service account, which a hub
        # outside the cluster lacks, and the NetworkPolicy must name the same namespace
        "user_namespace_template": settings.namespace_template.replace(
            "{hubnamespace}", settings.hub_namespace
        ),
        "user_namespace_labels": namespace_labels(settings),
        "service_account": USER_ROLE,
        "automount_service_account_token": True,  # the server submits Jobs with its own, per-user account
        "environment": server_environment(settings),
        # this namespace's own Secret: every user has a different one; optional so a server starts before it exists
        "extra_container_config": {"envFrom": [{"secretRef": {"name": STORE_SECRET, "optional": True}}]},
        "storage_pvc_ensure": True,
        "pvc_name_template": "claim-{username}",
        "storage_capacity": settings.home_size,
        "storage_access_modes": ["ReadWriteOnce"],
        "volumes": volumes,
        "volume_mounts": mounts,
        "profile_list": profile_list(settings),
    }


# -- per-user objects in the user's namespace ------------------------------------------------------------
def user_rules() -> list[dict[str, Any]]:
    """What submitting pipelines needs, nothing more: no Secrets, nothing cluster-scoped."""
    return [
        {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
    ]  # fmt: skip


def user_cluster_role() -> dict[str, Any]:
    """The per-user rules, defined once and granted per namespace by a RoleBinding (never cluster-wide).

    A ClusterRole used as a Role template lets the hub grant it with the ``bind`` verb alone, instead of
    holding every one of these rights itself in every namespace (which creating a Role would require).
    """
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": USER_ROLE, "labels": {"app.kubernetes.io/part-of": "cellpipe"}},
            "rules": user_rules()}  # fmt: skip


def _labels(username: str) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": "cellpipe", "cellpipe.dev/user": username}


def role_binding(name: str, namespace: str, username: str, cluster_role: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, "labels": _labels(username)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"kind": "ServiceAccount", "name": USER_ROLE, "namespace": namespace}],
    }


def network_policy(namespace: str, username: str, settings: HubSettings) -> dict[str, Any]:
    """All pods of the user's namespace: in, only the hub and its proxy; out, DNS, the hub, KFP and the
    configured CIDRs (store, API server). Other users' namespaces are out of reach both ways."""
    hub = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.hub_namespace}}}
    egress: list[dict[str, Any]] = [
        {"to": [{"namespaceSelector": {}}], "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {"to": [hub]},
    ]  # fmt: skip
    if settings.kfp:
        egress.append({"to": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": settings.kfp_namespace}}}]})  # fmt: skip
    if settings.egress_cidrs:
        egress.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in settings.egress_cidrs]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "cellpipe-user", "namespace": namespace, "labels": _labels(username)},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [hub], "ports": [{"protocol": "TCP", "port": 8888}]}],
            "egress": egress,
        },
    }


def user_objects(username: str, settings: HubSettings) -> list[dict[str, Any]]:
    """What the hub creates in a user's namespace before the server's pod (KubeSpawner makes the namespace,
    the PVC and the pod)."""
    namespace = settings.user_namespace(username)
    objects = [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": USER_ROLE, "namespace": namespace, "labels": _labels(username)}},
        role_binding(USER_ROLE, namespace, username, USER_ROLE),
        network_policy(namespace, username, settings),
    ]  # fmt: skip
    if (
        settings.kfp
    ):  # KFP multi-user checks access to pipelines.kubeflow.org resources in the profile namespace
        objects.append(role_binding("cellpipe-user-kfp", namespace, username, "kubeflow-pipelines-edit"))
    return objects


# -- the hub's own rights ---------------------------------------------------------------------------------
def hub_cluster_role(settings: HubSettings) -> dict[str, Any]:
    """The least the hub needs to run servers in per-user namespaces (cluster-wide, since namespaces come and
    go): make namespaces, run pods with their PVCs, and hand out ``cellpipe-user`` (``bind`` on exactly that
    role). No Secrets, no Jobs of its own, no nodes."""
    grants = [USER_ROLE, *(["kubeflow-pipelines-edit"] if settings.kfp else [])]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "cellpipe-hub", "labels": {"app.kubernetes.io/part-of": "cellpipe"}},
        "rules": [
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "create"]},
            {"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims"],
             "verbs": ["get", "list", "watch", "create", "delete"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "create", "patch"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"],
             "verbs": ["get", "create", "patch"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"],
             "resourceNames": grants},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
             "verbs": ["get", "create", "patch"]},
        ],
    }  # fmt: skip


def hub_rbac(settings: HubSettings, service_account: str = "hub") -> list[dict[str, Any]]:
    """The ClusterRoles and the binding of ``cellpipe-hub`` to the hub's ServiceAccount (z2jh's is ``hub``)."""
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "cellpipe-hub", "labels": {"app.kubernetes.io/part-of": "cellpipe"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cellpipe-hub"},
        "subjects": [
            {"kind": "ServiceAccount", "name": service_account, "namespace": settings.hub_namespace}
        ],
    }
    return [user_cluster_role(), hub_cluster_role(settings), binding]


# -- the store: one prefix per user -------------------------------------------------------------------------
def bucket_policy(settings: HubSettings, username: str) -> dict[str, Any]:
    """An S3 / MinIO IAM policy for the user's credentials: their own prefix, nothing else in the bucket."""
    bucket = settings.store_bucket or "BUCKET"
    prefix = f"{settings.store_prefix}/{username}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{bucket}"],
             "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*", prefix]}}},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
             "Resource": [f"arn:aws:s3:::{bucket}/{prefix}/*"]},
        ],
    }  # fmt: skip


# -- the idle culler ----------------------------------------------------------------------------------------
def culler_service(settings: HubSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """The jupyterhub-idle-culler service and its role. Culling stops the server (and the schedules that live
    in it, ``target: local``); Jobs, CronJobs and KFP runs live in the user's namespace and go on."""
    service = {"name": "idle-culler",
               "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={settings.cull_timeout}"]}  # fmt: skip
    role = {"name": "idle-culler", "services": ["idle-culler"],
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]}  # fmt: skip
    return service, role


# -- applying it ----------------------------------------------------------------------------------------------
async def provision_user(spawner: Any, pod: Any = None) -> Any:
    """KubeSpawner ``modify_pod_hook``: :func:`user_objects` in the user's namespace, idempotently; the pod
    goes on unchanged. KubeSpawner has made the namespace (with ``user_namespace_labels``) by then, and
    creates the pod only after this returns, so the account exists when the pod names it."""
    from kubernetes_asyncio.client.rest import ApiException
    from kubespawner.clients import shared_client

    settings: HubSettings = spawner.cellpipe_settings
    username = spawner.user.name
    namespace = settings.user_namespace(username)
    core = shared_client("CoreV1Api")
    rbac = shared_client("RbacAuthorizationV1Api")
    network = shared_client("NetworkingV1Api")
    calls = {
        "ServiceAccount": (core.create_namespaced_service_account, core.patch_namespaced_service_account),
        "RoleBinding": (rbac.create_namespaced_role_binding, rbac.patch_namespaced_role_binding),
        "NetworkPolicy": (network.create_namespaced_network_policy, network.patch_namespaced_network_policy),
    }
    for obj in user_objects(username, settings):
        create, patch = calls[obj["kind"]]
        try:
            await create(namespace, obj)
        except ApiException as error:
            if error.status != 409:
                raise
            await patch(
                obj["metadata"]["name"], namespace, obj
            )  # it exists: bring it in line with this config
        spawner.log.info("cellpipe: %s %s ready in %s", obj["kind"], obj["metadata"]["name"], namespace)
    return pod


def configure(c: Any, settings: HubSettings) -> None:
    """Apply everything to a JupyterHub config object (``c`` in a jupyterhub_config.py)."""
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    for name, value in kubespawner_config(settings).items():
        setattr(c.KubeSpawner, name, value)

    def modify_pod_hook(spawner: Any, pod: Any) -> Any:
        spawner.cellpipe_settings = settings
        return provision_user(spawner, pod)

    c.KubeSpawner.modify_pod_hook = modify_pod_hook
    service, role = culler_service(settings)
    c.JupyterHub.services = [*c.JupyterHub.get("services", []), service]
    c.JupyterHub.load_roles = [*c.JupyterHub.get("load_roles", []), role]


# -- Zero to JupyterHub values ---------------------------------------------------------------------------------
Z2JH_MODULE_DIR = "/usr/local/etc/jupyterhub/cellpipe"
Z2JH_EXTRA_CONFIG = f"""\
import sys
sys.path.insert(0, "{Z2JH_MODULE_DIR}")
from cellpipe_hub import HubSettings, provision_user

settings = HubSettings.from_env()

def cellpipe_modify_pod_hook(spawner, pod):
    spawner.cellpipe_settings = settings
    return provision_user(spawner, pod)

c.KubeSpawner.modify_pod_hook = cellpipe_modify_pod_hook
"""
Z2JH_HEADER = """\
# Zero to JupyterHub values for cellpipe (helm chart jupyterhub/jupyterhub, 4.x). Generated from
# hub_config/cellpipe_hub.py by `python hub_config/cellpipe_hub.py z2jh` (a test keeps it in step). Install:
#   python hub_config/cellpipe_hub.py rbac | kubectl apply -f -
#   helm upgrade --install jupyterhub jupyterhub/jupyterhub -n jupyterhub --create-namespace \\
#     -f hub_config/z2jh/config.yaml --set-file hub.extraFiles.cellpipe.stringData=hub_config/cellpipe_hub.py
# See docs/hub.md.
"""
# Settings the chart derives from its own keys; everything else goes through hub.config.KubeSpawner unchanged.
_Z2JH_OWN = ("image", "cmd", "default_url", "profile_list", "uid", "fs_gid")


def z2jh_values(settings: HubSettings) -> dict[str, Any]:
    """Helm values for the jupyterhub chart: the same KubeSpawner settings as :func:`configure`.

    The chart's own keys carry what it has keys for; the rest is passed as ``hub.config.KubeSpawner``.
    This module itself is mounted into the hub with ``--set-file hub.extraFiles.cellpipe.stringData=...``.
    """
    spawner = kubespawner_config(settings)
    name, _, tag = settings.notebook_image.rpartition(":")
    env = {k: v for k, v in {
        "CELLPIPE_NOTEBOOK_IMAGE": settings.notebook_image, "CELLPIPE_IMAGE": settings.runtime_image,
        "CELLPIPE_NAMESPACE_TEMPLATE": settings.namespace_template,
        "CELLPIPE_GPU_NODE_LABEL": "=".join(settings.gpu_node_label),
        "CELLPIPE_STORE_BUCKET": settings.store_bucket, "CELLPIPE_STORE_PREFIX": settings.store_prefix,
        "CELLPIPE_STORE_ENDPOINT": settings.store_endpoint, "CELLPIPE_KFP": "true" if settings.kfp else "",
        "CELLPIPE_KFP_NAMESPACE": settings.kfp_namespace, "CELLPIPE_CULL_TIMEOUT": str(settings.cull_timeout),
        "CELLPIPE_EGRESS_CIDRS": ",".join(settings.egress_cidrs),
    }.items() if v}  # fmt: skip
    # the chart's own policies cover its namespace; user servers live in user namespaces
    user_servers = {"namespaceSelector": {"matchLabels": {USER_NAMESPACE_LABEL: "true"}},
                    "podSelector": {"matchLabels": {"component": "singleuser-server"}}}  # fmt: skip
    to_servers = {"to": [user_servers], "ports": [{"port": 8888}]}
    return {
        "hub": {
            "networkPolicy": {
                "ingress": [{"from": [user_servers], "ports": [{"port": 8081}]}],
                "egress": [to_servers],
            },
            "extraEnv": env,
            "extraFiles": {"cellpipe": {"mountPath": f"{Z2JH_MODULE_DIR}/cellpipe_hub.py"}},
            "extraConfig": {"cellpipe": Z2JH_EXTRA_CONFIG},
            "config": {"KubeSpawner": {k: v for k, v in spawner.items() if k not in _Z2JH_OWN}},
            # the chart's own hub Role stays; the per-namespace rights come from hub_rbac() (applied separately)
        },
        "singleuser": {
            "image": {"name": name, "tag": tag},
            "cmd": spawner["cmd"],
            "defaultUrl": spawner["default_url"],
            "uid": spawner["uid"],
            "fsGid": spawner["fs_gid"],
            "storage": {
                "type": "none"
            },  # the PVC and its mount are KubeSpawner settings (hub.config) instead
            "profileList": spawner["profile_list"],
            "networkPolicy": {
                "enabled": False
            },  # user pods live in user namespaces: user_objects() covers them
        },
        "proxy": {"chp": {"networkPolicy": {"egress": [to_servers]}}},
        "cull": {"enabled": True, "timeout": settings.cull_timeout, "every": 300},
    }


def main(argv: list[str]) -> int:
    """``python hub_config/cellpipe_hub.py z2jh|rbac|user NAME|bucket-policy NAME``: print YAML/JSON."""
    settings = HubSettings.from_env()
    command = argv[0] if argv else ""
    if command == "z2jh":
        print(Z2JH_HEADER + dump_yaml(z2jh_values(settings)), end="")
    elif command == "rbac":
        print("---\n".join(dump_yaml(o) for o in hub_rbac(settings)), end="")
    elif command == "user" and len(argv) == 2:
        print("---\n".join(dump_yaml(o) for o in user_objects(argv[1], settings)), end="")
    elif command == "bucket-policy" and len(argv) == 2:
        print(json.dumps(bucket_policy(settings, argv[1]), indent=2))
    else:
        print(main.__doc__, file=sys.stderr)
        return 2
    return 0


def dump_yaml(data: Any) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # plain values everywhere, no &id001 anchors
            return True

    def text(
        dumper: yaml.SafeDumper, value: str
    ) -> Any:  # multi-line strings (Python code) as literal blocks
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=110)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
