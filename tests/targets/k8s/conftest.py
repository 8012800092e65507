"""Fixtures for the Kubernetes target: manifests to validate, and a kmock API server on loopback.

kmock serves from the test's event loop while the official ``kubernetes`` client blocks, so API tests are
async and run every client call in a thread (``await call(target.create_job, manifest)``).
Everything is exposed as fixtures (not imported from here) so the tests work in any pytest import mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from jupyter_ext.pipeline.model import Secret, Volume
from jupyter_ext.targets.k8s.client import KubernetesTarget
from jupyter_ext.targets.k8s.objects import make_cronjob, make_job, make_resources, run_labels
from tests.support.kube_cluster import write_kubeconfig
from tests.support.loopback import free_port

NAMESPACE = "team-a"


def job_kwargs(**overrides: Any) -> dict[str, Any]:
    meta = run_labels(
        "alice@example.com", "notebooks/Train Model.ipynb", "run-20250101-0001", "snap-7f3a", "train"
    )
    kwargs: dict[str, Any] = {
        "image": "ghcr.io/example/cellpipe-runtime:1.0",
        "command": ["python", "-m", "jupyter_ext.runtime"],
        "args": ["--step", "train"],
        "labels": meta.labels,
        "annotations": meta.annotations,
    }
    kwargs.update(overrides)
    return kwargs


def plain_job(name: str = "train-model", **overrides: Any) -> dict[str, Any]:
    return make_job(name, NAMESPACE, **job_kwargs(**overrides))


def gpu_job() -> dict[str, Any]:
    resources = make_resources({"nvidia.com/gpu": "1", "cpu": "2", "memory": "4Gi"}, step="train")
    return plain_job(
        resources=resources,
        node_selector={"kubernetes.io/os": "linux"},
        gpu_node_selector={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"},
        active_deadline_seconds=3600,
    )


def secrets_pvc_job() -> dict[str, Any]:
    return plain_job(
        env={"LOG_LEVEL": "info"},
        secret_env=[
            Secret("s3-creds", "access-key", "AWS_ACCESS_KEY_ID"),
            ("db.creds", "pass_word", "DB_PASSWORD"),
        ],
        volumes=[Volume("training-data", "/data", "DATA_DIR"), ("model-store", "/models")],
        service_account="cellpipe-runner",
        image_pull_policy="IfNotPresent",
    )


def cronjob() -> dict[str, Any]:
    return make_cronjob(
        "nightly-train",
        NAMESPACE,
        schedule="0 3 * * MON-FRI",
        timezone="Europe/Berlin",
        starting_deadline_seconds=600,
        **job_kwargs(
            resources=make_resources({"memory": "2Gi"}), secret_env=[Secret("s3-creds", "key", "S3_KEY")]
        ),
    )


@pytest.fixture
def manifests() -> dict[str, dict[str, Any]]:
    """One of each manifest variant, by name: plain-job, gpu-job, secrets-pvc-job, cronjob."""
    return {
        "plain-job": plain_job(),
        "gpu-job": gpu_job(),
        "secrets-pvc-job": secrets_pvc_job(),
        "cronjob": cronjob(),
    }


@pytest.fixture
def job_factory() -> Callable[..., dict[str, Any]]:
    """``job_factory(name, **make_job overrides)`` in namespace team-a, owned by alice@example.com."""
    return plain_job


@pytest.fixture
def cronjob_factory() -> Callable[[], dict[str, Any]]:
    return cronjob


async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
def call() -> Callable[..., Any]:
    """``await call(fn, *args)``: run a blocking client call off the loop that kmock serves from."""
    return _call


def api_client_for(url: str) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = url.rstrip("/")
    configuration.retries = 0  # fail fast on the closed-port test; kmock itself never drops a request
    return client.ApiClient(configuration)


@pytest.fixture
def make_api_client() -> Callable[[str], client.ApiClient]:
    """A real ``kubernetes.client.ApiClient`` pointed at a URL (the caller closes it)."""
    return api_client_for


@pytest.fixture
def kubeconfig(kmock: Any, tmp_path: Path) -> str:
    """A kubeconfig file reaching kmock as alice in team-a; kmock lists no Jobs or CronJobs yet."""
    kmock.resources["batch/v1/jobs"] = {}
    kmock.resources["batch/v1/cronjobs"] = {}
    return str(write_kubeconfig(tmp_path / "kubeconfig", str(kmock.url), NAMESPACE))


@pytest.fixture
async def target(kmock: Any) -> AsyncIterator[KubernetesTarget]:
    # Declared so that listing an empty collection answers [] rather than kmock's "unknown resource" 404.
    kmock.resources["batch/v1/jobs"] = {}
    kmock.resources["batch/v1/cronjobs"] = {}
    api = api_client_for(str(kmock.url))
    yield KubernetesTarget(api, NAMESPACE, timeout=(2.0, 5.0))
    api.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    return free_port()
