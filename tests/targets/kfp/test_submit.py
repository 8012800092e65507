"""Submitting to KFP with the real ``kfp.Client`` against a loopback server that speaks the v2beta1 REST API.

The server (``kfp_server`` in conftest.py) keeps pipelines, versions, experiments and runs in memory,
records every request and can be told to fail a route. Nothing inside this process is mocked: the requests
asserted here are the ones ``kfp_server_api`` puts on the wire.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jupyter_ext.errors import TargetError
from jupyter_ext.targets.kfp.connect import HEALTHZ
from jupyter_ext.targets.kfp.submit import (
    KfpRunStatus,
    cancel_run,
    connect,
    kfp_cron,
    run_status,
    schedule_recurring,
    submit_run,
    wait_for_run,
)
from tests.support.loopback import free_port

if TYPE_CHECKING:
    from conftest import FakeKFP  # tests/targets/kfp/conftest.py

SNAPSHOT = "cd34" * 16
STORE = "s3://ml-bucket/cellpipe"
RUN_ID = "20260101-120000-abc123"
TOKEN = "t0k-secret-value"
API = "/apis/v2beta1"


@pytest.fixture(scope="module")
def package(kale_package: Callable[..., Path]) -> Path:
    return kale_package(snapshot_id=SNAPSHOT, store=STORE, run_id=RUN_ID)


def connected(fake: FakeKFP, **options: Any) -> Any:
    """A client with the explicit token; the requests connect made are dropped."""
    client = connect(fake.url, token=TOKEN, **options)
    fake.take()
    return client


# -- submit ---------------------------------------------------------------------------------------------
def test_connect_checks_health_with_the_token(kfp_server: FakeKFP) -> None:
    from kfp.client import Client

    context_file = Path(Client._LOCAL_KFP_CONTEXT)
    existed = context_file.exists()
    client = connect(kfp_server.url, token=TOKEN)
    first = kfp_server.requests[0]
    assert (first.method, first.path, first.authorization) == ("GET", HEALTHZ, f"Bearer {TOKEN}")
    assert {r.path for r in kfp_server.requests} == {HEALTHZ}  # nothing but health checks so far
    assert client.get_user_namespace() == ""  # single-user KFP: no namespace is sent
    assert context_file.exists() == existed  # connect leaves the user's KFP context file alone


def test_submit_uploads_the_pipeline_then_new_versions(
    kfp_server: FakeKFP, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = connected(kfp_server)
    options = {
        "experiment": "kale",
        "parameters": {"radius": 3},
        "snapshot_id": SNAPSHOT,
        "store": STORE,
        "notebook": "notebooks/kale_legacy.ipynb",
    }
    first = submit_run(client, package, run_id=RUN_ID, **options)

    requests = kfp_server.take()
    assert [(r.method, r.path) for r in requests] == [
        ("GET", f"{API}/experiments"),
        ("POST", f"{API}/experiments"),
        ("GET", f"{API}/pipelines"),
        ("POST", f"{API}/pipelines/upload"),
        ("GET", f"{API}/pipelines/p-2/versions"),
        ("POST", f"{API}/runs"),
    ]
    assert all(r.authorization == f"Bearer {TOKEN}" for r in requests)
    lookup, create_experiment, find, upload, versions, create_run = requests
    assert json.loads(lookup.query["filter"]) == {
        "predicates": [{"operation": 1, "key": "display_name", "stringValue": "kale"}]
    }
    assert "namespace" not in lookup.query  # single-user
    assert create_experiment.body == {"display_name": "kale"}
    assert json.loads(find.query["filter"])["predicates"][0]["stringValue"] == "kale-circle"
    # the compiled YAML, byte for byte, as a multipart upload under the package's pipeline name
    assert upload.files == {"uploadfile": ("kale.yaml", package.read_bytes())}
    assert upload.query["name"] == "kale-circle"
    assert SNAPSHOT in upload.query["description"] and RUN_ID in upload.query["description"]
    assert versions.query == {"page_size": "1", "sort_by": "created_at desc"}
    assert create_run.body == {
        "experiment_id": "e-1",
        "display_name": f"kale-circle {RUN_ID}",
        "description": f"cellpipe run {RUN_ID}; snapshot {SNAPSHOT} in {STORE}; notebook notebooks/kale_legacy.ipynb",
        "pipeline_version_reference": {"pipeline_id": "p-2", "pipeline_version_id": "v-3"},
        # typed: the float parameter goes as 3.0; the snapshot travels as run parameters
        "runtime_config": {
            "parameters": {"radius": 3.0, "cellpipe_snapshot_id": SNAPSHOT, "cellpipe_store": STORE}
        },
    }
    assert (first.pipeline_id, first.version_id, first.experiment_id, first.run_id) == (
        "p-2",
        "v-3",
        "e-1",
        "r-4",
    )
    assert first.created_pipeline and first.version_name == "kale-circle"
    assert first.url == f"{kfp_server.url}/#/runs/details/r-4"

    second = submit_run(client, package, run_id="20260102-090000-def456", **options)
    requests = kfp_server.take()
    assert [(r.method, r.path) for r in requests] == [
        ("GET", f"{API}/experiments"),  # found: not created again
        ("GET", f"{API}/pipelines"),  # found: a new version, not a new pipeline
        ("POST", f"{API}/pipelines/upload_version"),
        ("POST", f"{API}/runs"),
    ]
    upload_version = requests[2]
    assert upload_version.query["pipelineid"] == "p-2"
    assert upload_version.query["name"] == "20260102-090000-def456"
    assert upload_version.files == {"uploadfile": ("kale.yaml", package.read_bytes())}
    assert requests[3].body["pipeline_version_reference"] == {
        "pipeline_id": "p-2",
        "pipeline_version_id": "v-5",
    }
    assert (second.pipeline_id, second.version_id, second.run_id) == ("p-2", "v-5", "r-6")
    assert not second.created_pipeline
    assert len(kfp_server.pipelines) == 1
    assert capsys.readouterr().out == ""  # no "Run details: ..." lines: the CLI prints the result itself


def test_multi_user_requests_carry_the_profile_namespace(kfp_server: FakeKFP, package: Path) -> None:
    kfp_server.multi_user = True
    client = connect(kfp_server.url, token=TOKEN, namespace="team-a")
    assert kfp_server.paths() == [("GET", HEALTHZ)]  # the client skips its own health check
    kfp_server.take()
    submit_run(client, package, experiment="kale")
    lookup, create_experiment, find, upload, _, _ = kfp_server.take()
    assert lookup.query["namespace"] == find.query["namespace"] == upload.query["namespace"] == "team-a"
    assert create_experiment.body == {"display_name": "kale", "namespace": "team-a"}

    from_env = connect(kfp_server.url, token=TOKEN, environ={"CELLPIPE_NAMESPACE": "team-b"})
    assert from_env.get_user_namespace() == "team-b"


def test_schedule_recurring_run(kfp_server: FakeKFP, package: Path) -> None:
    client = connected(kfp_server)
    result = schedule_recurring(
        client,
        package,
        cron="30 2 * * 1-5",
        name="nightly kale",
        experiment="kale",
        parameters={"radius": 1.5},
        max_concurrency=2,
        snapshot_id=SNAPSHOT,
        store=STORE,
        version_name="nightly-1",
    )
    requests = kfp_server.take()
    assert [(r.method, r.path) for r in requests][-1] == ("POST", f"{API}/recurringruns")
    body = requests[-1].body
    assert body == {
        "display_name": "nightly kale",
        "description": f"snapshot {SNAPSHOT} in {STORE}",
        "experiment_id": "e-1",
        "pipeline_version_reference": {"pipeline_id": "p-2", "pipeline_version_id": "v-3"},
        "runtime_config": {
            "parameters": {"radius": 1.5, "cellpipe_snapshot_id": SNAPSHOT, "cellpipe_store": STORE}
        },
        "trigger": {"cron_schedule": {"cron": "0 30 2 * * 1-5"}},  # KFP's 6 fields: seconds first
        "max_concurrency": 2,
        "mode": "ENABLE",
        "no_catchup": True,
    }
    assert result.cron == "0 30 2 * * 1-5"
    assert result.recurring_run_id == "rr-4"
    assert result.url == f"{kfp_server.url}/#/recurringrun/details/rr-4"

    schedule_recurring(client, package, cron="@daily", name="daily", enabled=False, version_name="d-1")
    body = kfp_server.take()[-1].body
    assert body["trigger"] == {"cron_schedule": {"cron": "@daily"}}
    assert body["mode"] == "DISABLE"
    assert body["pipeline_version_reference"]["pipeline_id"] == "p-2"  # another version of the same pipeline


# -- following and cancelling runs (more in test_follow.py) ------------------------------------------------
def started_run(fake: FakeKFP, client: Any, package: Path) -> str:
    run_id = submit_run(client, package).run_id
    fake.take()
    return run_id


def test_wait_for_run_reports_each_change(kfp_server: FakeKFP, package: Path) -> None:
    client = connected(kfp_server)
    run_id = started_run(kfp_server, client, package)
    kfp_server.on_get[run_id] = [
        lambda run: None,
        lambda run: run.start().step("area", "Running"),
        lambda run: run.step("area", "Succeeded").step("perimeter", "Running"),
        lambda run: None,  # nothing changed: no update
        lambda run: run.step("perimeter", "Succeeded").step("ratio", "Cached").finish("Succeeded"),
    ]
    updates: list[KfpRunStatus] = []
    final = wait_for_run(client, run_id, poll=0, on_update=updates.append, sleep=lambda _: None)
    assert [(u.state, [(t.name, t.state) for t in u.tasks]) for u in updates] == [
        ("PENDING", []),
        ("RUNNING", [("area", "RUNNING")]),
        ("RUNNING", [("area", "SUCCEEDED"), ("perimeter", "RUNNING")]),
        ("SUCCEEDED", [("area", "SUCCEEDED"), ("perimeter", "SUCCEEDED"), ("ratio", "SUCCEEDED")]),
    ]
    assert final.finished and final.succeeded
    runs = [p for p in kfp_server.paths() if p[1].startswith(f"{API}/runs/")]
    assert runs == [("GET", f"{API}/runs/{run_id}")] * 5


def test_wait_gives_up_after_the_timeout_and_survives_a_restarting_server(
    kfp_server: FakeKFP, package: Path
) -> None:
    client = connected(kfp_server)
    run_id = started_run(kfp_server, client, package)
    kfp_server.run(run_id).start().step("area", "Running")
    status = wait_for_run(client, run_id, poll=0.01, timeout=0.1)
    assert status.state == "RUNNING" and not status.finished  # the run goes on; the caller decides

    kfp_server.on_get[run_id] = [lambda run: None, lambda run: run.step("area", "Failed").finish("Failed")]
    kfp_server.take()
    polls = iter(range(100))

    def sleep(_: float) -> None:
        if next(polls) == 0:  # after the first poll the API server restarts: two 503s
            kfp_server.fail("GET", f"{API}/runs/{run_id}", 503, "upstream connect error", times=2)

    status = wait_for_run(client, run_id, poll=0, sleep=sleep)
    assert (status.state, status.outcome()) == ("FAILED", "failed: step area failed")
    assert len([p for p in kfp_server.take() if p.path.startswith(f"{API}/runs/")]) == 4  # ok, 503, 503, ok


def test_cancel_run_terminates(kfp_server: FakeKFP, package: Path) -> None:
    client = connected(kfp_server)
    run_id = started_run(kfp_server, client, package)
    cancel_run(client, run_id)
    [request] = kfp_server.take()
    assert (request.method, request.path, request.authorization) == (
        "POST",
        f"{API}/runs/{run_id}:terminate",
        f"Bearer {TOKEN}",
    )
    assert run_status(client, run_id).state == "CANCELING"
    with pytest.raises(
        TargetError, match=r"cancelling run nope failed: KFP answered 404 \(run nope not found\)"
    ):
        cancel_run(client, "nope")


# -- auth -------------------------------------------------------------------------------------------------
def test_token_file_is_read_on_every_request(kfp_server: FakeKFP, package: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("sa-token-1\n")
    client = connect(kfp_server.url, token_path=token_file)
    assert kfp_server.requests[0].authorization == "Bearer sa-token-1"
    token_file.write_text("sa-token-2\n")  # the kubelet rotated it
    submit_run(client, package)
    assert {r.authorization for r in kfp_server.take()[-6:]} == {"Bearer sa-token-2"}


def test_kubeconfig_token(kfp_server: FakeKFP, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(KUBECONFIG.format(user="alice", credentials="token: kc-token-123"))
    connect(kfp_server.url, kubeconfig=kubeconfig)
    assert kfp_server.requests[0].authorization == "Bearer kc-token-123"


def test_explicit_token_under_the_kfp_name(kfp_server: FakeKFP) -> None:
    connect(kfp_server.url, existing_token="from-gcloud")
    assert kfp_server.requests[0].authorization == "Bearer from-gcloud"
    with pytest.raises(TargetError, match="two different tokens"):
        connect(kfp_server.url, token="a", existing_token="b")


def test_host_from_the_environment(kfp_server: FakeKFP, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", "http://127.0.0.1:9")  # the cellpipe variable wins
    monkeypatch.setenv("CELLPIPE_KFP_HOST", kfp_server.url + "/")
    connect(token=TOKEN)
    assert kfp_server.paths()[0] == ("GET", HEALTHZ)


KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: kind
  cluster: {{server: "https://127.0.0.1:6443"}}
users:
- name: {user}
  user:
    {credentials}
contexts:
- name: kind
  context: {{cluster: kind, user: {user}, namespace: team-a}}
current-context: kind
"""


