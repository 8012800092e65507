"""``cellpipe submit/schedule/export`` end to end: kubeconfig -> official client -> kmock on loopback.

The snapshot store is a fake remote (``fakes3://``, an in-memory fsspec filesystem registered for the
test) because cluster commands refuse local stores. The CLI blocks, kmock serves from the test's loop:
every ``main`` call runs in a thread through the ``call`` fixture.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes import client

from jupyter_ext.cli.main import main
from jupyter_ext.errors import TargetError
from jupyter_ext.services.cluster import require_pod_store
from jupyter_ext.snapshot import SnapshotStore
from tests.support.kube_cluster import job_failed, set_job_status, write_kubeconfig
from tests.support.waiting import eventually

NS = "team-a"
STORE = "fakes3://ml-bucket/cellpipe"  # = FAKE_STORE in tests/targets/conftest.py
IMAGE = "ghcr.io/acme/cellpipe-runtime:1.0"


@pytest.fixture(autouse=True)
def isolated(fake_remote_store: str) -> None:
    """Every test gets the in-memory "remote" store (tests/targets/conftest.py) and a clean environment."""


@pytest.fixture
def dead_kubeconfig(closed_port: int, tmp_path: Path) -> str:
    return str(write_kubeconfig(tmp_path / "dead-kubeconfig", f"http://127.0.0.1:{closed_port}", NS))


@pytest.fixture
def notebook(write_notebook: Callable[..., Path]) -> str:
    return str(
        write_notebook(
            [
                (["parameters"], "epochs = 3\nlabel = 'base'"),
                (
                    ["step:load", "secret:s3-creds:access-key:AWS_ACCESS_KEY_ID", "limit:memory:2Gi"],
                    "xs = list(range(epochs))",
                ),
                (["step:train", "limit:nvidia.com/gpu:1", "limit:cpu:4"], "total = sum(xs)"),
            ],  # fmt: skip
            name="train.ipynb",
        )
    )


def exists(kmock: Any, resource: str, name: str) -> bool:
    """Whether kmock holds a live object (``in kmock.objects`` compares raw keys, so it cannot tell)."""
    try:
        return kmock.objects[resource, NS, name, -1] is not None
    except KeyError:
        return False


def snapshots() -> list[str]:
    return SnapshotStore.open(STORE).ids()


def job_args(manifest: dict[str, Any]) -> list[str]:
    return manifest["spec"]["template"]["spec"]["containers"][0]["args"]


async def cli(call: Callable, *argv: str) -> int:
    return await call(main, list(argv))


def one_error_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# -- submit -------------------------------------------------------------------------------------------
async def test_submit_creates_the_job(
    kmock: Any, kubeconfig: str, notebook: str, call: Callable, capsys: pytest.CaptureFixture
) -> None:
    code = await cli(call, "submit", notebook, "--target", "job", "--store", STORE, "--image", IMAGE,
                     "--kubeconfig", kubeconfig, "-p", "epochs=20", "-p", "label=nightly",
                     "--secret", "store-creds:secret-key:AWS_SECRET_ACCESS_KEY")  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    (post,) = list(kmock["post"])
    job = post.data  # exactly what the client sent
    name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
    assert exists(kmock, "batch/v1/jobs", name)
    assert namespace == NS and name.startswith("train-")
    labels = job["metadata"]["labels"]
    (snapshot_id,) = snapshots()
    assert labels["cellpipe.io/run-id"] == name and labels["cellpipe.io/owner"] == "alice-example.com"
    assert labels["cellpipe.io/snapshot-id"] == snapshot_id[:12] and labels["cellpipe.io/pipeline"] == "train"
    assert job_args(job) == ["--store", STORE, "--snapshot", snapshot_id, "--run-id", name,
                             "-p", "epochs=20", "-p", 'label="nightly"']  # fmt: skip
    (container,) = job["spec"]["template"]["spec"]["containers"]
    secret_env = {e["name"]: e for e in container["env"] if "valueFrom" in e}
    assert secret_env == {
        "AWS_ACCESS_KEY_ID": {"name": "AWS_ACCESS_KEY_ID",
                              "valueFrom": {"secretKeyRef": {"name": "s3-creds", "key": "access-key"}}},
        "AWS_SECRET_ACCESS_KEY": {"name": "AWS_SECRET_ACCESS_KEY",
                                  "valueFrom": {"secretKeyRef": {"name": "store-creds", "key": "secret-key"}}},
    }  # fmt: skip
    assert container["resources"]["limits"] == {"memory": "2Gi", "nvidia.com/gpu": "1", "cpu": "4"}
    assert job["spec"]["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert container["image"] == IMAGE
    kubernetes_validate.validate(job, "1.34", strict=True)
    assert f"job {name} created in namespace {NS}" in out
    assert f"kubectl get job -n {NS} -l cellpipe.io/run-id={name}" in out
    assert f"{STORE}/runs/{name}/" in out


async def test_duplicate_name_says_what_was_kept(
    kubeconfig: str, notebook: str, call: Callable, capsys: pytest.CaptureFixture
) -> None:
    argv = [
        "submit",
        notebook,
        "--store",
        STORE,
        "--image",
        IMAGE,
        "--kubeconfig",
        kubeconfig,
        "--name",
        "train-1",
    ]
    assert await cli(call, *argv) == 0
    capsys.readouterr()
    assert await cli(call, *argv) == 1
    line = one_error_line(capsys.readouterr().err)
    second = line.split("snapshot ", 1)[1][:12]
    assert second in [s[:12] for s in snapshots()]
    assert line == (
        f"cellpipe: error: job 'train-1' already exists in namespace 'team-a' (no job was created; snapshot "
        f"{second} was uploaded to {STORE} and stays there, a retry uploads no file twice). Pick another name "
        "(e.g. 'train-1-2'), replace it, or delete it first (kubectl delete job train-1 -n team-a)"
    )


async def test_unreachable_cluster(
    dead_kubeconfig: str, closed_port: int, notebook: str, call: Callable, capsys: pytest.CaptureFixture
) -> None:
    code = await cli(
        call, "submit", notebook, "--store", STORE, "--image", IMAGE, "--kubeconfig", dead_kubeconfig
    )
    assert code == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(
        f"cellpipe: error: cannot reach the Kubernetes API at http://127.0.0.1:{closed_port}"
    )
    assert f"(no job was created; snapshot {snapshots()[0][:12]} was uploaded to {STORE}" in line
    assert line.endswith("Check your kubeconfig (kubectl cluster-info), your network/VPN, and --namespace")


async def test_unknown_targets(notebook: str, call: Callable, capsys: pytest.CaptureFixture) -> None:
    assert await cli(call, "submit", notebook, "--target", "nomad") == 1
    assert one_error_line(capsys.readouterr().err) == (
        "cellpipe: error: --target: unknown target 'nomad'. Use one of: job, kfp"
    )
    assert await cli(call, "export", notebook, "--target", "helm", "-o", "out") == 1
    assert one_error_line(capsys.readouterr().err) == (
        "cellpipe: error: --target: unknown target 'helm'. Use one of: job, kfp"
    )
    assert await cli(call, "export", notebook, "--format", "helm", "-o", "out") == 1
    assert one_error_line(capsys.readouterr().err) == (
        "cellpipe: error: --format: unknown format 'helm'. --format is deprecated: use --target job or --target kfp"
    )
    assert await cli(call, "export", notebook, "--format", "k8s", "--target", "kfp", "-o", "out") == 1
    assert "--format k8s means --target job, not kfp" in capsys.readouterr().err
    assert snapshots() == []


@pytest.mark.parametrize(
    "store, message",
    [
        (None, "--store: no snapshot store for the cluster: pods read the notebook and its data from the store. "
               "Pass --store or set CELLPIPE_STORE to a bucket the pods can reach, e.g. --store "
               "s3://my-bucket/cellpipe (see docs/kubernetes.md)"),
        ("/home/alice/.cellpipe/store", "--store: snapshot store '/home/alice/.cellpipe/store' is on this machine; "
                                        "pods on the cluster cannot read it. Use an object store both this machine "
                                        "and the pods can reach, e.g. --store s3://my-bucket/cellpipe (see "
                                        "docs/kubernetes.md)"),
        ("file:///data/store", "snapshot store 'file:///data/store' is on this machine"),
        ("memory://x", "snapshot store 'memory://x' lives in this process only"),
        ("s3://key:hunter2@bucket/x", "--store: snapshot store URL for 'bucket' contains a password; it would be "
                                      "readable in the Job's arguments. Drop it from the URL and give the pods "
                                      "credentials with --secret SECRET:KEY:ENV"),
    ],
)  # fmt: skip
def test_stores_pods_cannot_use(store: str | None, message: str) -> None:
    with pytest.raises(TargetError) as excinfo:
        require_pod_store(store)
    assert message in str(excinfo.value)


async def test_local_store_is_refused_before_anything_happens(
    notebook: str, tmp_path: Path, call: Callable, capsys: pytest.CaptureFixture
) -> None:
    assert await cli(call, "submit", notebook, "--store", str(tmp_path / "store"), "--image", IMAGE) == 1
    assert "pods on the cluster cannot read it" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "store").exists()


async def test_bad_options_are_one_line(notebook: str, call: Callable, capsys: pytest.CaptureFixture) -> None:
    base = ["submit", notebook, "--store", STORE, "--image", IMAGE]
    assert await cli(call, *base, "--secret", "just-a-name") == 1
    assert one_error_line(capsys.readouterr().err) == (
        "cellpipe: error: --secret: 'just-a-name' is not SECRET:KEY:ENV. E.g. --secret "
        "s3-creds:access-key:AWS_ACCESS_KEY_ID (the value stays in the Secret)"
    )
    assert await cli(call, *base, "--env", "NOVALUE") == 1
    assert "--env: 'NOVALUE' is not KEY=VALUE" in capsys.readouterr().err
    assert await cli(call, *base, "-p", "epochs=many") == 1
    assert "parameter 'epochs' (-p): 'many' is not a valid int" in capsys.readouterr().err
    assert snapshots() == []  # nothing uploaded for a bad option


async def test_wait_follows_the_job(
    kmock: Any, kubeconfig: str, notebook: str, call: Callable, capsys: pytest.CaptureFixture, data_dir: Path
) -> None:
    argv = ["submit", notebook, "--store", STORE, "--image", IMAGE, "--kubeconfig", kubeconfig,
            "--name", "train-w", "--wait", "--poll", "0.05", "--no-track"]  # fmt: skip
    waiting = asyncio.ensure_future(cli(call, *argv))
    # the CLI snapshots first, then creates the Job
    await eventually(
        lambda: exists(kmock, "batch/v1/jobs", "train-w"), timeout=10, interval=0.02, what="the Job"
    )
    # kmock runs no Job controller: play its part
    failed = job_failed("Job has reached the specified backoff limit", reason="BackoffLimitExceeded")
    await call(set_job_status, str(kmock.url), NS, "train-w", failed)
    assert await asyncio.wait_for(waiting, 30) == 1
    captured = capsys.readouterr()
    run_id = captured.out.split("run id    ", 1)[1].split()[0]
    assert "job train-w: failed" in captured.err
    assert captured.err.strip().splitlines()[-1] == (
        f"cellpipe: error: run {run_id} failed: job train-w failed: Job has reached the specified backoff limit. "
        "See kubectl logs -n team-a job/train-w"
    )
    assert await cli(call, "runs", "show", run_id, "--json") == 0  # the run's record says the same
    record = json.loads(capsys.readouterr().out)
    assert record["status"] == "failed" and record["handle"]["name"] == "train-w"


async def test_ctrl_c_stops_waiting_not_the_job(
    kmock: Any, kubeconfig: str, notebook: str, call: Callable, capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    async def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("jupyter_ext.services.runs.RunService.follow", interrupted)
    argv = ["submit", notebook, "--store", STORE, "--image", IMAGE, "--kubeconfig", kubeconfig, "--name", "t-1",
            "--wait"]  # fmt: skip
    assert await cli(call, *argv) == 130
    captured = capsys.readouterr()
    run_id = captured.out.split("run id    ", 1)[1].split()[0]
    assert captured.err.strip() == (
        f"stopped waiting; job t-1 keeps running (cellpipe runs cancel {run_id} stops it)"
    )
    assert exists(kmock, "batch/v1/jobs", "t-1")
    assert not list(kmock["delete"])


async def test_wait_gives_up_after_the_timeout_and_leaves_the_job(
    kmock: Any, kubeconfig: str, notebook: str, call: Callable, capsys: pytest.CaptureFixture
) -> None:
    argv = ["submit", notebook, "--store", STORE, "--image", IMAGE, "--kubeconfig", kubeconfig, "--name", "t-2",
            "--wait", "--wait-timeout", "0.5", "--poll", "0.05"]  # fmt: skip
    assert await cli(call, *argv) == 1
    captured = capsys.readouterr()
    run_id = captured.out.split("run id    ", 1)[1].split()[0]
    assert captured.err.strip().splitlines()[-1] == (
        f"cellpipe: error: job t-2 is still running after 0s; it keeps running (cellpipe runs show {run_id})"
    )
    assert exists(kmock, "batch/v1/jobs", "t-2") and not list(kmock["delete"])


# -- schedule -----------------------------------------------------------------------------------------
def cronjob_of(kmock: Any, name: str) -> dict[str, Any]:
    """The CronJob as the API serves it (plain JSON, what kubectl would see)."""
    api = client.ApiClient(client.Configuration(host=str(kmock.url).rstrip("/")))
    try:
        raw = client.BatchV1Api(api).read_namespaced_cron_job(name, NS, _preload_content=False)
        return json.loads(raw.data)
    finally:
        api.close()


async def test_schedule_job_create_list_pause_replace_delete(
    kmock: Any, kubeconfig: str, notebook: str, data_dir: Path, call: Callable, capsys: pytest.CaptureFixture
) -> None:
    code = await cli(call, "schedule", notebook, "--cron", "0 3 * * *", "--target", "job", "--name", "nightly",
                     "--store", STORE, "--image", IMAGE, "--kubeconfig", kubeconfig, "-p", "epochs=5",
                     "--timezone", "Europe/Berlin")  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    (post,) = list(kmock["post"])
    cronjob = post.data
    assert exists(kmock, "batch/v1/cronjobs", "nightly")
    assert cronjob["spec"]["schedule"] == "0 3 * * *" and cronjob["spec"]["timeZone"] == "Europe/Berlin"
    template = cronjob["spec"]["jobTemplate"]
    args = template["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-4:] == ["-p", "epochs=5", "-p", 'label="base"'] and "--run-id" not in args
    assert template["metadata"]["labels"]["cellpipe.io/schedule"] == "nightly"
    kubernetes_validate.validate(cronjob, "1.28", strict=True)
    assert "schedule nightly (s" in out and "created: " in out
    assert "At 03:00 (Europe/Berlin)" in out and "cronjob   nightly in namespace team-a" in out
    assert "keeps running when the Jupyter server is culled" in out

    assert await cli(call, "schedules", "list") == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:6] == ["ID", "NAME", "TARGET", "CRON", "TZ", "STATE"]
    assert listing[1].split()[1:3] == ["nightly", "job"] and "active" in listing[1]

    assert await cli(call, "schedules", "pause", "nightly") == 0
    assert "schedule nightly" in capsys.readouterr().out
    paused = await call(cronjob_of, kmock, "nightly")
    assert paused["spec"]["suspend"] is True
    kubernetes_validate.validate(paused, "1.30", strict=True)
    assert await cli(call, "schedules", "show", "nightly", "--json") == 0
    view = json.loads(capsys.readouterr().out)
    assert view["enabled"] is False and view["cluster_status"]["suspend"] is True
    assert view["survives_server_cull"] is True and view["next_fire_times"] == []
    assert await cli(call, "schedules", "resume", "nightly") == 0
    assert (await call(cronjob_of, kmock, "nightly"))["spec"]["suspend"] is False
    capsys.readouterr()

    # kmock's emulator has no PUT; answer it like the API server would (with the object sent)
    kmock["put /apis/batch/v1/namespaces/team-a/cronjobs/nightly"] << (lambda request: request.data)
    edited = Path(notebook).read_text().replace("sum(xs)", "sum(xs) + 1")
    Path(notebook).write_text(edited)  # the notebook changed since: the new CronJob runs a new snapshot
    code = await cli(call, "schedule", notebook, "--cron", "30 4 * * *", "--target", "job", "--name", "nightly",
                     "--store", STORE, "--image", IMAGE, "--kubeconfig", kubeconfig)  # fmt: skip
    assert code == 0 and "replaced" in capsys.readouterr().out
    (put,) = list(kmock["put"])
    assert put.data["spec"]["schedule"] == "30 4 * * *"
    assert exists(kmock, "batch/v1/cronjobs", "nightly") and not list(kmock["delete"])  # updated, not deleted
    assert len(snapshots()) == 2
    kubernetes_validate.validate(put.data, "1.30", strict=True)
    assert await cli(call, "schedules", "list", "--json") == 0
    (only,) = json.loads(capsys.readouterr().out)["schedules"]  # replaced, not a second schedule
    assert only["cron"] == "30 4 * * *" and only["timezone"] == "UTC"

    assert await cli(call, "schedules", "delete", "nightly") == 0
    assert "and its CronJob" in capsys.readouterr().out
    assert not exists(kmock, "batch/v1/cronjobs", "nightly")
    assert await cli(call, "schedules", "list") == 0
    assert capsys.readouterr().out.startswith("no schedules in ")


async def test_invalid_cron_or_timezone_is_reported_before_credentials_are_needed(
    notebook: str, data_dir: Path, call: Callable, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-kubeconfig")
    base = [
        "schedule",
        notebook,
        "--target",
        "job",
        "--store",
        STORE,
        "--image",
        IMAGE,
        "--kubeconfig",
        missing,
    ]
    assert await cli(call, *base, "--cron", "0 3 * * 8") == 1
    assert one_error_line(capsys.readouterr().err) == (
        "cellpipe: error: --cron: invalid cron '0 3 * * 8': field 5 (day of week) must be 0-6, got 8"
    )
    assert await cli(call, *base, "--cron", "0 3 * * *", "--timezone", "Mars/Olympus") == 1
    assert one_error_line(capsys.readouterr().err).startswith(
        "cellpipe: error: --timezone: unknown time zone 'Mars/Olympus'"
    )
    assert await cli(call, *base, "--cron", "@daily", "--name", "Nightly Train") == 1
    assert one_error_line(capsys.readouterr().err).startswith(
        "cellpipe: error: --name: invalid schedule name 'Nightly Train': it has uppercase letters."
    )
    assert snapshots() == [] and not data_dir.exists()


async def test_schedule_needs_a_cron(notebook: str, call: Callable, capsys: pytest.CaptureFixture) -> None:
    assert await cli(call, "schedule", notebook, "--store", STORE) == 1
    assert one_error_line(capsys.readouterr().err) == (
        'cellpipe: error: --cron: no schedule. Pass --cron EXPR, e.g. --cron "0 3 * * *" (daily at 03:00)'
    )


# -- export -------------------------------------------------------------------------------------------
async def test_export_writes_valid_yaml_without_contacting_the_cluster(
    dead_kubeconfig: str, notebook: str, tmp_path: Path, call: Callable, capsys: pytest.CaptureFixture
) -> None:
    out_dir = tmp_path / "deploy"
    code = await cli(call, "export", notebook, "--target", "job", "-o", str(out_dir), "--cron", "0 3 * * *",
                     "--name", "train", "--store", STORE, "--image", IMAGE, "--kubeconfig", dead_kubeconfig,
                     "-p", "epochs=7")  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out_dir.iterdir()) == ["train.cronjob.yaml", "train.job.yaml"]
    (snapshot_id,) = snapshots()
    for path in out_dir.iterdir():
        text = path.read_text()
        assert text.startswith(f"# cellpipe export of {notebook}: snapshot {snapshot_id} in {STORE}\n")
        manifest = yaml.safe_load(text)
        for version in ("1.28", "1.34"):
            kubernetes_validate.validate(manifest, version, strict=True)
        assert manifest["metadata"]["namespace"] == NS  # from the kubeconfig context, read locally
    job = yaml.safe_load((out_dir / "train.job.yaml").read_text())
    assert job_args(job)[-6:] == ["--run-id", "train", "-p", "epochs=7", "-p", 'label="base"']
    assert "wrote" in capsys.readouterr().out


async def test_export_format_k8s_is_a_deprecated_alias_of_target_job(
    notebook: str, tmp_path: Path, call: Callable, capsys: pytest.CaptureFixture
) -> None:
    out_dir = tmp_path / "deploy"
    code = await cli(call, "export", notebook, "--format", "k8s", "-o", str(out_dir), "--name", "train",
                     "--namespace", NS, "--store", STORE, "--image", IMAGE)  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert one_error_line(captured.err) == "cellpipe: warning: --format k8s is deprecated; use --target job"
    (path,) = out_dir.iterdir()
    assert path.name == "train.job.yaml"
    kubernetes_validate.validate(yaml.safe_load(path.read_text()), "1.34", strict=True)


@pytest.mark.parametrize(
    "command, listing",
    [
        ("submit", "targets:"),
        ("schedule", "targets:"),
        ("export", "targets (the same names as submit and schedule):"),
    ],
)
def test_help_teaches_with_examples(command: str, listing: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and f"  cellpipe {command} " in text and listing in text
    assert "kfp" in text and "not available yet" not in text  # tests/targets/kfp/test_cli_kfp.py covers it
