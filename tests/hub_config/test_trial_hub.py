"""The trial hub for real: two users, each with their own server, home and cellpipe data; neither can
reach the other's runs or server. One hub for the module (starting it costs ~10 s)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import pytest

from tests.hub_config.trial_hub import TrialHub, start_trial_hub, stop_trial_hub

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).parents[2] / "examples" / "wine_classifier.ipynb"
A, B = "alice", "bob"  # JupyterHub lower-cases user names


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> TrialHub:
    started = start_trial_hub(tmp_path_factory.mktemp("trial-hub"), [A, B])
    pids = [p.pid for p in psutil.Process(started.process.pid).children(recursive=True)]
    yield started
    leftovers = stop_trial_hub(started)
    assert started.process.returncode == 0, started.log()
    assert leftovers == [] and not [p for p in pids if psutil.pid_exists(p)], "the hub left processes behind"


@pytest.fixture(scope="module")
def alice_run(hub) -> dict:
    """alice uploads the example notebook into her home and runs it as a pipeline through her server."""
    content = json.loads(EXAMPLE.read_text())
    put = hub.api("PUT", f"/user/{A}/api/contents/wine.ipynb", hub.tokens[A],
                  json={"type": "notebook", "format": "json", "content": content})  # fmt: skip
    assert put.status_code in (200, 201), put.text
    started = hub.api(
        "POST", f"/user/{A}/cellpipe/api/runs", hub.tokens[A], json={"path": "wine.ipynb", "track": False}
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    deadline = time.monotonic() + 120
    while True:
        record = hub.api("GET", f"/user/{A}/cellpipe/api/runs/{run_id}", hub.tokens[A]).json()
        if record["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return record
        time.sleep(0.5)


def test_alice_runs_the_example_as_a_pipeline_through_her_server(hub, alice_run):
    assert alice_run["status"] == "succeeded", alice_run
    steps = alice_run["steps"]
    names = [s["name"] for s in steps] if isinstance(steps, list) else list(steps)
    assert sorted(names) == ["evaluate", "load_data", "split", "train"]
    listed = hub.api("GET", f"/user/{A}/cellpipe/api/runs", hub.tokens[A]).json()["runs"]
    assert [r["id"] for r in listed] == [alice_run["id"]]


def test_each_user_has_a_separate_private_home_and_data_dir(hub, alice_run):
    users = hub.directory / "hub" / "users"
    assert (users / A / "home" / "wine.ipynb").exists() and not (users / B / "home" / "wine.ipynb").exists()
    assert (users / A / "cellpipe" / "runs" / alice_run["id"]).is_dir()
    assert not (users / B / "cellpipe" / "runs").exists() or not any(
        (users / B / "cellpipe" / "runs").iterdir()
    )
    for user in (A, B):
        for path in (users / user, users / user / "home", users / user / "cellpipe"):
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "cellpipe/api/runs", None),
        ("GET", "cellpipe/api/runs/{id}", None),
        ("DELETE", "cellpipe/api/runs/{id}", None),
        ("POST", "cellpipe/api/runs/{id}/cancel", None),
        ("POST", "cellpipe/api/runs/{id}/rerun", None),
        ("GET", "cellpipe/api/runs/{id}/logs", None),
        ("GET", "cellpipe/api/runs/{id}/steps/train/notebook", None),
        ("POST", "cellpipe/api/runs", {"path": "wine.ipynb", "track": False}),
        ("POST", "cellpipe/api/schedules", {"path": "wine.ipynb", "cron": "0 3 * * *"}),
        ("GET", "cellpipe/api/schedules", None),
        ("GET", "cellpipe/api/config", None),
        ("GET", "api/status", None),
        ("GET", "api/contents/wine.ipynb", None),
        ("GET", "lab", None),
    ],
)
def test_bob_cannot_reach_alices_runs_schedules_or_server(hub, alice_run, method, path, body):
    url = f"/user/{A}/" + path.format(id=alice_run["id"])
    # Where alice herself can read the route, bob must get 403 (not the 404 of a missing route). Writes are not
    # tried as alice: 404/405 there mean a route or method this server does not have for anyone, and the
    # check at the end shows nothing bob sent had an effect.
    readable = method == "GET" and hub.api("GET", url, hub.tokens[A]).status_code == 200
    refused = {403} if readable else {403, 404, 405}
    for token in (hub.tokens[B], None):
        answer = hub.api(method, url, token, json=body)
        if token is None and path == "lab":  # a browser without a login is sent to the hub's login
            assert answer.status_code == 302 and "/hub/" in answer.headers["Location"]
            continue
        assert answer.status_code in refused, (token is None, answer.status_code, answer.text[:300])
        assert alice_run["id"] not in answer.text
    # nothing bob sent reached alice's runs: her run is still there, unchanged
    listed = hub.api("GET", f"/user/{A}/cellpipe/api/runs", hub.tokens[A]).json()["runs"]
    assert [(r["id"], r["status"]) for r in listed] == [(alice_run["id"], "succeeded")]


def test_bob_cannot_read_change_or_delete_alices_schedule(hub, alice_run):
    created = hub.api("POST", f"/user/{A}/cellpipe/api/schedules", hub.tokens[A],
                      json={"path": "wine.ipynb", "cron": "0 3 * * *", "enabled": False})  # fmt: skip
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["survives_server_cull"] is False  # a local schedule lives in her server
    url = f"/user/{A}/cellpipe/api/schedules/{schedule['id']}"
    for method, body in (("GET", None), ("PATCH", {"enabled": True}), ("DELETE", None)):
        answer = hub.api(method, url, hub.tokens[B], json=body)
        assert answer.status_code == 403 and schedule["id"] not in answer.text, (method, answer.status_code)
    assert hub.api("GET", url, hub.tokens[A]).json()["enabled"] is False  # unchanged, still there
    assert hub.api("GET", f"/user/{B}/cellpipe/api/schedules", hub.tokens[B]).json()["schedules"] == []
    assert hub.api("DELETE", url, hub.tokens[A]).status_code == 204


def test_bob_cannot_read_alice_through_the_hub_api(hub):
    for path in (f"/hub/api/users/{A}", f"/hub/api/users/{A}/tokens"):
        assert hub.api("GET", path, hub.tokens[B]).status_code in (403, 404)
    assert hub.api("POST", f"/hub/api/users/{A}/tokens", hub.tokens[B], json={}).status_code == 403
    assert hub.api("DELETE", f"/hub/api/users/{A}/server", hub.tokens[B]).status_code in (403, 404)


def test_bobs_own_server_knows_nothing_of_alices_runs(hub, alice_run):
    listed = hub.api("GET", f"/user/{B}/cellpipe/api/runs", hub.tokens[B])
    assert listed.status_code == 200 and listed.json()["runs"] == []
    lookup = hub.api("GET", f"/user/{B}/cellpipe/api/runs/{alice_run['id']}", hub.tokens[B])
    assert lookup.status_code == 404 and "wine" not in lookup.text
    # the same notebook path names bob's own (absent) file, not alice's
    refused = hub.api("POST", f"/user/{B}/cellpipe/api/runs", hub.tokens[B], json={"path": "wine.ipynb"})
    assert refused.status_code == 400, refused.text
    # and his server will not go up to her home (the servers share an OS user: the root is the boundary)
    for route in ("runs", "analyse"):
        escape = hub.api("POST", f"/user/{B}/cellpipe/api/{route}", hub.tokens[B],
                         json={"path": f"../../{A}/home/wine.ipynb"})  # fmt: skip
        assert escape.status_code == 400 and "outside" in escape.text, escape.text
    assert hub.api("GET", f"/user/{B}/cellpipe/api/runs", hub.tokens[B]).json()["runs"] == []


def test_browser_login_through_the_hub_lands_in_jupyterlab(hub):
    """A person logs in at /hub/login with the shared password and gets their own JupyterLab, not bob's."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
    chromium = os.environ.get("CELLPIPE_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        pytest.skip(f"no chromium at {chromium} (apt-get install -y chromium, or set CELLPIPE_CHROMIUM)")
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--no-first-run"]  # fmt: skip
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=flags)
        try:
            page = browser.new_page()
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", A)
            page.fill("#password_input", "not-the-password")
            page.click("#login_submit")  # the answer is a new page: wait for it, do not read the old one
            page.get_by_text("Invalid username or password").wait_for(timeout=30_000)
            assert "/hub/login" in page.url

            page.fill("#username_input", A)
            page.fill("#password_input", hub.password)
            page.click("#login_submit")
            page.wait_for_url(f"**/user/{A}/lab**", timeout=90_000)
            page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)  # JupyterLab's shell rendered
            # her own home in the file browser
            page.locator(".jp-DirListing-item", has_text="wine.ipynb").wait_for(timeout=60_000)

            answer = page.goto(f"{hub.url}/user/{B}/lab")  # with alice's cookies
            assert answer.status == 403 and page.locator("#jp-main-dock-panel").count() == 0
        finally:
            browser.close()
