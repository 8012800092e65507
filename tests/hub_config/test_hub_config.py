"""The KubeSpawner configuration: JupyterHub loads it; KubeSpawner renders every profile's pod, and each pod
validates against the Kubernetes schemas and passes every control of the "restricted" Pod Security Standard;
servers get per-user namespaces, accounts, storage prefixes and credentials."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest

from tests.hub_config import pod_security

HUB_CONFIG = Path(__file__).parents[2] / "hub_config"
sys.path.insert(0, str(HUB_CONFIG))
import cellpipe_hub  # noqa: E402 - hub_config/ is not a package: the hub loads it from its directory

K8S_VERSIONS = ["1.28", "1.34"]
ENV = {
    "POD_NAMESPACE": "jupyterhub",
    "CELLPIPE_NOTEBOOK_IMAGE": "registry.example.com/cellpipe/notebook:1.0",
    "CELLPIPE_IMAGE": "registry.example.com/cellpipe/runtime:1.0",
    "CELLPIPE_STORE_BUCKET": "ml-snapshots",
    "CELLPIPE_STORE_ENDPOINT": "http://minio.minio.svc:9000",
    "CELLPIPE_KFP": "true",
    "CELLPIPE_EGRESS_CIDRS": "10.0.0.1/32,10.96.0.0/12",
}


@pytest.fixture
def hub_config(monkeypatch, tmp_path):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    kubeconfig = tmp_path / "kubeconfig"  # KubeSpawner parses a kube config in its constructor; never used
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\nclusters: [{name: t, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: t, context: {cluster: t, user: t}}]\nusers: [{name: t, user: {token: x}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    from jupyterhub.app import JupyterHub

    hub = JupyterHub()
    hub.load_config_file(str(HUB_CONFIG / "jupyterhub_config.py"))
    return hub.config


def settings() -> cellpipe_hub.HubSettings:
    return cellpipe_hub.HubSettings.from_env(ENV)


async def pod_for(config, profile: str, username: str = "alice") -> dict:
    """KubeSpawner's own pod manifest for a user and profile (a fresh spawner: overrides mutate it)."""
    from types import SimpleNamespace

    from jupyterhub.objects import Hub, Server
    from kubernetes.client import ApiClient
    from kubespawner import KubeSpawner

    user = SimpleNamespace(name=username, escaped_name=username, id=1, url=f"/user/{username}/", server=Server(),
                           orm_user=None, groups=[], spawners={})  # fmt: skip
    spawner = KubeSpawner(config=config, user=user, hub=Hub(), _mock=True)
    spawner.user_options = {"profile": profile}
    await spawner.load_user_options()
    pod = ApiClient().sanitize_for_serialization(await spawner.get_pod_manifest())
    pod["metadata"]["namespace"] = spawner.namespace
    return pod


