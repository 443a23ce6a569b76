"""The daemon's log lines: one event per line, its fields beside it, text or JSON.

Every event that matters is logged with `extra={"fields": {...}}` (venue, symbol,
path, delays...). At a terminal the line reads `12:00:01 warning  disconnected;
reconnecting  venue=kraken reason=...`; when asked (`--log-format json`) or when
stderr is not a terminal (journald, a log file, the tests), it is one JSON object.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from bookcast.terminal import interactive

LOG_FORMATS = ("auto", "text", "json")


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "event": record.getMessage()}
        fields = getattr(record, "fields", None)
        if fields:
            obj.update(fields)
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(obj, default=str).decode()


class TextLineFormatter(logging.Formatter):
    """`HH:MM:SS level    event  key=value ...`, for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {record.levelname.lower():<8} {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if fields:
            line += "  " + " ".join(f"{k}={_text(v)}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return f'"{text}"' if " " in text and isinstance(value, str) else text


def setup_daemon_logging(log_format: str = "auto", verbose: bool = False) -> None:
    """Log the daemon's events on stderr as text at a terminal, else as JSON lines."""
    as_json = log_format == "json" or (log_format == "auto" and not interactive(sys.stderr))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter() if as_json else TextLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("bookcast").setLevel(logging.DEBUG if verbose else logging.INFO)
