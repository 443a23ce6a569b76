"""Every protocol the simulator writes passes through the emulator (`bookcast serve`) to the
live daemon (`bookcast collect`) on 127.0.0.1: zero gaps, the daemon's Parquet equals a
replay of its own raw capture, and every live row is a book the simulated capture held."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collector.processes import DaemonProcess, EmulatorProcess
from collector.replay import replay_captures
from collector.simulator import PRESETS
from tests.daemon.reference import reference_states

from .conftest import simulate

DEPTH = 10
INTERVAL_NS = 50_000_000
SECONDS = 45


@pytest.fixture
def processes():
    started: list = []
    yield started
    for proc in reversed(started):
        proc.close()


def rows(root: Path, venue: str, symbol: str) -> dict:
    base = root / "snapshots" / f"venue={venue}" / f"symbol={symbol}"
    files = sorted(p for p in base.rglob("part-*.parquet") if not p.name.startswith("."))
    assert files, f"no snapshots of {venue} {symbol} under {root}"
    return pa.concat_tables([pq.read_table(f) for f in files]).sort_by("ts").to_pydict()


def settled(daemon: DaemonProcess, books: int, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        metrics = daemon.metrics()
        if metrics["bookcast_queue_depth"] == 0 and metrics["bookcast_book_valid"] == books:
            return metrics
        assert time.monotonic() < deadline, f"the daemon did not settle: {metrics}"
        time.sleep(0.1)


@pytest.mark.parametrize("venue", ["binance-spot", "binance-usdm", "coinbase-advanced"])
def test_simulated_protocol_goes_through_the_emulator_to_the_live_daemon(
        processes, tmp_path, venue):
    symbols = [s for v, s in PRESETS if v == venue]
    if venue == "coinbase-advanced":
        captures = [simulate(tmp_path / "sim", venue, symbols, "default", SECONDS / 3600)]
    else:
        captures = [simulate(tmp_path / "sim" / s, venue, [s], "default", SECONDS / 3600)
                    for s in symbols]
    emulator = EmulatorProcess(captures, "--speed", "20")
    processes.append(emulator)
    data = tmp_path / "live"
    daemon = DaemonProcess(data, "--venue", venue, *[a for s in symbols for a in ("--symbol", s)],
                           "--endpoint", emulator.addresses[venue], "--interval", "50ms",
                           "--depth", str(DEPTH), "--flush-interval", "1s",
                           "--max-backoff", "1s")
    processes.append(daemon)
    stats = emulator.wait_done(venue, timeout=180)
    metrics = settled(daemon, len(symbols))
    rc, _ = daemon.terminate()
    assert rc == 0, daemon.log_path.read_text()[-2000:]

    assert metrics["bookcast_gaps_total"] == 0
    assert metrics["bookcast_checksum_failures_total"] == 0
    assert metrics["bookcast_messages_total"] >= stats["messages_sent"] > 0
    raw = sorted((data / "raw" / f"venue={venue}").rglob("capture-*.jsonl.zst"))
    replayed = tmp_path / "replayed"
    replay_captures(raw, replayed, INTERVAL_NS, DEPTH, venue=venue)
    # rebuilt from the documented protocol, independently of the emulator and the daemon
    books = reference_states(venue, captures, DEPTH)
    for symbol in symbols:
        live = rows(data, venue, symbol)
        assert live == rows(replayed, venue, symbol), f"live {symbol} differs from its replay"
        assert sum(live["gap"]) == 1  # the first sync only
        assert len(live["ts"]) > 20  # 50 ms rows over about two seconds of playback
        for seq, *top in zip(live["seq"], live["bid_px"], live["bid_sz"], live["ask_px"],
                             live["ask_sz"], strict=True):
            assert books.holds(symbol, tuple(top), seq), f"{symbol} book differs at {seq}"
