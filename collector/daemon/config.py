"""What `bookcast collect` runs: venues and symbols from flags or a TOML file, checked up front.

Every mistake a user can make here ends in one UserError sentence naming the input,
before any connection is opened.

TOML layout (see examples/collector.toml):

    data_dir = "data"            # optional, like --data-dir
    interval = "1s"              # snapshot grid
    depth = 100                  # or "full"
    flush_interval = "5s"
    metrics_port = 9108
    # ... every flag below has a key of the same name (TOML_KEYS); an unknown key is
    # refused, so a typo never silently runs with a default

    [[stream]]
    venue = "binance-spot"
    symbols = ["BTCUSDT", "ETHUSDT"]
    # endpoint = "127.0.0.1:8765"   # plain ws/http to another server (the emulator)
"""

from __future__ import annotations

import difflib
import errno
import os
import re
import socket
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bookcast.errors import UserError
from bookcast.timeutil import parse_duration_ns
from collector.venues import check_symbol, venue_class

DEFAULT_METRICS_PORT = 9108
DEFAULT_WRITE_BACKLOG = "256MiB"
DEFAULT_REFRESH_EVERY = "5m"
TOML_KEYS = ("data_dir", "interval", "depth", "flush_interval", "metrics_port", "metrics_host",
             "stale_after", "queue_size", "max_backoff", "run_for", "rest_weight_limit",
             "top_of_book_check", "refresh_every", "write_backlog", "log_format", "stream")
STREAM_KEYS = ("venue", "symbols", "endpoint")
SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10,
              "mib": 2**20, "gib": 2**30}


@dataclass
class StreamConfig:
    """One venue's connection: its symbols and, optionally, another server to talk to."""

    venue: str
    symbols: list[str]
    endpoint: str | None = None  # HOST:PORT; plain ws/http with the venue's own paths


@dataclass
class DaemonConfig:
    streams: list[StreamConfig]
    data_dir: Path
    interval_ns: int = 1_000_000_000
    depth: int | None = 100
    flush_interval_s: float = 5.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int = DEFAULT_METRICS_PORT
    stale_after_s: float = 30.0
    queue_size: int = 10_000
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 60.0
    run_for_s: float | None = None  # stop cleanly after this long (benchmarks, demos)
    top_of_book_check: bool = False  # subscribe to bookTicker and cross-check the books
    rest_weight_limit: int | None = None  # REST weight per minute; None: half the venue's
    refresh_every_s: float | None = 300.0  # fresh snapshots where checks miss levels
    write_backlog_bytes: int = 256 * 2**20  # rows waiting for a failing disk, at most
    log_format: str = "auto"  # text at a terminal, else JSON lines


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML file's table, or a UserError naming the file and the line."""
    if not path.is_file():
        raise UserError(f"The config file '{path}' does not exist.")
    try:
        with path.open("rb") as fh:
            table = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"The config file '{path}' is not valid TOML: {exc}.") from None
    check_keys(table, TOML_KEYS, f"The config file '{path}'")
    return table


def check_keys(table: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    """An unknown key is a typo until proven otherwise: name it, and the likely one."""
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else \
                f"; the keys are {', '.join(known)}"
            raise UserError(f"{where} has an unknown key '{key}'{hint}.")


def streams_from_toml(table: dict[str, Any], path: Path) -> list[StreamConfig]:
    entries = table.get("stream")
    if not isinstance(entries, list) or not entries:
        raise UserError(f"The config file '{path}' has no [[stream]] table with a venue and "
                        f"its symbols.")
    streams = []
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise UserError(f"Stream {n} in '{path}' is not a [[stream]] table.")
        check_keys(entry, STREAM_KEYS, f"Stream {n} in '{path}'")
        venue, symbols = entry.get("venue"), entry.get("symbols")
        if not isinstance(venue, str):
            raise UserError(f"Stream {n} in '{path}' has no venue name.")
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise UserError(f"Stream {n} ({venue}) in '{path}' needs symbols = [\"...\"].")
        endpoint = entry.get("endpoint")
        if endpoint is not None and not isinstance(endpoint, str):
            raise UserError(f"Stream {n} ({venue}) in '{path}' has an endpoint that is not "
                            f"a \"HOST:PORT\" string.")
        streams.append(StreamConfig(venue, list(symbols), endpoint))
    return streams


def check_streams(streams: list[StreamConfig]) -> None:
    """Known venues, symbols spelled as the venue spells them, endpoints as HOST:PORT."""
    seen: set[str] = set()
    for stream in streams:
        venue_class(stream.venue)  # UserError naming the known venues
        if stream.venue in seen:
            raise UserError(f"The venue '{stream.venue}' is configured twice; list all its "
                            f"symbols in one stream.")
        seen.add(stream.venue)
        if not stream.symbols:
            raise UserError(f"No symbols were given for {stream.venue}; add --symbol.")
        if len(set(stream.symbols)) != len(stream.symbols):
            raise UserError(f"A symbol of {stream.venue} is listed twice.")
        for symbol in stream.symbols:
            check_symbol(stream.venue, symbol)
        if stream.endpoint is not None:
            parse_endpoint(stream.endpoint)


def parse_endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"The endpoint '{text}' is not HOST:PORT (for example "
                        f"127.0.0.1:8765).")
    return host, int(port)


def check_data_dir(root: Path) -> None:
    """The data root must exist or be creatable, and take a file."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".bookcast-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UserError(f"The data directory '{root}' is not writable ({reason}).") from None
    if not os.access(root, os.W_OK):
        raise UserError(f"The data directory '{root}' is not writable.")


def bind_metrics_socket(host: str, port: int) -> socket.socket:
    """Bind the metrics port now, so that a port in use is a clear error before any work."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"The metrics port {port} on {host} is already in use; choose "
                            f"another with --metrics-port.") from None
        raise UserError(f"Cannot serve metrics on {host}:{port}: {exc.strerror}.") from None
    sock.listen(64)
    sock.setblocking(False)
    return sock


def parse_seconds(text: str | float | int, what: str) -> float:
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        seconds = parse_duration_ns(text, what=what) / 1e9
    if seconds <= 0:
        raise UserError(f"The {what} '{text}' must be positive.")
    return seconds


def parse_size(text: str | int, what: str) -> int:
    """'256MiB', '1GB', '500kb' or a number of bytes."""
    if isinstance(text, int):
        size = text
    else:
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
        unit = found.group(2).lower() if found else ""
        if found is None or unit not in SIZE_UNITS:
            raise UserError(f"The {what} '{text}' is not a size like 256MiB or 1GB.")
        size = int(float(found.group(1)) * SIZE_UNITS[unit])
    if size <= 0:
        raise UserError(f"The {what} '{text}' must be positive.")
    return size