def test_config_loads_with_three_profiles_and_the_culler(hub_config):
    assert hub_config.JupyterHub.spawner_class == "kubespawner.KubeSpawner"
    assert [p["slug"] for p in hub_config.KubeSpawner.profile_list] == ["cpu", "gpu", "gpu-4"]
    culler = {s["name"]: s for s in hub_config.JupyterHub.services}["idle-culler"]
    assert culler["command"][-2:] == ["jupyterhub_idle_culler", "--timeout=3600"]
    ran = subprocess.run([*culler["command"], "--help"], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and "--timeout" in ran.stdout  # the service's command exists and takes it
    role = {r["name"]: r for r in hub_config.JupyterHub.load_roles}["idle-culler"]
    assert set(role["scopes"]) == {"list:users", "read:users:activity", "read:servers", "delete:servers"}
    assert callable(
        hub_config.KubeSpawner.modify_pod_hook
    )  # provisions the user's objects (test_provision.py)
    labels = hub_config.KubeSpawner.user_namespace_labels  # on the namespaces KubeSpawner creates
    # this config uses KFP, whose own pipeline pods only meet "baseline"; without KFP: "restricted"
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert (
        labels["pod-security.kubernetes.io/warn"]
        == labels["pod-security.kubernetes.io/audit"]
        == "restricted"
    )
    plain = cellpipe_hub.namespace_labels(cellpipe_hub.HubSettings())
    assert plain["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("profile", cellpipe_hub.PROFILE_SLUGS)
async def test_every_profile_pod_is_valid_and_passes_each_restricted_control(hub_config, profile):
    pod = await pod_for(hub_config, profile)
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)
    assert pod_security.violations(pod) == []
    for control, holds in pod_security.CONTROLS.items():
        assert holds(pod), control
        broken = copy.deepcopy(pod)
        pod_security.BREAK[control](broken)
        assert not holds(broken), f"the check of {control!r} cannot fail"


@pytest.mark.parametrize(("profile", "gpus"), [("cpu", 0), ("gpu", 1), ("gpu-4", 4)])
async def test_profiles_set_guarantees_limits_and_gpu_scheduling(hub_config, profile, gpus):
    pod = await pod_for(hub_config, profile)
    resources = pod["spec"]["containers"][0]["resources"]
    assert set(resources["requests"]) >= {"cpu", "memory"} and set(resources["limits"]) >= {"cpu", "memory"}
    assert float(resources["requests"]["cpu"]) < float(resources["limits"]["cpu"])
    if gpus:
        assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == str(gpus)
        assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        assert toleration in pod["spec"]["tolerations"]
    else:
        assert "nvidia.com/gpu" not in resources["limits"] and not pod["spec"].get("nodeSelector")


async def test_each_user_gets_their_namespace_account_store_prefix_and_own_secret(hub_config):
    alice, bob = await pod_for(hub_config, "cpu", "alice"), await pod_for(hub_config, "cpu", "bob")
    assert (
        alice["metadata"]["namespace"] == "jupyterhub-alice"
        and bob["metadata"]["namespace"] == "jupyterhub-bob"
    )
    for pod, user in ((alice, "alice"), (bob, "bob")):
        container = pod["spec"]["containers"][0]
        assert container["image"] == "registry.example.com/cellpipe/notebook:1.0"
        assert pod["spec"]["serviceAccountName"] == "cellpipe-user"
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["CELLPIPE_STORE"] == f"s3://ml-snapshots/cellpipe/users/{user}"
        assert env["CELLPIPE_NAMESPACE"] == f"jupyterhub-{user}" and env["JUPYTERHUB_USER"] == user
        assert env["CELLPIPE_IMAGE"] == "registry.example.com/cellpipe/runtime:1.0"
        assert env["KF_PIPELINES_SA_TOKEN_PATH"] == "/var/run/secrets/kubeflow/pipelines/token"
        assert not any("SECRET" in name or "PASSWORD" in name for name in env)  # values never in the spec
        # the Secret is looked up in the pod's own namespace: a different Secret for every user
        assert container["envFrom"] == [{"secretRef": {"name": "cellpipe-store", "optional": True}}]
        kfp_token = {v["name"]: v for v in pod["spec"]["volumes"]}["kfp-token"]
        assert (
            kfp_token["projected"]["sources"][0]["serviceAccountToken"]["audience"]
            == "pipelines.kubeflow.org"
        )
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claims == [f"claim-{user}"]


# -- RBAC, NetworkPolicy, the store --------------------------------------------------------------------------
CLUSTER_SCOPED = {"namespaces", "nodes", "persistentvolumes", "clusterroles", "clusterrolebindings",
                  "customresourcedefinitions", "storageclasses", "certificatesigningrequests"}  # fmt: skip


def all_manifests() -> list[dict]:
    config = settings()
    namespace = {"apiVersion": "v1", "kind": "Namespace",  # as KubeSpawner makes it, with our labels
                 "metadata": {"name": "jupyterhub-alice", "labels": cellpipe_hub.namespace_labels(config)}}  # fmt: skip
    return [*cellpipe_hub.hub_rbac(config), namespace, *cellpipe_hub.user_objects("alice", config),
            *cellpipe_hub.user_objects("bob", config)]  # fmt: skip


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_validates(version):
    for manifest in all_manifests():
        kubernetes_validate.validate(manifest, version, strict=True)


def test_user_rights_are_namespaced_and_never_read_secrets():
    config = settings()
    objects = cellpipe_hub.user_objects("alice", config)
    bindings = [o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert {b["kind"] for b in bindings} == {"RoleBinding"}  # never bound cluster-wide
    assert {b["metadata"]["namespace"] for b in bindings} == {"jupyterhub-alice"}
    assert all(b["subjects"] == [{"kind": "ServiceAccount", "name": "cellpipe-user", "namespace": "jupyterhub-alice"}]
               for b in bindings)  # fmt: skip
    assert {b["roleRef"]["name"] for b in bindings} == {"cellpipe-user", "kubeflow-pipelines-edit"}
    rules = cellpipe_hub.user_cluster_role()["rules"]
    granted = {(group, resource) for r in rules for group in r["apiGroups"] for resource in r["resources"]}
    assert granted == {
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("", "pods"),
        ("", "pods/log"),
        ("", "events"),
    }
    read_only = {verb for r in rules if r["apiGroups"] == [""] for verb in r["verbs"]}
    assert read_only <= {"get", "list", "watch"}
    for r in rules:
        assert "*" not in r["verbs"] + r["resources"] + r["apiGroups"]
        assert not set(r["resources"]) & (CLUSTER_SCOPED | {"secrets"})


def test_the_hub_holds_the_least_it_needs():
    role = cellpipe_hub.hub_cluster_role(settings())
    for rule in role["rules"]:
        assert "secrets" not in rule["resources"] and "*" not in rule["verbs"] + rule["resources"]
        assert not {"escalate", "impersonate"} & set(rule["verbs"])
        if "bind" in rule["verbs"]:  # it hands out exactly the user role (and KFP's), nothing else
            assert rule["resources"] == ["clusterroles"]
            assert rule["resourceNames"] == ["cellpipe-user", "kubeflow-pipelines-edit"]
    assert not any(r for r in role["rules"] if set(r["resources"]) & {"jobs", "cronjobs", "nodes"})


def test_network_policy_admits_only_the_hub_and_reaches_only_dns_hub_kfp_and_given_cidrs():
    policy = next(o for o in cellpipe_hub.user_objects("alice", settings()) if o["kind"] == "NetworkPolicy")
    spec = policy["spec"]
    assert policy["metadata"]["namespace"] == "jupyterhub-alice" and spec["podSelector"] == {}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    hub = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "jupyterhub"}}}
    assert spec["ingress"] == [{"from": [hub], "ports": [{"protocol": "TCP", "port": 8888}]}]
    peers = [peer for rule in spec["egress"] for peer in rule["to"]]
    assert hub in peers and {"ipBlock": {"cidr": "10.96.0.0/12"}} in peers
    open_peers = [rule for rule in spec["egress"] if rule["to"] == [{"namespaceSelector": {}}]]
    assert all({p["port"] for p in rule["ports"]} == {53} for rule in open_peers)  # any namespace: DNS only


def test_bucket_policy_reaches_only_the_users_prefix():
    policy = cellpipe_hub.bucket_policy(settings(), "alice")
    resources = [r for s in policy["Statement"] for r in s["Resource"]]
    assert resources == ["arn:aws:s3:::ml-snapshots", "arn:aws:s3:::ml-snapshots/cellpipe/users/alice/*"]
    listing = policy["Statement"][0]["Condition"]["StringLike"]["s3:prefix"]
    assert all(p.startswith("cellpipe/users/alice") for p in listing)


def test_settings_default_images_follow_the_package_version():
    import tomllib

    version = tomllib.loads((HUB_CONFIG.parent / "pyproject.toml").read_text())["project"]["version"]
    assert version == cellpipe_hub.VERSION
    defaults = cellpipe_hub.HubSettings()
    assert (defaults.notebook_image, defaults.runtime_image) == (
        f"cellpipe/notebook:{version}",
        f"cellpipe/runtime:{version}",
    )
