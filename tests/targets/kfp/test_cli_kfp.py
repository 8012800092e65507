"""``cellpipe submit/schedule/export --target kfp`` and ``cellpipe kfp``, end to end.

The CLI runs in-process (``main([...])``) with the real KFP compiler and ``kfp.Client`` against the loopback
KFP server (``kfp_server`` in conftest.py). The snapshot store is a fake remote (``fakes3://``, an in-memory
fsspec filesystem registered for the test), as in the Kubernetes CLI tests: cluster targets refuse local
stores.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from jupyter_ext.cli.main import main
from jupyter_ext.snapshot import SnapshotStore
from jupyter_ext.targets.kfp.connect import HEALTHZ
from tests.support.loopback import free_port

if TYPE_CHECKING:
    from conftest import FakeKFP  # tests/targets/kfp/conftest.py

STORE = "fakes3://ml-bucket/cellpipe"  # = FAKE_STORE in tests/targets/conftest.py
IMAGE = "ghcr.io/acme/cellpipe-runtime:1.0"
TOKEN = "t0k-from-a-file"
API = "/apis/v2beta1"


@pytest.fixture(autouse=True)
def isolated(fake_remote_store: str) -> None:
    """Every test gets the in-memory "remote" store (tests/targets/conftest.py) and a clean environment."""


CELLS = [
    (["parameters"], "epochs = 3\nrate = 0.5\nlabel = 'base'"),
    (["step:load", "secret:s3-creds:access-key:AWS_ACCESS_KEY_ID"], "xs = list(range(epochs))"),
    (["step:train", "limit:cpu:2"], "total = sum(xs) * rate"),
]


@pytest.fixture
def notebook(write_notebook: Callable[..., Path]) -> str:
    return str(write_notebook(CELLS, name="train.ipynb"))


@pytest.fixture
def token_file(tmp_path: Path) -> str:
    path = tmp_path / "kfp-token"
    path.write_text(TOKEN + "\n")
    return str(path)


def snapshots() -> list[str]:
    return SnapshotStore.open(STORE).ids()


def one_error_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def submit_args(notebook: str, fake: FakeKFP, token_file: str, *extra: str) -> list[str]:
    return ["submit", notebook, "--target", "kfp", "--host", fake.url, "--token-file", token_file,
            "--store", STORE, "--image", IMAGE, *extra]  # fmt: skip


def api_calls(fake: FakeKFP) -> list[Any]:
    """The requests after connect's health checks (which come first), all with the token; clears the record."""
    requests = fake.take()
    assert requests[0].path == HEALTHZ
    assert {r.authorization for r in requests} == {f"Bearer {TOKEN}"}  # --token-file
    return [r for r in requests if r.path != HEALTHZ]


def package_of(upload: Any) -> tuple[dict, dict]:
    """The uploaded package: its pipeline spec and its Kubernetes executors."""
    (_, data), *_ = upload.files.values()
    spec, platform = yaml.safe_load_all(data.decode())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def parameter_defaults(spec: dict) -> dict[str, Any]:
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    return {name: p.get("defaultValue") for name, p in parameters.items()}


