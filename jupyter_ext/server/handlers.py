"""The routes of the cellpipe API except schedules: config, analyse and runs. Thin: fields in, service call, JSON out.

The HTTP contract (paths, bodies, answers) is ``openapi.yaml`` beside this module; a test checks the live
server against it.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from jupyter_ext.server.base import API, CellpipeHandler, executes, not_found, reads

RUN_ID = r"(?P<run_id>[\w.-]+)"


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
        label = fields.string("path", required=True, max_chars=4096)
        notebook = self.app.paths.resolve(label)
        content = fields.notebook_content("content")
        self.reply(await self.app.analyser.analyse(str(notebook), self.app.paths.relative(notebook), content))


class RunsHandler(CellpipeHandler):
    @web.authenticated
    @reads
    def get(self) -> None:
        query = self.query("path")
        path = query.string("path")
        runs = self.app.run_service.list(path and self.app.paths.relative(self.app.paths.resolve(path)))
        self.reply({"runs": runs, "total": len(runs)})

    @web.authenticated
    @executes
    async def post(self) -> None:
        fields = self.body("path", "content", "parameters", "target", "use_cache", "track")
        notebook = self.app.paths.resolve(fields.string("path", required=True))
        fields.string("target", choices=["local"])
        record = await self.app.run_service.start(
            self.app.paths.relative(notebook),
            parameters=fields.object("parameters") or {},
            content=fields.notebook_content("content"),
            use_cache=fields.boolean("use_cache", True),
            track=fields.boolean("track", True),
        )
        self.reply(record, 202)


class RunHandler(CellpipeHandler):
    @web.authenticated
    @reads
    def get(self, run_id: str) -> None:
        self.query()
        self.reply(self.app.run_service.get(run_id))


class CancelHandler(CellpipeHandler):
    @web.authenticated
    @executes
    async def post(self, run_id: str) -> None:
        self.body()
        if not await self.app.run_service.cancel(run_id):
            raise not_found(f"no active run '{run_id}'", field="id")
        self.reply(self.app.run_service.get(run_id), 202)


def routes() -> list[tuple[str, Any]]:
    return [
        (f"{API}/config", ConfigHandler),
        (f"{API}/analyse", AnalyseHandler),
        (f"{API}/runs", RunsHandler),
        (f"{API}/runs/{RUN_ID}", RunHandler),
        (f"{API}/runs/{RUN_ID}/cancel", CancelHandler),
    ]
