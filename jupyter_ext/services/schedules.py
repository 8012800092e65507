"""Schedules: run a notebook on a cron schedule, here (local) or on a cluster (job, kfp).

A schedule is a notebook, a cron expression in a time zone, parameters, a target, enabled, and a catch-up
policy. Each fire of a local schedule is an ordinary run through the run service (fresh snapshot, record,
MLflow, lineage; ``schedule_id`` on the record). Cluster schedules are a Kubernetes CronJob or a KFP
recurring run (:mod:`.cluster_schedules`): they live on the cluster and keep firing when this machine or
the Jupyter server is gone; local schedules fire only while a :class:`Scheduler` runs (inside the Jupyter
server, or ``cellpipe scheduler``).

    service = ScheduleService(data_dir, run_service)
    schedule = service.create(ScheduleRequest(Path("/home/me/train.ipynb"), "0 3 * * *", "Europe/Berlin"))
    scheduler = Scheduler(service.store, run_service.submit)
    scheduler.start()            # inside a running event loop; `await scheduler.stop()` when done

Fire times missed while no scheduler ran follow the schedule's ``catch_up`` policy: ``skip`` (default) runs
nothing for them, ``once`` runs once to catch up; either way the schedule lists them under ``missed``.
Pausing is deliberate, so the times a paused schedule would have fired are not "missed". Two schedulers on
one store never fire one time twice: each fire time is a row in the store's lease table, inserted by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from jupyter_ext.errors import CellpipeError
from jupyter_ext.records.models import ScheduleRecord
from jupyter_ext.services.cron import (
    DEFAULT_TIMEZONE,
    check_cron,
    check_timezone,
    fire_times,
    fire_times_between,
    iso,
)

LOCAL = "local"
SCHEDULE_TARGETS = ("local", "job", "kfp")  # the names `cellpipe submit` and `export` use too
CATCH_UP_POLICIES = ("skip", "once")
MISSED_KEPT = 100  # the newest missed fire times a schedule lists
RECENT_RUNS = 5
GRACE_S = 60.0  # a fire time this late is still on time; later, the scheduler was not running then
RETRY_S = 10.0  # after a failed pass (store unreadable), look again this much later
LEASES_KEPT_S = 7 * 86400  # fire leases older than this are pruned (their times were handled long ago)
_NAME_MAX = 52  # a CronJob name's limit, so one name fits every target

log = logging.getLogger(__name__)


# -- requests ----------------------------------------------------------------------------------------
@dataclass
class ScheduleRequest:
    """What to schedule. ``notebook`` is an absolute path (the server resolves its root-relative paths).

    ``parameters``: typed values, or CLI ``NAME=VALUE`` strings; checked against the notebook now and kept
    as typed overrides (defaults are read at each fire, from the fresh snapshot).
    ``target_options``: for job/kfp, the fields of JobOptions or KfpOptions
    (namespace, store, image, host, ...); a bearer token is used to create, never stored.
    """

    notebook: Path | str
    cron: str
    timezone: str = DEFAULT_TIMEZONE
    parameters: dict[str, Any] | list[str] | None = None
    target: str = LOCAL
    target_options: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    catch_up: str = "skip"
    name: str | None = None


def check_choice(value: Any, choices: Iterable[str], field_name: str) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise CellpipeError(
            f"unknown {field_name.lstrip('-')} '{value}'",
            field=field_name,
            hint=f"Use one of: {', '.join(choices)}",
        )
    return str(value)


def check_target(value: Any, field_name: str = "target") -> str:
    if value == "cronjob":  # the name this target had before local schedules existed
        raise CellpipeError(
            "unknown target 'cronjob'", field=field_name, hint="A Kubernetes CronJob is --target job now"
        )
    return check_choice(value, SCHEDULE_TARGETS, field_name)


def check_bool(value: Any, field_name: str) -> bool:
    if not isinstance(value, bool):
        raise CellpipeError(f"must be true or false, got {value!r}", field=field_name)
    return value


def check_name(name: Any, field_name: str = "name") -> str:
    """A schedule name: also the CronJob's name, so a DNS label (lowercase letters, digits, '-')."""
    from jupyter_ext.targets.k8s.names import validate_name

    if not isinstance(name, str) or not name.strip():
        raise CellpipeError("must be a non-empty string", field=field_name)
    return validate_name(name.strip(), kind="schedule", field=field_name, max_len=_NAME_MAX)


