"""Following KFP runs as a real install reports them: steps, errors and logs (follow.py, tasks.py, pods.py).

The run's answers come from the loopback server in conftest.py, which builds them the way KFP's API server
does from the run's Argo workflow (one task entry per node: the workflow, root, drivers, DAGs and an
``executor`` in every step; task keys as names; no pod names or errors). Pods come from kmock, a real HTTP
server that the official kubernetes client talks to. The pipeline has parallel steps with underscores.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client as k8s

from jupyter_ext.errors import TargetError
from jupyter_ext.pipeline.build import build_pipeline
from jupyter_ext.runtime.termination import step_error_message
from jupyter_ext.targets.kfp.compile import PackageSpec, compile_pipeline
from jupyter_ext.targets.kfp.follow import (
    KfpRunStatus,
    Kubernetes,
    cancel_run,
    run_logs,
    run_status,
    run_steps,
    step_logs,
    wait_for_run,
)
from jupyter_ext.targets.kfp.submit import connect, get_recurring_run, schedule_recurring, submit_run
from jupyter_ext.targets.kfp.tasks import fold_task_details

if TYPE_CHECKING:
    from conftest import FakeKFP, FakeRun  # tests/targets/kfp/conftest.py

NS = "kubeflow"
STEPS = ["load_data", "eval_baseline", "train_model", "report"]  # the package order: parallel steps by key
CELLS = [
    (["parameters"], "n = 4"),
    (["step:load_data"], "xs = list(range(n))"),
    (["step:train_model"], "model = sum(xs) / 0"),
    (["step:eval_baseline"], "baseline = len(xs)"),
    (["step:report"], "print(model, baseline)"),
]
TRACEBACK_ERROR = step_error_message("train_model", "ZeroDivisionError: division by zero", cell=3,
                                     ename="ZeroDivisionError", evalue="division by zero")  # fmt: skip


@pytest.fixture
def package(write_notebook: Callable[..., Path], tmp_path: Path) -> Path:
    notebook = write_notebook(CELLS, name="flow.ipynb")
    return compile_pipeline(build_pipeline(notebook), tmp_path / "flow.yaml", PackageSpec(snapshot_id="ab" * 32,
                            store="s3://ml-bucket/cellpipe", run_id="20260101-120000-abc123"))  # fmt: skip


def started(fake: FakeKFP, package: Path) -> tuple[Any, FakeRun]:
    client = connect(fake.url)
    run_id = submit_run(client, package).run_id
    fake.take()
    return client, fake.run(run_id)


def states(status: KfpRunStatus) -> list[tuple[str, str]]:
    return [(task.name, task.state) for task in status.tasks]


def succeeding(run: FakeRun) -> list[Callable[[FakeRun], Any]]:
    """A run whose two middle steps run in parallel, as the workflow controller would step it."""
    return [
        lambda r: None,  # PENDING: no workflow yet
        lambda r: r.start(),
        lambda r: r.step("load-data", "Pending"),
        lambda r: r.step("load-data", "Running"),
        lambda r: r.step("load-data", "Succeeded").step("train-model", "Running").step("eval-baseline", "Running"),
        lambda r: r.step("eval-baseline", "Succeeded"),
        lambda r: r.step("train-model", "Succeeded").step("report", "Running"),
        lambda r: r.step("report", "Succeeded").finish("Succeeded"),
    ]  # fmt: skip


def failing(run: FakeRun) -> list[Callable[[FakeRun], Any]]:
    return [
        lambda r: r.start().step("load-data", "Succeeded"),
        lambda r: r.step("train-model", "Running").step("eval-baseline", "Running"),
        lambda r: r.step("train-model", "Failed").step("eval-baseline", "Succeeded"),
        lambda r: r.step("report", "Omitted").finish("Failed"),
    ]


def failed(fake: FakeKFP, package: Path) -> tuple[Any, FakeRun]:
    """A run that has failed: train_model raised, eval_baseline succeeded in parallel, report omitted."""
    client, run = started(fake, package)
    for change in failing(run):
        change(run)
    return client, run


def fields(model: str) -> set[str]:
    import kfp_server_api

    return set(getattr(kfp_server_api, model).attribute_map.values())


def test_the_fake_answers_only_fields_the_real_models_have(kfp_server: FakeKFP, package: Path) -> None:
    """The loopback server's JSON against the kfp-server-api 2.17 models generated from KFP's protos."""
    import kfp_server_api

    client, run = failed(kfp_server, package)
    answer = run.answer()
    assert set(answer) <= fields("V2beta1Run")
    states = set(kfp_server_api.V2beta1RuntimeState.allowable_values)
    for entry in answer["run_details"]["task_details"]:
        assert set(entry) <= fields("V2beta1PipelineTaskDetail")
        assert entry.get("state", "RUNTIME_STATE_UNSPECIFIED") in states
        for child in entry.get("child_tasks") or []:
            assert set(child) <= fields("PipelineTaskDetailChildTask")
    for item in answer["state_history"]:
        assert set(item) <= fields("V2beta1RuntimeStatus") and item["state"] in states
    version = kfp_server.versions[-1]
    assert set(version) <= fields("V2beta1PipelineVersion")
    schedule_recurring(client, package, cron="0 3 * * *", name="nightly", enabled=False)
    assert set(kfp_server.recurring_runs[-1]) <= fields("V2beta1RecurringRun")
    # and the client reads them back as its own models
    model = client.runs.run_service_get_run(run.record["run_id"])
    read = {(t.display_name, t.state, len(t.child_tasks or [])) for t in model.run_details.task_details}
    sent = {
        (e["display_name"], e.get("state"), len(e.get("child_tasks") or []))
        for e in answer["run_details"]["task_details"]
    }
    assert read == sent and len(model.run_details.task_details) == 13  # report omitted: its driver only


# -- the real shapes, folded into steps --------------------------------------------------------------------
def test_a_succeeded_run_reports_steps_not_kfp_nodes(kfp_server: FakeKFP, package: Path) -> None:
    client, run = started(kfp_server, package)
    kfp_server.on_get[run.record["run_id"]] = succeeding(run)
    updates: list[KfpRunStatus] = []
    final = wait_for_run(client, run.record["run_id"], poll=0, on_update=updates.append, sleep=lambda _: None)

    # What KFP itself sent: every Argo node, drivers and `executor`s included, named by task keys.
    names = sorted(entry["display_name"] for entry in run.task_details())
    assert names == sorted([run.workflow, "root-driver", "root", "load-data-driver", "load-data",
                            "train-model-driver", "train-model", "eval-baseline-driver", "eval-baseline",
                            "report-driver", "report"] + ["executor"] * 4)  # fmt: skip
    assert all("pod_name" not in entry and "error" not in entry for entry in run.task_details())

    assert [(u.state, states(u)) for u in updates] == [
        ("PENDING", []),
        ("RUNNING", []),
        ("RUNNING", [("load_data", "PENDING")]),  # its driver runs
        ("RUNNING", [("load_data", "RUNNING")]),
        ("RUNNING", [("load_data", "SUCCEEDED"), ("eval_baseline", "RUNNING"), ("train_model", "RUNNING")]),
        ("RUNNING", [("load_data", "SUCCEEDED"), ("eval_baseline", "SUCCEEDED"), ("train_model", "RUNNING")]),
        ("RUNNING", [("load_data", "SUCCEEDED"), ("eval_baseline", "SUCCEEDED"), ("train_model", "SUCCEEDED"),
                     ("report", "RUNNING")]),
        ("SUCCEEDED", [(name, "SUCCEEDED") for name in STEPS]),
    ]  # fmt: skip
    assert final.succeeded and final.steps == tuple(STEPS) and final.outcome() == "succeeded"
    assert final.workflow == run.workflow
    # the pipeline version's spec was read once, then cached
    versions = [p for _, p in kfp_server.paths() if "/versions/" in p]
    assert len(versions) == 1

    record = run_steps(client, run.record["run_id"])
    assert record["status"] == "succeeded" and record["error"] is None
    assert [s["name"] for s in record["steps"]] == STEPS
    train = record["steps"][2]
    assert train["status"] == "succeeded" and train["kfp_task"] == "train-model"
    assert train["started"].endswith("Z") and train["duration_s"] > 0
    assert set(train) >= {
        "name",
        "status",
        "started",
        "finished",
        "duration_s",
        "cached",
        "cell",
        "error",
        "notebook",
    }
    notebook_order = ["load_data", "train_model", "eval_baseline", "report"]  # as the run service knows it
    reordered = run_steps(client, run.record["run_id"], order=notebook_order)
    assert [s["name"] for s in reordered["steps"]] == notebook_order


def test_a_failed_run_without_cluster_credentials_says_where_the_error_is(
    kfp_server: FakeKFP, package: Path
) -> None:
    client, run = started(kfp_server, package)
    run_id = run.record["run_id"]
    kfp_server.on_get[run_id] = failing(run)
    final = wait_for_run(client, run_id, poll=0, sleep=lambda _: None)
    assert final.state == "FAILED" and final.error is None  # KFP fills no error for a failed run
    assert states(final) == [("load_data", "SUCCEEDED"), ("eval_baseline", "SUCCEEDED"),
                             ("train_model", "FAILED"), ("report", "SKIPPED")]  # fmt: skip
    assert final.outcome() == "failed: step train_model failed"
    assert any("termination message" in note and "no Kubernetes credentials" in note for note in final.notes)

    record = run_steps(client, run_id)
    assert record["status"] == "failed"
    assert record["error"] == {"message": "step train_model failed", "step": "train_model", "cell": None}
    assert [s["status"] for s in record["steps"]] == ["succeeded", "succeeded", "failed", "not_run"]


def kube(kmock: Any) -> Kubernetes:
    configuration = k8s.Configuration()
    configuration.host = str(kmock.url).rstrip("/")
    return Kubernetes(k8s.ApiClient(configuration), NS)


@pytest.fixture
def put_pods(kmock: Any, kfp_pod: Callable[..., dict]) -> Callable[..., None]:
    """Put a run's pods into kmock, with termination messages by task key."""

    def put(run: FakeRun, messages: dict[str, str] | None = None, **overrides: dict[str, Any]) -> None:
        kmock.resources["v1/pods"] = {}
        for pod, info in run.pods.items():
            node = info["node"].name
            key = node.rsplit(".", 2)[-2] if node.endswith(".executor") else ""
            options = overrides.get(key) or {"message": (messages or {}).get(key)}
            kmock.objects["v1/pods", NS, pod] = kfp_pod(run, pod, NS, **options)

    return put