# -- mistakes -----------------------------------------------------------------------------------------------
def test_no_host() -> None:
    with pytest.raises(TargetError) as info:
        connect(token=TOKEN)
    assert str(info.value).startswith(
        "--host: no KFP host: pass --host or set KF_PIPELINES_ENDPOINT/CELLPIPE_KFP_HOST. E.g. for a local"
    )
    assert "\n" not in str(info.value)


def test_unreachable_host() -> None:
    port = free_port()
    with pytest.raises(
        TargetError, match=rf"cannot reach KFP at http://127\.0\.0\.1:{port} \(.*refused"
    ) as info:
        connect(f"http://127.0.0.1:{port}", token=TOKEN)
    assert info.value.field == "--host"
    assert TOKEN not in str(info.value)


def test_refused_credentials_and_login_pages(kfp_server: FakeKFP) -> None:
    kfp_server.fail("GET", HEALTHZ, 401, "Jwt is missing")
    with pytest.raises(TargetError, match=r"refused the credentials \(401, auth: token\)") as info:
        connect(kfp_server.url, token=TOKEN)
    assert TOKEN not in str(info.value)

    kfp_server.healthz_body = "<html>Log in to Kubeflow</html>"
    with pytest.raises(TargetError, match="did not answer like the KFP API"):
        connect(kfp_server.url)


