"""How fast is an honest backtest, next to vectorbt's plain one on the same signals?

For synthetic books of N snapshots (D levels a side, 100 ms grid; default N = 300,000 and
3,000,000) it prints:
- the realistic backtest (book-walking fills, one snapshot of latency, taker fees, net and
  gross equity, trade records) against the anchor, vectorbt's plain `Portfolio.from_signals`
  on mid "close" prices for the same decisions. Both sides do the same work: each derives
  the decisions from the predictions, simulates, takes the trade records and the equity
  per row; the equity comes from the order records in NumPy on both sides
  (`value_from_orders`), since the realistic side does not build vectorbt's pandas
  `value()` either (`--pandas-value` puts it back on the anchor, for reference). Rounds
  interleave the two, who goes first alternates, and the ratio is the median of the
  per-round ratios, with the load average beside it;
- the full report (plus three comparison rows, fee and latency curves) once;
- the peak memory of the realistic backtest at each N, in a fresh process: the resident
  set before it (book and predictions, imports, JIT code) and the peak during it (VmHWM,
  reset just before), so the backtest's own share shows apart from its input;
- the cold start of `bookcast backtest` in a new process on 20,000 snapshots, first with an
  empty Numba cache (so it includes JIT compilation of the fill loops), then again with the
  cache that run left (`NUMBA_CACHE_DIR` points both at one fresh directory);
- first, the memory case: the product path, `bookcast backtest` with the full report, on
  `--memory-rows` snapshots of `--memory-depth` levels written to Parquet, whole-process
  peak resident set (VmHWM) in a fresh process, beside the same command from `--baseline`'s
  code (skipped where its every-level book alone would pass `--baseline-cap-gib`), and
  whether the two reports are identical.

    nice -n 10 .venv/bin/python bench/backtest.py [--rows 300000,3000000] [--depth 10] [--rounds 5]
        [--memory-rows 300000,3000000] [--memory-depth 100] [--baseline c4d0e38] [--skip-speed]
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# This file shares the package's name: keep bench/ off the import path so `backtest` is
# the package, and the project root on it when run from anywhere.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE.parent)]

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from backtest import BacktestConfig, run_backtest  # noqa: E402
from backtest.data import Book  # noqa: E402
from backtest.engine import value_from_orders  # noqa: E402
from backtest.signals import prediction_sides, schedule  # noqa: E402
from bench.baseline import baseline_tree, child_env, load, paired_ratio  # noqa: E402

INTERVAL = 100_000_000  # 100 ms
T0 = 1_723_161_600_000_000_000


def synthetic_market(rows: int, depth: int, seed: int = 0, t0: int = T0,
                     start: float = 60_000.0) -> tuple[Book, pl.DataFrame]:
    """A random-walk book with `depth` levels a side and sparse model signals, from time
    `t0` and mid `start`."""
    rng = np.random.default_rng(seed)
    mid = start + np.cumsum(rng.normal(0.0, 2.0, rows))
    ts = t0 + np.arange(rows, dtype=np.int64) * INTERVAL
    steps = 0.5 + 0.1 * np.arange(depth)
    offsets = np.arange(rows + 1, dtype=np.int64) * depth
    book = Book("binance-spot", "BTCUSDT", ts, np.zeros(rows, bool), mid,
                (mid[:, None] - steps).ravel(), rng.uniform(0.005, 0.02, rows * depth), offsets,
                (mid[:, None] + steps).ravel(), rng.uniform(0.005, 0.02, rows * depth),
                offsets.copy(), INTERVAL)
    p_up = rng.beta(1.0, 6.0, rows)
    p_down = rng.beta(1.0, 6.0, rows) * (1.0 - p_up)
    predictions = pl.DataFrame({
        "ts": ts, "venue": "binance-spot", "symbol": "BTCUSDT", "p_down": p_down,
        "p_flat": 1.0 - p_up - p_down, "p_up": p_up, "y": np.zeros(rows, np.int8),
    })
    return book, predictions


def plain_vectorbt(book: Book, predictions: pl.DataFrame, threshold: float, hold_ns: int,
                   fee_bps: float, pandas_value: bool = False):
    """The anchor: same decisions, filled at the mid 'close' of the signal row, no latency;
    trade records and the equity per row, as the realistic run produces them."""
    import vectorbt as vbt

    init_cash = 1e9

    def run() -> None:
        side = prediction_sides(predictions["p_down"].to_numpy(), predictions["p_flat"].to_numpy(),
                                predictions["p_up"].to_numpy(), threshold)
        decisions = schedule(predictions["ts"].to_numpy(), side, hold_ns)
        n = len(book)
        entry = np.searchsorted(book.ts, decisions.entry_ts)
        exit_ = np.minimum(np.searchsorted(book.ts, decisions.exit_ts), n - 1)
        signals = {k: np.zeros(n, bool) for k in ("le", "lx", "se", "sx")}
        long_ = decisions.side > 0
        signals["le"][entry[long_]] = True
        signals["lx"][exit_[long_]] = True
        signals["se"][entry[~long_]] = True
        signals["sx"][exit_[~long_]] = True
        pf = vbt.Portfolio.from_signals(book.mid, signals["le"], signals["lx"], signals["se"],
                                        signals["sx"], fees=fee_bps * 1e-4, init_cash=init_cash)
        if pandas_value:
            pf.value()
        else:
            value_from_orders(pf.orders.values, book.mid, np.array([init_cash]))
        pf.trades.values  # noqa: B018  (the records, as the realistic run builds them)

    return run


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(rounds: int, ours, anchor) -> tuple[list[float], list[float]]:
    """`rounds` timings of each, the two run back to back, who goes first alternating."""
    mine, theirs = [], []
    for r in range(rounds):
        if r % 2:
            theirs.append(timed(anchor))
            mine.append(timed(ours))
        else:
            mine.append(timed(ours))
            theirs.append(timed(anchor))
    return mine, theirs


PEAK_CHILD = """
import gc, json, runpy, sys
bench = runpy.run_path(sys.argv[1], run_name="bench_child")
from backtest import run_backtest
rows, depth = int(sys.argv[2]), int(sys.argv[3])
small_book, small = bench["synthetic_market"](20_000, depth, seed=1)
run_backtest(small, small_book, bench["realistic_config"]())  # imports and JIT code first
book, predictions = bench["synthetic_market"](rows, depth)
gc.collect()
def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key))
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM to the current resident set
run_backtest(predictions, book, bench["realistic_config"]())
print(json.dumps({"before_mib": before / 1024, "peak_mib": status("VmHWM") / 1024,
                  "book_mib": sum(a.nbytes for a in (book.ts, book.mid, book.bid_px, book.bid_sz,
                              book.ask_px, book.ask_sz, book.bid_off, book.ask_off)) / 2**20}))
