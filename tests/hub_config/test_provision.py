"""The hub's pod hook creates a user's objects in their namespace over the Kubernetes API (kmock on
loopback, KubeSpawner's own asyncio client), and running it again for a returning user is harmless."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import kubernetes_validate

HUB_CONFIG = Path(__file__).parents[2] / "hub_config"
sys.path.insert(0, str(HUB_CONFIG))
import cellpipe_hub  # noqa: E402

RESOURCES = {
    "ServiceAccount": "v1/serviceaccounts",
    "RoleBinding": "rbac.authorization.k8s.io/v1/rolebindings",
    "NetworkPolicy": "networking.k8s.io/v1/networkpolicies",
}


async def test_pod_hook_provisions_the_users_namespace_idempotently(kmock):
    from kubernetes_asyncio import client

    configuration = client.Configuration()
    configuration.host = str(kmock.url).rstrip("/")
    client.Configuration.set_default(configuration)  # what KubeSpawner's load_config() does in a hub
    settings = cellpipe_hub.HubSettings(hub_namespace="jupyterhub", kfp=True)
    spawner = SimpleNamespace(user=SimpleNamespace(name="alice"), log=logging.getLogger("test"),
                              cellpipe_settings=settings)  # fmt: skip

    pod = {"kind": "Pod"}
    assert await cellpipe_hub.provision_user(spawner, pod) is pod
    expected = cellpipe_hub.user_objects("alice", settings)
    for obj in expected:
        stored = kmock.objects[RESOURCES[obj["kind"]], "jupyterhub-alice", obj["metadata"]["name"]]
        assert stored["metadata"]["labels"]["cellpipe.dev/user"] == "alice"
        kubernetes_validate.validate(obj, "1.34", strict=True)
    assert {o["metadata"]["name"] for o in expected if o["kind"] == "RoleBinding"} == {
        "cellpipe-user",
        "cellpipe-user-kfp",
    }

    await cellpipe_hub.provision_user(spawner, pod)  # the user comes back: 409s are answered with patches
    assert (
        kmock.objects["networking.k8s.io/v1/networkpolicies", "jupyterhub-alice", "cellpipe-user"]["spec"][
            "podSelector"
        ]
        == {}
    )
