"""The daemon against the emulator: live Parquet equals replay, books equal the capture's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from collector.capture import merge_captures
from collector.emulator.exchange import ExchangeBook
from collector.replay import replay_captures

from .chaos import wait_for
from .conftest import Daemon, Emulator, raw_files, read_rows, stop_in_time

DEPTH = 20
INTERVAL = "20ms"
INTERVAL_NS = 20_000_000


def reference_books(captures: list[Path], venue: str, depth: int = DEPTH
                    ) -> dict[str, dict[int, tuple]]:
    """The book after every applied update of the original capture, keyed by sequence id."""
    book = ExchangeBook(venue)
    books: dict[str, dict[int, tuple]] = {}
    for rec in merge_captures(captures):
        book.feed(rec)
        for state in book.states():
            if state.valid and state.seq is not None:
                seen = books.setdefault(state.symbol, {})
                if state.seq not in seen:
                    seen[state.seq] = state.book.top(depth)
    return books


def assert_rows_match_reference(rows: dict, books: dict[int, tuple]) -> int:
    """Every snapshot row equals the original capture's book at the row's sequence id."""
    checked = 0
    for seq, bid_px, bid_sz, ask_px, ask_sz in zip(rows["seq"], rows["bid_px"], rows["bid_sz"],
                                                   rows["ask_px"], rows["ask_sz"], strict=True):
        assert seq in books, f"row at seq {seq} is at no state the capture's book passed"
        assert (bid_px, bid_sz, ask_px, ask_sz) == tuple(books[seq]), f"book differs at {seq}"
        checked += 1
    return checked


def assert_live_equals_replay(data_dir: Path, venue: str, symbols: list[str],
                              tmp_path: Path, trades: bool = True) -> dict[str, dict]:
    """Replaying the daemon's own raw capture gives its Parquet row for row."""
    replayed = tmp_path / "replayed"
    replay_captures(raw_files(data_dir, venue), replayed, INTERVAL_NS, DEPTH, venue=venue)
    live_rows = {}
    for symbol in symbols:
        for dataset in ("snapshots", "trades") if trades else ("snapshots",):
            live = read_rows(data_dir, dataset, venue, symbol)
            again = read_rows(replayed, dataset, venue, symbol)
            assert live.num_rows > 0, f"no live {dataset} for {symbol}"
            assert live.to_pydict() == again.to_pydict(), f"{dataset} of {symbol} differ"
        live_rows[symbol] = read_rows(data_dir, "snapshots", venue, symbol).to_pydict()
    return live_rows


def run_collection(processes: list, captures: list[Path], venue: str, symbols: list[str],
                   data_dir: Path, emulator_args: tuple[str, ...] = (),
                   daemon_args: tuple[str, ...] = (),
                   settled: Callable[[dict, dict], bool] | None = None
                   ) -> tuple[Emulator, Daemon, dict, dict]:
    """Serve, collect until playback ends and the daemon has settled, SIGTERM; returns
    the emulator's stats and the daemon's metrics at that point.

    Settled: the queue is empty and `settled(stats, metrics)` holds (by default: every
    book synchronised), waited for with a generous deadline, never a fixed sleep.
    """
    emulator = Emulator(captures, "--speed", "40", *emulator_args)
    processes.append(emulator)
    symbol_args = [a for s in symbols for a in ("--symbol", s)]
    daemon = Daemon(data_dir, "--venue", venue, *symbol_args, "--endpoint",
                    emulator.addresses[venue], "--interval", INTERVAL, "--depth", str(DEPTH),
                    "--flush-interval", "1s", "--max-backoff", "1s", *daemon_args)
    processes.append(daemon)
    stats = emulator.wait_done(venue)
    books = len(symbols)
    condition = settled or (lambda _stats, m: m["bookcast_book_valid"] == books)
    metrics: dict = {}

    def done() -> bool:
        nonlocal metrics
        metrics = daemon.metrics()
        return metrics["bookcast_queue_depth"] == 0 and condition(stats, metrics)

    wait_for("the daemon to settle", done)
    metrics["healthz"] = daemon.healthz()
    rc = stop_in_time(daemon)
    assert rc == 0, daemon.log_path.read_text()[-2000:]
    return emulator, daemon, stats, metrics


