"""The base of every cellpipe handler: authorization rules, bounded bodies, typed fields, JSON errors.

A route handler is a few lines: one authorization decorator, read fields, call a service, ``reply``.

Authorization goes through jupyter_server's Authorizer (``@authorized``) with the resource and action a
route really touches, so a read-only share or an RBAC policy means the same here as in Jupyter itself:

- :data:`reads` (contents: read)     - analyse, config, list/get runs, logs, step notebooks, schedule previews
- :data:`executes` (kernels: execute) - anything that runs code now or later: start, cancel, re-run, schedule
- :data:`writes` (contents: write)   - deleting run records

Bodies: handlers are streamed (``@stream_request_body``), so the size is judged from the headers, before
anything is read: a body over ``CellpipeApp.max_body_bytes`` is discarded as it arrives (nothing kept in
memory) and answered with 413; a client that asks ``Expect: 100-continue``, or announces more than
:data:`DRAIN_FACTOR` times the limit, gets the 413 at once and never sends (or the server stops reading) it.
A refusal found before the body (403 for a missing XSRF token) is likewise answered once the body is in,
because answering early makes the server close a connection the client is still writing to, and the client
then sees a reset instead of the 403.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from jupyter_ext.errors import CellpipeError
from jupyter_ext.server.validate import Fields, parse_json_object

if TYPE_CHECKING:
    from jupyter_ext.server.app import CellpipeApp

API = "cellpipe/api"

reads = authorized(action="read", resource="contents")
executes = authorized(action="execute", resource="kernels")
writes = authorized(action="write", resource="contents")

DRAIN_FACTOR = 8
PARSE_IN_THREAD_BYTES = 256 * 1024
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
ERROR_KEYS = ("message", "notebook", "cell", "step", "field", "hint", "text")


class BodyTooLarge(web.HTTPError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")
        self.limit = limit


@web.stream_request_body
class CellpipeHandler(ExtensionHandlerMixin, APIHandler):
    auth_resource = "contents"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in HTTP_METHODS:
            if name in cls.__dict__:
                setattr(cls, name, _refusal_first(cls.__dict__[name]))

    def initialize(self, name: str = "cellpipe", *args: Any, **kwargs: Any) -> None:
        super().initialize(name, *args, **kwargs)
        self._chunks: list[bytes] = []
        self._received = 0
        self._refusal: web.HTTPError | None = None  # answered once the body is in (see the module's doc)
        self._parsed: dict[str, Any] | CellpipeError | None = None  # a large body, parsed in a thread

    @property
    def app(self) -> CellpipeApp:
        return self.extensionapp  # type: ignore[return-value]

    # -- body ------------------------------------------------------------------------------------------
    async def prepare(self) -> None:
        try:
            await super().prepare()
        except web.HTTPError as refusal:
            self._refusal = refusal
        limit = self.app.max_body_bytes
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            if (
                self.request.headers.get("Expect", "").lower() == "100-continue"
                or int(length) > DRAIN_FACTOR * limit
            ):
                raise BodyTooLarge(limit)
            self._refusal = self._refusal or BodyTooLarge(limit)

    def data_received(self, chunk: bytes) -> None:
        if self._refusal is not None:
            return
        self._received += len(chunk)
        if self._received > self.app.max_body_bytes:
            self._refusal = BodyTooLarge(self.app.max_body_bytes)
            self._chunks.clear()
        else:
            self._chunks.append(chunk)

    def body(self, *allowed: str) -> Fields:
        """The JSON object sent, with only ``allowed`` fields."""
        parsed = self._parsed if self._parsed is not None else parse_json_object(b"".join(self._chunks))
        if isinstance(parsed, CellpipeError):
            raise parsed
        return Fields(parsed, allowed=allowed)

    async def _parse_large_body(self) -> None:
        """Parse a large body in a thread (megabytes of JSON take the event loop ~0.1 s), so that
        :meth:`body` finds it done; a parse error is kept until a handler asks for the body."""
        if self._received >= PARSE_IN_THREAD_BYTES and self._parsed is None:
            data = b"".join(self._chunks)
            self._chunks.clear()
            try:
                self._parsed = await asyncio.to_thread(parse_json_object, data)
            except CellpipeError as error:
                self._parsed = error

    def query(self, *allowed: str) -> Fields:
        """The query string's arguments (each at most once), with only ``allowed`` names."""
        values: dict[str, str] = {}
        for name, raw in self.request.query_arguments.items():
            if name.isdigit() and raw == [b""]:
                continue  # JupyterLab's ServerConnection appends "?<timestamp>" to GETs to defeat caches
            if len(raw) > 1:
                raise CellpipeError("given more than once", field=name)
            try:
                values[name] = raw[0].decode()
            except UnicodeDecodeError:
                raise CellpipeError("is not valid UTF-8", field=name) from None
        return Fields(values, allowed=allowed, text_values=True)

    async def may_execute(self) -> bool:
        """Whether the current user may also do what :data:`executes` guards (start runs), as the Authorizer
        says: a route that only reads may prepare for that (start kernels) only for such a user."""
        allowed = self.authorizer.is_authorized(self, self.current_user, "execute", "kernels")
        return bool(await allowed if inspect.isawaitable(allowed) else allowed)

    # -- answers ---------------------------------------------------------------------------------------
    def reply(self, data: Any, status: int = 200) -> None:
        """Send ``data`` as JSON, with server paths, host names and pids taken out."""
        if status == 204:
            self.set_status(status)
            self.finish()
            return
        self.reply_json(json.dumps(self.app.paths.public(data), default=str), status)

    def reply_json(self, text: str, status: int = 200) -> None:
        """Send JSON already encoded, and already made public (paths, host names and pids taken out)."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(text)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error as ``{"error": {message, notebook, cell, step, field, hint, text}}``; never a traceback."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, CellpipeError):
            error = exc.to_dict()
        else:
            if isinstance(exc, web.HTTPError) and exc.log_message and status_code < 500:
                message = exc.log_message % exc.args if exc.args else exc.log_message
            elif status_code >= 500:
                message = "internal error in the cellpipe server extension; the server log has the details"
            else:
                message = (
                    HTTPStatus(status_code).phrase
                    if status_code in HTTPStatus._value2member_map_
                    else "error"
                )
            error = {"message": message, "text": message}
        error = {key: error.get(key) for key in ERROR_KEYS}
        if status_code == 405:  # RFC 9110: say which methods the route has
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": self.app.paths.public(error)}))

    @classmethod
    def allowed_methods(cls) -> list[str]:
        own = {name for klass in cls.__mro__[: cls.__mro__.index(CellpipeHandler)] for name in vars(klass)}
        return [name.upper() for name in HTTP_METHODS if name in own]

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, CellpipeError):  # a user mistake: 400 with the message, not a 500 with a traceback
            if self._finished:
                return
            self.log.info("cellpipe: %s %s: %s", self.request.method, self.request.path, e)
            self.send_error(_status_of(e), exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


def _refusal_first(method: Any) -> Any:
    """``method`` preceded by the refusal found while the request came in, if any."""

    @functools.wraps(method)
    async def guarded(self: CellpipeHandler, *args: Any, **kwargs: Any) -> Any:
        if self._refusal is not None:
            raise self._refusal
        await self._parse_large_body()
        result = method(self, *args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    return guarded


def _status_of(error: CellpipeError) -> int:
    """400 for a mistake in the request; errors may carry a more precise status (404 no such run, 409 busy)."""
    status = getattr(error, "http_status", None)
    return status if isinstance(status, int) and 400 <= status < 500 else 400


def not_found(message: str, *, field: str | None = None) -> CellpipeError:
    error = CellpipeError(message, field=field)
    error.http_status = 404  # type: ignore[attr-defined]
    return error


def conflict(message: str, *, field: str | None = None, hint: str | None = None) -> CellpipeError:
    error = CellpipeError(message, field=field, hint=hint)
    error.http_status = 409  # type: ignore[attr-defined]
    return error


class UnknownRouteHandler(CellpipeHandler):
    """Any other path under the API: a JSON 404 (not Jupyter's HTML page), for an authenticated client."""

    def _unknown(self, *args: Any, **kwargs: Any) -> None:
        if not self.current_user:
            raise web.HTTPError(403)
        raise not_found(f"no such route: {self.request.method} {self.request.path}")

    get = post = put = patch = delete = _unknown