async def test_a_failed_run_with_cluster_credentials_names_the_cell(
    kfp_server: FakeKFP, package: Path, kmock: Any, put_pods: Callable
) -> None:
    client, run = await asyncio.to_thread(failed, kfp_server, package)
    run_id = run.record["run_id"]
    put_pods(run, {"train-model": TRACEBACK_ERROR})
    kubernetes = kube(kmock)
    status = await asyncio.to_thread(run_status, client, run_id, kubernetes=kubernetes)
    train = status.tasks[2]
    assert train.pod_name == run.pod("train-model")
    assert train.pod_name.startswith(f"{run.workflow}-metadata-")  # KFP 2.14+ executor template
    assert train.error == "cell 3: ZeroDivisionError: division by zero"
    assert status.outcome() == "failed: step train_model failed: cell 3: ZeroDivisionError: division by zero"
    assert status.tasks[0].pod_name == run.pod("load-data") and status.tasks[0].error is None
    assert not status.notes
    (listing,) = list(kmock["get /api/v1/namespaces/kubeflow/pods"])
    assert listing.params["labelSelector"] == f"pipeline/runid={run_id}"

    record = await asyncio.to_thread(run_steps, client, run_id, kubernetes=kubernetes)
    assert record["error"] == {"message": "step train_model failed: cell 3: ZeroDivisionError: division by zero",
                               "step": "train_model", "cell": 3}  # fmt: skip
    assert record["steps"][2]["error"] == {"message": "ZeroDivisionError: division by zero", "cell": 3,
                                           "ename": "ZeroDivisionError", "evalue": "division by zero"}  # fmt: skip
    assert record["steps"][2]["cell"] == 3 and record["steps"][2]["pod"] == run.pod("train-model")


