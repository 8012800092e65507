"""The schedule routes in a real `jupyter server` process: fields, errors naming the field, replacing, pausing,
a CronJob made through the API (kmock on loopback), and a local schedule that fires from the server's own
scheduler and runs a plain papermill notebook. Who may call each route: test_authorization.py."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import kubernetes_validate
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.support.kube_cluster import write_kubeconfig


def write_plain_notebook(path: Path) -> Path:
    """A papermill notebook (a parameters cell, no step tags) that prints its parameters."""
    parameters = new_code_cell("alpha = 0.5\nlabel = 'base'")
    parameters.metadata["tags"] = ["parameters"]
    body = new_code_cell("print(alpha, label)")
    notebook = new_notebook(cells=[parameters, body])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


@pytest.fixture(scope="module")
def server(launch):
    server = launch()
    write_plain_notebook(server.root / "report.ipynb")
    return server


def test_preview_describes_or_names_the_bad_field(server) -> None:
    answer = server.api(
        "POST", "schedules/preview", json={"cron": "30 6 * * MON-FRI", "timezone": "Europe/Berlin"}
    )
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert preview["description"] == "At 06:30, Monday through Friday (Europe/Berlin)"
    assert len(preview["next_fire_times"]) == 5
    for body, field, text in [
        ({"cron": "0 25 * * *"}, "cron", "field 2 (hour) must be 0-23, got 25"),
        ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "timezone", "unknown time zone 'Mars/Olympus'"),
        ({"cron": 5}, "cron", "must be a string"),
        ({}, "cron", "is required"),
        ({"cron": "@daily", "when": "now"}, "when", "unknown field"),
    ]:
        answer = server.api("POST", "schedules/preview", json=body)
        assert answer.status_code == 400, (body, answer.text)
        error = answer.json()["error"]
        assert error["field"] == field and text in error["text"], (body, error)


def test_create_read_pause_replace_delete(server) -> None:
    body = {
        "path": "report.ipynb",
        "cron": "0 3 * * *",
        "timezone": "Europe/Berlin",
        "parameters": {"alpha": 2},
    }
    created = server.api("POST", "schedules", json=body)
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert {k: schedule[k] for k in ("name", "notebook", "cron", "timezone", "target", "enabled", "catch_up")} == {
        "name": "report", "notebook": "report.ipynb", "cron": "0 3 * * *", "timezone": "Europe/Berlin",
        "target": "local", "enabled": True, "catch_up": "skip",
    }  # fmt: skip
    assert schedule["parameters"] == {"alpha": 2.0} and schedule["description"] == "At 03:00 (Europe/Berlin)"
    assert (
        schedule["survives_server_cull"] is False
        and schedule["missed"] == []
        and schedule["recent_runs"] == []
    )
    assert len(schedule["next_fire_times"]) == 5 and isinstance(schedule["created"], float)
    assert str(server.root) not in created.text  # paths relative to the root, nothing of the server's

    sid = schedule["id"]
    assert server.api("GET", f"schedules/{sid}").json()["id"] == sid
    assert [s["id"] for s in server.api("GET", "schedules?path=report.ipynb").json()["schedules"]] == [sid]
    assert server.api("GET", "schedules?path=branches.ipynb").json()["schedules"] == []

    paused = server.api("PATCH", f"schedules/{sid}", json={"enabled": False})
    assert paused.status_code == 200, paused.text
    assert paused.json()["enabled"] is False and paused.json()["next_fire_times"] == []
    changed = server.api(
        "PATCH", f"schedules/{sid}", json={"enabled": True, "cron": "@hourly", "catch_up": "once"}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["cron"], changed.json()["catch_up"], changed.json()["enabled"]) == (
        "@hourly",
        "once",
        True,
    )

    again = server.api("POST", "schedules", json={"path": "report.ipynb", "cron": "@daily"})
    assert again.status_code == 201 and again.json()["id"] == sid  # same notebook and name: replaced
    assert len(server.api("GET", "schedules").json()["schedules"]) == 1

    assert server.api("DELETE", f"schedules/{sid}").status_code == 204
    gone = server.api("GET", f"schedules/{sid}")
    assert gone.status_code == 404 and gone.json()["error"]["field"] == "id"
    assert server.api("GET", "schedules").json()["schedules"] == []


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"cron": "61 * * * *"}, "cron", "field 1 (minute) must be 0-59, got 61"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone 'Mars/Olympus'"),
        ({"target": "airflow"}, "target", "unknown target 'airflow'"),
        ({"catch_up": "always"}, "catch_up", "unknown catch_up 'always'"),
        ({"enabled": "yes"}, "enabled", "must be true or false"),
        ({"parameters": {"alpha": "high"}}, "parameter 'alpha'", "is not a valid float"),
        ({"parameters": [1]}, "parameters", "must be an object"),
        ({"name": "Nightly Train"}, "name", "invalid schedule name"),
        ({"path": "../outside.ipynb"}, "path", "outside the server's root directory"),
        ({"path": "missing.ipynb"}, "path", "no such file"),
    ],
)
def test_bad_fields_are_400s_naming_the_field(server, body: dict, field: str, text: str) -> None:
    answer = server.api("POST", "schedules", json={"path": "report.ipynb", "cron": "@daily", **body})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"].startswith(field) and text in error["text"], error
    assert server.api("GET", "schedules").json()["schedules"] == []


def test_patch_checks_its_fields(server) -> None:
    sid = server.api("POST", "schedules", json={"path": "report.ipynb", "cron": "@daily"}).json()["id"]
    try:
        for body, field in [({"cron": "* * *"}, "cron"), ({"enabled": 1}, "enabled"), ({"path": "x"}, "path"),
                            ({"timezone": "Mars/Olympus"}, "timezone")]:  # fmt: skip
            answer = server.api("PATCH", f"schedules/{sid}", json=body)
            assert answer.status_code == 400 and answer.json()["error"]["field"] == field, answer.text
        assert server.api("GET", f"schedules/{sid}").json()["cron"] == "@daily"  # nothing changed
        assert server.api("PATCH", "schedules/s0000", json={"enabled": False}).status_code == 404
    finally:
        server.api("DELETE", f"schedules/{sid}")


async def test_a_job_schedule_is_a_cronjob_made_paused_and_deleted_through_the_api(
    launch, kmock, tmp_path: Path
) -> None:
    """The server's own settings (namespace, image, store) make the CronJob; kmock on loopback is the cluster."""
    kmock.resources["batch/v1/jobs"] = {}
    kmock.resources["batch/v1/cronjobs"] = {}
    support = Path(__file__).parent / "support" / "remote_store"  # fakes3:// in the server process
    env = {
        "KUBECONFIG": str(write_kubeconfig(tmp_path / "kubeconfig", str(kmock.url), "team-a")),
        "CELLPIPE_NAMESPACE": "team-a",
        "CELLPIPE_IMAGE": "ghcr.io/acme/cellpipe-runtime:1.0",
        "CELLPIPE_STORE": "fakes3://ml-bucket/cellpipe",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(support), os.environ.get("PYTHONPATH")])),
    }
    server = await asyncio.to_thread(launch, env=env)  # the test's loop serves kmock meanwhile
    write_plain_notebook(server.root / "report.ipynb")

    async def api(method: str, route: str, **kwargs):
        return await asyncio.to_thread(server.api, method, route, **kwargs)

    body = {"path": "report.ipynb", "cron": "0 3 * * *", "timezone": "Europe/Berlin", "target": "job",
            "name": "nightly", "parameters": {"alpha": 2}}  # fmt: skip
    created = await api("POST", "schedules", json=body)
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["survives_server_cull"] is True and schedule["target"] == "job"
    assert schedule["cluster"]["kind"] == "cronjob" and schedule["cluster"]["namespace"] == "team-a"
    (post,) = list(kmock["post"])
    cronjob = post.data
    assert cronjob["metadata"]["name"] == "nightly" and cronjob["spec"]["timeZone"] == "Europe/Berlin"
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/acme/cellpipe-runtime:1.0" and "alpha=2.0" in container["args"]
    kubernetes_validate.validate(cronjob, "1.30", strict=True)

    paused = await api("PATCH", f"schedules/{schedule['id']}", json={"enabled": False})
    assert paused.status_code == 200 and paused.json()["enabled"] is False, paused.text
    (patch,) = list(kmock["patch"])
    assert patch.data == {"spec": {"suspend": True}}

    assert (await api("DELETE", f"schedules/{schedule['id']}")).status_code == 204
    (delete,) = list(kmock["delete"])
    assert delete.url.path.endswith("/namespaces/team-a/cronjobs/nightly")
    assert (await api("GET", "schedules")).json()["schedules"] == []