def check_target_timezone(target: str, timezone: str, field_name: str = "timezone") -> str:
    """KFP's scheduler has no time zone setting: a kfp schedule must be written in UTC."""
    if target == "kfp" and timezone != "UTC":
        raise CellpipeError(
            f"KFP recurring runs have no time zone setting (got '{timezone}')",
            field=field_name,
            hint="Write the cron in UTC, or use --target job (a CronJob has a time zone)",
        )
    return timezone


def default_name(notebook: Path) -> str:
    from jupyter_ext.targets.k8s.names import sanitize_name

    return sanitize_name(notebook.stem, max_len=_NAME_MAX)


def typed_parameters(notebook: Path, parameters: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """The overrides as typed values, checked against the notebook's parameters (errors name the notebook)."""
    from jupyter_ext.notebook.params import find_parameter, resolve
    from jupyter_ext.pipeline.load import load_pipeline

    if parameters is not None and not isinstance(parameters, dict | list):
        raise CellpipeError("must be an object of NAME: value", field="parameters")
    pipeline = load_pipeline(notebook)
    try:
        values = resolve(pipeline.parameters, parameters)
    except CellpipeError as exc:
        exc.notebook = exc.notebook or str(notebook)
        if exc.field in (None, "override"):  # an unknown name: the request's parameters field
            exc.field = "parameters"
        raise
    given = parameters if isinstance(parameters, dict) else [p.partition("=")[0] for p in parameters or []]
    # Only the overrides are kept: defaults are read from each fire's fresh snapshot.
    found = (find_parameter(pipeline.parameters, str(name).strip()) for name in given)
    return {p.name: values[p.name] for p in found if p is not None}


def check_notebook(notebook: Path | str) -> Path:
    path = Path(notebook)
    if not path.is_absolute():
        path = path.resolve()
    if not path.is_file():
        raise CellpipeError(
            "no such file", notebook=str(notebook), field="path", hint="Give the path of an .ipynb file"
        )
    return path


# -- clocks ------------------------------------------------------------------------------------------
class Clock(Protocol):
    """Wall time and waiting: the scheduler's only sense of time, so tests can move it."""

    def time(self) -> float: ...

    async def sleep_until(self, moment: float) -> None:
        """Return once ``time()`` has reached ``moment`` (an instant, so no time passes unaccounted for)."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    async def sleep_until(self, moment: float) -> None:
        await asyncio.sleep(max(0.0, moment - time.time()))


# -- the service -------------------------------------------------------------------------------------
class ScheduleService:
    """Create, list, change and delete schedules; local ones in the store, cluster ones there too and on the
    cluster. ``on_change`` (set by whoever runs a :class:`Scheduler` in this process) is called after every
    change, so a new fire time is picked up at once."""

    def __init__(
        self,
        data_dir: Path | str,
        run_service: Any = None,
        *,
        store: Any = None,
        clock: Clock | None = None,
        cluster: dict[str, Any] | None = None,
    ) -> None:
        from jupyter_ext.records.store import RecordStore

        self.data_dir = Path(data_dir)
        self.run_service = run_service
        self.store = store or getattr(run_service, "store", None) or RecordStore(self.data_dir)
        self.clock = clock or SystemClock()
        self._cluster = cluster  # target name -> cluster schedule backend (tests may pass their own)
        self.on_change: Callable[[], None] | None = None

    # -- reading --
    @staticmethod
    def describe(cron: Any, timezone: Any = DEFAULT_TIMEZONE, *, now: float | None = None) -> dict[str, Any]:
        from jupyter_ext.services.cron import describe

        return describe(cron, timezone, now=now)

    def list(self, notebook: str | Path | None = None) -> list[ScheduleRecord]:
        return self.store.list_schedules(notebook=None if notebook is None else str(notebook))

    def get(self, schedule_id: str) -> ScheduleRecord:
        """By full id or a unique prefix, or CellpipeError."""
        text = str(schedule_id or "").strip()
        found = self.store.get_schedule(text) if text else None
        if found is not None:
            return found
        matches = [s for s in self.list() if text and s.id.startswith(text)] or [
            s for s in self.list() if text and s.name == text
        ]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            ids = ", ".join(f"{s.id} ({s.name})" for s in matches[:5])
            raise CellpipeError(
                f"schedule '{text}' is ambiguous: {ids}", field="schedule", hint="Give the full id"
            )
        raise CellpipeError(
            f"no schedule '{text}'", field="schedule", hint="`cellpipe schedules list` shows them"
        )

    def view(
        self, schedule: ScheduleRecord, *, root: Path | None = None, now: float | None = None
    ) -> dict[str, Any]:
        """The schedule as the API and ``cellpipe schedules show --json`` give it (see CONTRACT.md)."""
        from jupyter_ext.services.cron import description

        start = self.clock.time() if now is None else now
        notebook = schedule.notebook
        if root is not None:
            with contextlib.suppress(ValueError):
                notebook = Path(notebook).relative_to(root).as_posix()
        upcoming = fire_times(schedule.cron, schedule.timezone, start, 5) if schedule.enabled else []
        runs, _ = self.store.list_runs(schedule_id=schedule.id, limit=RECENT_RUNS)
        extra = schedule.extra or {}
        return {
            "id": schedule.id,
            "name": schedule.name,
            "notebook": notebook,
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "description": description(schedule.cron, schedule.timezone),
            "next_fire_times": [iso(t, schedule.timezone) for t in upcoming],
            "parameters": schedule.parameters,
            "target": schedule.target,
            "enabled": schedule.enabled,
            "catch_up": schedule.catch_up,
            "missed": list(schedule.missed),
            "recent_runs": [{"id": r.id, "status": r.status.value, "created": r.created} for r in runs],
            "created": schedule.created,
            "updated": schedule.updated,
            "survives_server_cull": schedule.target != LOCAL,
            "fires_from": _fires_from(schedule.target),
            "cluster": extra.get("cluster"),
            "last_error": extra.get("last_error"),
        }

    # -- writing --
    def create(self, request: ScheduleRequest) -> ScheduleRecord:
        """Check everything, then save (and for job/kfp create the cluster object).

        A schedule with the same notebook and name is replaced (same id), never duplicated.
        """
        cron = check_cron(request.cron)
        zone = check_timezone(request.timezone)
        target = check_target(request.target)
        check_target_timezone(target, zone)
        catch_up = check_choice(request.catch_up, CATCH_UP_POLICIES, "catch_up")
        enabled = check_bool(request.enabled, "enabled")
        notebook = check_notebook(request.notebook)
        name = check_name(request.name) if request.name is not None else default_name(notebook)
        parameters = typed_parameters(notebook, request.parameters)
        now = self.clock.time()
        existing = next((s for s in self.list(notebook) if s.name == name), None)
        schedule = ScheduleRecord(
            id=existing.id if existing else new_schedule_id(),
            notebook=str(notebook),
            cron=cron,
            timezone=zone,
            name=name,
            parameters=parameters,
            target=target,
            target_options=_storable(request.target_options),
            enabled=enabled,
            catch_up=catch_up,
            last_fire=now,  # the first fire is the first cron time from now on
            missed=list(existing.missed) if existing else [],
            created=existing.created if existing else now,
            updated=now,
        )
        if target != LOCAL:
            schedule.extra["cluster"] = self._backend(target).create(schedule, dict(request.target_options))
        if existing is not None and existing.target != LOCAL:
            self._retire(existing, keep=schedule)
        self.store.save_schedule(schedule)
        self._changed()
        return schedule

    def update(
        self, schedule_id: str, *, credentials: dict[str, Any] | None = None, **changes: Any
    ) -> ScheduleRecord:
        """Pause/resume (``enabled``), or change cron, timezone, parameters, catch_up or target.

        ``credentials``: for this call only (a token to reach the cluster), never stored."""
        allowed = ("enabled", "cron", "timezone", "parameters", "catch_up", "target", "target_options")
        for key in changes:
            if key not in allowed:
                raise CellpipeError(f"cannot be changed (changeable: {', '.join(allowed[:-1])})", field=key)
        schedule = self.get(schedule_id)
        if set(changes) - {"enabled"}:
            # Anything but pausing may change what the cluster object is: re-create it (same notebook+name
            # replaces, so this is create() with the old values as defaults).
            options = {**changes.get("target_options", schedule.target_options), **(credentials or {})}
            request = ScheduleRequest(
                notebook=schedule.notebook,
                cron=changes.get("cron", schedule.cron),
                timezone=changes.get("timezone", schedule.timezone),
                parameters=changes.get("parameters", schedule.parameters),
                target=changes.get("target", schedule.target),
                target_options=dict(options or {}),
                enabled=changes.get("enabled", schedule.enabled),
                catch_up=changes.get("catch_up", schedule.catch_up),
                name=schedule.name,
            )
            return self.create(request)
        enabled = check_bool(changes["enabled"], "enabled")
        if enabled != schedule.enabled:
            if schedule.target != LOCAL:
                options = {**schedule.target_options, **(credentials or {})}
                self._backend(schedule.target).set_enabled(schedule, enabled, options)
            now = self.clock.time()

            def switch(fresh: ScheduleRecord) -> None:
                fresh.enabled, fresh.updated = enabled, now
                if enabled:
                    fresh.last_fire = now  # paused on purpose: those times were not missed

            schedule = self.store.change_schedule(schedule.id, switch) or schedule
            self._changed()
        return schedule

    def delete(self, schedule_id: str, *, credentials: dict[str, Any] | None = None) -> ScheduleRecord:
        """Delete the schedule (and its CronJob or recurring run); the runs it made stay."""
        schedule = self.get(schedule_id)
        if schedule.target != LOCAL:
            self._backend(schedule.target).delete(
                schedule, {**schedule.target_options, **(credentials or {})}
            )
        self.store.delete_schedule(schedule.id)
        self._changed()
        return schedule

    def cluster_status(self, schedule: ScheduleRecord, credentials: dict[str, Any] | None = None) -> dict:
        """What the cluster says about a job/kfp schedule now (suspended, last schedule time, URL, ...)."""
        if schedule.target == LOCAL:
            return {}
        return self._backend(schedule.target).status(
            schedule, {**schedule.target_options, **(credentials or {})}
        )

    # -- helpers --
    def _backend(self, target: str) -> Any:
        if self._cluster is None:
            from jupyter_ext.services.cluster_schedules import CLUSTER_SCHEDULES

            self._cluster = CLUSTER_SCHEDULES
        return self._cluster[target]

    def _retire(self, old: ScheduleRecord, *, keep: ScheduleRecord) -> None:
        """The cluster object of a replaced schedule, unless the new one took it over (same CronJob name)."""

        def ref(schedule: ScheduleRecord) -> str | None:
            return ((schedule.extra or {}).get("cluster") or {}).get("ref")

        if ref(old) != ref(keep):
            try:
                self._backend(old.target).delete(old, dict(old.target_options))
            except CellpipeError as exc:
                # The new schedule exists; say what is left over rather than fail the replacement.
                keep.extra["last_error"] = {"message": f"the replaced schedule's cluster object remains: {exc}",
                                            "time": self.clock.time()}  # fmt: skip

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


def _fires_from(target: str) -> str:
    if target == LOCAL:
        return "this machine: the Jupyter server's scheduler or `cellpipe scheduler` (stops when they stop)"
    if target == "job":
        return "a Kubernetes CronJob (keeps running when the Jupyter server is culled)"
    return "a Kubeflow Pipelines recurring run (keeps running when the Jupyter server is culled)"


_SECRET_OPTIONS = ("token",)


def _storable(options: dict[str, Any] | None) -> dict[str, Any]:
    """Cluster settings to keep with the schedule: everything but bearer tokens (referenced, never written)."""
    return {k: v for k, v in (options or {}).items() if k not in _SECRET_OPTIONS and v not in (None, [], {})}


def new_schedule_id() -> str:
    return "s" + secrets.token_hex(6)


# -- the scheduler -----------------------------------------------------------------------------------
@dataclass
class Fire:
    """One fire time a scheduler handled: run (``run_id``), lost to another scheduler, or failed to start."""

    schedule_id: str
    fire_time: float
    catch_up: bool = False
    run_id: str | None = None
    leased: bool = True
    error: str | None = None


@dataclass
class _Due:
    schedule: ScheduleRecord
    latest: float
    fire: list[tuple[float, bool]]  # (fire time, catch-up run?)
    missed: list[float]


def plan_fires(schedule: ScheduleRecord, now: float, grace: float = GRACE_S) -> _Due | None:
    """What to do for one schedule at ``now``: fire times since the last one handled, split by the policy.

    At most one run per pass: the latest on-time fire time; times older than ``grace`` were missed, and
    with ``catch_up="once"`` (and nothing on time) the latest missed one is run to catch up.
    """
    last = schedule.last_fire if schedule.last_fire is not None else schedule.created
    due = fire_times_between(schedule.cron, schedule.timezone, last, now)
    if not due:
        return None
    on_time = [t for t in due if now - t <= grace]
    late = [t for t in due if now - t > grace]
    fire: list[tuple[float, bool]] = []
    if on_time:
        fire = [(on_time[-1], False)]
        late += on_time[:-1]
    elif schedule.catch_up == "once":
        fire = [(late[-1], True)]
    return _Due(schedule, due[-1], fire, late)


class Scheduler:
    """Fires the enabled local schedules of a store: one asyncio task, started in a running loop.

    ``submit(RunRequest)`` is the run service's (awaitable, returns the run record). ``clock`` is wall time
    and sleeping (tests move a manual one). ``owner`` names this scheduler in the lease table.
    """

    def __init__(
        self,
        store: Any,
        submit: Callable[[Any], Awaitable[Any]],
        *,
        clock: Clock | None = None,
        owner: str | None = None,
        grace_s: float = GRACE_S,
        max_sleep_s: float = 30.0,
        on_fire: Callable[[Fire], None] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.submit = submit
        self.clock = clock or SystemClock()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.grace_s = grace_s
        self.max_sleep_s = max_sleep_s  # re-read the store at least this often (other processes change it)
        self.on_fire = on_fire
        self.log = log or logging.getLogger(__name__)
        self.fired: list[Fire] = []  # this scheduler's history (for the CLI summary and tests)
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pruned = float("-inf")  # when old fire leases were last pruned (clock time)
        self._wake = asyncio.Event()
        self._stopping = False

    # -- lifecycle --
    def start(self) -> None:
        """Start firing (call from inside the running event loop, e.g. the Jupyter server's)."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._wake = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self.run_forever(), name="cellpipe-scheduler")

    async def stop(self) -> None:
        """Stop firing; runs already started go on (they belong to the run service)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Look at the schedules again now (one was created or changed); callable from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:  # a worker thread (the server runs service calls off the event loop)
            here = None
        if here is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def run_forever(self) -> None:
        while not self._stopping:
            self._wake.clear()  # before the pass: a change made during it wakes the next one at once
            failed = False
            try:
                await self.tick()
            except Exception:  # a broken store must not end the loop: log it, retry a little later
                self.log.exception("cellpipe scheduler: checking the schedules failed")
                failed = True
            if self._stopping:
                break
            try:
                wake_at = await asyncio.to_thread(self._next_pass)
            except Exception:
                failed = True
                wake_at = self.clock.time()
            if failed:  # what failed is likely still due: do not spin on it
                wake_at = max(wake_at, self.clock.time() + RETRY_S)
            sleeper = asyncio.ensure_future(self.clock.sleep_until(wake_at))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sleeper, waker):
                    task.cancel()

    # -- one pass --
    async def tick(self) -> list[Fire]:
        """Fire what is due now; returns what this pass did."""
        now = self.clock.time()
        plans = await asyncio.to_thread(self._plans, now)
        done: list[Fire] = []
        for due in plans:
            for fire_time, catch_up in due.fire:
                leased = await asyncio.to_thread(
                    self.store.acquire_fire_lease, due.schedule.id, fire_time, self.owner
                )
                fire = Fire(due.schedule.id, fire_time, catch_up, leased=leased)
                if leased:
                    await self._start_run(due, fire)
                done.append(fire)
            await asyncio.to_thread(self._record, due, [f for f in done if f.schedule_id == due.schedule.id])
        self.fired += done
        if now - self._pruned >= 3600:  # hourly is plenty: the table only needs to stop growing
            self._pruned = now
            await asyncio.to_thread(self.store.prune_fire_leases, now - LEASES_KEPT_S)
        return done

    def _plans(self, now: float) -> list[_Due]:
        plans = []
        for schedule in self.store.list_schedules():
            if not schedule.enabled or schedule.target != LOCAL:
                continue
            try:
                due = plan_fires(schedule, now, self.grace_s)
            except Exception as exc:  # a record another version wrote badly: skip it, keep the others firing
                self.log.warning("cellpipe scheduler: schedule %s cannot be read: %s", schedule.id, exc)
                continue
            if due is not None:
                plans.append(due)
        return plans

    async def _start_run(self, due: _Due, fire: Fire) -> None:
        from jupyter_ext.services.runs import RunRequest

        schedule = due.schedule
        extra = {"schedule": schedule.name, "fire_time": iso(fire.fire_time, schedule.timezone)}
        if fire.catch_up:
            extra["catch_up_for"] = [iso(t, schedule.timezone) for t in due.missed]
        request = RunRequest(
            notebook=Path(schedule.notebook),
            parameters=dict(schedule.parameters),
            target=LOCAL,
            schedule_id=schedule.id,
            source="schedule",
            extra=extra,
        )
        try:
            record = await self.submit(request)
            fire.run_id = getattr(record, "id", None)
            self.log.info(
                "cellpipe scheduler: %s fired at %s: run %s", schedule.name, extra["fire_time"], fire.run_id
            )
        except CellpipeError as exc:  # the notebook was moved or broken since: say so on the schedule
            fire.error = str(exc)
        except Exception as exc:
            self.log.exception("cellpipe scheduler: starting a run of %s failed", schedule.name)
            fire.error = f"{type(exc).__name__}: {exc}"
        if fire.error:
            self.log.warning("cellpipe scheduler: %s could not start a run: %s", schedule.name, fire.error)
        if self.on_fire is not None:
            self.on_fire(fire)

    def _record(self, due: _Due, fires: list[Fire]) -> None:
        """Write back what this pass handled, in one transaction on the stored schedule (a pause made
        meanwhile, here or in another process, is kept)."""

        def handled(fresh: ScheduleRecord) -> bool:
            if fresh.last_fire is not None and fresh.last_fire >= due.latest:
                return False  # another scheduler (or a change of the schedule) got here first
            fresh.last_fire = due.latest
            missed = [iso(t, fresh.timezone) for t in due.missed]
            fresh.missed = list(dict.fromkeys([*fresh.missed, *missed]))[-MISSED_KEPT:]
            for fire in fires:
                if fire.error:
                    fresh.extra["last_error"] = {"message": fire.error, "time": fire.fire_time}
                elif fire.run_id:
                    fresh.extra.pop("last_error", None)
            return True

        self.store.change_schedule(due.schedule.id, handled)

    def _next_pass(self) -> float:
        """When to look again: just after the next fire time not handled yet of any enabled local schedule
        (now if one is due already, e.g. a schedule made during the last pass), at most ``max_sleep_s`` away."""
        now = self.clock.time()
        wake_at = now + self.max_sleep_s
        for schedule in self.store.list_schedules():
            if schedule.enabled and schedule.target == LOCAL:
                last = schedule.last_fire if schedule.last_fire is not None else schedule.created
                try:
                    (upcoming,) = fire_times(schedule.cron, schedule.timezone, last, 1)
                except Exception:
                    continue
                # a little after the fire time, so that the pass then finds it due (now >= fire time)
                wake_at = min(wake_at, upcoming + 0.05)
        return max(now, wake_at)
