"""A Job run belongs to the cluster once the Job exists: any process reading its record follows it.

RunService -> official client -> kmock on loopback; the pod is played by running the Job's own container
arguments through ``jupyter_ext.services.job_main`` (real kernels) against an S3 store on loopback (moto)
that the ``cellpipe`` subprocesses of these tests read too; the Job controller by patching the Job's
status. Every created Job is validated with kubernetes-validate.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from jupyter_ext.records.models import RunRecord, RunStatus, StepStatus
from jupyter_ext.services.runs import RunRequest, RunService
from jupyter_ext.targets.k8s.options import JobOptions
from jupyter_ext.targets.k8s.target import JobTarget
from tests.support.kube_cluster import JOB_COMPLETE, job_failed, set_job_status, write_kubeconfig

NS = "team-a"
IMAGE = "ghcr.io/acme/cellpipe-runtime:1.0"
CELLS = [(["parameters"], "n = 2"), (["step:make"], "xs = list(range(n))"),
         (["step:total"], "total = sum(xs)"), (["pipeline-metrics"], "total")]  # fmt: skip
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def env(
    data_dir: Path, shared_remote_store: dict[str, str]
) -> dict[str, str]:  # data_dir clears $CELLPIPE_STORE: first
    """A subprocess's environment: the shared store, this test's data directory."""
    return {**shared_remote_store, "CELLPIPE_HOME": str(data_dir)}


async def submitted(service: RunService, notebook: Path, kubeconfig: str, **request: Any) -> RunRecord:
    """Submit without following: the record as the submitting process leaves it."""
    options = JobOptions(image=IMAGE, kubeconfig=kubeconfig)  # the store: $CELLPIPE_STORE
    prepared = await asyncio.to_thread(
        service.prepare, RunRequest(notebook=notebook, target="job", target_options=options, **request)
    )
    record = await asyncio.to_thread(service.create_record, prepared)
    return await service.execute(record, prepared, follow=False)


def the_job(kmock: Any) -> dict[str, Any]:
    (post,) = list(kmock["post"])
    kubernetes_validate.validate(post.data, "1.30", strict=True)
    return post.data


async def play_the_pod(call: Callable, job: dict[str, Any], workdir: Path) -> None:
    from jupyter_ext.services.job_main import main as pod_main

    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert await call(pod_main, [*args, "--workdir", str(workdir)]) == 0


async def cellpipe(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    """``cellpipe ARGV`` in a new process (the test's loop keeps serving kmock meanwhile)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jupyter_ext.cli", *argv, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode, out.decode(), err.decode()


async def show(env: dict[str, str], run_id: str) -> dict[str, Any]:
    code, out, err = await cellpipe(env, "runs", "show", run_id, "--json")
    assert code == 0, err
    return json.loads(out)


def owner_gone(service: RunService, run_id: str) -> None:
    """Make the submitting process look dead, as after the CLI exited or the server was restarted."""

    def change(record: RunRecord) -> None:
        record.owner = {**record.owner, "pid_start": -1}  # that pid now belongs to another process

    service.store.update_run(run_id, change)


async def test_a_submitted_job_run_outlives_cellpipe_submit_and_a_new_process_finalizes_it(
    kmock: Any, kubeconfig: str, write_notebook: Callable, data_dir: Path, call: Callable, env: dict,
    tmp_path: Path,
) -> None:  # fmt: skip
    notebook = write_notebook(CELLS, name="train.ipynb")
    code, out, err = await cellpipe(env, "submit", str(notebook), "--image", IMAGE,
                                    "--kubeconfig", kubeconfig, "-p", "n=4", "--no-track")  # fmt: skip
    assert code == 0, err
    run_id = out.split("run id    ", 1)[1].split()[0]
    job = the_job(kmock)
    name = job["metadata"]["name"]
    assert f"job {name} created in namespace {NS}" in out and f"cellpipe runs show {run_id}" in out
    # `cellpipe submit` has exited: the record is the cluster's now, not crashed
    seen = await show(env, run_id[-6:])
    assert seen["status"] == "running" and seen["refresh_error"] is None and seen["refreshed"], seen
    assert seen["handle"] == {
        "namespace": NS,
        "name": name,
        "store": env["CELLPIPE_STORE"],
        "kubeconfig": kubeconfig,
    }
    assert seen["source"] == "cli" and seen["parameters"] == {"n": 4}
    assert [s["status"] for s in seen["steps"]] == ["pending", "pending"]

    await play_the_pod(call, job, tmp_path / "pod")
    await call(set_job_status, str(kmock.url), NS, name, JOB_COMPLETE)
    await asyncio.sleep(max(0.0, seen["refreshed"] + RunService.refresh_seconds - time.time()))
    done = await show(env, run_id)
    assert done["status"] == "succeeded", done
    assert [(s["name"], s["status"]) for s in done["steps"]] == [
        ("make", "succeeded"),
        ("total", "succeeded"),
    ]
    assert done["metrics"] == {"total": 6.0} and done["finished"] and done["duration_s"] > 0
    assert RunService(data_dir).get(run_id).status is RunStatus.SUCCEEDED  # the same record, everywhere


async def test_a_run_whose_submitting_process_is_gone_is_not_crashed(
    kmock: Any, kubeconfig: str, write_notebook: Callable, data_dir: Path, env: dict
) -> None:
    service = RunService(data_dir)
    record = await submitted(service, write_notebook(CELLS), kubeconfig, track=False)
    assert record.status is RunStatus.RUNNING and record.on_cluster
    owner_gone(service, record.id)
    assert RunService(data_dir).store.recover_crashed() == []  # a restarted server finds nothing crashed
    seen = await show(env, record.id)
    assert seen["status"] == "running" and seen["error"] is None


async def test_a_failed_job_is_finalized_as_failed_with_the_controllers_reason(
    kmock: Any, kubeconfig: str, write_notebook: Callable, data_dir: Path, call: Callable
) -> None:
    service = RunService(data_dir)
    record = await submitted(service, write_notebook(CELLS), kubeconfig, track=False)
    name = the_job(kmock)["metadata"]["name"]
    failed = job_failed("Job has reached the specified backoff limit", reason="BackoffLimitExceeded")
    await call(set_job_status, str(kmock.url), NS, name, failed)
    done = await asyncio.to_thread(service.refresh, service.store.get_run(record.id), force=True)
    assert done.status is RunStatus.FAILED
    assert done.error == {"message": f"job {name} failed: Job has reached the specified backoff limit"}
    assert [s.status for s in done.steps] == [StepStatus.NOT_RUN, StepStatus.NOT_RUN]  # the pod wrote nothing


class Counting:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def on_complete(self, record: RunRecord) -> None:
        self.calls.append(("on_complete", record.id))

    def on_failure(self, record: RunRecord) -> None:
        self.calls.append(("on_failure", record.id))


async def test_two_readers_at_the_same_moment_finalize_the_run_once(
    kmock: Any, kubeconfig: str, write_notebook: Callable, data_dir: Path, call: Callable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    record = await submitted(RunService(data_dir), write_notebook(CELLS), kubeconfig, track=False)
    name = the_job(kmock)["metadata"]["name"]
    await call(set_job_status, str(kmock.url), NS, name, JOB_COMPLETE)
    hooks = Counting()
    readers = [RunService(data_dir, hooks=[hooks]) for _ in range(2)]  # two stores, as two processes have
    both_asked = threading.Barrier(2, timeout=30)
    poll = JobTarget.poll

    def poll_together(self: JobTarget, seen: RunRecord) -> RunStatus | None:
        outcome = poll(self, seen)
        both_asked.wait()  # both have the cluster's answer before either writes it
        return outcome

    monkeypatch.setattr(JobTarget, "poll", poll_together)
    results = await asyncio.gather(*(asyncio.to_thread(reader.get, record.id) for reader in readers))
    assert [r.status for r in results] == [RunStatus.SUCCEEDED] * 2
    assert hooks.calls == [("on_complete", record.id)]


async def test_an_unreachable_cluster_leaves_the_run_running_and_says_why(
    kmock: Any, kubeconfig: str, write_notebook: Callable, data_dir: Path, closed_port: int, tmp_path: Path,
    env: dict,
) -> None:  # fmt: skip
    service = RunService(data_dir)
    record = await submitted(service, write_notebook(CELLS), kubeconfig, track=False)
    dead = str(write_kubeconfig(tmp_path / "dead-kubeconfig", f"http://127.0.0.1:{closed_port}", NS))
    owner_gone(service, record.id)
    service.store.update_run(record.id, lambda r: r.handle.update(kubeconfig=dead))
    seen = await show(env, record.id)
    assert seen["status"] == "running", seen
    assert "cannot reach the Kubernetes API" in seen["refresh_error"] or "127.0.0.1" in seen["refresh_error"]
    code, out, _ = await cellpipe(env, "runs", "--json")
    assert code == 0 and json.loads(out)[0]["status"] == "running"
    code, out, _ = await cellpipe(env, "runs", "show", record.id)
    name = record.handle["name"]
    assert code == 0 and f"on the cluster: job {name} in namespace {NS}" in out
    assert "cannot ask the cluster now (shown as last seen): cannot reach the Kubernetes API" in out


async def test_cancel_from_another_process_deletes_the_job(
    kmock: Any, kubeconfig: str, write_notebook: Callable, data_dir: Path, env: dict
) -> None:
    service = RunService(data_dir)
    record = await submitted(service, write_notebook(CELLS), kubeconfig, track=False)
    name = the_job(kmock)["metadata"]["name"]
    owner_gone(service, record.id)
    code, out, err = await cellpipe(env, "runs", "cancel", record.id)
    assert code == 0 and f"run {record.id} cancelled" in out, (out, err)
    (deleted,) = list(kmock["delete"])
    assert deleted.url.path.endswith(f"/namespaces/{NS}/jobs/{name}")
    done = service.get(record.id)
    assert done.status is RunStatus.CANCELLED and [s.status for s in done.steps] == [StepStatus.NOT_RUN] * 2


async def test_a_listing_asks_about_every_due_cluster_run_of_its_page(
    kmock: Any, kubeconfig: str, write_notebook: Callable, data_dir: Path, call: Callable
) -> None:
    service = RunService(data_dir)
    notebook = write_notebook(CELLS)
    records = [await submitted(service, notebook, kubeconfig, track=False) for _ in range(3)]
    for post in list(kmock["post"]):
        kubernetes_validate.validate(post.data, "1.30", strict=True)
        await call(set_job_status, str(kmock.url), NS, post.data["metadata"]["name"], JOB_COMPLETE)
    listed, total = await asyncio.to_thread(RunService(data_dir).list)  # another service: no shared locks
    assert total == 3 and {r.id for r in listed} == {r.id for r in records}
    assert [r.status for r in listed] == [RunStatus.SUCCEEDED] * 3
    assert all(r.refreshed and r.refresh_error is None for r in listed)