@pytest.mark.slow
def test_a_local_schedule_fires_from_the_server_and_runs_the_notebook(server) -> None:
    """A real one-minute cron: the server's scheduler fires it and the run service runs the plain papermill
    notebook (no step tags) whole, with the schedule's parameters."""
    now = datetime.now(UTC)
    if now.second > 50:  # too close to the minute: let it pass so the first fire time is the next one
        time.sleep(61 - now.second)
    body = {"path": "report.ipynb", "cron": "* * * * *", "parameters": {"alpha": 3, "label": "scheduled"}}
    schedule = server.api("POST", "schedules", json=body).json()
    sid = schedule["id"]
    try:
        deadline = time.time() + 150
        runs: list = []
        while time.time() < deadline:
            view = server.api("GET", f"schedules/{sid}").json()
            assert not view["last_error"], view["last_error"]  # the fire could not start a run
            runs = view["recent_runs"]
            if runs and runs[-1]["status"] in ("succeeded", "failed", "crashed", "cancelled"):
                break
            time.sleep(1)
        assert runs, f"no run within 150 s:\n{server.log_text()[-3000:]}"
        run = server.api("GET", f"runs/{runs[-1]['id']}").json()
        assert run["status"] == "succeeded", run
        assert run["schedule_id"] == sid and run["source"] == "schedule"
        assert run["parameters"]["alpha"] == 3.0 and run["parameters"]["label"] == "scheduled"
        assert run["snapshot_id"]  # each fire takes a fresh snapshot
        assert server.api("GET", f"schedules/{sid}").json()["missed"] == []
    finally:
        server.api("DELETE", f"schedules/{sid}")
