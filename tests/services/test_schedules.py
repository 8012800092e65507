"""Local schedules: describing crons, firing on a moved clock, catch-up policies, leases, restarts, replacing.

The scheduler's clock is a manual one the tests move, so no test waits for real minutes. Runs are submitted to
a recorder standing in for the run service (what is tested here is which fire times start a run); the end to
end run of a scheduled notebook through the real run service is in test_scheduled_runs.py.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jupyter_ext.errors import CellpipeError
from jupyter_ext.records.store import RecordStore
from jupyter_ext.services.schedules import Scheduler, ScheduleRequest, ScheduleService
from tests.support.waiting import eventually

START = datetime(2026, 3, 2, 8, 0, 30, tzinfo=UTC).timestamp()  # a Monday, 08:00:30 UTC


class ManualClock:
    """Wall time that moves only when the test says; sleepers wake when it passes their time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    async def sleep_until(self, moment: float) -> None:
        while self.now < moment:
            await asyncio.sleep(0.005)

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """Stands in for RunService.submit: records each request, answers with a run-like object."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    async def __call__(self, request: Any) -> Any:
        self.requests.append(request)
        return type("Run", (), {"id": f"run-{len(self.requests)}"})()


@pytest.fixture
def notebook(write_notebook) -> Path:
    return write_notebook(
        [(["parameters"], "alpha = 0.5\nlabel = 'run'"), ([], "print(alpha, label)")], name="train.ipynb"
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def service(tmp_path: Path, clock: ManualClock) -> ScheduleService:
    return ScheduleService(tmp_path / "data", clock=clock)


# -- create / replace / pause ---------------------------------------------------------------------------
def test_create_checks_every_field_before_saving(service: ScheduleService, notebook: Path) -> None:
    bad = [
        ({"cron": "61 * * * *"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"target": "airflow"}, "target"),
        ({"catch_up": "always"}, "catch_up"),
        ({"enabled": "yes"}, "enabled"),
        ({"name": "Nightly Train"}, "name"),
        ({"parameters": {"alpha": "high"}}, "parameter"),
        ({"parameters": {"beta": 1}}, "parameter"),
        ({"notebook": notebook.parent / "missing.ipynb"}, "path"),
    ]
    for changes, field in bad:
        request = ScheduleRequest(**{"notebook": notebook, "cron": "*/5 * * * *", **changes})
        with pytest.raises(CellpipeError) as caught:
            service.create(request)
        assert caught.value.field and caught.value.field.startswith(field), (changes, caught.value.field)
    assert service.list() == []


def test_rescheduling_the_same_notebook_and_name_replaces(service: ScheduleService, notebook: Path) -> None:
    first = service.create(ScheduleRequest(notebook, "0 3 * * *", parameters={"alpha": 1}))
    second = service.create(ScheduleRequest(notebook, "0 4 * * *", parameters=["alpha=2"]))
    assert second.id == first.id and second.created == first.created
    (only,) = service.list()
    assert (only.cron, only.parameters, only.name) == ("0 4 * * *", {"alpha": 2.0}, "train")
    other = service.create(ScheduleRequest(notebook, "0 5 * * *", name="hourly"))
    assert other.id != first.id and len(service.list()) == 2


def test_view_has_the_contract_fields(service: ScheduleService, notebook: Path) -> None:
    schedule = service.create(ScheduleRequest(notebook, "0 3 * * *", "Europe/Berlin"))
    view = service.view(schedule, root=notebook.parent)
    assert view["notebook"] == "train.ipynb"  # relative to the server root
    assert view["description"] == "At 03:00 (Europe/Berlin)"
    assert view["next_fire_times"][0] == "2026-03-03T03:00:00+01:00"
    assert view["survives_server_cull"] is False and "stops when they stop" in view["fires_from"]
    assert (view["missed"], view["recent_runs"], view["catch_up"], view["enabled"]) == ([], [], "skip", True)
    paused = service.update(schedule.id, enabled=False)
    assert service.view(paused)["next_fire_times"] == []
    with pytest.raises(CellpipeError, match="cannot be changed") as caught:
        service.update(schedule.id, notebook="other.ipynb")
    assert caught.value.field == "notebook"


# -- firing -----------------------------------------------------------------------------------------------
async def test_a_schedule_fires_when_the_clock_reaches_its_time(
    service: ScheduleService, notebook: Path, clock: ManualClock
) -> None:
    schedule = service.create(ScheduleRequest(notebook, "*/5 * * * *", parameters={"alpha": 2}))
    submit = Recorder()
    scheduler = Scheduler(service.store, submit, clock=clock)
    service.on_change = scheduler.wake
    scheduler.start()
    try:
        await asyncio.sleep(0.1)
        assert submit.requests == []  # 08:00:30: the next time is 08:05
        clock.advance(4 * 60 + 30)  # 08:05:00
        await eventually(lambda: len(submit.requests) == 1, timeout=10, interval=0.01, what="the first fire")
        request = submit.requests[0]
        assert (request.schedule_id, request.source, request.target) == (schedule.id, "schedule", "local")
        assert request.notebook == notebook and request.parameters == {"alpha": 2.0}
        assert request.extra["fire_time"] == "2026-03-02T08:05:00+00:00"
        clock.advance(60)  # 08:06: nothing due
        await asyncio.sleep(0.1)
        assert len(submit.requests) == 1
        clock.advance(4 * 60)  # 08:10
        await eventually(lambda: len(submit.requests) == 2, timeout=10, interval=0.01, what="the second fire")
    finally:
        await scheduler.stop()
    assert not scheduler.running
    assert service.get(schedule.id).missed == []
    assert [f.run_id for f in scheduler.fired] == ["run-1", "run-2"]


@pytest.mark.parametrize("policy", ["skip", "once"])
async def test_missed_fire_times_follow_the_catch_up_policy(
    service: ScheduleService, notebook: Path, clock: ManualClock, policy: str
) -> None:
    schedule = service.create(ScheduleRequest(notebook, "0 * * * *", catch_up=policy))
    clock.advance(3 * 3600 + 5 * 60)  # nothing ran from 08:00:30 to 11:05:30: 09:00, 10:00 and 11:00 went by
    submit = Recorder()
    fires = await Scheduler(service.store, submit, clock=clock).tick()
    missed = ["2026-03-02T09:00:00+00:00", "2026-03-02T10:00:00+00:00", "2026-03-02T11:00:00+00:00"]
    assert service.get(schedule.id).missed == missed  # listed under either policy
    if policy == "skip":
        assert fires == [] and submit.requests == []
    else:
        (fire,) = fires
        assert fire.catch_up and fire.fire_time == datetime(2026, 3, 2, 11, tzinfo=UTC).timestamp()
        assert submit.requests[0].extra["catch_up_for"] == missed
    # the next on-time fire is an ordinary one under both policies, and nothing is missed twice
    clock.advance(3600 - 320)  # 12:00:10
    (fire,) = await Scheduler(service.store, submit, clock=clock).tick()
    assert not fire.catch_up and service.get(schedule.id).missed == missed


async def test_a_change_made_in_another_thread_wakes_the_scheduler(
    service: ScheduleService, notebook: Path, clock: ManualClock
) -> None:
    submit = Recorder()
    scheduler = Scheduler(service.store, submit, clock=clock, max_sleep_s=3600)
    service.on_change = scheduler.wake
    scheduler.start()
    try:
        await asyncio.sleep(0.1)  # asleep for an hour of the manual clock: nothing to fire
        # as the server does: the service call (and so the wake-up) runs in a worker thread
        await asyncio.to_thread(service.create, ScheduleRequest(notebook, "* * * * *"))
        clock.advance(60)
        await eventually(lambda: len(submit.requests) == 1, timeout=10, interval=0.01, what="the first fire")
    finally:
        await scheduler.stop()


async def test_paused_time_is_not_missed(
    service: ScheduleService, notebook: Path, clock: ManualClock
) -> None:
    schedule = service.create(ScheduleRequest(notebook, "0 * * * *", catch_up="once"))
    service.update(schedule.id, enabled=False)
    clock.advance(5 * 3600)
    submit = Recorder()
    assert await Scheduler(service.store, submit, clock=clock).tick() == []
    service.update(schedule.id, enabled=True)
    assert await Scheduler(service.store, submit, clock=clock).tick() == []
    assert service.get(schedule.id).missed == [] and submit.requests == []


async def test_two_schedulers_on_one_store_fire_each_time_once(
    tmp_path: Path, service: ScheduleService, notebook: Path, clock: ManualClock
) -> None:
    service.create(ScheduleRequest(notebook, "* * * * *"))
    service.create(ScheduleRequest(notebook, "*/2 * * * *", name="every-two"))
    submit = Recorder()
    # two store objects: two connections to one SQLite file, as two processes would have
    schedulers = [Scheduler(RecordStore(tmp_path / "data"), submit, clock=clock) for _ in range(2)]
    for scheduler in schedulers:
        scheduler.start()
    try:
        for _ in range(10):
            clock.advance(60)
            await asyncio.sleep(0.15)
        await eventually(lambda: len(submit.requests) >= 15, timeout=10, interval=0.01, what="15 fires")
        await asyncio.sleep(0.2)
    finally:
        for scheduler in schedulers:
            await scheduler.stop()
    fired = [(r.schedule_id, r.extra["fire_time"]) for r in submit.requests]
    assert len(fired) == len(set(fired)) == 15  # 10 minutes of one, 5 of the other, none twice
    lost = [f for s in schedulers for f in s.fired if not f.leased]
    assert len([f for s in schedulers for f in s.fired if f.leased]) == 15
    assert all(f.run_id is None for f in lost)


def _tick_in_a_process(data_dir: str, now: float, start: Any, results: Any) -> None:
    async def submit(request: Any) -> Any:
        await asyncio.sleep(1.0)  # a slow start: the others have read the schedule before this one records
        return type("Run", (), {"id": "r"})()

    scheduler = Scheduler(RecordStore(data_dir), submit, clock=ManualClock(now))
    start.wait(60)  # all processes imported and connected: tick together
    fires = asyncio.run(scheduler.tick())
    results.put([(f.fire_time, f.leased) for f in fires])


def test_two_scheduler_processes_fire_a_time_once(
    service: ScheduleService, notebook: Path, clock: ManualClock
) -> None:
    service.create(ScheduleRequest(notebook, "*/5 * * * *"))
    context = multiprocessing.get_context("spawn")
    results, start = context.Queue(), context.Barrier(3)
    now = START + 4 * 60 + 40  # 08:05:10
    args = (str(service.data_dir), now, start, results)
    processes = [context.Process(target=_tick_in_a_process, args=args) for _ in range(3)]
    for process in processes:
        process.start()
    answers = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(30)
    leased = [fire for answer in answers for fire in answer if fire[1]]
    assert len(leased) == 1 and sum(len(a) for a in answers) == 3  # all three tried, one won


async def test_schedules_continue_after_a_restart(
    tmp_path: Path, service: ScheduleService, notebook: Path, clock: ManualClock
) -> None:
    schedule = service.create(ScheduleRequest(notebook, "*/10 * * * *"))
    submit = Recorder()
    first = Scheduler(RecordStore(tmp_path / "data"), submit, clock=clock)
    clock.advance(10 * 60)  # 08:10:30
    assert len(await first.tick()) == 1
    # "restart": a new process with a new store object; it was down from 08:10:30 to 08:20:05
    clock.advance(9 * 60 + 35)
    second = Scheduler(RecordStore(tmp_path / "data"), submit, clock=clock)
    (fire,) = await second.tick()
    assert fire.fire_time == datetime(2026, 3, 2, 8, 20, tzinfo=UTC).timestamp() and not fire.catch_up
    assert [r.extra["fire_time"][11:16] for r in submit.requests] == ["08:10", "08:20"]
    assert service.get(schedule.id).missed == []


async def test_a_fire_that_cannot_start_is_reported_on_the_schedule(
    service: ScheduleService, notebook: Path, clock: ManualClock
) -> None:
    schedule = service.create(ScheduleRequest(notebook, "*/5 * * * *"))

    async def refuse(request: Any) -> Any:
        raise CellpipeError("no such file", notebook=str(request.notebook))

    clock.advance(5 * 60)
    (fire,) = await Scheduler(service.store, refuse, clock=clock).tick()
    assert "no such file" in fire.error
    view = service.view(service.get(schedule.id))
    assert "train.ipynb: no such file" in view["last_error"]["message"]


async def test_old_fire_leases_are_pruned(service: ScheduleService, clock: ManualClock) -> None:
    store = service.store
    week = 7 * 86400
    assert store.acquire_fire_lease("s1", START - week - 60, "old")
    assert store.acquire_fire_lease("s1", START - 60, "recent")
    await Scheduler(store, Recorder(), clock=clock).tick()
    assert store.acquire_fire_lease("s1", START - week - 60, "again")  # forgotten: a new lease is possible
    assert not store.acquire_fire_lease("s1", START - 60, "again")  # a recent one is kept
