"""HTTP handlers: parse the request, call the RunManager, write JSON. Auth and XSRF are jupyter_server's."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from jupyter_ext.errors import CellpipeError

API = "cellpipe/api"


class CellpipeHandler(APIHandler):
    auth_resource = "contents"  # running a notebook is as sensitive as reading/writing it

    @property
    def manager(self):
        return self.settings["cellpipe_manager"]

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "request body is not JSON") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "request body must be a JSON object")
        return data

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, CellpipeError):
            self.set_status(400)
            self.finish(json.dumps({"error": exc.to_dict()}))
            return
        super().write_error(status_code, **kwargs)

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, CellpipeError):  # a user mistake: 400 with the message, not a 500 with a traceback
            self.send_error(400, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


class AnalyseHandler(CellpipeHandler):
    @web.authenticated
    def post(self) -> None:
        data = self.body()
        self.finish(json.dumps(self.manager.analyse(data.get("path"), data.get("content")), default=str))


class RunsHandler(CellpipeHandler):
    @web.authenticated
    def get(self) -> None:
        self.finish(json.dumps({"runs": self.manager.list(self.get_argument("path", None))}, default=str))

    @web.authenticated
    async def post(self) -> None:
        data = self.body()
        parameters = data.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise web.HTTPError(400, "parameters must be an object of NAME: value")
        record = await self.manager.start(
            data.get("path"),
            parameters=parameters,
            content=data.get("content"),
            use_cache=bool(data.get("use_cache", True)),
            track=bool(data.get("track", True)),
        )
        self.set_status(202)
        self.finish(json.dumps(record, default=str))


class RunHandler(CellpipeHandler):
    @web.authenticated
    def get(self, run_id: str) -> None:
        self.finish(json.dumps(self.manager.get(run_id, self.get_argument("path", None)), default=str))

    @web.authenticated
    async def delete(self, run_id: str) -> None:
        if not await self.manager.cancel(run_id):
            raise web.HTTPError(404, f"no active run {run_id}")
        self.set_status(204)
        self.finish()


def setup_handlers(web_app: Any) -> None:
    base = web_app.settings["base_url"]
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, API, "analyse"), AnalyseHandler),
            (url_path_join(base, API, "runs"), RunsHandler),
            (url_path_join(base, API, r"runs/([\w.-]+)"), RunHandler),
        ],
    )
