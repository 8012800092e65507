"""Runs through the HTTP API of a real server: start, follow, list, logs, step notebooks, cancel, re-run, delete."""

from __future__ import annotations

import json
import socket

import pytest

from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

ACTIVE = ("queued", "running")


def wait_final(server, run_id: str, timeout: float = 180) -> dict:
    return server.wait_for_run(
        run_id, lambda r: r["status"] not in ACTIVE, timeout=timeout, what=f"run {run_id} to end"
    )


def step(record: dict, name: str) -> dict:
    return next(s for s in record["steps"] if s["name"] == name)


@pytest.fixture(scope="module")
def finished(server) -> dict:
    """One successful run of branches.ipynb with n=50."""
    response = server.api(
        "POST", "runs", json={"path": "branches.ipynb", "parameters": {"n": 50}, "track": False}
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] in ACTIVE and accepted["source"] == "jupyterlab"
    record = wait_final(server, accepted["id"])
    assert record["status"] == "succeeded", json.dumps(record, indent=1)
    return record


def test_a_run_record_is_complete_and_shows_no_server_details(server, finished):
    assert finished["parameters"]["n"] == 50 and finished["snapshot_id"]
    assert finished["notebook"] == "branches.ipynb" and finished["target"] == "local"
    assert [s["name"] for s in finished["steps"]] == ["make_data", "stats", "histogram", "report"]
    assert all(s["status"] == "succeeded" and s["duration_s"] is not None for s in finished["steps"])
    assert step(finished, "report")["notebook"] == f"runs/{finished['id']}/steps/report/notebook"
    assert finished["tracking"]["status"] == "off"
    text = json.dumps(finished)
    assert str(server.root) not in text and socket.gethostname() not in text
    assert '"pid"' not in text and '"host"' not in text


