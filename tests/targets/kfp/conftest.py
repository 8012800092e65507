"""Fixtures for the KFP target: a loopback server that answers as a real KFP API server does.

The server (an aiohttp app on 127.0.0.1, ephemeral port, in a thread) keeps pipelines, versions,
experiments, runs and recurring runs in memory, records every request (method, path, query, Authorization
header, JSON body, uploaded files) and can be told to fail a route. Tests take it as the ``kfp_server``
fixture and use its attributes (``url``, ``requests``, ``fail()``, ``take()``, ``runs``, ...).

Every answer has the shape of the real one. The shapes were read in kubeflow/pipelines (fetched with its
history; tags 2.5.0 and 2.17.0, and master at 7b70c7b95f) and checked against the ``kfp-server-api`` 2.17
models; where they come from:

- Field names and JSON: ``backend/api/v2beta1/{run,recurring_run,pipeline}.proto``, marshalled by
  grpc-gateway with ``UseProtoNames: true, EmitUnpopulated: false`` (``backend/src/apiserver/common/
  utils.go: CustomMarshaler``; 2.5.0 used grpc-gateway v1's default, ``OrigName`` without defaults, which
  gives the same JSON): snake_case names, zero values left out (an UNSPECIFIED state, an
  ``execution_id`` of 0, an empty ``pod_name``), int64 as JSON strings (``max_concurrency: "2"``), enums
  as names, timestamps as RFC 3339.
- A run (``server/api_converter.go: toApiRun``): ``error`` only when the server cannot convert the run,
  so never here, not even for a failed run; ``finished_at`` is ``1970-01-01T00:00:00Z`` until it ends;
  ``state_history`` appends a state when the persistence agent reports a new one (``storage/run_store.go:
  UpdateRun``); a run from a pipeline version has no ``pipeline_spec``.
- ``run_details.task_details`` (``api_converter.go: toModelTasks(util.ExecutionSpec)``, ``toModelTask(
  util.NodeStatus)``, ``toApiPipelineTaskDetail``; ``common/util/workflow.go: NodeStatuses``): one entry
  per Argo node, sorted by node id, named by the node's display name, with ``child_tasks[].pod_name`` the
  children's node ids and no ``pod_name``, ``error`` or ``execution_id``. The nodes are those the v2
  compiler makes (``backend/src/v2/compiler/argocompiler/{argo,dag,container}.go``): the workflow
  (``entrypoint``), ``root-driver`` (``system-dag-driver``), ``root``, and per task ``<key>-driver``
  (``system-container-driver``), ``<key>`` (``system-container-executor``) and ``executor``
  (``system-container-impl``, ``metadata-<a>-<l>-...`` since 2.14 for a task with pod metadata). Node
  states are Argo phases through ``model.RuntimeState.ToV2`` (``model/run.go``): ``Omitted`` becomes
  UNSPECIFIED and is left out; a node's zero time is ``0001-01-01T00:00:00Z``.
- Node ids are Argo's (``<workflow>-<fnv32a of the node name>``) and pod names Argo's v2 names, as KFP
  computes them (``workflow.go: RetrievePodName``): ``<workflow>-<template>-<hash>``.
- Terminate (``resource/resource_manager.go: TerminateRun``, ``storage/run_store.go: TerminateRun``):
  the state becomes CANCELING without a history entry, the workflow gets ``activeDeadlineSeconds: 0``;
  the report while it stops appends CANCELING, the finished workflow's ``Failed`` phase makes the run
  FAILED (``ReportWorkflowResource``). Running nodes end ``Failed``.
- The log route (``server/run_log_server.go: ReadRunLogV1``, ``resource_manager.go: ReadLog``): served
  by the API server only (the UI, ``frontend/server/app.ts``, proxies ``/apis/v1beta1`` and
  ``/apis/v2beta1`` and answers other paths with its web page); the node id is used as the pod name; it
  writes 200 before reading the pod, so a failure is a 200 whose body is ``{"error_message",
  "error_details"}`` (Go sniffs ``text/plain; charset=utf-8`` for both).
- With ``ui = True`` the host is the KFP UI: its own healthz (``frontend/server/handlers/healthz.ts``) and
  its log route ``/k8s/pod/logs?podname=&runid=&podnamespace=`` (``handlers/pod-logs.ts``: 400 without a
  pod name, 422 without the namespace on multi-user KFP, 404 ``pod not found``).
- A pipeline version's ``pipeline_spec`` (``server/api_util.go: YamlStringToPipelineSpecStruct``): the
  spec, or ``{"pipeline_spec", "platform_spec"}`` for a package with a Kubernetes platform spec.
- Recurring runs (``api_converter.go: toApiRecurringRun``, ``toApiRecurringRunStatus``):
  ``max_concurrency`` as a string, ``status`` DISABLED for one created with mode DISABLE.

Ids are counters (``p-2``, ``r-4``) where KFP makes UUIDs, to keep the tests readable; nothing reads them.
Runs advance only when a test says so: ``kfp_server.run(run_id)`` is a :class:`FakeRun` whose methods
(``start``, ``step``, ``finish``, ``stopped``) change its Argo nodes as the workflow controller and the
persistence agent would; ``kfp_server.on_get[run_id]`` is a list of such changes applied one per GET.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

API = "/apis/v2beta1"
LOG_ROUTE = "/apis/v1alpha1/runs/{run_id}/nodes/{node_id}/log"
ZERO_NODE_TIME = "0001-01-01T00:00:00Z"  # metav1.Time{}.Unix() through timestamppb
ZERO_RUN_TIME = "1970-01-01T00:00:00Z"  # a run's FinishedAtInSec of 0
# model.RuntimeState(phase).ToV2(): Argo node phases as v2beta1 states (None: UNSPECIFIED, left out).
ARGO_TO_V2 = {"Pending": "PENDING", "Running": "RUNNING", "Succeeded": "SUCCEEDED", "Skipped": "SKIPPED",
              "Failed": "FAILED", "Error": "FAILED", "Omitted": None}  # fmt: skip
UI_PAGE = '<!doctype html><html lang="en"><head><title>Kubeflow Pipelines</title></head><body></body></html>'


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: Any = None  # parsed JSON
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # form field -> (file name, bytes)


def fnv32a(text: str) -> int:
    """Argo's node id hash (hash/fnv New32a of the node name)."""
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Node:
    """One node of the run's Argo workflow (the parts KFP reads: NodeStatuses)."""

    name: str  # Argo's node name: <workflow>.root.<key>.executor
    display_name: str
    template: str
    kind: str  # Pod or DAG
    phase: str
    started: datetime | None = None
    finished: datetime | None = None
    children: list[str] = field(default_factory=list)
    id: str = ""
    message: str = ""


