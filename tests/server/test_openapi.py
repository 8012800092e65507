"""The live server against its OpenAPI description (jupyter_ext/server/openapi.yaml), with schemathesis.

Schemathesis generates requests from the description, valid and invalid ones, sends them to a real server
and checks each answer: no 5xx, a documented status code and content type, a body matching the documented
schema, and invalid requests refused. The number of examples is bounded so the whole check takes seconds.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import missing_required_header, positive_data_acceptance

import jupyter_ext.server
from jupyter_ext.server.app import ROUTE_MODULES

OPENAPI = Path(jupyter_ext.server.__file__).parent / "openapi.yaml"

schema = schemathesis.openapi.from_path(OPENAPI)
if "jupyter_ext.server.schedules" not in ROUTE_MODULES:  # their routes are checked once they are served
    schema = schema.exclude(path_regex="^/schedules")


def test_every_served_route_is_described_and_every_described_route_served():
    import importlib
    import re

    import yaml

    def shape(path: str) -> str:  # "runs/(?P<run_id>[\\w.-]+)/logs" and "/runs/{id}/logs" -> "runs/{}/logs"
        return re.sub(r"\(\?P<\w+>[^)]*\)|\{\w+\}", "{}", path).strip("/")

    methods = ("get", "post", "put", "patch", "delete")
    served = {
        shape(pattern.removeprefix("cellpipe/api/")): sorted(m for m in methods if m in vars(handler))
        for module in ROUTE_MODULES
        for pattern, handler, *_ in importlib.import_module(module).routes()
    }
    described = {
        shape(path): sorted(m for m in operations if m in methods)
        for path, operations in yaml.safe_load(OPENAPI.read_text())["paths"].items()
        if "jupyter_ext.server.schedules" in ROUTE_MODULES or not path.startswith("/schedules")
    }
    assert served == described


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_the_live_server_answers_as_described(case, server):
    # Two checks do not apply: a valid request can still be refused for what it names (a notebook that does
    # not exist; a documented 4xx), and jupyter_server answers a request without credentials with 403, its
    # convention for every API route (documented as such), where schemathesis expects 401.
    case.call_and_validate(
        base_url=f"{server.url}/cellpipe/api",
        headers=server.headers(),
        excluded_checks=[positive_data_acceptance, missing_required_header],
        timeout=60,
    )
