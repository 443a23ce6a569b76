"""What `bookcast collect` runs: venues and symbols from flags or a TOML file, checked up front.

Every mistake a user can make here ends in one UserError sentence naming the input,
before any connection is opened.

TOML layout (see examples/collector.toml):

    data_dir = "data"            # optional, like --data-dir
    interval = "1s"              # snapshot grid
    depth = 100                  # or "full"
    flush_interval = "5s"
    metrics_port = 9108

    [[stream]]
    venue = "binance-spot"
    symbols = ["BTCUSDT", "ETHUSDT"]
    # endpoint = "127.0.0.1:8765"   # plain ws/http to another server (the emulator)
"""

from __future__ import annotations

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
from collector.venues import venue_class

DEFAULT_METRICS_PORT = 9108

# How each venue spells a symbol (DESIGN.md: symbols are spelled as the venue spells
# them); a symbol that cannot be one is refused before connecting.
SYMBOL_SPELLING: dict[str, tuple[re.Pattern[str], str]] = {
    "binance-spot": (re.compile(r"^[A-Z0-9]{2,20}$"), "upper-case letters like BTCUSDT"),
    "binance-usdm": (re.compile(r"^[A-Z0-9_]{2,30}$"), "upper-case letters like BTCUSDT"),
    "coinbase-advanced": (re.compile(r"^[A-Z0-9]{1,12}-[A-Z0-9]{1,12}$"), "BASE-QUOTE like "
                          "BTC-USD"),
    "coinbase-exchange": (re.compile(r"^[A-Z0-9]{1,12}-[A-Z0-9]{1,12}$"), "BASE-QUOTE like "
                          "BTC-USD"),
    "kraken": (re.compile(r"^[A-Z0-9]{1,12}/[A-Z0-9]{1,12}$"), "BASE/QUOTE like XBT/USD"),
}


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


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML file's table, or a UserError naming the file and the line."""
    if not path.is_file():
        raise UserError(f"The config file '{path}' does not exist.")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"The config file '{path}' is not valid TOML: {exc}.") from None


def streams_from_toml(table: dict[str, Any], path: Path) -> list[StreamConfig]:
    entries = table.get("stream")
    if not isinstance(entries, list) or not entries:
        raise UserError(f"The config file '{path}' has no [[stream]] table with a venue and "
                        f"its symbols.")
    streams = []
    for n, entry in enumerate(entries, start=1):
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
        spelling = SYMBOL_SPELLING.get(stream.venue)
        for symbol in stream.symbols:
            if spelling is not None and not spelling[0].match(symbol):
                raise UserError(f"'{symbol}' is not a {stream.venue} symbol; {stream.venue} "
                                f"spells symbols as {spelling[1]}.")
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
