"""Cron expressions with a time zone: checking, describing, and the fire times between two instants.

One reading of cron for every schedule, local or on a cluster: the five fields the Kubernetes CronJob
controller accepts (checked by :func:`jupyter_ext.targets.k8s.schedule.validate_cron`, whose errors name the
field), the macros ``@daily`` and friends, and an IANA time zone. Fire times come from croniter in that time
zone, so "0 3 * * *" in Europe/Berlin fires at 03:00 Berlin time on both sides of a DST change.

    describe("30 6 * * MON-FRI", "Europe/Berlin")
    # {"description": "At 06:30, Monday through Friday (Europe/Berlin)", "next_fire_times": [5 iso times]}
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, datetime, tzinfo
from typing import Any

from jupyter_ext.errors import CellpipeError

DEFAULT_TIMEZONE = "UTC"
# The macros as the five fields they stand for (robfig/cron and Vixie cron agree on these).
MACRO_FIELDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MAX_FIRE_TIMES = 10_000  # a bound on one fire_times_between() answer (a year of a 1-minute cron is 525,600)


def check_cron(cron: Any, *, field: str = "cron") -> str:
    """The cron expression, whitespace normalised, or a CellpipeError naming ``field`` and the bad part."""
    from jupyter_ext.targets.k8s.schedule import validate_cron

    if not isinstance(cron, str) or not cron.strip():
        raise CellpipeError(
            "no cron expression", field=field, hint='Give 5 fields, e.g. "0 3 * * *" (daily at 03:00)'
        )
    checked = validate_cron(cron, field=field)
    if not fire_times(checked, DEFAULT_TIMEZONE, datetime.now(UTC).timestamp(), 1):
        raise CellpipeError(
            f"cron '{cron}' never fires (no such day, e.g. 30 February)",
            field=field,
            hint="Check the day and month",
        )
    return checked


def check_timezone(name: Any, *, field: str = "timezone") -> str:
    """The IANA time zone name, or a CellpipeError naming ``field`` (``Mars/Olympus`` is not one)."""
    from jupyter_ext.targets.k8s.schedule import validate_timezone

    if not isinstance(name, str) or not name.strip():
        raise CellpipeError(
            "no time zone", field=field, hint="Use an IANA name like 'Europe/Berlin' or 'UTC'"
        )
    name = name.strip()
    validate_timezone(name, field=field)
    _zone(name)  # a machine without a tz list: the name must still load
    return name


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CellpipeError(
            f"unknown time zone '{name}'",
            field="timezone",
            hint="Use an IANA name like 'Europe/Berlin' or 'UTC'",
        ) from None


def five_fields(cron: str) -> str:
    """A checked expression with its macro spelled out: what croniter and cron-descriptor read."""
    return MACRO_FIELDS.get(cron.lower(), cron)


def _iterator(cron: str, timezone: str, after: float) -> Any:
    from croniter import croniter

    start = datetime.fromtimestamp(after, _zone(timezone))
    return croniter(five_fields(cron), start)


def fire_times(cron: str, timezone: str, after: float, count: int) -> list[float]:
    """The next ``count`` fire times strictly after ``after`` (epoch seconds), as epoch seconds.

    Fewer (none) for a cron that never fires, such as ``0 0 30 2 *``."""
    from croniter import CroniterBadDateError

    iterator = _iterator(cron, timezone, after)
    times: list[float] = []
    try:
        for _ in range(count):
            times.append(iterator.get_next(float))
    except CroniterBadDateError:
        pass
    return times


def fire_times_between(cron: str, timezone: str, after: float, until: float) -> list[float]:
    """Fire times ``t`` with ``after < t <= until`` (epoch seconds), oldest first, at most 10,000 (the newest)."""
    from croniter import CroniterBadDateError

    iterator = _iterator(cron, timezone, after)
    times: list[float] = []
    while True:
        try:
            moment = iterator.get_next(float)
        except CroniterBadDateError:  # never fires
            return times
        if moment > until:
            return times
        times.append(moment)
        if len(times) > _MAX_FIRE_TIMES:
            del times[0]


def iso(moment: float, timezone: str = DEFAULT_TIMEZONE) -> str:
    """Epoch seconds as ISO 8601 with the zone's offset, e.g. ``2026-03-30T06:30:00+02:00``."""
    return datetime.fromtimestamp(moment, _zone(timezone)).isoformat()


def description(cron: str, timezone: str = DEFAULT_TIMEZONE) -> str:
    """``At 03:00 (Europe/Berlin)``: cron-descriptor's English, 24-hour clock, with the time zone."""
    from cron_descriptor import ExpressionDescriptor, Options

    options = Options()
    options.use_24hour_time_format = True
    try:
        text = ExpressionDescriptor(five_fields(cron), options).get_description()
    except Exception:  # a checked expression it cannot word: say it as written rather than fail
        text = f"cron '{cron}'"
    return f"{text} ({timezone})"


def describe(
    cron: Any, timezone: Any = DEFAULT_TIMEZONE, *, now: float | None = None, count: int = 5
) -> dict:
    """``{"description", "next_fire_times": [iso x count]}``; CellpipeError(field="cron"|"timezone") if invalid."""
    checked = check_cron(cron)
    zone = check_timezone(DEFAULT_TIMEZONE if timezone is None else timezone)
    start = datetime.now(UTC).timestamp() if now is None else now
    return {
        "description": description(checked, zone),
        "next_fire_times": [iso(t, zone) for t in fire_times(checked, zone, start, count)],
    }
