"""The parts of a Kubernetes cluster that kmock (the loopback API server) does not play, for the tests.

A kubeconfig that points the official client at it, and the Job controller: kmock runs no pods and never
moves a Job's status, so a test ends a Job by patching its status subresource as the controller would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

# What the Job controller writes when a Job's pod has succeeded.
JOB_COMPLETE: dict[str, Any] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}


def job_failed(message: str, **condition: str) -> dict[str, Any]:
    """A failed Job's status whose Failed condition says ``message`` (``reason=...`` and the like added)."""
    return {
        "failed": 1,
        "conditions": [{"type": "Failed", "status": "True", **condition, "message": message}],
    }


def write_kubeconfig(path: Path, server: str, namespace: str) -> Path:
    """A kubeconfig whose current context reaches ``server`` as alice (a dummy token) in ``namespace``."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server.rstrip("/")}}],
        "users": [{"name": "alice", "user": {"token": "not-a-secret"}}],
        "contexts": [
            {"name": "test", "context": {"cluster": "test", "user": "alice", "namespace": namespace}}
        ],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def set_job_status(server: str, namespace: str, name: str, status: dict[str, Any]) -> None:
    """Set Job ``name``'s status through the API, as the Job controller would. It blocks: call it off the
    event loop kmock serves from (``asyncio.to_thread``, or the ``call`` fixture of tests/targets/k8s)."""
    api = client.ApiClient(client.Configuration(host=server.rstrip("/")))
    try:
        client.BatchV1Api(api).patch_namespaced_job_status(name, namespace, {"status": status})
    finally:
        api.close()