class FakeRun:
    """A run and its Argo workflow, advanced by the test as the workflow controller would run it."""

    def __init__(self, fake: FakeKFP, record: dict[str, Any], spec: dict[str, Any], platform: dict) -> None:
        self.fake = fake
        self.record = record
        self.spec = spec
        self.platform = platform
        name = str(spec.get("pipelineInfo", {}).get("name") or "pipeline")
        self.workflow = f"{name[:50]}-{next(fake.suffixes)}"
        self.nodes: dict[str, Node] = {}  # node id -> node
        self.task_ids: dict[str, str] = {}  # node id -> KFP's task id (assigned once, task_store.go)
        self.clock = fake.clock
        self.pods: dict[str, dict[str, Any]] = {}  # pod name -> {"node", "key", "phase", "exit_code"}

    # -- Argo's names --
    def node_id(self, name: str) -> str:
        return self.workflow if name == self.workflow else f"{self.workflow}-{fnv32a(name)}"

    def pod_name(self, node: Node) -> str:
        return f"{self.workflow}-{node.template}-{node.id.rsplit('-', 1)[-1]}"

    def executor_template(self, key: str) -> str:
        """container.go addContainerExecutorTemplate: the metadata-<a>-<l>- prefix since KFP 2.14."""
        tasks = self.spec["root"]["dag"]["tasks"]
        label = self.spec["components"][tasks[key]["componentRef"]["name"]]["executorLabel"]
        executors = self.platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
        metadata = executors.get("executors", {}).get(label, {}).get("podMetadata")
        if metadata is None or self.fake.version < (2, 14):
            return "system-container-impl"
        counts = f"{len(metadata.get('annotations') or {})}-{len(metadata.get('labels') or {})}"
        return f"metadata-{counts}-system-container-impl"

    def tick(self) -> datetime:
        self.clock[0] += timedelta(seconds=7)
        return self.clock[0]

    def add(self, name: str, display: str, template: str, kind: str, phase: str, parent: str | None) -> Node:
        node_id = self.node_id(name)
        if node_id in self.nodes:
            return self.nodes[node_id]
        node = Node(name, display, template, kind, phase, started=self.tick(), id=node_id)
        self.nodes[node_id] = node
        self.task_ids[node_id] = str(uuid.uuid4())
        if parent is not None:
            self.nodes[self.node_id(parent)].children.append(node_id)
        if kind == "Pod":
            self.pods[self.pod_name(node)] = {"node": node, "phase": phase}
        return node

    def set(self, node: Node, phase: str, message: str = "") -> None:
        node.phase, node.message = phase, message or node.message
        if phase not in ("Pending", "Running") and node.finished is None:
            node.finished = self.tick()
        if node.kind == "Pod":
            self.pods[self.pod_name(node)]["phase"] = phase

    def report(self, state: str) -> None:
        """The persistence agent's report: the run's state, with a history entry when it changed."""
        self.record["state"] = state
        history = self.record.setdefault("state_history", [])
        if not history or history[-1]["state"] != state:
            history.append({"update_time": timestamp(self.tick()), "state": state})

    # -- what the test drives --
    def start(self) -> FakeRun:
        wf = self.workflow
        self.add(wf, wf, "entrypoint", "DAG", "Running", None)
        driver = self.add(f"{wf}.root-driver", "root-driver", "system-dag-driver", "Pod", "Running", wf)
        self.set(driver, "Succeeded")
        self.add(f"{wf}.root", "root", "root", "DAG", "Running", wf)
        self.report("RUNNING")
        return self

    def step(self, key: str, phase: str, message: str = "") -> FakeRun:
        """Move task ``key`` (its compiled task key) to ``phase``.

        ``Pending``: its driver runs. ``Running``: its DAG and executor pod run. ``Succeeded``/``Failed``:
        the executor ended so (``message``: Argo's node message). ``Cached``: the driver found a cached
        result, the executor node is Skipped. ``DriverFailed``: the driver failed. ``Omitted``: an
        upstream task failed, so Argo omits it.
        """
        if not self.nodes:
            self.start()
        root = f"{self.workflow}.root"
        driver_template = "system-container-driver"
        driver = self.add(f"{root}.{key}-driver", f"{key}-driver", driver_template, "Pod", "Running", root)
        if phase == "Pending":
            return self
        if phase == "Omitted":
            self.set(driver, "Omitted")
            return self
        if phase == "DriverFailed":
            self.set(driver, "Failed", "Error (exit code 1)")
            return self
        if driver.phase == "Running":
            self.set(driver, "Succeeded")
        dag_template = self.executor_template(key).replace("impl", "executor")
        dag = self.add(f"{root}.{key}", key, dag_template, "DAG", "Running", root)
        executor = self.add(f"{root}.{key}.executor", "executor", self.executor_template(key), "Pod",
                            "Running", f"{root}.{key}")  # fmt: skip
        if phase == "Cached":
            self.set(executor, "Skipped", "when 'true != true' evaluated false")
            self.set(dag, "Succeeded")
        elif phase in ("Succeeded", "Failed"):
            self.set(executor, phase, message or ("Error (exit code 1)" if phase == "Failed" else ""))
            self.set(dag, phase, f"child '{executor.id}' failed" if phase == "Failed" else "")
        return self

    def finish(self, phase: str) -> FakeRun:
        """The workflow ended with Argo phase ``phase`` (Succeeded or Failed), as reported."""
        for name in (f"{self.workflow}.root", self.workflow):
            self.set(self.nodes[self.node_id(name)], phase)
        self.record["finished_at"] = timestamp(self.tick())
        self.report(ARGO_TO_V2[phase])
        return self

    def stopped(self) -> FakeRun:
        """After terminate: the report while stopping, running pods killed, the workflow Failed."""
        self.report("CANCELING")
        for node in self.nodes.values():
            if node.phase in ("Pending", "Running") and node.name not in (
                self.workflow,
                f"{self.workflow}.root",
            ):
                self.set(node, "Failed", "Step exceeded its deadline")
        return self.finish("Failed")

    def pod(self, key: str) -> str:
        """The executor pod name of task ``key``."""
        node = self.nodes[self.node_id(f"{self.workflow}.root.{key}.executor")]
        return self.pod_name(node)

    # -- what KFP answers --
    def task_details(self) -> list[dict[str, Any]]:
        created = self.record["created_at"]
        details = []
        for node_id in sorted(self.nodes):  # toModelTasks sorts the node map's keys
            node = self.nodes[node_id]
            entry: dict[str, Any] = {
                "run_id": self.record["run_id"],
                "task_id": self.task_ids[node_id],
                "display_name": node.display_name,
                "create_time": created,
                "start_time": timestamp(node.started) if node.started else ZERO_NODE_TIME,
                "end_time": timestamp(node.finished) if node.finished else ZERO_NODE_TIME,
            }
            state = ARGO_TO_V2[node.phase]
            if state:
                entry["state"] = state
            if node.children:
                entry["child_tasks"] = [{"pod_name": child} for child in node.children]
            details.append(entry)
        return details

    def answer(self) -> dict[str, Any]:
        answer = dict(self.record)
        if self.nodes:
            answer["run_details"] = {"task_details": self.task_details()}
        return answer