# -- submit -------------------------------------------------------------------------------------------
def test_submit_uploads_runs_and_prints_the_url(
    kfp_server: FakeKFP, notebook: str, token_file: str, capsys: pytest.CaptureFixture
) -> None:
    argv = submit_args(notebook, kfp_server, token_file, "-p", "epochs=20", "--experiment", "nightly")
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    (snapshot_id,) = snapshots()
    requests = api_calls(kfp_server)
    assert [(r.method, r.path) for r in requests] == [
        ("GET", f"{API}/experiments"),
        ("POST", f"{API}/experiments"),
        ("GET", f"{API}/pipelines"),
        ("POST", f"{API}/pipelines/upload"),
        ("GET", f"{API}/pipelines/p-2/versions"),
        ("POST", f"{API}/runs"),
    ]
    assert requests[1].body == {"display_name": "nightly"}
    upload, run = requests[3], requests[5]
    assert upload.query["name"] == "train" and next(iter(upload.files.values()))[0] == "train.yaml"
    spec, executors = package_of(upload)
    run_id = run.body["description"].split("cellpipe run ", 1)[1].split(";")[0]
    # compiled for the uploaded snapshot (not the placeholder of the dry compile), labelled for the run
    assert parameter_defaults(spec)["cellpipe_snapshot_id"] == snapshot_id
    assert parameter_defaults(spec)["epochs"] == 20
    labels = executors["exec-train"]["podMetadata"]["labels"]
    assert labels["cellpipe.io/run-id"] == run_id and labels["cellpipe.io/owner"] == "alice-example.com"
    assert labels["cellpipe.io/snapshot-id"] == snapshot_id[:12]
    assert executors["exec-load"]["secretAsEnv"][0]["secretName"] == "s3-creds"
    assert run.body["runtime_config"] == {
        "parameters": {
            "epochs": 20,
            "rate": 0.5,
            "label": "base",
            "cellpipe_snapshot_id": snapshot_id,
            "cellpipe_store": STORE,
        }
    }
    assert run.body["display_name"] == f"train {run_id}"
    assert run.body["pipeline_version_reference"] == {"pipeline_id": "p-2", "pipeline_version_id": "v-3"}
    assert "KFP run r-4 created (pipeline 'train', version 'train', experiment 'nightly')" in out
    assert f"  url       {kfp_server.url}/#/runs/details/r-4" in out
    assert f"snapshot  {snapshot_id[:12]} in {STORE}" in out and "cellpipe kfp status r-4" in out
    assert TOKEN not in out

    # the second submission: a new version of the same pipeline, in the Default experiment
    assert main(submit_args(notebook, kfp_server, token_file, "--name", "retry")) == 0
    requests = api_calls(kfp_server)
    assert [(r.method, r.path) for r in requests] == [
        ("GET", f"{API}/experiments"),
        ("POST", f"{API}/experiments"),
        ("GET", f"{API}/pipelines"),
        ("POST", f"{API}/pipelines/upload_version"),
        ("POST", f"{API}/runs"),
    ]
    assert requests[1].body == {"display_name": "Default"}
    assert requests[3].query["pipelineid"] == "p-2"
    assert requests[4].body["display_name"] == "retry"
    assert requests[4].body["runtime_config"]["parameters"]["epochs"] == 3
    assert len(kfp_server.pipelines) == 1 and "KFP run r-7 created" in capsys.readouterr().out


