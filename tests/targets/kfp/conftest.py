"""Fixtures for the KFP target: a loopback server that speaks the KFP v2beta1 REST API.

The server (an aiohttp app on 127.0.0.1, ephemeral port, in a thread) keeps pipelines, versions,
experiments and runs in memory, records every request (method, path, query, Authorization header, JSON
body, uploaded files) and can be told to fail a route. Tests take it as the ``kfp_server`` fixture and
use its attributes (``url``, ``requests``, ``fail()``, ``take()``, ...).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

API = "/apis/v2beta1"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: Any = None  # parsed JSON
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # form field -> (file name, bytes)


class FakeKFP:
    """Just enough of the KFP API server's v2beta1 routes, with its JSON shapes."""

    def __init__(self) -> None:
        self.url = ""
        self.multi_user = False
        self.healthz_body: str | None = None  # overrides the healthz answer (e.g. a login page)
        self.requests: list[Request] = []
        self.pipelines: list[dict] = []
        self.versions: list[dict] = []
        self.experiments: list[dict] = []
        self.runs: dict[str, dict] = {}
        self.recurring_runs: list[dict] = []
        self.run_script: dict[str, list[dict]] = {}  # run id -> successive GET answers (the last repeats)
        self.logs: dict[str, str] = {}  # pod -> log text
        self._failures: dict[tuple[str, str], list[tuple[int, dict]]] = {}
        self._ids = itertools.count(1)

    def fail(self, method: str, path: str, status: int, message: str, times: int = 1) -> None:
        body = {"error": message, "code": 13, "message": message, "details": []}
        self._failures.setdefault((method, path), []).extend([(status, body)] * times)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def paths(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]

    def take(self) -> list[Request]:
        taken, self.requests = self.requests, []
        return taken

    # -- plumbing --
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get(f"{API}/healthz", self.healthz)
        app.router.add_get(f"{API}/pipelines", self.list_pipelines)
        app.router.add_post(f"{API}/pipelines/upload", self.upload_pipeline)
        app.router.add_post(f"{API}/pipelines/upload_version", self.upload_version)
        app.router.add_get(f"{API}/pipelines/{{pipeline_id}}/versions", self.list_versions)
        app.router.add_get(f"{API}/experiments", self.list_experiments)
        app.router.add_post(f"{API}/experiments", self.create_experiment)
        app.router.add_post(f"{API}/runs", self.create_run)
        app.router.add_get(f"{API}/runs/{{run_id:[^/:]+}}", self.get_run)
        app.router.add_post(f"{API}/runs/{{run_id:[^/:]+}}:terminate", self.terminate_run)
        app.router.add_post(f"{API}/recurringruns", self.create_recurring_run)
        app.router.add_get(f"{API}/recurringruns", self.list_recurring_runs)
        app.router.add_get(f"{API}/recurringruns/{{rr_id:[^/:]+}}", self.get_recurring_run)
        app.router.add_post(f"{API}/recurringruns/{{rr_id:[^/:]+}}:enable", self.enable_recurring_run)
        app.router.add_post(f"{API}/recurringruns/{{rr_id:[^/:]+}}:disable", self.disable_recurring_run)
        app.router.add_delete(f"{API}/recurringruns/{{rr_id:[^/:]+}}", self.delete_recurring_run)
        app.router.add_get("/apis/v1alpha1/runs/{run_id}/nodes/{node_id}/log", self.read_log)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        entry = Request(
            request.method, request.path, dict(request.query), request.headers.get("Authorization")
        )
        if request.content_type == "application/json" and request.can_read_body:
            entry.body = await request.json()
        elif request.content_type == "multipart/form-data":
            form = await request.post()
            entry.files = {
                k: (v.filename, v.file.read()) for k, v in form.items() if isinstance(v, web.FileField)
            }
        self.requests.append(entry)  # the handlers read their body from here (requests come one at a time)
        queued = self._failures.get((request.method, request.path))
        if queued:
            status, body = queued.pop(0)
            return web.json_response(body, status=status)
        return await handler(request)

    @staticmethod
    def _named(items: list[dict], request: web.Request) -> list[dict]:
        predicates = json.loads(request.query.get("filter") or '{"predicates": []}')["predicates"]
        names = [p["stringValue"] for p in predicates if p["key"] == "display_name"]
        namespace = request.query.get("namespace")
        return [
            item
            for item in items
            if (not names or item["display_name"] in names)
            and (not namespace or item.get("namespace") == namespace)
        ]

    # -- routes --
    async def healthz(self, request: web.Request) -> web.Response:
        if self.healthz_body is not None:
            return web.Response(text=self.healthz_body, content_type="text/html")
        return web.json_response({"commit_sha": "test", "tag_name": "2.5.0", "multi_user": self.multi_user})

    async def list_pipelines(self, request: web.Request) -> web.Response:
        found = self._named(self.pipelines, request)
        return web.json_response({"pipelines": found, "total_size": len(found)} if found else {})

    async def upload_pipeline(self, request: web.Request) -> web.Response:
        query = request.query
        pipeline = {
            "pipeline_id": self.new_id("p"),
            "display_name": query["name"],
            "namespace": query.get("namespace"),
        }
        self.pipelines.append(pipeline)
        self._add_version(pipeline["pipeline_id"], query["name"])  # KFP makes the first version too
        return web.json_response(pipeline)

    def _add_version(self, pipeline_id: str, name: str) -> dict:
        version = {"pipeline_id": pipeline_id, "pipeline_version_id": self.new_id("v"), "display_name": name}
        self.versions.append(version)
        return version

    async def upload_version(self, request: web.Request) -> web.Response:
        return web.json_response(self._add_version(request.query["pipelineid"], request.query["name"]))

    async def list_versions(self, request: web.Request) -> web.Response:
        mine = [v for v in self.versions if v["pipeline_id"] == request.match_info["pipeline_id"]]
        return web.json_response({"pipeline_versions": list(reversed(mine)), "total_size": len(mine)})

    async def list_experiments(self, request: web.Request) -> web.Response:
        found = self._named(self.experiments, request)
        return web.json_response({"experiments": found, "total_size": len(found)} if found else {})

    async def create_experiment(self, request: web.Request) -> web.Response:
        experiment = {**self.requests[-1].body, "experiment_id": self.new_id("e")}
        self.experiments.append(experiment)
        return web.json_response(experiment)

    async def create_run(self, request: web.Request) -> web.Response:
        run = {**self.requests[-1].body, "run_id": self.new_id("r"), "state": "PENDING"}
        self.runs[run["run_id"]] = run
        return web.json_response(run)

    async def get_run(self, request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        if run_id not in self.runs:
            return web.json_response({"error": f"run {run_id} not found", "code": 5}, status=404)
        script = self.run_script.get(run_id)
        answer = (script.pop(0) if len(script) > 1 else script[0]) if script else {}
        return web.json_response({**self.runs[run_id], **answer})

    async def terminate_run(self, request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        if run_id not in self.runs:
            return web.json_response({"error": f"run {run_id} not found", "code": 5}, status=404)
        self.runs[run_id]["state"] = "CANCELING"
        return web.json_response({})

    async def create_recurring_run(self, request: web.Request) -> web.Response:
        body = self.requests[-1].body
        status = "DISABLED" if body.get("mode") == "DISABLE" else "ENABLED"
        recurring = {**body, "recurring_run_id": self.new_id("rr"), "status": status}
        self.recurring_runs.append(recurring)
        return web.json_response(recurring)

    def _recurring(self, request: web.Request) -> dict | None:
        wanted = request.match_info["rr_id"]
        return next((r for r in self.recurring_runs if r["recurring_run_id"] == wanted), None)

    @staticmethod
    def _no_recurring(request: web.Request) -> web.Response:
        message = f"recurring run {request.match_info['rr_id']} not found"
        return web.json_response({"error": message, "code": 5}, status=404)

    async def list_recurring_runs(self, request: web.Request) -> web.Response:
        found = self._named(self.recurring_runs, request)
        return web.json_response({"recurringRuns": found, "total_size": len(found)} if found else {})

    async def get_recurring_run(self, request: web.Request) -> web.Response:
        found = self._recurring(request)
        return web.json_response(found) if found else self._no_recurring(request)

    async def enable_recurring_run(self, request: web.Request) -> web.Response:
        return self._set_status(request, "ENABLED")

    async def disable_recurring_run(self, request: web.Request) -> web.Response:
        return self._set_status(request, "DISABLED")

    def _set_status(self, request: web.Request, status: str) -> web.Response:
        found = self._recurring(request)
        if not found:
            return self._no_recurring(request)
        found["status"] = status
        return web.json_response({})

    async def delete_recurring_run(self, request: web.Request) -> web.Response:
        found = self._recurring(request)
        if not found:
            return self._no_recurring(request)
        self.recurring_runs.remove(found)
        return web.json_response({})

    async def read_log(self, request: web.Request) -> web.Response:
        return web.Response(text=self.logs[request.match_info["node_id"]])


@pytest.fixture
def kfp_server() -> Iterator[FakeKFP]:
    fake = FakeKFP()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(fake.app(), access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="fake-kfp", daemon=True)
    thread.start()
    assert ready.wait(10), "the loopback KFP server did not start"
    yield fake
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No host, token path, namespace or UI URL from the machine running the tests."""
    for name in (
        "KF_PIPELINES_ENDPOINT",
        "CELLPIPE_KFP_HOST",
        "KF_PIPELINES_UI_ENDPOINT",
        "KF_PIPELINES_SA_TOKEN_PATH",
        "KF_PIPELINES_IAP_OAUTH2_CLIENT_ID",
        "CELLPIPE_NAMESPACE",
    ):
        monkeypatch.delenv(name, raising=False)
