"""A Job run with an s3:// snapshot store, through a real S3 API on loopback (``moto_server``) and kmock.

RunService snapshots to S3 and creates the Job (official client -> kmock; validated with
kubernetes-validate); the pod is played by a separate process started with exactly the environment the
Job's container declares (its Secret references resolved as the kubelet would), so it reaches S3 only
through what the manifest gives it; the submitting side then reads the pod's record back from S3.
The store's credentials are referenced as Secrets and never written into the Job, the records or the store.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from jupyter_ext.pipeline.model import Secret
from jupyter_ext.records.models import RunStatus, StepStatus
from jupyter_ext.records.remote import get_run_record
from jupyter_ext.services.runs import RunRequest, RunService
from jupyter_ext.snapshot import SnapshotStore
from jupyter_ext.targets.k8s.options import JobOptions
from tests.support.kube_cluster import JOB_COMPLETE, set_job_status
from tests.support.s3_server import S3_ENV

NS = "team-a"
IMAGE = "ghcr.io/acme/cellpipe-runtime:1.0"
CREDENTIALS_SECRET = "s3-creds"
SECRET_DATA = {  # what the cluster's Secret holds; only the kubelet (played here) reads it
    "access-key": S3_ENV["AWS_ACCESS_KEY_ID"],
    "secret-key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
}
CELLS = [(["parameters"], "n = 2"), (["step:make"], "xs = list(range(n))"),
         (["step:total"], "total = sum(xs)"), (["pipeline-metrics"], "total")]  # fmt: skip
pytestmark = pytest.mark.slow


def s3_job_options(s3_bucket: Any, kubeconfig: str) -> JobOptions:
    """The store's endpoint as a plain setting (as docs/kubernetes.md shows for MinIO: fsspec's variable,
    where the submitting side here uses botocore's AWS_ENDPOINT_URL), its keys as references to a Secret."""
    return JobOptions(
        store=s3_bucket.url(),
        image=IMAGE,
        kubeconfig=kubeconfig,
        env={
            "FSSPEC_S3_ENDPOINT_URL": s3_bucket.endpoint,
            "AWS_DEFAULT_REGION": S3_ENV["AWS_DEFAULT_REGION"],
        },
        secrets=[
            Secret(CREDENTIALS_SECRET, "access-key", "AWS_ACCESS_KEY_ID"),
            Secret(CREDENTIALS_SECRET, "secret-key", "AWS_SECRET_ACCESS_KEY"),
        ],
    )


def pod_environment(container: dict[str, Any]) -> dict[str, str]:
    """What the kubelet gives the container: plain values, and Secret keys resolved from the Secret."""
    env = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["name"] == CREDENTIALS_SECRET, entry  # no other Secret is expected here
            env[entry["name"]] = SECRET_DATA[ref["key"]]
    return env


async def play_the_pod(job: dict[str, Any], workdir: Path) -> None:
    """The Job's container in a new process whose AWS settings come from the manifest alone (none of
    the test's own), so a pod that the manifest left without its store would fail here."""
    (container,) = job["spec"]["template"]["spec"]["containers"]
    base = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "FSSPEC_"))}
    env = {**base, "AWS_EC2_METADATA_DISABLED": "true", **pod_environment(container)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jupyter_ext.services.job_main", *container["args"], "--workdir", str(workdir),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    assert process.returncode == 0, out.decode()


def secret_values_in(text: str) -> list[str]:
    return [value for value in SECRET_DATA.values() if value in text]


async def test_a_job_run_with_an_s3_store_snapshots_there_and_reads_the_pods_record_back(
    kmock: Any, kubeconfig: str, s3_bucket: Any, write_notebook: Callable, data_dir: Path, call: Callable,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("JUPYTERHUB_USER", "alice@example.com")
    service = RunService(data_dir)
    request = RunRequest(
        notebook=write_notebook(CELLS, name="train.ipynb"),
        target="job",
        target_options=s3_job_options(s3_bucket, kubeconfig),
        parameters={"n": 4},
        track=False,
    )
    prepared = await asyncio.to_thread(service.prepare, request)
    record = await asyncio.to_thread(service.create_record, prepared)
    record = await service.execute(record, prepared, follow=False)
    assert record.status is RunStatus.RUNNING and record.on_cluster

    # the snapshot the pod restores is in the bucket, under the store's prefix
    snapshots = s3_bucket.keys("store/snapshots/")
    assert snapshots == [f"store/snapshots/{record.snapshot_id}.json"]
    (post,) = list(kmock["post"])
    job = post.data
    kubernetes_validate.validate(job, "1.30", strict=True)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert s3_bucket.url() in container["args"] and record.snapshot_id in " ".join(container["args"])
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs["AWS_SECRET_ACCESS_KEY"] == {"name": CREDENTIALS_SECRET, "key": "secret-key"}
    assert refs["AWS_ACCESS_KEY_ID"] == {"name": CREDENTIALS_SECRET, "key": "access-key"}
    assert secret_values_in(json.dumps(job)) == []  # referenced, never written

    await play_the_pod(job, tmp_path / "pod")

    pod_run = job["metadata"]["name"]  # the pod's record is kept under its Job's name
    assert f"store/runs/{pod_run}/record.json" in s3_bucket.keys(f"store/runs/{pod_run}/")
    in_s3 = get_run_record(SnapshotStore.open(s3_bucket.url()), pod_run)
    assert in_s3 is not None and in_s3["status"] == "succeeded", in_s3
    await call(set_job_status, str(kmock.url), NS, pod_run, JOB_COMPLETE)
    done = await asyncio.to_thread(service.refresh, service.store.get_run(record.id), force=True)
    assert done.status is RunStatus.SUCCEEDED, done.error
    assert [(s.name, s.status) for s in done.steps] == [
        ("make", StepStatus.SUCCEEDED),
        ("total", StepStatus.SUCCEEDED),
    ]
    assert done.metrics == {"total": 6.0}

    # the credentials are in no record and no object the run wrote
    client = s3_bucket.client()
    for key in s3_bucket.keys("store/runs/"):
        body = client.get_object(Bucket=s3_bucket.name, Key=key)["Body"].read().decode(errors="replace")
        assert secret_values_in(body) == [], key
    local_files = [p for p in data_dir.rglob("*") if p.is_file()]  # the run database, logs, notebooks
    assert any(p.suffix == ".db" for p in local_files), local_files
    for path in local_files:
        assert secret_values_in(path.read_bytes().decode(errors="replace")) == [], path


async def test_submit_to_a_missing_bucket_is_one_line_and_creates_no_job(
    kmock: Any, kubeconfig: str, s3_bucket: Any, write_notebook: Callable, data_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from jupyter_ext.cli.main import main

    store = f"s3://{s3_bucket.name}-typo/cellpipe"
    argv = [
        "submit",
        str(write_notebook(CELLS)),
        "--store",
        store,
        "--image",
        IMAGE,
        "--kubeconfig",
        kubeconfig,
    ]

    assert await asyncio.to_thread(main, [*argv, "--no-track"]) == 1

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"the bucket '{s3_bucket.name}-typo' of the snapshot store {store} does not exist" in err
    assert list(kmock["post"]) == []  # nothing reached the cluster
