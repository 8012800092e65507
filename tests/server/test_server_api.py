"""The server extension in a real `jupyter server` process: auth, XSRF, paths, analysis, runs, cancel."""

import json
import time

import pytest
import requests

TOKEN = "cellpipe-test-token"  # as in conftest.py


def test_analyse_a_notebook_and_unsaved_content(server):
    root = server.root
    response = server.api("POST", "analyse", json={"path": "branches.ipynb"})
    assert response.status_code == 200, response.text
    data = response.json()
    assert [s["name"] for s in data["pipeline"]["steps"]] == ["make_data", "stats", "histogram", "report"]
    assert data["levels"][1] == "[1] stats   histogram"
    assert '"make_data" -> "stats"' in data["dot"]
    assert data["svg"].startswith("<svg")
    edited = (root / "branches.ipynb").read_text().replace("step:report", "step:summary")
    response = server.api("POST", "analyse", json={"path": "branches.ipynb", "content": edited})
    assert response.json()["pipeline"]["steps"][-1]["name"] == "summary"
    assert "step:report" in (root / "branches.ipynb").read_text()  # the user's file is never modified


def test_requests_without_credentials_are_refused(server):
    url = server.url
    response = requests.post(f"{url}/cellpipe/api/analyse", json={"path": "branches.ipynb"}, timeout=10)
    assert response.status_code == 403


def test_cookie_sessions_need_the_xsrf_token(server):
    url = server.url
    session = requests.Session()
    session.get(f"{url}/api/status?token={TOKEN}", timeout=10)  # logs in: sets the auth and _xsrf cookies
    session.get(f"{url}/lab?token={TOKEN}", timeout=10)
    body = {"path": "branches.ipynb"}
    refused = session.post(f"{url}/cellpipe/api/analyse", json=body, timeout=10)
    assert refused.status_code == 403
    xsrf = session.cookies.get("_xsrf")
    assert xsrf, "the server should have set an _xsrf cookie"
    accepted = session.post(
        f"{url}/cellpipe/api/analyse", json=body, headers={"X-XSRFToken": xsrf}, timeout=10
    )
    assert accepted.status_code == 200, accepted.text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"path": "../outside.ipynb"}, "outside the server's root directory"),
        ({"path": "/etc/passwd"}, "no such file"),
        ({}, "path: is required"),
        ({"path": "missing.ipynb"}, "missing.ipynb: no such file"),
    ],
)
def test_bad_requests_are_clear_400s(server, body, expected):
    response = server.api("POST", "analyse", json=body)
    assert response.status_code == 400
    assert expected in response.json()["error"]["text"]


def test_user_mistake_in_notebook_names_the_cell(server):
    root = server.root
    text = (root / "branches.ipynb").read_text().replace("step:stats", "step:Bad Stats")
    response = server.api("POST", "analyse", json={"path": "branches.ipynb", "content": text})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["cell"] == 5 and "malformed tag 'step:Bad Stats'" in error["text"]


def wait_final(server, run_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        record = server.api("GET", f"runs/{run_id}").json()
        if record["status"] not in ("queued", "running"):
            return record
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish")


@pytest.mark.slow
def test_run_as_pipeline_from_the_ui(server):
    response = server.api(
        "POST", "runs", json={"path": "branches.ipynb", "parameters": {"n": 50}, "track": False}
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    record = wait_final(server, run_id)
    assert record["status"] == "succeeded", json.dumps(record, indent=1)
    assert record["parameters"]["n"] == 50 and record["source"] == "jupyterlab"
    assert record["snapshot_id"]
    listed = server.api("GET", "runs", params={"path": "branches.ipynb"}).json()["runs"]
    assert run_id in [r["id"] for r in listed]


@pytest.mark.slow
def test_typed_parameters_are_checked(server):
    response = server.api("POST", "runs", json={"path": "branches.ipynb", "parameters": {"n": "many"}})
    assert response.status_code == 400
    assert "parameter 'n' (override): 'many' is not a valid int" in response.json()["error"]["text"]


@pytest.mark.slow
def test_cancel_a_running_pipeline(server):
    root = server.root
    text = (
        (root / "branches.ipynb")
        .read_text()
        .replace(
            "rng = np.random.default_rng(0)", "import time; time.sleep(60)\\nrng = np.random.default_rng(0)"
        )
    )
    (root / "slow.ipynb").write_text(text)
    run_id = server.api("POST", "runs", json={"path": "slow.ipynb", "track": False}).json()["id"]
    deadline = time.time() + 60
    while server.api("GET", f"runs/{run_id}").json()["steps"][0]["status"] != "running":
        assert time.time() < deadline
        time.sleep(0.3)
    assert server.api("POST", f"runs/{run_id}/cancel").status_code == 202
    record = wait_final(server, run_id, timeout=30)
    assert record["status"] == "cancelled"
    assert server.api("POST", f"runs/{run_id}/cancel").status_code == 404