class FakeKFP:
    """The KFP API server's routes cellpipe uses, answering with the real shapes (see the module doc)."""

    def __init__(self) -> None:
        self.url = ""
        self.multi_user = False
        self.tag_name = "2.17.0"  # healthz's version; 2.5.0 names executor templates without metadata
        self.ui = False  # True: the host is the KFP UI, which serves its page instead of the log route
        self.healthz_body: str | None = None  # overrides the healthz answer (e.g. a login page)
        self.requests: list[Request] = []
        self.pipelines: list[dict] = []
        self.versions: list[dict] = []
        self.experiments: list[dict] = []
        self.runs: dict[str, FakeRun] = {}
        self.recurring_runs: list[dict] = []
        self.on_get: dict[str, list[Callable[[FakeRun], Any]]] = {}  # run id -> changes, one per GET
        self.logs: dict[str, str] = {}  # pod name -> its main container's log
        self._failures: dict[tuple[str, str], list[tuple[int, dict]]] = {}
        self._ids = itertools.count(1)
        self.suffixes = (f"w{n:04d}" for n in itertools.count(1))  # Argo's generateName suffixes
        self.clock = [datetime(2026, 1, 1, 12, 0, tzinfo=UTC)]

    @property
    def version(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.tag_name.split(".")[:2])

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

    def run(self, run_id: str) -> FakeRun:
        return self.runs[run_id]

    # -- plumbing --
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get(f"{API}/healthz", self.healthz)
        app.router.add_get(f"{API}/pipelines", self.list_pipelines)
        app.router.add_post(f"{API}/pipelines/upload", self.upload_pipeline)
        app.router.add_post(f"{API}/pipelines/upload_version", self.upload_version)
        app.router.add_get(f"{API}/pipelines/{{pipeline_id}}/versions", self.list_versions)
        app.router.add_get(f"{API}/pipelines/{{pipeline_id}}/versions/{{version_id}}", self.get_version)
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
        app.router.add_get("/k8s/pod/logs", self.ui_pod_logs)
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

    def _now(self) -> str:
        self.clock[0] += timedelta(seconds=1)
        return timestamp(self.clock[0])

    @staticmethod
    def _not_found(kind: str, key: str) -> web.Response:
        return web.json_response({"error": f"{kind} {key} not found", "code": 5, "message": f"{kind} {key} not found"},
                                 status=404)  # fmt: skip

    # -- routes --
    async def healthz(self, request: web.Request) -> web.Response:
        if self.healthz_body is not None:
            return web.Response(text=self.healthz_body, content_type="text/html")
        return web.json_response(
            {"commit_sha": "test", "tag_name": self.tag_name, "multi_user": self.multi_user}
        )

    async def list_pipelines(self, request: web.Request) -> web.Response:
        found = self._named(self.pipelines, request)
        return web.json_response({"pipelines": found, "total_size": len(found)} if found else {})

    async def upload_pipeline(self, request: web.Request) -> web.Response:
        query = request.query
        pipeline = {"pipeline_id": self.new_id("p"), "display_name": query["name"], "name": query["name"],
                    "created_at": self._now()}  # fmt: skip
        if query.get("namespace"):
            pipeline["namespace"] = query["namespace"]
        self.pipelines.append(pipeline)
        self._add_version(pipeline["pipeline_id"], query["name"])  # KFP makes the first version too
        return web.json_response(pipeline)

    def _add_version(self, pipeline_id: str, name: str) -> dict:
        (_, package), *_ = self.requests[-1].files.values()
        documents = package.decode().split("\n---\n")  # api_util.go splits on this separator
        specs = [yaml.safe_load(doc) for doc in documents]
        pipeline_spec = next(s for s in specs if "platforms" not in s)
        platform = next((s for s in specs if "platforms" in s), None)
        stored = {"pipeline_spec": pipeline_spec, "platform_spec": platform} if platform else pipeline_spec
        version = {"pipeline_id": pipeline_id, "pipeline_version_id": self.new_id("v"), "display_name": name,
                   "name": name, "created_at": self._now(), "pipeline_spec": stored}  # fmt: skip
        self.versions.append(version)
        return version

    @staticmethod
    def _listed(version: dict) -> dict:
        return {k: v for k, v in version.items() if k != "pipeline_spec"}

    async def upload_version(self, request: web.Request) -> web.Response:
        version = self._add_version(request.query["pipelineid"], request.query["name"])
        return web.json_response(version)

    async def list_versions(self, request: web.Request) -> web.Response:
        mine = [v for v in self.versions if v["pipeline_id"] == request.match_info["pipeline_id"]]
        return web.json_response({"pipeline_versions": list(reversed(mine)), "total_size": len(mine)})

    async def get_version(self, request: web.Request) -> web.Response:
        key = request.match_info["version_id"]
        for version in self.versions:
            if (
                version["pipeline_version_id"] == key
                and version["pipeline_id"] == request.match_info["pipeline_id"]
            ):
                return web.json_response(version)
        return self._not_found("pipeline version", key)

    async def list_experiments(self, request: web.Request) -> web.Response:
        found = self._named(self.experiments, request)
        return web.json_response({"experiments": found, "total_size": len(found)} if found else {})

    async def create_experiment(self, request: web.Request) -> web.Response:
        experiment = {**self.requests[-1].body, "experiment_id": self.new_id("e"), "created_at": self._now(),
                      "storage_state": "AVAILABLE"}  # fmt: skip
        self.experiments.append(experiment)
        return web.json_response(experiment)

    def _version(self, reference: dict) -> dict:
        return next(v for v in self.versions if v["pipeline_version_id"] == reference["pipeline_version_id"])

    async def create_run(self, request: web.Request) -> web.Response:
        body = self.requests[-1].body
        created = self._now()
        record = {**body, "run_id": self.new_id("r"), "storage_state": "AVAILABLE",
                  "service_account": body.get("service_account") or "pipeline-runner", "created_at": created,
                  "scheduled_at": created, "finished_at": ZERO_RUN_TIME, "state": "PENDING",
                  "state_history": [{"update_time": created, "state": "PENDING"}]}  # fmt: skip
        stored = self._version(body["pipeline_version_reference"])["pipeline_spec"]
        spec, platform = (
            (stored["pipeline_spec"], stored["platform_spec"]) if "platform_spec" in stored else (stored, {})
        )
        self.runs[record["run_id"]] = FakeRun(self, record, spec, platform)
        return web.json_response(record)

    def add_run(self, run_id: str, spec: dict, platform: dict | None = None, **fields: Any) -> FakeRun:
        """A run made elsewhere (the KFP UI), from a package's spec."""
        created = self._now()
        record = {"run_id": run_id, "display_name": fields.pop("display_name", run_id), "created_at": created,
                  "scheduled_at": created, "finished_at": ZERO_RUN_TIME, "state": "PENDING",
                  "storage_state": "AVAILABLE", "state_history": [{"update_time": created, "state": "PENDING"}],
                  "pipeline_spec": {"pipeline_spec": spec, "platform_spec": platform} if platform else spec, **fields}  # fmt: skip
        self.runs[run_id] = FakeRun(self, record, spec, platform or {})
        return self.runs[run_id]

    async def get_run(self, request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        if run_id not in self.runs:
            return self._not_found("run", run_id)
        changes = self.on_get.get(run_id)
        if changes:
            changes.pop(0)(self.runs[run_id])
        return web.json_response(self.runs[run_id].answer())

    async def terminate_run(self, request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        if run_id not in self.runs:
            return self._not_found("run", run_id)
        record = self.runs[run_id].record
        if record["state"] not in ("PAUSED", "PENDING", "RUNNING"):  # run_store.go TerminateRun's WHERE
            message = f"Failed to terminate a run {run_id}. Row not found"
            return web.json_response({"error": message, "code": 3, "message": message}, status=400)
        record["state"] = "CANCELING"  # no history entry: the SQL update sets State only
        return web.json_response({})

    async def create_recurring_run(self, request: web.Request) -> web.Response:
        body = self.requests[-1].body
        now = self._now()
        recurring = {**body, "recurring_run_id": self.new_id("rr"), "created_at": now, "updated_at": now,
                     "max_concurrency": str(body.get("max_concurrency") or 1),
                     "status": "ENABLED" if body.get("mode") == "ENABLE" else "DISABLED",
                     "service_account": body.get("service_account") or "pipeline-runner"}  # fmt: skip
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
        if self.ui:  # the UI's static handler answers every path it does not proxy with its page
            return web.Response(text=UI_PAGE, content_type="text/html")
        run_id, node = request.match_info["run_id"], request.match_info["node_id"]
        if node in self.logs:
            text = self.logs[node]
        else:
            problem = (f"Failed to read logs from pod {node} due to error opening log stream: "
                       f'pods "{node}" not found')  # fmt: skip
            message = f"Failed to read logs for run {run_id}: {problem}"
            text = json.dumps({"error_message": message, "error_details": message})
        return web.Response(body=text.encode(), headers={"Content-Type": "text/plain; charset=utf-8"})

    async def ui_pod_logs(self, request: web.Request) -> web.Response:
        """The KFP UI's log route (frontend/server/handlers/pod-logs.ts); the API server has none."""
        if not self.ui:
            return web.json_response({"code": 5, "message": "Not Found", "details": []}, status=404)
        pod = request.query.get("podname")
        if not pod:
            return web.Response(text="podname argument is required", status=400)
        if self.multi_user and not request.query.get("podnamespace"):
            return web.Response(text="podnamespace argument is required", status=422)
        if pod not in self.logs:  # not in Kubernetes, and no archive named in the workflow's status
            return web.Response(text="pod not found", status=404)
        return web.Response(text=self.logs[pod])


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


def step_pod(run: FakeRun, pod: str, namespace: str, *, exit_code: int | None = None, message: str | None = None,
             reason: str = "Error") -> dict[str, Any]:  # fmt: skip
    """A pod of ``run`` as Kubernetes returns it: KFP's run label, Argo's node annotations, the main
    container's state (with ``message``: its termination message)."""
    info = run.pods[pod]
    node = info["node"]
    phase = {"Running": "Running", "Succeeded": "Succeeded", "Failed": "Failed"}.get(info["phase"], "Pending")
    main: dict[str, Any] = {"name": "main", "ready": phase == "Running", "restartCount": 0,
                            "image": "ghcr.io/acme/cellpipe-runtime:1.0", "state": {"running": {}}}  # fmt: skip
    if phase in ("Succeeded", "Failed"):
        code = exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1)
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else reason}
        if message is not None:
            terminated["message"] = message
        main["state"] = {"terminated": terminated}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod,
            "namespace": namespace,
            "labels": {
                "pipeline/runid": run.record["run_id"],
                "workflows.argoproj.io/workflow": run.workflow,
                "pipelines.kubeflow.org/v2_component": "true",
            },
            "annotations": {
                "workflows.argoproj.io/node-id": node.id,
                "workflows.argoproj.io/node-name": node.name,
            },
        },  # fmt: skip
        "spec": {"containers": [{"name": "wait"}, {"name": "main"}]},
        "status": {"phase": phase, "containerStatuses": [{"name": "wait", "state": {"running": {}}}, main]},
    }