def test_submit_wait_prints_each_change(
    kfp_server: FakeKFP, notebook: str, token_file: str, capsys: pytest.CaptureFixture, data_dir: Path
) -> None:
    kfp_server.on_get["r-4"] = [  # ids are handed out in order: e-1, p-2, v-3, then the run
        lambda run: None,
        lambda run: run.start().step("load", "Running"),
        lambda run: run.step("load", "Succeeded").step("train", "Running"),
        lambda run: run.step("train", "Failed").finish("Failed"),
    ]
    code = main(submit_args(notebook, kfp_server, token_file, "--wait", "--poll", "0", "--no-track"))
    captured = capsys.readouterr()
    run_id = captured.out.split("run id    ", 1)[1].split()[0]
    assert code == 1
    assert captured.err.strip().splitlines() == [
        "KFP run r-4: running",
        "  step load: running",
        "  step load: succeeded",
        "  step train: running",
        "KFP run r-4: failed",
        "  step train: failed",
        f"cellpipe: error: run {run_id} failed: KFP run r-4 failed: step train failed. See cellpipe kfp logs r-4",
    ]  # steps by their notebook names: no driver, DAG or `executor` rows
    assert main(["runs", "show", run_id, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["status"] == "failed" and record["handle"]["run_id"] == "r-4"
    assert [s["status"] for s in record["steps"]] == ["succeeded", "failed"]


def test_ctrl_c_stops_waiting_not_the_run(
    kfp_server: FakeKFP, notebook: str, token_file: str, capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    async def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("jupyter_ext.services.runs.RunService.follow", interrupted)
    assert main(submit_args(notebook, kfp_server, token_file, "--wait")) == 130
    captured = capsys.readouterr()
    run_id = captured.out.split("run id    ", 1)[1].split()[0]
    assert captured.err.strip() == (
        f"stopped waiting; KFP run r-4 keeps running (cellpipe runs cancel {run_id} stops it)"
    )
    assert not any(path.endswith(":terminate") for _, path in kfp_server.paths())


# -- schedule and export ------------------------------------------------------------------------------
def test_schedule_creates_pauses_replaces_and_deletes_a_recurring_run(
    kfp_server: FakeKFP,
    write_notebook: Callable[..., Path],
    token_file: str,
    data_dir: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    metadata = {"kubeflow_notebook": {"experiment_name": "train-exp"}}
    notebook = str(write_notebook(CELLS, metadata, name="train.ipynb"))
    code = main(["schedule", notebook, "--target", "kfp", "--cron", "30 2 * * 1-5", "--name", "nightly",
                 "--host", kfp_server.url, "--token-file", token_file, "--store", STORE, "-p", "rate=2"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    (snapshot_id,) = snapshots()
    requests = api_calls(kfp_server)
    assert requests[1].body == {"display_name": "train-exp"}  # the notebook's experiment
    spec, executors = package_of(requests[3])
    assert "cellpipe.io/run-id" not in executors["exec-load"]["podMetadata"]["labels"]  # each run is its own
    assert executors["exec-load"]["podMetadata"]["labels"]["cellpipe.io/snapshot-id"] == snapshot_id[:12]
    body = requests[-1].body
    assert requests[-1].path == f"{API}/recurringruns"
    assert body["display_name"] == "nightly"
    assert body["trigger"] == {"cron_schedule": {"cron": "0 30 2 * * 1-5"}}  # KFP's 6 fields
    assert body["runtime_config"]["parameters"] == {
        "epochs": 3,
        "rate": 2.0,
        "label": "base",
        "cellpipe_snapshot_id": snapshot_id,
        "cellpipe_store": STORE,
    }
    assert "schedule nightly (s" in out and "created" in out and "[30 2 * * 1-5]" in out
    assert f"recurring run rr-4  {kfp_server.url}/#/recurringrun/details/rr-4" in out
    assert "note: no --image: steps run in cellpipe/runtime:" in out
    assert "keeps running when the Jupyter server is culled" in out

    credentials = ["--token-file", token_file]
    assert main(["schedules", "pause", "nightly", *credentials]) == 0
    assert kfp_server.recurring_runs[0]["status"] == "DISABLED"
    assert main(["schedules", "resume", "nightly", *credentials]) == 0
    assert kfp_server.recurring_runs[0]["status"] == "ENABLED"
    assert [r.authorization for r in kfp_server.take() if r.path != HEALTHZ] == [f"Bearer {TOKEN}"] * 2

    # the same notebook and name again: a new recurring run replaces the old one, not a second one
    code = main(["schedule", notebook, "--target", "kfp", "--cron", "@daily", "--name", "nightly",
                 "--host", kfp_server.url, "--token-file", token_file, "--store", STORE])  # fmt: skip
    assert code == 0 and "replaced" in capsys.readouterr().out
    (recurring,) = kfp_server.recurring_runs
    assert (
        recurring["display_name"] == "nightly" and recurring["trigger"]["cron_schedule"]["cron"] == "@daily"
    )
    assert main(["schedules", "list", "--json"]) == 0
    (only,) = json.loads(capsys.readouterr().out)["schedules"]
    assert only["cluster"]["recurring_run_id"] == recurring["recurring_run_id"] and only["cron"] == "@daily"

    assert main(["schedules", "delete", "nightly", *credentials]) == 0
    assert "and its KFP recurring run" in capsys.readouterr().out
    assert kfp_server.recurring_runs == []


def test_export_writes_the_package(notebook: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """No KFP contact: export takes no --host."""
    from kfp import components

    out_dir = tmp_path / "deploy"
    code = main(["export", notebook, "--target", "kfp", "-o", str(out_dir), "--store", STORE,
                 "--image", IMAGE, "-p", "epochs=7"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert [p.name for p in out_dir.iterdir()] == ["train.kfp.yaml"]
    (snapshot_id,) = snapshots()
    path = out_dir / "train.kfp.yaml"
    text = path.read_text()
    assert text.startswith(f"# cellpipe export of {notebook}: snapshot {snapshot_id} in {STORE}\n")
    spec, platform = yaml.safe_load_all(text)
    assert parameter_defaults(spec)["cellpipe_snapshot_id"] == snapshot_id
    assert parameter_defaults(spec)["epochs"] == 7
    labels = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-load"]["podMetadata"]
    assert "cellpipe.io/run-id" not in labels["labels"]
    assert components.load_component_from_file(str(path)).name == "train"  # KFP reads it back
    assert f"wrote {path}" in capsys.readouterr().out


# -- cellpipe kfp status / logs / cancel ------------------------------------------------------------------
@pytest.fixture
def run_elsewhere(kfp_server: FakeKFP, notebook: str, tmp_path: Path) -> Any:
    """Run r-9 of the notebook's package, started in the KFP UI: load succeeded, train failed."""
    from jupyter_ext.pipeline.build import build_pipeline
    from jupyter_ext.targets.kfp.compile import compile_pipeline

    package = compile_pipeline(build_pipeline(notebook), tmp_path / "train.yaml")
    spec, platform = yaml.safe_load_all(package.read_text())
    run = kfp_server.add_run("r-9", spec, platform, display_name="train x")
    return run.start().step("load", "Succeeded").step("train", "Failed").finish("Failed")


def test_status_logs_and_cancel(
    kfp_server: FakeKFP, run_elsewhere: Any, capsys: pytest.CaptureFixture
) -> None:
    run = run_elsewhere
    kfp_server.logs = {run.pod("load"): "loaded 3\n", run.pod("train"): "Killed"}
    connection = ["--host", kfp_server.url]

    assert main(["kfp", "status", "r-9", *connection]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "KFP run r-9 (train x): failed: step train failed"
    assert out[1].startswith("  load   SUCCEEDED  ") and out[1].endswith("s")
    assert out[2].startswith("  train  FAILED  ")
    assert out[3].startswith("  note: which cell of train failed is in its pod's termination message")
    assert len(out) == 4

    assert main(["kfp", "logs", "r-9", "--task", "train", *connection]) == 0
    assert capsys.readouterr().out == f"==> step train: pod {run.pod('train')} (from KFP API) <==\nKilled\n"
    assert main(["kfp", "cancel", "r-9", *connection]) == 1  # KFP refuses: the run has ended
    assert "Failed to terminate a run r-9" in capsys.readouterr().err
    assert ("POST", f"{API}/runs/r-9:terminate") in kfp_server.paths()
    assert kfp_server.requests[0].authorization is None  # no credentials anywhere: none sent

    assert main(["kfp", "status", "nope", *connection]) == 1
    assert one_error_line(capsys.readouterr().err) == (
        "cellpipe: error: KFP: reading run nope failed: KFP answered 404 (run nope not found)"
    )


async def test_status_and_logs_with_cluster_credentials(
    kfp_server: FakeKFP, run_elsewhere: Any, kmock: Any, kfp_pod: Callable, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
) -> None:  # fmt: skip
    """The user's kubeconfig (as kubectl finds it) reads the pods: the failing cell, and the log."""
    from jupyter_ext.runtime.termination import step_error_message

    run = run_elsewhere
    kmock.resources["v1/pods"] = {}
    message = step_error_message("train", "NameError: name 'xs' is not defined", cell=3, ename="NameError",
                                 evalue="name 'xs' is not defined")  # fmt: skip
    for pod in run.pods:
        options = {"message": message} if pod == run.pod("train") else {}
        kmock.objects["v1/pods", "kubeflow", pod] = kfp_pod(run, pod, "kubeflow", **options)
    kmock[f"get /api/v1/namespaces/kubeflow/pods/{run.pod('train')}/log"] << b"NameError: name 'xs'\n"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: kind\n"
        "contexts: [{name: kind, context: {cluster: c, user: u}}]\n"
        f"clusters: [{{name: c, cluster: {{server: '{str(kmock.url).rstrip('/')}'}}}}]\n"
        "users: [{name: u, user: {token: cluster-token}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    connection = ["--host", kfp_server.url]

    assert await asyncio.to_thread(main, ["kfp", "status", "r-9", *connection]) == 0
    out = capsys.readouterr().out.splitlines()
    error = "cell 3: NameError: name 'xs' is not defined"
    assert out[0] == f"KFP run r-9 (train x): failed: step train failed: {error}"
    assert out[2].endswith(f"pod {run.pod('train')}  error: {error}")
    assert len(out) == 3  # no note: nothing is missing
    assert await asyncio.to_thread(main, ["kfp", "logs", "r-9", "--task", "train", *connection]) == 0
    assert capsys.readouterr().out == (
        f"==> step train: pod {run.pod('train')} (from kubernetes) <==\nNameError: name 'xs'\n"
    )
    listings = list(kmock["get /api/v1/namespaces/kubeflow/pods"])  # status, then logs
    assert [r.headers["Authorization"] for r in listings] == ["Bearer cluster-token"] * 2  # not sent to KFP
    assert {r.authorization for r in kfp_server.requests} == {None}


# -- mistakes -----------------------------------------------------------------------------------------
def test_unknown_target_lists_the_targets(notebook: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["schedule", notebook, "--target", "airflow", "--cron", "@daily"]) == 1
    assert one_error_line(capsys.readouterr().err) == (
        "cellpipe: error: --target: unknown target 'airflow'. Use one of: local, job, kfp"
    )


def test_no_host_uploads_nothing(notebook: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["submit", notebook, "--target", "kfp", "--store", STORE]) == 1
    assert one_error_line(capsys.readouterr().err).startswith(
        "cellpipe: error: --host: no KFP host: pass --host or set KF_PIPELINES_ENDPOINT/CELLPIPE_KFP_HOST. "
    )
    assert snapshots() == []


def test_unreachable_host_uploads_nothing(notebook: str, capsys: pytest.CaptureFixture) -> None:
    port = free_port()
    secret = "do-not-print-me"
    code = main(["submit", notebook, "--target", "kfp", "--host", f"http://127.0.0.1:{port}", "--token", secret,
                 "--store", STORE])  # fmt: skip
    assert code == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"cellpipe: error: --host: cannot reach KFP at http://127.0.0.1:{port} (")
    assert secret not in line
    assert snapshots() == []


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 3 * * 8", "--cron: invalid cron '0 3 * * 8': field 5 (day of week) must be 0-6, got 8"),
        ("0 0 3 * * *", "--cron: invalid cron '0 0 3 * * *': expected 5 fields, got 6"),
    ],
)
def test_invalid_cron_shows_the_field(
    kfp_server: FakeKFP, notebook: str, cron: str, message: str, capsys: pytest.CaptureFixture
) -> None:
    code = main(["schedule", notebook, "--target", "kfp", "--cron", cron, "--host", kfp_server.url,
                 "--store", STORE])  # fmt: skip
    assert code == 1
    assert one_error_line(capsys.readouterr().err).startswith(f"cellpipe: error: {message}")
    assert snapshots() == [] and kfp_server.requests == []


def test_local_store_is_refused(
    kfp_server: FakeKFP, notebook: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    store = tmp_path / "store"
    assert main(["submit", notebook, "--target", "kfp", "--host", kfp_server.url, "--store", str(store)]) == 1
    assert one_error_line(capsys.readouterr().err).startswith(
        f"cellpipe: error: --store: snapshot store '{store}' is on this machine; pods on the cluster cannot read it"
    )
    assert not store.exists() and kfp_server.requests == []


def test_kfp_failure_after_the_upload_names_the_snapshot(
    kfp_server: FakeKFP, notebook: str, token_file: str, capsys: pytest.CaptureFixture
) -> None:
    kfp_server.fail("POST", f"{API}/runs", 500, "database is locked")
    assert main(submit_args(notebook, kfp_server, token_file)) == 1
    line = one_error_line(capsys.readouterr().err)
    (snapshot_id,) = snapshots()
    assert line == (
        "cellpipe: error: KFP: creating a run of pipeline 'train' failed: KFP answered 500 (database is locked); "
        "already created: pipeline 'train' (id p-2), pipeline version 'train' (id v-3) (no KFP run was created; "
        f"snapshot {snapshot_id[:12]} was uploaded to {STORE} and stays there, a retry uploads no file twice). "
        "They stay in KFP (see or delete them in the KFP UI); the KFP API server failed; its log says why "
        "(kubectl logs -n kubeflow deploy/ml-pipeline)"
    )
    assert TOKEN not in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "--deadline", "60"], "--deadline: applies to Kubernetes Jobs only. Drop it for kfp"),
        (["submit", "--retries", "2"], "--retries: applies to Kubernetes Jobs only"),
        (["export", "-o", "out", "--ttl", "60"], "--ttl: applies to Kubernetes Jobs only"),
        (["schedule", "--cron", "@daily", "--timezone", "Europe/Berlin"],
         "--timezone: KFP recurring runs have no time zone setting (got 'Europe/Berlin'). Write the cron in UTC, "
         "or use --target job (a CronJob has a time zone)"),
        (["export", "-o", "out", "--cron", "@daily"],
         "--cron: a KFP package has no schedule. Create a KFP recurring run with: cellpipe schedule NOTEBOOK "
         "--target kfp --cron EXPR"),
    ],
)  # fmt: skip
def test_options_kfp_cannot_honour(
    kfp_server: FakeKFP, notebook: str, argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    command, *options = argv
    target = ["--target", "kfp"]
    connection = [] if command == "export" else ["--host", kfp_server.url]
    assert main([command, notebook, *target, *connection, "--store", STORE, *options]) == 1
    assert one_error_line(capsys.readouterr().err).startswith(f"cellpipe: error: {message}")
    assert snapshots() == [] and kfp_server.requests == []


def test_plain_notebook_is_refused(
    kfp_server: FakeKFP, write_notebook: Callable[..., Path], capsys: pytest.CaptureFixture
) -> None:
    plain = str(write_notebook([(["parameters"], "n = 1"), ([], "print(n)")], name="report.ipynb"))
    assert main(["submit", plain, "--target", "kfp", "--host", kfp_server.url, "--store", STORE]) == 1
    assert one_error_line(capsys.readouterr().err) == (
        f"cellpipe: error: {plain}: target: the notebook has no step: tags; Kubeflow Pipelines runs a notebook as a "
        "pipeline of steps. Tag its cells step:NAME, or run it whole with papermill on Kubernetes (target job)"
    )
    assert snapshots() == [] and kfp_server.requests == []


def test_help_documents_the_kfp_options(capsys: pytest.CaptureFixture) -> None:
    for command in ("submit", "schedule", "kfp"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())  # however argparse wrapped it
        assert "--host URL" in text and "--token-file PATH" in text and "prefer --token-file" in text
        assert "examples:" in text and "not available yet" not in text