def test_kubeconfig_without_a_token(kfp_server: FakeKFP, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(KUBECONFIG.format(user="admin", credentials="client-certificate-data: Zm9v"))
    with pytest.raises(TargetError, match="has no bearer token") as info:
        connect(kfp_server.url, kubeconfig=kubeconfig)
    assert "port-forward" in str(info.value)
    with pytest.raises(TargetError, match="does not exist"):
        connect(kfp_server.url, kubeconfig=tmp_path / "missing")


def test_run_creation_failure_names_what_was_created(kfp_server: FakeKFP, package: Path) -> None:
    client = connected(kfp_server)
    kfp_server.fail("POST", f"{API}/runs", 500, "Failed to create a run: database is locked")
    with pytest.raises(TargetError) as info:
        submit_run(client, package, run_id=RUN_ID)
    text = str(info.value)
    assert "creating a run of pipeline 'kale-circle' failed: KFP answered 500 (Failed to create a run" in text
    assert "already created: pipeline 'kale-circle' (id p-2), pipeline version 'kale-circle' (id v-3)" in text
    assert "\n" not in text and TOKEN not in text
    assert kfp_server.paths()[-1] == ("POST", f"{API}/runs")  # nothing after the failed call

    # a later failure only leaves the new version behind
    kfp_server.fail("POST", f"{API}/runs", 500, "boom")
    with pytest.raises(TargetError) as info:
        submit_run(client, package, run_id="20260102")
    assert "(boom); already created: pipeline version '20260102' (id v-4). They stay in KFP" in str(
        info.value
    )


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 25 * * *", r"field 2 \(hour\) must be 0-23, got 25"),
        ("0 0 3 * * *", "give the usual 5 fields"),
        ("every day", "expected 5 fields, got 2"),
    ],
)
def test_invalid_cron_sends_nothing(kfp_server: FakeKFP, package: Path, cron: str, message: str) -> None:
    client = connected(kfp_server)
    with pytest.raises(TargetError, match=message) as info:
        schedule_recurring(client, package, cron=cron, name="nightly")
    assert info.value.field == "schedule"
    assert kfp_server.requests == []