@pytest.mark.parametrize("venue, keys, symbols", [
    ("binance-spot", ["btc-spot", "eth-spot"], ["BTCUSDT", "ETHUSDT"]),
    ("binance-usdm", ["btc-usdm"], ["BTCUSDT"]),
])
def test_live_parquet_equals_replay_and_the_captures_books(
        processes: list, slices: dict[str, Path], tmp_path: Path, venue: str,
        keys: list[str], symbols: list[str]) -> None:
    captures = [slices[k] for k in keys]
    data_dir = tmp_path / "data"
    _, _, stats, metrics = run_collection(processes, captures, venue, symbols, data_dir)

    # nothing lost: every message the emulator sent is in the raw capture
    received = sum(1 for f in raw_files(data_dir, venue) for _ in _recv_records(f))
    assert received == stats["messages_sent"] == metrics["bookcast_messages_total"]
    assert stats["max_depth_in_flight"] == 1  # the probe and the snapshot never overlap

    live = assert_live_equals_replay(data_dir, venue, symbols, tmp_path)
    books = reference_books(captures, venue)
    for symbol in symbols:
        assert assert_rows_match_reference(live[symbol], books[symbol]) > 20
        assert sum(live[symbol]["gap"]) == 1  # only the first sync
    assert metrics["bookcast_gaps_total"] == 0
    assert metrics["bookcast_snapshots_written_total"] > 0
    assert metrics["bookcast_receive_lag_seconds_count"] > 0
    assert metrics["healthz"] == 200


def assert_every_resync_flagged(rows: dict, daemon: Daemon) -> None:
    """The first row after each resynchronisation carries gap = true, and no other row does.

    Two resyncs inside one grid interval share one flagged row, as DESIGN.md defines it.
    """
    synced = sorted(e["seq"] for e in daemon.events() if e["event"] == "book synchronised")
    flagged = set()
    for seq in synced:
        after = [i for i, s in enumerate(rows["seq"]) if s >= seq]
        if after:
            assert rows["gap"][after[0]], f"no gap flag on the first row after seq {seq}"
            flagged.add(after[0])
    assert {i for i, gap in enumerate(rows["gap"]) if gap} == flagged


def _recv_records(path: Path):
    from collector.capture import iter_capture

    return (r for r in iter_capture(path) if r.kind == "recv")


@pytest.mark.parametrize("flag, count_key, metric", [
    ("--gap-every", "gaps", "bookcast_gaps_total"),
    ("--corrupt-every", "corruptions", "bookcast_parse_errors_total"),
])
def test_each_skipped_or_garbled_diff_is_one_flagged_gap_and_no_wrong_row(
        processes: list, slices: dict[str, Path], tmp_path: Path, flag: str,
        count_key: str, metric: str) -> None:
    data_dir = tmp_path / "data"
    # the emulator plays 40x faster than the market, so a minute of Binance's REST weight
    # budget would cover 40 minutes of resyncs: lift it, as the soak does.
    # A fault is noticeable once a later diff follows it (`followed`); wait until the
    # daemon has counted and recovered from each of those.
    _, daemon, stats, metrics = run_collection(
        processes, [slices["btc-spot"]], "binance-spot", ["BTCUSDT"], data_dir, (flag, "150"),
        ("--rest-weight-limit", "1000000"),
        settled=lambda stats, m: m["bookcast_gaps_total"] == stats["followed"]
        and m["bookcast_resyncs_total"] == stats["followed"] + 1)
    injected = stats[count_key]
    assert stats["followed"] >= 3 and injected - 1 <= stats["followed"] <= injected
    if count_key == "corruptions":
        assert metrics[metric] == injected  # each garbled diff is one parse error
    assert metrics["bookcast_gaps_total"] == stats["followed"]
    assert metrics["bookcast_resyncs_total"] == stats["followed"] + 1
    live = assert_live_equals_replay(data_dir, "binance-spot", ["BTCUSDT"], tmp_path)
    rows = live["BTCUSDT"]
    assert_every_resync_flagged(rows, daemon)
    books = reference_books([slices["btc-spot"]], "binance-spot")
    assert_rows_match_reference(rows, books["BTCUSDT"])