@pytest.fixture
def kfp_pod() -> Callable[..., dict[str, Any]]:
    """``kfp_pod(run, pod name, namespace, exit_code=, message=, reason=)``: a run's pod as Kubernetes has it."""
    return step_pod


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No host, token path, namespace, UI URL or cluster credentials from the machine running the tests."""
    for name in (
        "KF_PIPELINES_ENDPOINT",
        "CELLPIPE_KFP_HOST",
        "KF_PIPELINES_UI_ENDPOINT",
        "KF_PIPELINES_SA_TOKEN_PATH",
        "KF_PIPELINES_IAP_OAUTH2_CLIENT_ID",
        "CELLPIPE_NAMESPACE",
        "KUBERNETES_SERVICE_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path_factory.getbasetemp() / "no-kubeconfig"))


KALE = Path(__file__).parents[2] / "notebooks" / "kale_legacy.ipynb"


@pytest.fixture(scope="session")
def kale_package(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``kale_package(snapshot_id=, store=, run_id=)``: the kale notebook compiled for that snapshot, as
    `cellpipe submit` compiles it (a fresh directory each call)."""
    from jupyter_ext.pipeline.build import build_pipeline
    from jupyter_ext.targets.kfp.compile import PackageSpec, compile_pipeline

    def compiled(**lineage: str) -> Path:
        out = tmp_path_factory.mktemp("kfp") / "kale.yaml"
        return compile_pipeline(build_pipeline(KALE), out, PackageSpec(**lineage))

    return compiled