def test_kfp_cron() -> None:
    assert kfp_cron("0 3 * * *") == "0 0 3 * * *"
    assert kfp_cron("  */15  *   * * MON-FRI ") == "0 */15 * * * MON-FRI"
    assert kfp_cron("@hourly") == "@hourly"


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"parameters": {"radius": "big"}}, "parameter 'radius'", "expects number double, got str 'big'"),
        ({"parameters": {"radius": True}}, "parameter 'radius'", "expects number double, got bool"),
        ({"parameters": {"diameter": 2}}, "parameter 'diameter'", "the pipeline has no parameter 'diameter'"),
        ({"snapshot_id": SNAPSHOT}, "store", "a snapshot id and its store go together"),
        ({"snapshot_id": SNAPSHOT, "store": "s3://key:pw@minio/b"}, "store", "contains credentials"),
    ],
)
def test_bad_submissions_send_nothing(
    kfp_server: FakeKFP, package: Path, options: dict, field: str, message: str
) -> None:
    client = connected(kfp_server)
    with pytest.raises(TargetError, match=message) as info:
        submit_run(client, package, **options)
    assert info.value.field == field
    assert kfp_server.requests == []


def test_bad_schedule_options_and_package(kfp_server: FakeKFP, package: Path, tmp_path: Path) -> None:
    client = connected(kfp_server)
    with pytest.raises(TargetError, match="from 1 to 10") as info:
        schedule_recurring(client, package, cron="@daily", name="n", max_concurrency=11)
    assert info.value.field == "max_concurrency"
    with pytest.raises(TargetError, match="does not exist") as info:
        submit_run(client, tmp_path / "missing.yaml")
    assert "cellpipe compile" in str(info.value)
    assert kfp_server.requests == []


