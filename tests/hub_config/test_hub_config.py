"""The JupyterHub config loads in JupyterHub, and KubeSpawner turns its profiles into valid pods."""

from pathlib import Path

import kubernetes_validate
import pytest

CONFIG = Path(__file__).parents[2] / "hub_config" / "jupyterhub_config.py"


@pytest.fixture
def hub_config(monkeypatch, tmp_path):
    monkeypatch.setenv("CELLPIPE_NOTEBOOK_IMAGE", "registry.example.com/cellpipe/notebook:1.0")
    monkeypatch.setenv("CELLPIPE_STORE", "s3://bucket/cellpipe")
    monkeypatch.setenv("CELLPIPE_STORE_SECRET", "cellpipe-store")
    kubeconfig = tmp_path / "kubeconfig"  # KubeSpawner parses a kube config in its constructor; never used
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\nclusters: [{name: t, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: t, context: {cluster: t, user: t}}]\nusers: [{name: t, user: {token: x}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    from jupyterhub.app import JupyterHub

    hub = JupyterHub()
    hub.load_config_file(str(CONFIG))
    return hub.config


async def pod_for(config, profile: str) -> dict:
    from types import SimpleNamespace

    from jupyterhub.objects import Hub, Server
    from kubernetes.client import ApiClient
    from kubespawner import KubeSpawner

    user = SimpleNamespace(name="alice", escaped_name="alice", id=1, url="/user/alice/", server=Server(),
                           orm_user=None, groups=[], spawners={})  # fmt: skip
    spawner = KubeSpawner(config=config, user=user, hub=Hub(), _mock=True, namespace="hub")
    spawner.user_options = {"profile": profile}
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    return ApiClient().sanitize_for_serialization(pod)


def test_config_loads_with_profiles_and_culler(hub_config):
    assert hub_config.JupyterHub.spawner_class == "kubespawner.KubeSpawner"
    assert [p["slug"] for p in hub_config.KubeSpawner.profile_list] == ["cpu", "gpu"]
    assert hub_config.JupyterHub.services[0]["name"] == "idle-culler"


@pytest.mark.parametrize("version", ["1.28", "1.34"])
async def test_gpu_profile_pod_is_valid_and_non_root(hub_config, version):
    pod = await pod_for(hub_config, "gpu")
    kubernetes_validate.validate(pod, version, strict=True)
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/cellpipe/notebook:1.0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"][
        "tolerations"
    ]
    assert container["securityContext"]["runAsUser"] == 1000
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CELLPIPE_STORE"] == "s3://bucket/cellpipe" and env["CELLPIPE_OWNER"] == "alice"
    assert container["envFrom"] == [{"secretRef": {"name": "cellpipe-store"}}]  # credentials by reference


async def test_cpu_profile_has_no_gpu(hub_config):
    pod = await pod_for(hub_config, "cpu")
    kubernetes_validate.validate(pod, "1.34", strict=True)
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert "nvidia.com/gpu" not in limits and float(limits["cpu"]) == 2
