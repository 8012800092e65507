"""A Job run started through a real `jupyter server` belongs to the cluster: stopping the server leaves the Job
running, and a server started again on the same root shows the run running (not crashed), then, once the
Job has ended, final with the steps the pod recorded. kmock on loopback is the cluster; the test plays the
pod (``services.job_main`` with real kernels) and the Job controller (the Job's status)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.conftest import make_notebook
from tests.support.kube_cluster import JOB_COMPLETE, job_failed, set_job_status, write_kubeconfig
from tests.support.waiting import eventually

NS = "team-a"
pytestmark = pytest.mark.slow


def cluster_env(kmock: Any, tmp_path: Path, shared_remote_store: dict[str, str]) -> dict[str, str]:
    """The server's environment: kmock as the cluster (namespace team-a), an image, the S3 store."""
    kmock.resources["batch/v1/jobs"] = {}
    return {**shared_remote_store, "CELLPIPE_NAMESPACE": NS, "CELLPIPE_IMAGE": "ghcr.io/acme/cellpipe-runtime:1.0",
            "KUBECONFIG": str(write_kubeconfig(tmp_path / "kubeconfig", str(kmock.url), NS))}  # fmt: skip


async def job_run_started(server: Any, kmock: Any) -> tuple[str, dict[str, Any]]:
    """A one-step Job run POSTed to ``server``: its id and its Job, once its record holds the Job's handle
    (what another server needs to adopt or cancel it)."""
    from jupyter_ext.records.store import RecordStore

    make_notebook(server.root / "train.ipynb", [(["step:make"], "xs = [1, 2]")])
    body = {"path": "train.ipynb", "target": "job", "track": False}
    accepted = await asyncio.to_thread(server.api, "POST", "runs", json=body)
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["id"]
    store = RecordStore(server.root / ".cellpipe")
    try:
        await eventually(
            lambda: list(kmock["post"]) and store.get_run(run_id).on_cluster, what="the Job's handle"
        )
    finally:
        store.close()
    (post,) = list(kmock["post"])
    return run_id, post.data


async def test_a_restarted_server_adopts_a_job_run_and_finalizes_it(
    launch: Any, kmock: Any, tmp_path: Path, shared_remote_store: dict[str, str]
) -> None:
    from jupyter_ext.services.job_main import main as pod_main

    env = cluster_env(kmock, tmp_path, shared_remote_store)
    server = await asyncio.to_thread(launch, env=env)  # the test's loop serves kmock meanwhile
    make_notebook(server.root / "train.ipynb", [(["parameters"], "n = 2"), (["step:make"], "xs = list(range(n))"),
                                                (["step:total"], "total = sum(xs)"), (["pipeline-metrics"], "total")])  # fmt: skip

    async def api(target: Any, method: str, route: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(target.api, method, route, **kwargs)

    body = {"path": "train.ipynb", "target": "job", "parameters": {"n": 4}, "track": False}
    accepted = await api(server, "POST", "runs", json=body)
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["id"]
    record = await asyncio.to_thread(
        server.wait_for_run, run_id, lambda r: r.get("handle"), timeout=60, what="the Job's handle"
    )  # the server submits in the background
    assert record["status"] == "running" and record["handle"]["namespace"] == NS, record
    assert "kubeconfig" not in record["handle"]  # the server's own files are not the client's business
    (post,) = list(kmock["post"])
    job = post.data
    kubernetes_validate.validate(job, "1.30", strict=True)

    await asyncio.to_thread(server.stop)  # a culled or restarted server: the Job goes on
    assert not list(kmock["delete"])
    again = await asyncio.to_thread(launch, env=env, root=server.root)
    adopted = (await api(again, "GET", f"runs/{run_id}")).json()
    assert adopted["status"] == "running" and adopted["refresh_error"] is None, adopted
    listed = (await api(again, "GET", "runs")).json()["runs"]
    assert [(r["id"], r["status"]) for r in listed] == [(run_id, "running")]

    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert await asyncio.to_thread(pod_main, [*args, "--workdir", str(tmp_path / "pod")]) == 0
    await asyncio.to_thread(set_job_status, str(kmock.url), NS, job["metadata"]["name"], JOB_COMPLETE)
    final = await asyncio.to_thread(
        again.wait_for_run,
        run_id,
        lambda r: r["status"] != "running",
        timeout=30,
        interval=0.5,
        what="its end",
    )  # reads refresh it at most every few seconds
    assert final["status"] == "succeeded", final
    assert [(s["name"], s["status"]) for s in final["steps"]] == [
        ("make", "succeeded"),
        ("total", "succeeded"),
    ]
    assert final["metrics"] == {"total": 6.0}


async def test_a_server_that_did_not_start_a_job_run_cancels_it_through_the_api(
    launch: Any, kmock: Any, tmp_path: Path, shared_remote_store: dict[str, str]
) -> None:
    env = cluster_env(kmock, tmp_path, shared_remote_store)
    first = await asyncio.to_thread(launch, env=env)
    run_id, job = await job_run_started(first, kmock)
    await asyncio.to_thread(first.stop)
    second = await asyncio.to_thread(launch, env=env, root=first.root)
    answer = await asyncio.to_thread(second.api, "POST", f"runs/{run_id}/cancel")
    assert answer.status_code == 202 and answer.json()["status"] == "cancelled", answer.text
    (deleted,) = list(kmock["delete"])
    assert deleted.url.path.endswith(f"/namespaces/{NS}/jobs/{job['metadata']['name']}")


async def test_the_server_follows_its_cluster_runs_when_nobody_reads_them(
    launch: Any, kmock: Any, tmp_path: Path, shared_remote_store: dict[str, str]
) -> None:
    """A Job run adopted by a restarted server, that nobody reads (closed browser), still turns final: the
    server looks at its active cluster runs every ``cluster_follow_interval`` and finalizes the ended ones.
    The test reads the store file directly (a plain store read asks no cluster), so only the server's own
    follow can finalize it (the first server followed its own run's task; it is gone)."""
    from jupyter_ext.records.store import RecordStore

    env = {**cluster_env(kmock, tmp_path, shared_remote_store), "CELLPIPE_CLUSTER_FOLLOW_S": "1"}
    server = await asyncio.to_thread(launch, env=env)
    run_id, job = await job_run_started(server, kmock)
    await asyncio.to_thread(server.stop)
    server = await asyncio.to_thread(launch, env=env, root=server.root)  # adopts the run; nobody reads it
    failed = job_failed("OOMKilled")
    await asyncio.to_thread(set_job_status, str(kmock.url), NS, job["metadata"]["name"], failed)
    store = RecordStore(server.root / ".cellpipe")
    await eventually(lambda: store.get_run(run_id).is_final, interval=0.3, what="the server to end the run")
    record = store.get_run(run_id)
    store.close()
    assert record.status == "failed" and "OOMKilled" in (record.error or {}).get("message", ""), record
    assert "cluster runs ended" in server.log_text()