def test_implicit_pod_tokens_only_go_to_in_cluster_hosts() -> None:
    from jupyter_ext.targets.kfp.connect import in_cluster_host

    for host in (
        "http://ml-pipeline:8888",
        "ml-pipeline.kubeflow.svc",
        "https://ml-pipeline.kubeflow.svc.cluster.local:8888",
    ):
        assert in_cluster_host(host), host
    for host in (
        "https://kfp.example.com",
        "http://127.0.0.1:8888",
        "http://localhost:8888",
        "https://evil.svc.example.com",
    ):
        assert not in_cluster_host(host), host


def test_token_path_from_the_environment_is_explicit(kfp_server: FakeKFP, tmp_path: Path) -> None:
    token_file = tmp_path / "kfp-token"
    token_file.write_text("env-token\n")
    connect(kfp_server.url, environ={"KF_PIPELINES_SA_TOKEN_PATH": str(token_file)})
    assert kfp_server.requests[0].authorization == "Bearer env-token"
    with pytest.raises(TargetError, match="does not exist"):
        connect(kfp_server.url, environ={"KF_PIPELINES_SA_TOKEN_PATH": str(tmp_path / "missing")})


def test_no_token_is_sent_to_an_outside_host_by_default(kfp_server: FakeKFP) -> None:
    connect(kfp_server.url, environ={})  # 127.0.0.1: not a service inside a cluster
    assert kfp_server.requests[0].authorization is None