"""


def peak_memory(rows: int, depth: int) -> dict[str, float]:
    """Resident set before the realistic backtest and its peak during it, fresh process."""
    done = subprocess.run([sys.executable, "-c", PEAK_CHILD, __file__, str(rows), str(depth)],
                          capture_output=True, text=True, env=child_env(), cwd=_HERE.parent)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


THRESHOLD, HOLD_NS, FEE_BPS = 0.45, 10_000_000_000, 10.0


def realistic_config(full: bool = False) -> BacktestConfig:
    return BacktestConfig(fee_bps=FEE_BPS, hold_ns=HOLD_NS, horizon_ns=HOLD_NS,
                          latency_ns=INTERVAL, notional=2_000.0, threshold=THRESHOLD,
                          baselines=full, curves=full)


def cold_starts(rows: int = 20_000) -> list[tuple[str, float, str]]:
    """Wall time of `bookcast backtest` in a fresh process on a small on-disk dataset, with
    an empty Numba cache (JIT compilation included) and then with the cache it left."""
    from collector.writers import SnapshotWriter

    root = Path(tempfile.mkdtemp(prefix="bench-backtest-"))
    try:
        book, predictions = synthetic_market(rows, 10, seed=1)
        writer = SnapshotWriter(root, "binance-spot", "BTCUSDT", rows + 1, None,
                                {"depth": 10, "interval_ns": INTERVAL, "tick_size": 0.1})
        for i in range(rows):
            b0, b1 = book.bid_off[i], book.bid_off[i + 1]
            a0, a1 = book.ask_off[i], book.ask_off[i + 1]
            writer.add(int(book.ts[i]), None, int(book.ts[i]), i,
                       (book.bid_px[b0:b1].tolist(), book.bid_sz[b0:b1].tolist(),
                        book.ask_px[a0:a1].tolist(), book.ask_sz[a0:a1].tolist()), 1, False)
        writer.flush()
        run_dir = root / "runs" / "bench"
        run_dir.mkdir(parents=True)
        predictions.with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC"))).write_parquet(
            run_dir / "predictions.parquet")
        (run_dir / "run.json").write_text(json.dumps({
            "run_id": "bench", "model": "synthetic", "horizon": "10s",
            "horizon_ns": 10_000_000_000, "feature_set": "default", "venue": "binance-spot",
            "symbol": "BTCUSDT", "fee_bps": 10.0}))
        bookcast = Path(sys.executable).with_name("bookcast")
        command = [str(bookcast), "backtest", "--run", "bench", "--data-dir", str(root),
                   "--threshold", "0.45"]
        env = child_env(NUMBA_CACHE_DIR=str(root / "numba-cache"))
        out = []
        for label in ("empty Numba cache (JIT compilation included)", "warm Numba cache"):
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            wall = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            out.append((label, wall, "bookcast backtest"))
        cached = sum(1 for _ in (root / "numba-cache").rglob("*.nbi"))
        out[0] = (f"{out[0][0]}, {cached} functions cached", *out[0][1:])
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


RUN_JSON = {"run_id": "bench", "model": "synthetic", "horizon": "10s",
            "horizon_ns": HOLD_NS, "feature_set": "default", "venue": "binance-spot",
            "symbol": "BTCUSDT", "fee_bps": FEE_BPS}


def write_market(root: Path, rows: int, depth: int, chunk_rows: int = 50_000) -> None:
    """`rows` snapshots of `depth` levels a side as the collector lays them out (part files
    of `chunk_rows`, row groups sized by `snapshot_row_group_rows`, prices on a 0.01 tick,
    sizes in 1e-5 lots), and a run whose predictions cover every row, written chunk by
    chunk so the writer never holds the whole book."""
    from bookcast.paths import partition_dir
    from bookcast.schema import SNAPSHOT_SCHEMA, file_metadata
    from bookcast.timeutil import utc_date
    from collector.writers import snapshot_row_group_rows, write_table_atomic

    run_dir = root / "runs" / "bench"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps(RUN_JSON))
    meta = file_metadata("binance-spot", "BTCUSDT", depth=depth, interval_ns=INTERVAL,
                         tick_size=0.01)
    start, writer = 60_000.0, None
    for first in range(0, rows, chunk_rows):
        n = min(chunk_rows, rows - first)
        book, predictions = synthetic_market(n, depth, seed=first + 1,
                                             t0=T0 + first * INTERVAL, start=start)
        start = float(book.mid[-1])
        ts = pa.array(book.ts).cast(SNAPSHOT_SCHEMA.field("ts").type)

        def levels(values: np.ndarray, offsets: np.ndarray, decimals: int) -> pa.Array:
            return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)),
                                            pa.array(np.round(values, decimals)))

        table = pa.table({
            "ts": ts, "ts_event": pa.nulls(n, SNAPSHOT_SCHEMA.field("ts_event").type),
            "ts_recv": ts, "seq": pa.array(np.arange(first, first + n, dtype=np.int64)),
            "bid_px": levels(book.bid_px, book.bid_off, 2),
            "bid_sz": levels(book.bid_sz, book.bid_off, 5),
            "ask_px": levels(book.ask_px, book.ask_off, 2),
            "ask_sz": levels(book.ask_sz, book.ask_off, 5),
            "n_updates": pa.array(np.ones(n, np.int32)), "gap": pa.array(book.gap),
        }, schema=SNAPSHOT_SCHEMA).replace_schema_metadata(meta)
        del book
        directory = partition_dir(root, "snapshots", "binance-spot", "BTCUSDT",
                                  utc_date(T0 + first * INTERVAL))
        write_table_atomic(table, directory / f"part-{T0 + first * INTERVAL}.parquet",
                           snapshot_row_group_rows(depth))
        chunk = predictions.with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC"))).to_arrow()
        if writer is None:
            writer = pq.ParquetWriter(run_dir / "predictions.parquet", chunk.schema)
        writer.write_table(chunk)
    writer.close()


PEAK_COMMAND = """
import os, runpy, sys
import backtest
print(backtest.__file__, file=sys.stderr)  # whose code ran
try:
    runpy.run_module("bookcast", run_name="__main__")
