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
