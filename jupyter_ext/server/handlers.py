"""The routes of the cellpipe API except schedules: config, analyse and runs. Thin: fields in, service call, JSON out.

The HTTP contract (paths, bodies, answers) is ``openapi.yaml`` beside this module; a test checks the live
server against it. Runs go through :class:`~jupyter_ext.services.runs.RunService`, the one lifecycle the
CLI and the scheduler use too; what is left here is HTTP: field types, paths relative to the root, statuses.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tornado import web

from jupyter_ext.errors import CellpipeError
from jupyter_ext.records.models import RunRecord, RunStatus
from jupyter_ext.server.base import API, CellpipeHandler, conflict, executes, not_found, reads, writes
from jupyter_ext.server.validate import identifier
from jupyter_ext.services.cancellation import requester
from jupyter_ext.services.runs import RunRequest

RUN_ID = r"(?P<run_id>[\w.-]+)"
STEP = r"(?P<step>[\w.-]+)"
MAX_PAGE = 500


class RunHandlerBase(CellpipeHandler):
    @property
    def service(self) -> Any:
        return self.app.run_service

    async def run(self, run_id: str) -> RunRecord:
        """The run by id, unique prefix or ``latest``; 404 when there is none. (Store reads go to a thread:
        a query is milliseconds, but on a busy machine milliseconds the event loop should not wait.)"""
        try:
            return await asyncio.to_thread(self.service.get, identifier(run_id, field="id"))
        except CellpipeError as error:
            if error.message.startswith("no run"):
                raise not_found(f"no run '{run_id}'", field="id") from None
            raise

    def present(self, record: RunRecord) -> dict[str, Any]:
        """The record as the API serves it: paths relative to the root, links to executed step notebooks."""
        return self.app.run_presenter.present(record)


class ConfigHandler(CellpipeHandler):
    @web.authenticated
    @reads
    def get(self) -> None:
        self.query()
        self.reply(self.app.public_config())


class AnalyseHandler(CellpipeHandler):
    @web.authenticated
    @reads
    async def post(self) -> None:
        fields = self.body("path", "content")
        notebook = self.app.paths.resolve(fields.string("path", required=True))
        content = await asyncio.to_thread(fields.notebook_content, "content")  # a notebook object: re-encoded
        result = await self.app.analyser.analyse(str(notebook), self.app.paths.relative(notebook), content)
        prelude = [cell["source"] for cell in result["pipeline"].get("prelude", [])]
        self.reply(result)
        if await self.may_execute():  # a run may follow: have kernels waiting for it (after the answer)
            await self.app.notebook_opened(notebook, prelude)


class RunsHandler(RunHandlerBase):
    @web.authenticated
    @reads
    async def get(self) -> None:
        query = self.query("path", "status", "target", "schedule", "limit", "offset")
        path = query.string("path")
        filters = {
            "notebook": str(self.app.paths.resolve(path)) if path else None,
            "status": query.string("status", choices=[s.value for s in RunStatus]),
            "target": query.string("target", choices=self.app.target_names()),
            "schedule_id": query.string("schedule", max_chars=128),
            "limit": query.integer("limit", 50, minimum=1, maximum=MAX_PAGE),
            "offset": query.integer("offset", 0, minimum=0, maximum=10**9),
        }

        def page() -> str:  # the query and the conversion of the runs not cached yet, off the event loop
            return self.app.run_presenter.page_json(*self.service.list_stored(**filters))

        self.reply_json(await asyncio.to_thread(page))

    @web.authenticated
    @executes
    async def post(self) -> None:
        fields = self.body("path", "content", "parameters", "target", "use_cache", "track")
        notebook = self.app.paths.resolve(fields.string("path", required=True))
        target = fields.string("target", choices=self.app.target_names()) or self.app.default_target
        self.app.check_target_available(target)
        request = RunRequest(
            notebook=notebook,
            content=await asyncio.to_thread(fields.notebook_content, "content"),
            parameters=fields.object("parameters") or {},
            target=target,
            target_options=self.app.target_options(target),
            use_cache=fields.boolean("use_cache", True),
            track=fields.boolean("track", True),
            source="jupyterlab",
        )
        self.reply(self.present(await self.service.submit(request)), 202)


class RunHandler(RunHandlerBase):
    @web.authenticated
    @reads
    async def get(self, run_id: str) -> None:
        self.query()
        self.reply(self.present(await self.run(run_id)))

    @web.authenticated
    @writes
    async def delete(self, run_id: str) -> None:
        record = await self.run(run_id)
        if not record.status.is_final:
            raise conflict(
                f"run {record.id} is {record.status.value}", hint="cancel it first, or wait until it ends"
            )
        await asyncio.to_thread(self.service.delete, record.id)
        self.reply(None, 204)


class RunActionHandler(RunHandlerBase):
    """POST runs/{id}/cancel and runs/{id}/rerun: both act on a run and may run code, both answer 202."""

    ACTIONS = ("cancel", "rerun")

    def initialize(self, name: str = "cellpipe", action: str = "cancel", **kwargs: Any) -> None:
        super().initialize(name, **kwargs)
        self.action = action

    @web.authenticated
    @executes
    async def post(self, run_id: str) -> None:
        self.body()
        record = await self.run(run_id)
        if self.action == "cancel":  # the run may be another process's: the answer may still say running
            done = await self.service.cancel(
                record.id, by=requester("Jupyter server", self.current_user.username)
            )
        else:
            done = await self.service.rerun(record.id)
        self.reply(self.present(done), 202)


class LogsHandler(RunHandlerBase):
    @web.authenticated
    @reads
    async def get(self, run_id: str) -> None:
        self.query()
        record = await self.run(run_id)

        def answer() -> str:  # megabytes of log are read, redacted and encoded off the event loop
            return self.app.run_presenter.encode({"text": self.service.logs(record.id)})

        self.reply_json(await asyncio.to_thread(answer))


class StepNotebookHandler(RunHandlerBase):
    @web.authenticated
    @reads
    async def get(self, run_id: str, step: str) -> None:
        self.query()
        record = await self.run(run_id)
        try:
            path = await asyncio.to_thread(
                self.service.step_notebook, record.id, identifier(step, field="step")
            )
        except CellpipeError as error:
            raise not_found(error.message, field="step") from None
        # the generated cells name server paths (the step cache): redacted, off the event loop (a notebook with
        # large outputs is megabytes: ~20 ms per MB)
        self.reply_json(
            await asyncio.to_thread(lambda: self.app.paths.redact(path.read_text(errors="replace")))
        )


def routes() -> list[tuple[Any, ...]]:
    return [
        (f"{API}/config", ConfigHandler),
        (f"{API}/analyse", AnalyseHandler),
        (f"{API}/runs", RunsHandler),
        (f"{API}/runs/{RUN_ID}", RunHandler),
        *[
            (f"{API}/runs/{RUN_ID}/{action}", RunActionHandler, {"action": action})
            for action in RunActionHandler.ACTIONS
        ],
        (f"{API}/runs/{RUN_ID}/logs", LogsHandler),
        (f"{API}/runs/{RUN_ID}/steps/{STEP}/notebook", StepNotebookHandler),
    ]