async def test_a_pod_killed_without_a_message_reports_kubernetes_reason(
    kfp_server: FakeKFP, package: Path, kmock: Any, put_pods: Callable
) -> None:
    client, run = await asyncio.to_thread(failed, kfp_server, package)
    put_pods(run, **{"train-model": {"exit_code": 137, "reason": "OOMKilled"}})
    status = await asyncio.to_thread(run_status, client, run.record["run_id"], kubernetes=kube(kmock))
    assert status.tasks[2].error == "OOMKilled (exit code 137)"


async def test_a_failed_step_whose_pod_is_gone(kfp_server: FakeKFP, package: Path, kmock: Any) -> None:
    client, run = await asyncio.to_thread(failed, kfp_server, package)
    kmock.resources["v1/pods"] = {}  # KFP deleted the workflow, and its pods, after its TTL
    status = await asyncio.to_thread(run_status, client, run.record["run_id"], kubernetes=kube(kmock))
    assert status.tasks[2].error is None and status.tasks[2].pod_name is None
    assert status.notes == (
        "no pod of train_model in namespace kubeflow, so its error is unknown: KFP deletes a finished run's "
        "pods after its workflow TTL (7 days by default)",
    )


def test_a_cancelled_run(kfp_server: FakeKFP, package: Path) -> None:
    client, run = started(kfp_server, package)
    run_id = run.record["run_id"]
    run.start().step("load-data", "Succeeded").step("train-model", "Running").step("eval-baseline", "Running")
    cancel_run(client, run_id)
    status = run_status(client, run_id)
    assert status.state == "CANCELING" and status.cancelled and status.outcome() == "cancelling"
    assert not status.finished

    run.stopped()  # the workflow stops; KFP reports it FAILED, with CANCELING in the history
    status = run_status(client, run_id)
    assert status.state == "FAILED" and status.cancelled and status.outcome() == "cancelled"
    assert states(status) == [
        ("load_data", "SUCCEEDED"),
        ("eval_baseline", "FAILED"),
        ("train_model", "FAILED"),
    ]
    assert status.failed_task is None  # stopped by the cancel, not failed of their own accord
    record = run_steps(client, run_id)
    assert record["status"] == "cancelled" and record["error"] is None
    assert [s["status"] for s in record["steps"]] == ["succeeded", "cancelled", "cancelled", "not_run"]
    with pytest.raises(TargetError, match="Row not found"):
        cancel_run(client, run_id)  # KFP refuses to terminate a finished run


