"""Every route asks jupyter_server's Authorizer, with the resource and action it really touches.

A real server runs with a restrictive Authorizer (``support/policy_authorizer.py``: it allows exactly the
``resource:action`` pairs in a policy file the test rewrites). Under each policy, each route is called under each policy: where the
policy lacks the route's permission the answer is 403 and nothing happens; where it has it, the request
gets past authorization (to a 2xx, or a 4xx about the request itself, never 403).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from jupyter_ext.server.app import ROUTE_MODULES

READ = "contents:read"
WRITE = "contents:write"
EXECUTE = "kernels:execute"

# (method, route, body, permission it needs). Bodies are deliberately incomplete where the route would
# otherwise start work: an authorized request then ends in a 400/404, which still proves it got past the check.
ROUTES = [
    ("GET", "config", None, READ),
    ("POST", "analyse", {"path": "branches.ipynb"}, READ),
    ("GET", "runs", None, READ),
    ("POST", "runs", {}, EXECUTE),
    ("GET", "runs/no-such-run", None, READ),
    ("POST", "runs/no-such-run/cancel", None, EXECUTE),
    ("POST", "runs/no-such-run/rerun", None, EXECUTE),
    ("DELETE", "runs/no-such-run", None, WRITE),
    ("GET", "runs/no-such-run/logs", None, READ),
    ("GET", "runs/no-such-run/steps/train/notebook", None, READ),
]
if "jupyter_ext.server.schedules" in ROUTE_MODULES:  # scheduling runs code later: execute, like starting
    ROUTES += [
        ("GET", "schedules", None, READ),
        ("POST", "schedules", {}, EXECUTE),
        ("POST", "schedules/preview", {}, READ),
        ("GET", "schedules/no-such-schedule", None, READ),
        ("PATCH", "schedules/no-such-schedule", {}, EXECUTE),
        ("DELETE", "schedules/no-such-schedule", None, EXECUTE),
    ]

POLICIES = {
    "nothing": set(),
    "read-only": {READ},
    "read-write": {READ, WRITE},
    "read-execute": {READ, EXECUTE},
    "everything": {READ, WRITE, EXECUTE},
}


def policy_server(launch, tmp_path_factory, allowed: str, env: dict[str, str] | None = None):
    """A server asking the policy Authorizer, and its policy file (one ``resource:action`` a line)."""
    policy = tmp_path_factory.mktemp("policy") / "allowed.txt"
    policy.write_text(allowed)
    support = str(Path(__file__).parent / "support")
    server = launch(
        "--ServerApp.authorizer_class=policy_authorizer.PolicyAuthorizer",
        env={
            **(env or {}),
            "CELLPIPE_TEST_POLICY": str(policy),
            "PYTHONPATH": os.pathsep.join(p for p in (support, os.environ.get("PYTHONPATH", "")) if p),
        },
    )
    return server, policy


@pytest.fixture(scope="module")
def guarded(launch, tmp_path_factory):
    """A server asking the policy Authorizer, and a function that sets the policy."""
    server, policy = policy_server(launch, tmp_path_factory, "")

    def allow(permissions: set[str]) -> None:
        policy.write_text("\n".join(sorted(permissions)))

    return server, allow


@pytest.mark.parametrize("policy", list(POLICIES))
def test_route_permission_matrix(guarded, policy):
    server, allow = guarded
    allowed = POLICIES[policy]
    allow(allowed)
    outcomes = []
    for method, route, body, needs in ROUTES:
        response = server.api(method, route, json=body)
        refused = response.status_code == 403
        outcomes.append(f"{method} {route}: {response.status_code}")
        assert refused == (needs not in allowed), (policy, method, route, response.status_code, response.text)
        assert response.status_code < 500, (policy, method, route, response.text)
        if refused:
            assert "not authorized" in response.json()["error"]["message"]
    print(policy, "; ".join(outcomes))


def test_a_refused_start_runs_nothing(guarded):
    server, allow = guarded
    allow(POLICIES["read-only"])
    response = server.api("POST", "runs", json={"path": "branches.ipynb", "track": False})
    assert response.status_code == 403
    listed = server.api("GET", "runs").json()
    assert listed["total"] == 0 and listed["runs"] == []


def test_analysis_by_a_user_who_may_not_run_starts_no_kernels(launch, tmp_path_factory):
    """Analysing starts the warm kernel pool (a run may follow), but only for a user who may start runs."""
    from tests.server.test_kernel_pool import DEFAULT, kernel_children, wait_for

    server, policy = policy_server(launch, tmp_path_factory, READ, env=DEFAULT)
    assert server.api("POST", "analyse", json={"path": "branches.ipynb"}).status_code == 200
    time.sleep(2.0)  # a pool started by that analysis has forked by now
    assert kernel_children(server.process.pid) == set()
    policy.write_text(f"{READ}\n{EXECUTE}")
    assert server.api("POST", "analyse", json={"path": "branches.ipynb"}).status_code == 200
    wait_for(lambda: len(kernel_children(server.process.pid)) >= 3)