finally:
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
    open(os.environ["BENCH_PEAK_FILE"], "w").write(str(peak))
"""


def product_peak(tree: Path, root: Path) -> tuple[float, float]:
    """Whole-process peak resident set (VmHWM, MiB) and wall time of `bookcast backtest
    --run bench` with the full report, run from `tree`'s code in a fresh process."""
    peak_file = root / "peak-kib"
    command = [sys.executable, "-c", PEAK_COMMAND, "backtest", "--run", "bench",
               "--data-dir", str(root), "--threshold", str(THRESHOLD), "--notional", "2000"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=child_env(BENCH_PEAK_FILE=str(peak_file)),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    ran = done.stderr.splitlines()[0] if done.stderr else ""
    if done.returncode != 0 or not ran.startswith(str(tree)):
        raise SystemExit(f"bookcast backtest from {tree} failed: {done.stderr[-2000:]}")
    peak = int(peak_file.read_text())
    peak_file.unlink()
    return peak / 1024, wall


def product_memory(rows: int, depth: int, baseline: str, baseline_cap_gib: float) -> None:
    """The product path's whole-process peak on `rows` snapshots of `depth` levels from
    Parquet, this tree next to `baseline`'s (whose book holds every level; skipped when that
    book alone would pass `baseline_cap_gib`)."""
    root = Path(tempfile.mkdtemp(prefix="bench-backtest-memory-"))
    try:
        started = time.perf_counter()
        write_market(root, rows, depth)
        on_disk = sum(p.stat().st_size for p in (root / "snapshots").rglob("*.parquet"))
        print(f"\nproduct path, `bookcast backtest --run bench` (full report) on {rows:,} "
              f"snapshots of {depth} levels a side from Parquet ({on_disk / 2**30:.1f} GiB on "
              f"disk, written in {time.perf_counter() - started:.0f} s), fresh processes:")
        full_book_gib = rows * (depth * 2 * 2 * 8 + 4 * 8) / 2**30
        reports = []
        with baseline_tree(baseline) as tree:
            for name, code in (("this tree", _HERE.parent), (f"{baseline}'s code", tree)):
                if code == tree and full_book_gib > baseline_cap_gib:
                    print(f"  {name}: not run, its book alone would hold {full_book_gib:.1f} GiB "
                          f"(over --baseline-cap-gib {baseline_cap_gib:g})")
                    continue
                peak, wall = product_peak(code, root)
                print(f"  {name}: peak {peak:,.0f} MiB resident (VmHWM), {wall:.1f} s wall; "
                      f"{load()}")
                written = max((root / "backtests").iterdir(), key=lambda p: p.stat().st_mtime)
                reports.append(((written / "stats.json").read_text(),
                                pl.read_parquet(written / "trades.parquet"),
                                pl.read_parquet(written / "equity.parquet")))
                shutil.rmtree(written)
        if len(reports) == 2:
            same = (reports[0][0] == reports[1][0] and reports[0][1].equals(reports[1][1])
                    and reports[0][2].equals(reports[1][2]))
            print(f"  stats.json, trades and equity of the two: "
                  f"{'identical' if same else 'DIFFERENT'}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def measure(rows: int, depth: int, rounds: int, pandas_value: bool) -> None:
    """Both sides at one book size, interleaved."""
    book, predictions = synthetic_market(rows, depth)
    anchor = plain_vectorbt(book, predictions, THRESHOLD, HOLD_NS, FEE_BPS, pandas_value)
    realistic = realistic_config()
    result = run_backtest(predictions, book, realistic)  # warm-up: Numba caches, imports
    anchor()
    touch = 0.5 + 1e-9  # the best level lies 0.5 from the mid: beyond it, the order walked
    walked = float(((result.trades["entry_px"] - result.trades["entry_mid"]).abs()
                    > touch).mean())
    mine, theirs = interleaved(rounds, lambda: run_backtest(predictions, book, realistic),
                               anchor)
    t_full = timed(lambda: run_backtest(predictions, book, realistic_config(full=True)))
    t_real, t_plain = statistics.median(mine), statistics.median(theirs)
    print(f"\n{rows:,} snapshots, {depth} levels a side: "
          f"{result.stats['n_trades']} round trips, {walked:.0%} deeper than one level")
    print(f"  realistic backtest (book walking, latency, net+gross): median "
          f"{t_real * 1e3:8.1f} ms = {rows / t_real:12,.0f} snapshots/s")
    print(f"  vectorbt from_signals on mid closes (anchor):         median "
          f"{t_plain * 1e3:8.1f} ms = {rows / t_plain:12,.0f} snapshots/s")
    print(f"  paired ratio realistic / anchor: {paired_ratio(mine, theirs):.2f}x "
          f"(target <= 2x); {load()}")
    print(f"  full report (+3 comparison rows, fee & latency curves): {t_full * 1e3:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="300000,3000000",
                        help="snapshot counts, comma-separated")
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pandas-value", action="store_true",
                        help="the anchor also builds vectorbt's pandas value() (reference)")
    parser.add_argument("--memory-rows", default="300000,3000000",
                        help="snapshot counts of the product path's memory case ('' skips it)")
    parser.add_argument("--memory-depth", type=int, default=100,
                        help="levels a side in the memory case's Parquet files")
    parser.add_argument("--baseline", default="c4d0e38",
                        help="the commit whose loading the memory case runs beside this tree")
    parser.add_argument("--baseline-cap-gib", type=float, default=3.0,
                        help="skip the baseline where its full book alone would pass this")
    parser.add_argument("--skip-speed", action="store_true",
                        help="only the memory case")
    args = parser.parse_args()
    from vectorbt._engine import is_rust_available

    print(f"vectorbt engine: {'rust' if is_rust_available() else 'numba'}; "
          f"{args.rounds} interleaved rounds; {load()}")
    for rows in (int(r) for r in args.memory_rows.split(",") if r):
        product_memory(rows, args.memory_depth, args.baseline, args.baseline_cap_gib)
    if args.skip_speed:
        return
    for rows in (int(r) for r in args.rows.split(",")):
        measure(rows, args.depth, args.rounds, args.pandas_value)
        gc.collect()  # the book is freed before the fresh process builds its own
        peak = peak_memory(rows, args.depth)
        print(f"  peak memory, fresh process: {peak['before_mib']:,.0f} MiB resident before "
              f"(book {peak['book_mib']:,.0f} MiB), {peak['peak_mib']:,.0f} MiB peak during, "
              f"{peak['peak_mib'] - peak['before_mib']:,.0f} MiB for the backtest itself")
    for label, wall, how in cold_starts():
        print(f"\ncold start, {how} in a new process (20,000 snapshots), {label}: {wall:.2f} s "
              "wall")


if __name__ == "__main__":
    main()