def test_a_cancel_missing_from_the_history_is_still_seen_while_waiting(
    kfp_server: FakeKFP, package: Path
) -> None:
    """The persistence agent may report the stopped workflow without a report while it stopped."""
    client, run = started(kfp_server, package)
    run_id = run.record["run_id"]
    run.start().step("load-data", "Running")
    cancel_run(client, run_id)

    def stopped_at_once(r: FakeRun) -> None:
        r.step("load-data", "Failed", "Step exceeded its deadline").finish("Failed")

    kfp_server.on_get[run_id] = [lambda r: None, stopped_at_once]
    final = wait_for_run(client, run_id, poll=0, sleep=lambda _: None)
    assert [h["state"] for h in run.record["state_history"]] == ["PENDING", "RUNNING", "FAILED"]
    assert final.cancelled and final.outcome() == "cancelled"


def test_cached_steps_and_a_failed_driver(kfp_server: FakeKFP, package: Path) -> None:
    client, run = started(kfp_server, package)
    run.start().step("load-data", "Cached").step("train-model", "DriverFailed").step(
        "eval-baseline", "Cached"
    )
    status = run_status(client, run.record["run_id"])
    assert states(status) == [
        ("load_data", "SUCCEEDED"),
        ("eval_baseline", "SUCCEEDED"),
        ("train_model", "FAILED"),
    ]
    assert "driver failed" in status.tasks[2].error


