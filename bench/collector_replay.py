"""Collector replay benchmark: bookcast against cryptofeed on the Binance spot BTCUSDT capture.

Measured in one run, on the same messages:
  1. bookcast end to end: capture file -> parse -> sync -> book -> 100 ms snapshots of
     100 levels -> Parquet (every message of the capture, trades and bookTicker included);
  2. bookcast in memory: the depth diffs and the REST snapshot, already read, through the
     venue module and book, sampling 100 levels on the 100 ms grid (no Parquet);
  3. cryptofeed in memory: the same messages through cryptofeed's own Binance
     `message_handler` and its C order book, sampling 100 levels at the same grid points.
Level updates/s of (2) against (3) is the headline ratio (target: >= 3x).
Also: peak memory of (1) in a fresh process, and the latency of a full-depth snapshot of a
5,000-level book.

Run: .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/collector_replay.py
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAPTURE = ROOT.parent / "shared" / "data" / "captures" / "binance-spot" / "btcusdt_20240808-09.jsonl.gz"
INTERVAL = 100_000_000
DEPTH = 100
sys.path.insert(0, str(ROOT))


def load_depth_messages() -> tuple[list, int]:
    """The REST snapshot and depth diffs of the capture, in order, and their level count."""
    from collector.capture import iter_capture

    records, levels = [], 0
    for rec in iter_capture(CAPTURE):
        if rec.kind == "http" or "@depth" in (rec.data or "")[:40]:
            records.append(rec)
            if rec.kind == "recv":
                msg = json.loads(rec.data)["data"]
                levels += len(msg["b"]) + len(msg["a"])
    return records, levels


def bench_bookcast_in_memory(records: list) -> tuple[float, int]:
    from collector.pipeline import Pipeline

    class NoWrite(Pipeline):
        def _emit(self, state, g):  # sample the book as the writer would, keep nothing
            state.book.top(self.depth)
            state.n_updates = 0
            state.gap_pending = False
            self.rows_written += 1

    pipeline = NoWrite("binance-spot", "/nonexistent", INTERVAL, DEPTH)
    start = time.perf_counter()
    for rec in records:
        pipeline.feed(rec)  # rows are sampled as each diff vouches for them
    return time.perf_counter() - start, pipeline.rows_written


def bench_cryptofeed_in_memory(records: list) -> tuple[float, int]:
    from cryptofeed.defines import L2_BOOK
    from cryptofeed.exchanges import Binance
    from cryptofeed.symbols import Symbols

    logging.getLogger("feedhandler").setLevel(logging.ERROR)
    # cryptofeed reads exchangeInfo at start-up; give its own parser the one symbol offline
    exchange_info = {"symbols": [{"symbol": "BTCUSDT", "baseAsset": "BTC", "quoteAsset": "USDT",
                                  "filters": [{"tickSize": "0.01000000"}]}]}
    Symbols.set(Binance.id, *Binance._parse_symbol_data(exchange_info))
    rest_reply = next(r.data for r in records if r.kind == "http")

    class CapturedRest:
        """Serves the capture's REST depth reply where cryptofeed would fetch it."""

        async def read(self, address: str, **kwargs) -> str:
            return rest_reply

    async def on_book(book, receipt_ts):
        pass

    feed = Binance(symbols=["BTC-USDT"], channels=[L2_BOOK], callbacks={L2_BOOK: on_book},
                   max_depth=0)
    feed.http_conn = CapturedRest()
    side_bids = side_asks = None
    rows = 0

    def snapshot() -> None:
        bids = feed._l2_book["BTC-USDT"].book.bids
        asks = feed._l2_book["BTC-USDT"].book.asks
        nb, na = min(DEPTH, len(bids)), min(DEPTH, len(asks))
        [bids.index(i) for i in range(nb)]
        [asks.index(i) for i in range(na)]

    async def run() -> None:
        nonlocal rows, side_bids, side_asks
        next_grid = None
        for rec in records:
            if rec.kind != "recv":
                continue
            t = rec.ts_ns
            if next_grid is not None:
                while next_grid < t:
                    snapshot()
                    rows += 1
                    next_grid += INTERVAL
            await feed.message_handler(rec.data, None, t / 1e9)
            if next_grid is None and "BTC-USDT" in feed._l2_book:
                next_grid = -(-t // INTERVAL) * INTERVAL

    start = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - start, rows


def end_to_end_in_child() -> dict:
    code = f"""
import json, resource, sys, time
sys.path.insert(0, {str(ROOT)!r})
from collector.replay import replay_captures
start = time.perf_counter()
s = replay_captures([{str(CAPTURE)!r}], {tempfile.mkdtemp()!r}, {INTERVAL}, {DEPTH})
took = time.perf_counter() - start
print(json.dumps({{"seconds": took, "records": s.records, "updates": s.streams[0].updates,
                  "rows": s.streams[0].snapshots,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def full_depth_snapshot_latency() -> float:
    from collector.book import UNIT, OrderBook

    book = OrderBook()
    mid = 60_000 * UNIT
    book.load([(mid - (i + 1) * UNIT // 100, UNIT) for i in range(2500)],
              [(mid + (i + 1) * UNIT // 100, UNIT) for i in range(2500)])
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        book.top(None)
    return (time.perf_counter() - start) / n


def main() -> None:
    records, levels = load_depth_messages()
    n_msgs = sum(r.kind == "recv" for r in records)
    ours_t, ours_rows = min(bench_bookcast_in_memory(records) for _ in range(3))
    cf_t, cf_rows = min(bench_cryptofeed_in_memory(records) for _ in range(3))
    e2e = end_to_end_in_child()
    snap = full_depth_snapshot_latency()
    import cryptofeed

    print(f"capture: {CAPTURE.name}: {n_msgs:,} depth diffs, {levels:,} level updates")
    print(f"bookcast in memory : {n_msgs / ours_t:>10,.0f} msg/s {levels / ours_t:>12,.0f} "
          f"level updates/s  ({ours_rows:,} 100-level snapshots, {ours_t:.2f} s)")
    print(f"cryptofeed {cryptofeed.__version__ if hasattr(cryptofeed, '__version__') else ''}"
          f"      : {n_msgs / cf_t:>10,.0f} msg/s {levels / cf_t:>12,.0f} "
          f"level updates/s  ({cf_rows:,} 100-level snapshots, {cf_t:.2f} s)")
    print(f"ratio (bookcast / cryptofeed level updates per second): {cf_t / ours_t:.2f}x "
          f"(target >= 3x)")
    print(f"bookcast end to end, file -> Parquet, all {e2e['records']:,} records: "
          f"{e2e['records'] / e2e['seconds']:,.0f} records/s, "
          f"{e2e['updates'] / e2e['seconds']:,.0f} level updates/s, {e2e['rows']:,} rows, "
          f"{e2e['seconds']:.2f} s, peak RSS {e2e['peak_rss_mb']:.0f} MB")
    print(f"full-depth snapshot of a 5,000-level book: {snap * 1e3:.2f} ms "
          f"(a 100 ms grid leaves {100 / (snap * 1e3):.0f}x headroom)")
    import os
    import platform

    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}")


if __name__ == "__main__":
    main()
