"""The daemon's log lines: one event per line, its fields beside it, text or JSON.

Every event that matters is logged with `extra={"fields": {...}}` (venue, symbol,
path, delays...). At a terminal the line reads `12:00:01 warning  disconnected;
reconnecting  venue=kraken reason=...`; when asked (`--log-format json`) or when
stderr is not a terminal (journald, a log file, the tests), it is one JSON object.
"""

from __future__ import annotations

import logging

from bookcast.terminal import setup_logging

LOG_FORMATS = ("auto", "text", "json")


def setup_daemon_logging(log_format: str = "auto", verbose: bool = False) -> None:
    """Log the daemon's events on stderr as text at a terminal, else as JSON lines."""
    setup_logging(json_logs=None if log_format == "auto" else log_format == "json",
                  bookcast_level=logging.DEBUG if verbose else logging.INFO)
