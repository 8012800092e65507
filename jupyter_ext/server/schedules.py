"""The schedule routes and the embedded scheduler: thin handlers over :class:`ScheduleService`.

Creating, changing and deleting a schedule runs code later, so those need what running a notebook needs
(``executes``); listing, reading and previewing a cron need ``reads``. Service calls that read notebooks,
the store or a cluster run in a thread, never on the server's event loop.

The server's scheduler fires the local schedules while this server runs; they stop when it is culled or
stopped (each schedule says so: ``survives_server_cull``), and missed fire times follow the schedule's
catch-up policy when it is back. CronJob and KFP schedules fire on the cluster regardless.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from tornado import web

from jupyter_ext.server.base import API, CellpipeHandler, executes, not_found, reads
from jupyter_ext.server.validate import identifier

if TYPE_CHECKING:
    from jupyter_ext.server.app import CellpipeApp
    from jupyter_ext.services.schedules import ScheduleService

SCHEDULE_ID = r"(?P<schedule_id>[\w.-]+)"
CREATE_FIELDS = ("path", "cron", "timezone", "parameters", "target", "enabled", "catch_up", "name")
CHANGE_FIELDS = ("enabled", "cron", "timezone", "parameters", "catch_up", "target")


def schedule_service(app: CellpipeApp) -> ScheduleService:
    """The app's schedule service, made on first use (over the run service's store)."""
    service = getattr(app, "schedule_service", None)
    if service is None:
        from jupyter_ext.services.schedules import ScheduleService

        service = ScheduleService(app.paths.data_dir, app.run_service)
        app.schedule_service = service
    return service


class SchedulesHandler(CellpipeHandler):
    @property
    def service(self) -> ScheduleService:
        return schedule_service(self.app)

    def view(self, schedule: Any) -> dict[str, Any]:
        return self.service.view(schedule, root=self.app.paths.root)

    def target_settings(self, target: str) -> dict[str, Any]:
        """A target this server cannot reach is refused up front (with the config route's reason); for the
        others, the server's settings for them (namespace, image, KFP host)."""
        if target == "local":
            return {}
        self.app.check_target_available(target)
        return self.app.target_options(target) if target in self.app.target_names() else {}


class ScheduleListHandler(SchedulesHandler):
    @web.authenticated
    @reads
    async def get(self) -> None:
        path = self.query("path").string("path")
        notebook = str(self.app.paths.resolve(path)) if path else None
        schedules = await asyncio.to_thread(lambda: [self.view(s) for s in self.service.list(notebook)])
        self.reply({"schedules": schedules})

    @web.authenticated
    @executes
    async def post(self) -> None:
        from jupyter_ext.services.schedules import LOCAL, ScheduleRequest

        fields = self.body(*CREATE_FIELDS)
        notebook = self.app.paths.resolve(fields.string("path", required=True))
        target = fields.string("target") or LOCAL
        settings = self.target_settings(target)
        request = ScheduleRequest(
            notebook=notebook,
            cron=fields.string("cron", required=True, max_chars=256),
            timezone=fields.string("timezone", max_chars=64) or "UTC",
            parameters=fields.object("parameters") or {},
            target=target,
            target_options=settings,
            enabled=fields.boolean("enabled", True),
            catch_up=fields.string("catch_up") or "skip",
            name=fields.string("name", max_chars=64),
        )
        schedule = await asyncio.to_thread(self.service.create, request)
        self.reply(await asyncio.to_thread(self.view, schedule), 201)


class PreviewHandler(SchedulesHandler):
    @web.authenticated
    @reads
    def post(self) -> None:
        fields = self.body("cron", "timezone")
        cron = fields.string("cron", required=True, max_chars=256)
        self.reply(self.service.describe(cron, fields.string("timezone", max_chars=64) or "UTC"))


class ScheduleHandler(SchedulesHandler):
    async def find(self, schedule_id: str) -> Any:
        identifier(schedule_id, field="id")
        found = await asyncio.to_thread(self.service.store.get_schedule, schedule_id)
        if found is None:
            raise not_found(f"no schedule '{schedule_id}'", field="id")
        return found

    @web.authenticated
    @reads
    async def get(self, schedule_id: str) -> None:
        self.query()
        schedule = await self.find(schedule_id)
        self.reply(await asyncio.to_thread(self.view, schedule))

    @web.authenticated
    @executes
    async def patch(self, schedule_id: str) -> None:
        fields = self.body(*CHANGE_FIELDS)
        changes: dict[str, Any] = {}
        if "enabled" in fields.data:
            changes["enabled"] = fields.boolean("enabled", True)
        for name in ("cron", "timezone", "catch_up", "target"):
            if name in fields.data:
                changes[name] = fields.string(name, required=True, max_chars=256)
        if "parameters" in fields.data:
            changes["parameters"] = fields.object("parameters") or {}
        schedule = await self.find(schedule_id)
        if "target" in changes:
            changes["target_options"] = self.target_settings(changes["target"])
        updated = await asyncio.to_thread(lambda: self.service.update(schedule.id, **changes))
        self.reply(await asyncio.to_thread(self.view, updated))

    @web.authenticated
    @executes
    async def delete(self, schedule_id: str) -> None:
        self.query()
        schedule = await self.find(schedule_id)
        await asyncio.to_thread(self.service.delete, schedule.id)
        self.reply(None, 204)


def routes() -> list[tuple[str, Any]]:
    return [
        (f"{API}/schedules", ScheduleListHandler),
        (f"{API}/schedules/preview", PreviewHandler),
        (f"{API}/schedules/{SCHEDULE_ID}", ScheduleHandler),
    ]


async def start(app: CellpipeApp) -> None:
    """Start the embedded scheduler: the local schedules fire while this server runs."""
    from jupyter_ext.services.schedules import Scheduler

    service = schedule_service(app)
    scheduler = Scheduler(service.store, app.run_service.submit, log=app.log)
    service.on_change = scheduler.wake
    app.scheduler = scheduler
    scheduler.start()
    app.log.info("cellpipe: scheduler started (local schedules fire while this server runs)")


async def stop(app: CellpipeApp) -> None:
    scheduler = getattr(app, "scheduler", None)
    if scheduler is not None:
        await scheduler.stop()
