"""Durations and timestamps: everything inside bookcast is integer nanoseconds (UTC)."""

from __future__ import annotations

import datetime as dt
import re

from bookcast.errors import UserError

NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "min": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|min|m|h|d)\s*$")


def parse_duration_ns(text: str | int, *, what: str = "duration") -> int:
    """Parse '100ms', '1s', '6h', '1.5s' (or a plain integer of nanoseconds) into ns."""
    if isinstance(text, int):
        return text
    match = _DURATION.match(str(text))
    if match is None:
        if str(text).strip().isdigit():
            return int(str(text).strip())
        raise UserError(
            f"The {what} '{text}' is not a duration; write it like 100ms, 1s, 30s, 5m or 6h."
        )
    value, unit = match.groups()
    ns = round(float(value) * NS_PER_UNIT[unit])
    return ns


def format_duration_ns(ns: int) -> str:
    """The shortest exact spelling of a duration: 100ms, 1s, 90s, 6h."""
    for unit in ("h", "m", "s", "ms", "us"):
        size = NS_PER_UNIT[unit]
        if ns >= size and ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def utc_date(ts_ns: int) -> str:
    """The UTC calendar date (YYYY-MM-DD) of a nanosecond timestamp."""
    return dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=dt.UTC).strftime("%Y-%m-%d")


def utc_day_start_ns(ts_ns: int) -> int:
    """Nanoseconds at 00:00 UTC of the day holding ts_ns."""
    return ts_ns - ts_ns % NS_PER_UNIT["d"]


def parse_time_ns(text: str, *, what: str = "time") -> int:
    """An instant given as an ISO date or date-time ('2024-08-08', '2024-08-08T23:55',
    '2024-08-08 23:55:00.5+02:00') into ns since the epoch; without a zone it is UTC."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"The {what} '{text}' is not a date or time; write it like 2024-08-08 "
                        f"or 2024-08-08T23:55:00 (UTC unless a zone is given).") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def format_ts(ts_ns: int) -> str:
    """A nanosecond timestamp as ISO 8601 UTC to the microsecond: 2024-08-08T23:54:13.937085Z."""
    moment = dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=dt.UTC)
    micros = ts_ns % 1_000_000_000 // 1_000
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{micros:06d}Z"