def test_the_executed_step_notebook_and_the_logs(server, finished):
    response = server.api("GET", step(finished, "report")["notebook"])
    assert response.status_code == 200
    notebook = response.json()
    assert notebook["nbformat"] == 4
    outputs = [o for c in notebook["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any("mean" in "".join(o.get("text", "")) for o in outputs)
    assert str(server.root) not in response.text
    assert server.api("GET", f"runs/{finished['id']}/steps/nothing/notebook").status_code == 404
    logs = server.api("GET", f"runs/{finished['id']}/logs")
    assert logs.status_code == 200 and isinstance(logs.json()["text"], str)


def test_list_filters_and_pages(server, finished):
    everything = server.api("GET", "runs").json()
    assert everything["total"] >= 1 and finished["id"] in [r["id"] for r in everything["runs"]]
    mine = server.api("GET", "runs", params={"path": "branches.ipynb", "status": "succeeded"}).json()
    assert finished["id"] in [r["id"] for r in mine["runs"]]
    assert server.api("GET", "runs", params={"path": "other.ipynb"}).json() == {"runs": [], "total": 0}
    assert server.api("GET", "runs", params={"status": "failed"}).json()["total"] == 0
    page = server.api("GET", "runs", params={"limit": 1, "offset": 0}).json()
    assert len(page["runs"]) == 1 and page["total"] == everything["total"]
    assert server.api("GET", "runs/latest").json()["id"] == everything["runs"][0]["id"]


def test_a_listed_run_changed_by_another_process_is_listed_changed(server, finished):
    """The server keeps the JSON of final runs it lists; a change written elsewhere (the tracking worker,
    the CLI) is what the next list shows, never the answer kept."""
    from jupyter_ext.records.models import Tracking, TrackingStatus
    from jupyter_ext.records.store import RecordStore

    def listed() -> dict:
        runs = server.api("GET", "runs", params={"limit": 500}).json()["runs"]
        return next(r for r in runs if r["id"] == finished["id"])

    before = listed()
    assert listed() == before == server.api("GET", f"runs/{finished['id']}").json()

    def tracked(run) -> None:
        run.tracking = Tracking(TrackingStatus.OK, mlflow_run_id="from-elsewhere")

    store = RecordStore(server.root / ".cellpipe")
    try:
        store.update_run(finished["id"], tracked)
        assert listed()["tracking"]["mlflow_run_id"] == "from-elsewhere"
        assert listed() == server.api("GET", f"runs/{finished['id']}").json()
    finally:
        store.update_run(finished["id"], lambda run: setattr(run, "tracking", Tracking()))
        store.close()
    assert listed()["tracking"] == before["tracking"]


def test_rerun_from_the_snapshot_then_delete(server, finished):
    notebook = server.root / "branches.ipynb"
    original = notebook.read_bytes()
    notebook.write_text("{ changed after the run, not a notebook any more")
    try:
        response = server.api("POST", f"runs/{finished['id']}/rerun")
        assert response.status_code == 202, response.text
        again = wait_final(server, response.json()["id"])
    finally:
        notebook.write_bytes(original)
    assert again["status"] == "succeeded", json.dumps(again, indent=1)
    assert again["rerun_of"] == finished["id"] and again["snapshot_id"] == finished["snapshot_id"]
    assert again["parameters"]["n"] == 50
    assert server.api("DELETE", f"runs/{again['id']}").status_code == 204
    assert server.api("GET", f"runs/{again['id']}").status_code == 404


def test_typed_parameters_are_checked(server):
    response = server.api("POST", "runs", json={"path": "branches.ipynb", "parameters": {"n": "many"}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "'n'" in error["text"] and "int" in error["text"]


def test_cancel_a_running_pipeline_and_delete_only_when_final(server):
    text = (server.root / "branches.ipynb").read_text()
    slow = text.replace(
        "rng = np.random.default_rng(0)", "import time; time.sleep(60)\\nrng = np.random.default_rng(0)"
    )
    (server.root / "slow.ipynb").write_text(slow)
    run_id = server.api("POST", "runs", json={"path": "slow.ipynb", "track": False}).json()["id"]
    server.wait_for_run(
        run_id, lambda r: step(r, "make_data")["status"] == "running", timeout=90, what="make_data"
    )
    refused = server.api("DELETE", f"runs/{run_id}")
    assert refused.status_code == 409 and "cancel it first" in refused.json()["error"]["hint"]
    cancelled = server.api("POST", f"runs/{run_id}/cancel")
    assert cancelled.status_code == 202
    record = wait_final(server, run_id, timeout=60)
    assert record["status"] == "cancelled"
    assert server.api("POST", f"runs/{run_id}/cancel").json()["status"] == "cancelled"  # idempotent
    assert server.api("DELETE", f"runs/{run_id}").status_code == 204


def test_the_server_prestarts_the_tracking_worker_and_final_records_name_the_mlflow_run(server):
    from jupyter_ext.tracking.background import WORKER_LOG, worker_pid

    data_dir = server.root / ".cellpipe"
    log = data_dir / WORKER_LOG
    # started with the server, before any run; warm once MLflow is imported
    wait_until(lambda: log.exists() and " ready in " in log.read_text(), timeout=120, interval=0.2,
               what="the tracking worker")  # fmt: skip
    pid = worker_pid(data_dir)
    assert pid is not None and f"tracking worker {pid} ready" in log.read_text()
    response = server.api("POST", "runs", json={"path": "branches.ipynb", "parameters": {"n": 5}})
    assert response.status_code == 202, response.text
    record = wait_final(server, response.json()["id"])
    assert record["status"] == "succeeded" and record["tracking"]["mlflow_run_id"], record["tracking"]
    assert record["tracking"]["status"] in ("pending", "ok") and worker_pid(data_dir) == pid
    record = server.wait_for_run(
        record["id"], lambda r: r["tracking"]["status"] != "pending", timeout=120, what="its tracking"
    )
    assert record["tracking"]["status"] == "ok", record["tracking"]
