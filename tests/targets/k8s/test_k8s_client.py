"""KubernetesTarget against kmock (a real HTTP server on loopback) through the official kubernetes client.

kmock stores objects but runs no controllers, so Job progress is simulated by patching the status
subresource; it ignores label selectors, which is why list_jobs filters client-side too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jupyter_ext.errors import TargetError
from jupyter_ext.targets.k8s.client import KubernetesTarget, load_api_client

NS = "team-a"
JOBS = "/apis/batch/v1/namespaces/team-a/jobs"


async def test_create_and_read_status(
    target: KubernetesTarget, job_factory: Callable, call: Callable
) -> None:
    created = await call(target.create_job, job_factory("train-model"))
    assert created["name"] == "train-model" and created["namespace"] == NS
    assert created["phase"] == "Pending"
    assert created["labels"]["cellpipe.io/owner"] == "alice-example.com"

    running = {"status": {"active": 1, "ready": 1, "startTime": "2025-01-01T03:00:00Z"}}
    await call(target.batch.patch_namespaced_job_status, "train-model", NS, running)
    status = await call(target.job_status, "train-model")
    assert (status["phase"], status["active"], status["start_time"]) == ("Running", 1, "2025-01-01T03:00:00Z")

    done = {
        "status": {
            "active": 0,
            "succeeded": 1,
            "completionTime": "2025-01-01T03:10:00Z",
            "conditions": [{"type": "Complete", "status": "True", "reason": "Completed", "message": "done"}],
        }
    }
    await call(target.batch.patch_namespaced_job_status, "train-model", NS, done)
    status = await call(target.job_status, "train-model")
    assert status["phase"] == "Succeeded"
    assert (status["active"], status["succeeded"], status["failed"]) == (0, 1, 0)
    assert status["conditions"] == [
        {"type": "Complete", "status": "True", "reason": "Completed", "message": "done"}
    ]


async def test_failed_job_status(target: KubernetesTarget, job_factory: Callable, call: Callable) -> None:
    await call(target.create_job, job_factory("flaky"))
    failed = {
        "status": {
            "failed": 1,
            "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "limit reached",
                },
            ],
        }
    }
    await call(target.batch.patch_namespaced_job_status, "flaky", NS, failed)
    status = await call(target.job_status, "flaky")
    assert (status["phase"], status["failed"]) == ("Failed", 1)
    assert status["conditions"][1]["message"] == "limit reached"


async def test_what_was_sent(
    target: KubernetesTarget, kmock: Any, job_factory: Callable, call: Callable
) -> None:
    manifest = job_factory("train-model")
    await call(target.create_job, manifest)
    stored = kmock.objects["batch/v1/jobs", NS, "train-model"]
    assert (
        stored["spec"] == manifest["spec"] and stored["metadata"]["labels"] == manifest["metadata"]["labels"]
    )


async def test_list_filters_by_owner_client_side(
    target: KubernetesTarget, kmock: Any, job_factory: Callable, call: Callable
) -> None:
    assert await call(target.list_jobs) == []
    await call(target.create_job, job_factory("alice-1"))
    await call(target.create_job, job_factory("alice-2"))
    bob = job_factory("bob-1")
    bob["metadata"]["labels"]["cellpipe.io/owner"] = "bob"
    await call(target.create_job, bob)
    # Something cellpipe did not create, in the same namespace: never listed.
    kmock.objects["batch/v1/jobs", NS, "foreign"] = {"metadata": {"name": "foreign", "namespace": NS}}

    assert [j["name"] for j in await call(target.list_jobs)] == ["alice-1", "alice-2", "bob-1"]
    assert [j["name"] for j in await call(target.list_jobs, owner="alice@example.com")] == [
        "alice-1",
        "alice-2",
    ]
    assert [j["name"] for j in await call(target.list_jobs, owner="bob")] == ["bob-1"]
    # The selector is still sent for real clusters, which do honour it.
    last_list = list(kmock["get " + JOBS])[-1]
    assert last_list.params["labelSelector"] == "app.kubernetes.io/managed-by=cellpipe,cellpipe.io/owner=bob"


async def test_cancel_deletes_in_foreground(
    target: KubernetesTarget, kmock: Any, job_factory: Callable, call: Callable
) -> None:
    await call(target.create_job, job_factory("train-model"))
    await call(target.cancel_job, "train-model")
    (delete,) = list(kmock["delete"])
    assert delete.params["propagationPolicy"] == "Foreground"
    assert await call(target.list_jobs) == []
    with pytest.raises(TargetError, match="job 'train-model' not found in namespace 'team-a'"):
        await call(target.job_status, "train-model")
    with pytest.raises(TargetError, match="not found"):
        await call(target.cancel_job, "train-model")


async def test_duplicate_name_is_a_target_error(
    target: KubernetesTarget, job_factory: Callable, call: Callable
) -> None:
    await call(target.create_job, job_factory("train-model"))
    with pytest.raises(TargetError) as excinfo:
        await call(target.create_job, job_factory("train-model"))
    text = str(excinfo.value)
    assert "job 'train-model' already exists in namespace 'team-a'" in text
    assert "Pick another name (e.g. 'train-model-2')" in text and "\n" not in text


async def test_replace_deletes_then_recreates(
    target: KubernetesTarget, kmock: Any, job_factory: Callable, call: Callable
) -> None:
    await call(target.create_job, job_factory("train-model"))
    await call(target.create_job, job_factory("train-model", args=["--step", "eval"]), replace=True)
    stored = kmock.objects["batch/v1/jobs", NS, "train-model"]
    assert stored["spec"]["template"]["spec"]["containers"][0]["args"] == ["--step", "eval"]
    assert len(kmock["delete"]) == 1


async def test_manifest_for_another_namespace(target: KubernetesTarget, call: Callable) -> None:
    manifest = {"metadata": {"name": "x", "namespace": "elsewhere"}, "spec": {}}
    with pytest.raises(
        TargetError, match="manifest is for namespace 'elsewhere' but this target uses 'team-a'"
    ):
        await call(target.create_job, manifest)


async def test_cronjobs(
    target: KubernetesTarget, kmock: Any, cronjob_factory: Callable, call: Callable
) -> None:
    assert await call(target.list_cronjobs) == []
    created = await call(target.create_cronjob, cronjob_factory())
    assert created["name"] == "nightly-train"
    assert (created["schedule"], created["timezone"], created["suspend"]) == (
        "0 3 * * MON-FRI",
        "Europe/Berlin",
        False,
    )
    with pytest.raises(TargetError, match="cronjob 'nightly-train' already exists"):
        await call(target.create_cronjob, cronjob_factory())
    listed = await call(target.list_cronjobs, owner="alice@example.com")
    assert [c["name"] for c in listed] == ["nightly-train"]
    assert await call(target.list_cronjobs, owner="bob") == []
    await call(target.delete_cronjob, "nightly-train")
    assert list(kmock["delete"])[0].params["propagationPolicy"] == "Foreground"
    assert await call(target.list_cronjobs) == []


async def test_cronjob_replace_uses_put(
    target: KubernetesTarget, kmock: Any, cronjob_factory: Callable, call: Callable
) -> None:
    # kmock's emulator has no PUT; answer it like the API server would (with the stored object).
    kmock["put /apis/batch/v1/namespaces/team-a/cronjobs/nightly-train"] << (lambda request: request.data)
    await call(target.create_cronjob, cronjob_factory())
    updated = cronjob_factory()
    updated["spec"]["schedule"] = "30 4 * * *"
    result = await call(target.create_cronjob, updated, replace=True)
    assert result["schedule"] == "30 4 * * *"
    assert len(kmock["put"]) == 1


@pytest.mark.parametrize(
    "status, expected",
    [
        (401, "the Kubernetes API at http://127.0.0.1:"),
        (403, "not allowed to list jobs in namespace 'team-a' (403): jobs is forbidden"),
        (500, "Kubernetes API error 500 while trying to list jobs"),
    ],
)
async def test_api_errors(
    target: KubernetesTarget, kmock: Any, call: Callable, status: int, expected: str
) -> None:
    kmock["get " + JOBS] << status << {"kind": "Status", "message": "jobs is forbidden: User cannot list"}
    with pytest.raises(TargetError) as excinfo:
        await call(target.list_jobs)
    text = str(excinfo.value)
    assert expected in text and "\n" not in text
    if status == 401:
        assert "rejected the credentials (401)" in text and "kubeconfig" in text
    if status == 403:
        assert "--namespace" in text


async def test_invalid_manifest_reports_the_server_message(
    target: KubernetesTarget, kmock: Any, job_factory: Callable, call: Callable
) -> None:
    message = 'Job.batch "train-model" is invalid: spec.template.spec.containers[0].image: Required value'
    kmock["post " + JOBS] << 422 << {"kind": "Status", "message": message}
    with pytest.raises(
        TargetError, match="the Kubernetes API refused job 'train-model' \\(422\\): Job.batch"
    ):
        await call(target.create_job, job_factory("train-model"))


async def test_missing_namespace(
    target: KubernetesTarget, kmock: Any, job_factory: Callable, call: Callable
) -> None:
    kmock["post " + JOBS] << 404 << {"kind": "Status", "message": 'namespaces "team-a" not found'}
    with pytest.raises(TargetError, match="cannot create job 'train-model': namespace 'team-a' not found"):
        await call(target.create_job, job_factory("train-model"))


def test_unreachable_host(closed_port: int, make_api_client: Callable) -> None:
    api = make_api_client(f"http://127.0.0.1:{closed_port}")
    target = KubernetesTarget(api, NS, timeout=(1.0, 1.0))
    with pytest.raises(TargetError) as excinfo:
        target.job_status("train-model")
    text = str(excinfo.value)
    assert f"cannot reach the Kubernetes API at http://127.0.0.1:{closed_port}" in text
    assert "Connection refused" in text and "kubeconfig" in text and "--namespace" in text
    assert "\n" not in text and "object at 0x" not in text
    api.close()


def test_missing_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    with pytest.raises(TargetError) as excinfo:
        load_api_client()
    text = str(excinfo.value)
    assert "no Kubernetes credentials" in text and str(tmp_path / "nope") in text and "KUBECONFIG" in text


async def test_kubeconfig_is_used(tmp_path: Path, kmock: Any, call: Callable) -> None:
    kmock.resources["batch/v1/jobs"] = {}
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dev\n"
        "contexts: [{name: dev, context: {cluster: c, user: u, namespace: from-kubeconfig}}]\n"
        f"clusters: [{{name: c, cluster: {{server: '{str(kmock.url).rstrip('/')}'}}}}]\n"
        "users: [{name: u, user: {token: secret-token}}]\n"
    )
    with KubernetesTarget(kubeconfig=str(path)) as target:
        assert target.namespace == "from-kubeconfig"
        assert await call(target.list_jobs) == []
    (request,) = list(kmock["get /apis/batch/v1/namespaces/from-kubeconfig/jobs"])
    assert request.headers["Authorization"] == "Bearer secret-token"
