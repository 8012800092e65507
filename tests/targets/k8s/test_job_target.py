"""A run through the run service on the Kubernetes Job target: RunService -> official client -> kmock.

kmock runs no pods: the test plays the pod by running the Job's own container arguments through
``jupyter_ext.services.job_main`` (real kernels) against the same in-memory "remote" store, and the Job
controller by patching the Job's status. Cancelling deletes the Job.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jupyter_ext.records.models import RunStatus, StepStatus
from jupyter_ext.services.runs import RunRequest, RunService
from jupyter_ext.targets.k8s.options import JobOptions
from jupyter_ext.targets.k8s.target import JobTarget
from tests.support.kube_cluster import JOB_COMPLETE, set_job_status
from tests.support.waiting import eventually

NS = "team-a"
STORE = "fakes3://ml-bucket/cellpipe"
IMAGE = "ghcr.io/acme/cellpipe-runtime:1.0"
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def isolated(fake_remote_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(JobTarget, "poll_seconds", 0.05)


async def created_job(kmock: Any) -> dict[str, Any]:
    posts = await eventually(lambda: list(kmock["post"]), timeout=20, interval=0.02, what="a Job")
    return posts[0].data


async def test_a_job_run_is_recorded_from_request_to_final_state(
    kmock: Any, kubeconfig: str, write_notebook: Callable, data_dir: Path, call: Callable, tmp_path: Path
) -> None:
    from jupyter_ext.services.job_main import main as pod_main

    notebook = write_notebook([(["parameters"], "n = 2"), (["step:make"], "xs = list(range(n))"),
                               (["step:total"], "total = sum(xs)"), (["pipeline-metrics"], "total")])  # fmt: skip
    service = RunService(data_dir)
    options = JobOptions(store=STORE, image=IMAGE, kubeconfig=kubeconfig)
    record = await service.submit(RunRequest(notebook=notebook, parameters={"n": 4}, target="job",
                                             target_options=options, track=False))  # fmt: skip
    assert record.target == "job" and record.status is RunStatus.QUEUED
    job = await created_job(kmock)
    name = job["metadata"]["name"]
    assert name.endswith(record.id) and job["metadata"]["labels"]["cellpipe.io/run-id"] == name
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert await call(pod_main, [*args, "--workdir", str(tmp_path / "pod")]) == 0  # the pod, for real
    await call(set_job_status, str(kmock.url), NS, name, JOB_COMPLETE)
    await eventually(lambda: service.get(record.id).is_final, timeout=30, interval=0.05, what="the run's end")
    done = service.get(record.id)
    assert done.status is RunStatus.SUCCEEDED, done.to_dict()
    assert [(s.name, s.status) for s in done.steps] == [
        ("make", StepStatus.SUCCEEDED),
        ("total", StepStatus.SUCCEEDED),
    ]
    assert done.metrics == {"total": 6.0} and done.parameters == {"n": 4}
    assert done.extra["job"] == {"name": name, "namespace": NS, "store": STORE}
    await service.shutdown()


async def test_cancelling_a_job_run_deletes_the_job(
    kmock: Any, kubeconfig: str, write_notebook: Callable, data_dir: Path
) -> None:
    notebook = write_notebook([(["step:a"], "x = 1")])
    service = RunService(data_dir)
    record = await service.submit(RunRequest(notebook=notebook, target="job", track=False,
                                             target_options=JobOptions(store=STORE, image=IMAGE, kubeconfig=kubeconfig)))  # fmt: skip
    name = (await created_job(kmock))["metadata"]["name"]
    cancelled = await service.cancel(record.id)
    assert cancelled.status is RunStatus.CANCELLED
    (deleted,) = list(kmock["delete"])
    assert deleted.url.path.endswith(f"/namespaces/{NS}/jobs/{name}")
    await service.shutdown()


def test_a_store_the_pods_cannot_read_is_refused_before_anything_runs(
    write_notebook: Callable, data_dir: Path
):
    from jupyter_ext.errors import TargetError

    service = RunService(data_dir)
    with pytest.raises(TargetError, match="pods on the cluster cannot read it"):
        service.run(RunRequest(notebook=write_notebook([(["step:a"], "x = 1")]), target="job",
                               target_options=JobOptions(store=str(data_dir / "store"))))  # fmt: skip
    assert service.list()[1] == 0