def test_dropped_connections_are_reconnected_counted_and_leave_no_wrong_row(
        processes: list, slices: dict[str, Path], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _, daemon, stats, metrics = run_collection(
        processes, [slices["btc-spot"]], "binance-spot", ["BTCUSDT"], data_dir,
        ("--drop-every", "0.7"), ("--max-backoff", "0.2s"),
        # the last drop may come as playback ends: then no diff resyncs the book
        settled=lambda stats, m: m["bookcast_disconnects_total"] == stats["drops"])
    assert stats["drops"] >= 2
    assert metrics["bookcast_disconnects_total"] == stats["drops"]
    # a drop invalidates the book at once (no diff has to show the loss first), and the
    # reconnection resynchronises it: every resync is flagged, no row falls in an outage
    assert metrics["bookcast_gaps_total"] == 0
    assert stats["drops"] - 1 <= metrics["bookcast_resyncs_total"] - 1 <= stats["drops"]
    live = assert_live_equals_replay(data_dir, "binance-spot", ["BTCUSDT"], tmp_path)
    assert_every_resync_flagged(live["BTCUSDT"], daemon)
    books = reference_books([slices["btc-spot"]], "binance-spot")
    assert_rows_match_reference(live["BTCUSDT"], books["BTCUSDT"])
    reconnects = [e for e in daemon.events() if e["event"] == "disconnected; reconnecting"]
    assert len(reconnects) == stats["drops"]


def test_a_stalled_stream_is_detected_reconnected_and_counted(
        processes: list, slices: dict[str, Path], tmp_path: Path) -> None:
    import time

    data_dir = tmp_path / "data"
    emulator = Emulator([slices["btc-spot"]], "--speed", "15", "--stall", "2",
                        "--stall-after", "600")
    processes.append(emulator)
    daemon = Daemon(data_dir, "--venue", "binance-spot", "--symbol", "BTCUSDT", "--endpoint",
                    emulator.addresses["binance-spot"], "--interval", INTERVAL, "--depth",
                    str(DEPTH), "--stale-after", "0.6s", "--max-backoff", "0.2s")
    processes.append(daemon)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        stalls = emulator.stats("binance-spot")["stalls"]
        stale = daemon.metrics()["bookcast_stale_streams_total"]
        if stalls >= 2 and stale == stalls == emulator.stats("binance-spot")["stalls"]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"stalls {stalls} vs stale reconnects {stale}")
    rc, _ = daemon.terminate()
    assert rc == 0
    live = assert_live_equals_replay(data_dir, "binance-spot", ["BTCUSDT"], tmp_path)
    books = reference_books([slices["btc-spot"]], "binance-spot")
    assert_rows_match_reference(live["BTCUSDT"], books["BTCUSDT"])


def test_rest_429_is_retried_after_the_retry_after_delay(
        processes: list, slices: dict[str, Path], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _, daemon, stats, metrics = run_collection(processes, [slices["btc-spot"]], "binance-spot",
                                               ["BTCUSDT"], data_dir,
                                               ("--throttle-rest", "2"))
    assert stats["throttled"] == 2
    assert stats["max_depth_in_flight"] == 1  # never two requests for one symbol at once
    assert metrics["bookcast_rest_throttled_total"] == 2
    events = daemon.events()
    throttled = [e for e in events if e["event"] == "rest request throttled"]
    assert [e["retry_after_s"] for e in throttled] == [1.0, 1.0]
    assert any(e["event"] == "book synchronised" for e in events)


@pytest.mark.parametrize("venue, capture, symbols", [
    ("kraken", "kraken/book1000_10pairs_20210417.jsonl.gz", ["XBT/CHF", "ETH/CHF", "XMR/USD"]),
    ("coinbase-exchange", "coinbase-exchange/level2_10products_20210417.jsonl.gz",
     ["BAND-BTC", "YFI-BTC", "DASH-BTC"]),
    ("coinbase-advanced", "coinbase-advanced/l2_trades_btc_eth_20260809.jsonl.gz",
     ["BTC-USD", "ETH-USD"]),
])
def test_subscribe_venues_collect_live_what_replay_gives(
        processes: list, captures_dir: Path, tmp_path: Path, venue: str, capture: str,
        symbols: list[str]) -> None:
    data_dir = tmp_path / "data"
    _, _, _, metrics = run_collection(processes, [captures_dir / capture], venue, symbols,
                                      data_dir)
    assert metrics["bookcast_gaps_total"] == 0
    assert metrics["bookcast_checksum_failures_total"] == 0
    assert metrics["bookcast_resyncs_total"] == len(symbols)
    live = assert_live_equals_replay(data_dir, venue, symbols, tmp_path, trades=False)
    for symbol in symbols:
        assert sum(live[symbol]["gap"]) == 1


def test_simulated_captures_are_served_and_collected_like_recorded_ones(
        processes: list, tmp_path: Path) -> None:
    import subprocess

    from .conftest import BOOKCAST

    subprocess.run([BOOKCAST, "simulate", "--hours", "0.01", "--out", str(tmp_path / "sim"),
                    "--symbols", "BTCUSDT"], check=True, capture_output=True, timeout=120)
    captures = sorted((tmp_path / "sim").rglob("*.jsonl.gz"))
    data_dir = tmp_path / "data"
    _, _, _, metrics = run_collection(processes, captures, "binance-spot", ["BTCUSDT"],
                                      data_dir)
    assert metrics["bookcast_gaps_total"] == 0
    live = assert_live_equals_replay(data_dir, "binance-spot", ["BTCUSDT"], tmp_path)
    books = reference_books(captures, "binance-spot")
    assert assert_rows_match_reference(live["BTCUSDT"], books["BTCUSDT"]) > 20