def test_steps_named_like_kfp_nodes() -> None:
    """A step called `executor` shares its task key with every step's executor node."""
    details = [
        {"display_name": "wf-1", "state": "RUNNING", "child_tasks": [{"pod_name": "wf-1-1"}, {"pod_name": "wf-1-2"}]},
        {"display_name": "root", "state": "RUNNING", "child_tasks": [{"pod_name": "wf-1-3"}, {"pod_name": "wf-1-4"}]},
        {"display_name": "executor-driver", "state": "SUCCEEDED"},
        {"display_name": "executor", "state": "FAILED", "child_tasks": [{"pod_name": "wf-1-5"}]},
        {"display_name": "executor", "state": "FAILED"},
        {"display_name": "other-driver", "state": "SUCCEEDED"},
        {"display_name": "other", "state": "RUNNING", "child_tasks": [{"pod_name": "wf-1-6"}]},
        {"display_name": "executor", "state": "RUNNING"},
    ]  # fmt: skip
    folded = fold_task_details(details, {"executor": "executor", "other": "other"})
    assert [(t.name, t.state, t.node_id) for t in folded] == [
        ("executor", "FAILED", "wf-1-5"),
        ("other", "RUNNING", "wf-1-6"),
    ]
    # without the spec, the steps are the keys with a driver
    assert [t.name for t in fold_task_details(details)] == ["executor", "other"]


# -- logs ---------------------------------------------------------------------------------------------------
async def test_logs_from_kubernetes(
    kfp_server: FakeKFP, package: Path, kmock: Any, put_pods: Callable
) -> None:
    client, run = await asyncio.to_thread(failed, kfp_server, package)
    put_pods(run, {"train-model": TRACEBACK_ERROR})
    pod = run.pod("train-model")
    kmock[f"get /api/v1/namespaces/kubeflow/pods/{pod}/log"] << b"Traceback...\nZeroDivisionError\n"
    logs = await asyncio.to_thread(step_logs, client, run.record["run_id"], task="train_model",
                                   kubernetes=kube(kmock))  # fmt: skip
    assert [(log.step, log.pod, log.text, log.source) for log in logs] == [
        ("train_model", pod, "Traceback...\nZeroDivisionError\n", "kubernetes")
    ]
    (read,) = list(kmock[f"get /api/v1/namespaces/kubeflow/pods/{pod}/log"])
    assert read.params["container"] == "main"
    assert not any("/apis/v1alpha1/" in path for _, path in kfp_server.paths())  # no need for the route


@pytest.mark.parametrize("version", ["2.17.0", "2.5.0"])
def test_logs_from_the_api_server_route_without_cluster_credentials(
    kfp_server: FakeKFP, package: Path, version: str
) -> None:
    kfp_server.tag_name = version  # executor pods are named differently before and after KFP 2.14
    client, run = failed(kfp_server, package)
    run_id = run.record["run_id"]
    kfp_server.logs = {run.pod("load-data"): "loaded\n", run.pod("train-model"): "ZeroDivisionError\n"}
    for task in ("train_model", "train-model"):  # the notebook's step name, or KFP's task key
        assert run_logs(client, run_id, task=task) == {run.pod("train-model"): "ZeroDivisionError\n"}
    routes = [path for _, path in kfp_server.paths() if path.startswith("/apis/v1alpha1/")]
    assert routes[-1] == f"/apis/v1alpha1/runs/{run_id}/nodes/{run.pod('train-model')}/log"
    if version == "2.5.0":  # the newer template name was tried first, answered 200 + JSON error
        assert "-metadata-" in routes[-2] and len(routes) == 4
    else:
        assert len(routes) == 2

    # eval_baseline's pod has no log (deleted, no archive): the route answers 200 with a JSON error
    logs = step_logs(client, run_id)
    assert [(log.step, log.text) for log in logs] == [
        ("load_data", "loaded\n"),
        ("train_model", "ZeroDivisionError\n"),
    ]
    with pytest.raises(TargetError) as info:
        step_logs(client, run_id, task="eval_baseline")
    text = str(info.value)
    assert "step eval_baseline: Kubernetes: no Kubernetes credentials" in text
    assert f"the KFP API server could not read pod {run.workflow}-" in text and "not found" in text
    assert "\n" not in text and "port-forward" in text


