"""Cron schedules and time zones, checked the way the CronJob controller (robfig/cron) will read them.

We parse the five fields ourselves rather than asking croniter, because croniter accepts things Kubernetes
refuses (day-of-week 7, seconds fields) and its errors do not say which field is wrong.
"""

from __future__ import annotations

import zoneinfo

from jupyter_ext.errors import TargetError

MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# (label, low, high, names mapped to numbers)
_FIELDS: list[tuple[str, int, int, dict[str, int]]] = [
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    ("day of week", 0, 6, {d: i for i, d in enumerate(_DAYS)}),
]
_HINT = "Cron has 5 fields: minute hour day-of-month month day-of-week, e.g. '0 3 * * *' (daily at 03:00)"


class _FieldError(ValueError):
    pass


def _number(token: str, low: int, high: int, names: dict[str, int]) -> int:
    if token.upper() in names:
        return names[token.upper()]
    if not token.isdigit():
        raise _FieldError(
            f"must be a number {low}-{high}" + (" or a name" if names else "") + f", got {token}"
        )
    value = int(token)
    if not low <= value <= high:
        raise _FieldError(f"must be {low}-{high}, got {value}")
    return value


def _check_field(text: str, low: int, high: int, names: dict[str, int]) -> None:
    for item in text.split(","):
        base, slash, step = item.partition("/")
        if slash and not (step.isdigit() and int(step) >= 1):
            raise _FieldError(f"step must be a positive number, got '/{step}'")
        if base in ("*", "?"):
            continue
        start, dash, end = base.partition("-")
        if not start:
            raise _FieldError(f"has an empty value in '{text}'")
        first = _number(start, low, high, names)
        if dash:
            last = _number(end, low, high, names)
            if first > last:
                raise _FieldError(f"range {base} goes backwards")


def validate_cron(expr: str, *, field: str = "schedule") -> str:
    """Return the schedule (whitespace normalised) if the CronJob controller accepts it, else TargetError.

    The message names the offending field, e.g.
    ``invalid cron '0 25 * * *': field 2 (hour) must be 0-23, got 25``; ``field`` is the setting the
    error names (the manifest's ``schedule``, a schedule's ``cron``).
    """
    text = " ".join(str(expr).split())
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise TargetError(
            f"invalid cron '{expr}': Kubernetes does not accept TZ= in the schedule",
            field=field,
            hint="Pass the time zone separately (timezone, e.g. 'Europe/Berlin')",
        )
    if text.startswith("@"):
        if text.lower() in MACROS:
            return text.lower()
        raise TargetError(
            f"invalid cron '{expr}': unknown macro, expected one of {', '.join(MACROS)}",
            field=field,
            hint=_HINT,
        )
    fields = text.split(" ") if text else []
    if len(fields) != 5:
        raise TargetError(
            f"invalid cron '{expr}': expected 5 fields, got {len(fields)}", field=field, hint=_HINT
        )
    for position, (value, (label, low, high, names)) in enumerate(zip(fields, _FIELDS, strict=True), start=1):
        try:
            _check_field(value, low, high, names)
        except _FieldError as exc:
            raise TargetError(
                f"invalid cron '{expr}': field {position} ({label}) {exc}", field=field
            ) from None
    return text


def validate_timezone(name: str, *, field: str = "timezone") -> str:
    """Return ``name`` if it is an IANA time zone (as CronJob ``timeZone`` requires), else TargetError."""
    try:
        known = zoneinfo.available_timezones()
    except Exception:  # no tz database on this machine: let the API server judge
        return name
    if not known or name in known:
        return name
    close = sorted(z for z in known if z.lower() == name.lower() or z.lower().endswith("/" + name.lower()))
    hint = f"Did you mean '{close[0]}'?" if close else "Use an IANA name like 'Europe/Berlin' or 'UTC'"
    raise TargetError(f"unknown time zone '{name}'", field=field, hint=hint)