@pytest.mark.parametrize("multi_user", [False, True])
def test_logs_through_the_kfp_ui(kfp_server: FakeKFP, package: Path, multi_user: bool) -> None:
    """The KFP UI answers the API server's log route with its page, and has a log route of its own."""
    kfp_server.ui, kfp_server.multi_user = True, multi_user
    client = connect(kfp_server.url, namespace="team-a" if multi_user else None)
    run_id = submit_run(client, package).run_id
    run = kfp_server.run(run_id)
    run.start().step("load-data", "Succeeded").step("train-model", "Succeeded")
    kfp_server.logs = {run.pod("load-data"): "loaded\n"}
    kfp_server.take()
    (log,) = step_logs(client, run_id, task="load_data")
    assert (log.text, log.source) == ("loaded\n", "KFP UI")
    ui_request = kfp_server.requests[-1]
    assert ui_request.path == "/k8s/pod/logs"
    expected = {"podname": run.pod("load-data"), "runid": run_id}
    assert ui_request.query == ({**expected, "podnamespace": "team-a"} if multi_user else expected)

    with pytest.raises(TargetError) as info:
        run_logs(client, run_id, task="train_model")
    assert ("KFP log route: served by the KFP API server (service ml-pipeline, port 8888), not by the KFP UI; "
            "KFP UI log route: reading the log of pod") in str(info.value)  # fmt: skip
    assert "failed: KFP answered 404 (pod not found)" in str(info.value)


def test_a_log_cut_short_keeps_what_was_read(kfp_server: FakeKFP, package: Path) -> None:
    client, run = started(kfp_server, package)
    run.start().step("load-data", "Running")
    error = {
        "error_message": "Failed to read logs from pod x due to error in streaming the log",
        "error_details": "",
    }
    kfp_server.logs = {run.pod("load-data"): "first line\n" + json.dumps(error)}
    (text,) = run_logs(client, run.record["run_id"]).values()
    assert text.startswith("first line\n") and "[cellpipe: the log ends here: Failed to read logs" in text


def test_logs_of_an_unknown_or_waiting_step(kfp_server: FakeKFP, package: Path) -> None:
    client, run = started(kfp_server, package)
    run.start().step("load-data", "Pending")
    with pytest.raises(TargetError, match="has no started step 'training'") as info:
        run_logs(client, run.record["run_id"], task="training")
    assert "steps: load_data, eval_baseline, train_model, report" in str(info.value.hint)
    with pytest.raises(TargetError, match=r"step load_data has no pod yet \(PENDING\)"):
        run_logs(client, run.record["run_id"], task="load_data")


# -- recurring runs -------------------------------------------------------------------------------------------
def test_a_recurring_run_created_disabled(kfp_server: FakeKFP, package: Path) -> None:
    client = connect(kfp_server.url)
    result = schedule_recurring(
        client, package, cron="0 3 * * *", name="nightly", enabled=False, max_concurrency=2
    )
    assert kfp_server.recurring_runs[-1]["max_concurrency"] == "2"  # int64: a JSON string
    assert (result.status, result.max_concurrency) == ("DISABLED", 2)
    listed = get_recurring_run(client, result.recurring_run_id)
    assert (listed.status, listed.max_concurrency) == ("DISABLED", 2)
    enabled = schedule_recurring(client, package, cron="0 3 * * *", name="daily")
    assert (enabled.status, enabled.max_concurrency) == ("ENABLED", 1)
