"""How fast is an honest backtest, next to vectorbt's plain one on the same signals?

Prints, for a synthetic book of N snapshots (D levels a side, 100 ms grid):
- the realistic backtest (book-walking fills, one snapshot of latency, taker fees, net and
  gross portfolios) in snapshots per second,
- vectorbt's plain `Portfolio.from_signals` on mid "close" prices for the same decisions,
  measured in the same run: the anchor, with the ratio between the two,
- the full report (plus three comparison rows, fee and latency curves, the interval),
- the cold-start wall time of `bookcast backtest` in a new process on a small dataset.

    .venv/bin/python bench/backtest.py [--rows 300000] [--depth 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
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

from backtest import BacktestConfig, run_backtest  # noqa: E402
from backtest.data import Book  # noqa: E402
from backtest.signals import prediction_sides, schedule  # noqa: E402

INTERVAL = 100_000_000  # 100 ms
T0 = 1_723_161_600_000_000_000


def synthetic_market(rows: int, depth: int, seed: int = 0) -> tuple[Book, pl.DataFrame]:
    """A random-walk book with `depth` levels a side and sparse model signals."""
    rng = np.random.default_rng(seed)
    mid = 60_000.0 + np.cumsum(rng.normal(0.0, 2.0, rows))
    ts = T0 + np.arange(rows, dtype=np.int64) * INTERVAL
    steps = 0.5 + 0.1 * np.arange(depth)
    sizes = rng.uniform(0.005, 0.02, (rows, 2, depth))
    offsets = np.arange(rows + 1, dtype=np.int64) * depth
    book = Book("binance-spot", "BTCUSDT", ts, np.zeros(rows, bool), mid,
                (mid[:, None] - steps).ravel(), sizes[:, 0].ravel(), offsets,
                (mid[:, None] + steps).ravel(), sizes[:, 1].ravel(), offsets.copy(), INTERVAL)
    p_up = rng.beta(1.0, 6.0, rows)
    p_down = rng.beta(1.0, 6.0, rows) * (1.0 - p_up)
    predictions = pl.DataFrame({
        "ts": ts, "venue": "binance-spot", "symbol": "BTCUSDT", "p_down": p_down,
        "p_flat": 1.0 - p_up - p_down, "p_up": p_up, "y": np.zeros(rows, np.int8),
    })
    return book, predictions


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def plain_vectorbt(book: Book, predictions: pl.DataFrame, threshold: float, hold_ns: int,
                   fee_bps: float):
    """The anchor: same decisions, filled at the mid 'close' of the signal row, no latency."""
    import vectorbt as vbt

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
                                        signals["sx"], fees=fee_bps * 1e-4, init_cash=1e9)
        pf.value()
        pf.trades.values  # noqa: B018  (the records, as the realistic run builds them)

    return run


def cold_start(rows: int = 20_000) -> tuple[float, str]:
    """Wall time of `bookcast backtest` in a fresh process on a small on-disk dataset."""
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
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        how = "bookcast backtest"
        if done.returncode != 0:
            # Another package's import can break the whole CLI while it is being built;
            # then time this package's command alone, and say so.
            print(f"  `bookcast backtest` failed ({done.stderr.strip().splitlines()[-1]}); "
                  "timing backtest.cli alone")
            code = ("import sys, typer; from backtest.cli import register; app = typer.Typer(); "
                    "app.callback()(lambda: None); register(app); app(sys.argv[1:])")
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", code, *command[1:]],
                                  capture_output=True, text=True)
            wall = time.perf_counter() - start
            how = "backtest.cli alone"
            if done.returncode != 0:
                raise SystemExit(done.stderr)
        return wall, how
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--depth", type=int, default=10)
    args = parser.parse_args()
    from vectorbt._engine import is_rust_available

    print(f"building a {args.rows:,}-snapshot book, {args.depth} levels a side ...")
    book, predictions = synthetic_market(args.rows, args.depth)
    threshold, hold_ns, fee_bps = 0.45, 10_000_000_000, 10.0
    realistic = BacktestConfig(fee_bps=fee_bps, hold_ns=hold_ns, horizon_ns=hold_ns,
                               latency_ns=INTERVAL, notional=2_000.0, threshold=threshold,
                               baselines=False, curves=False)
    full = BacktestConfig(fee_bps=fee_bps, hold_ns=hold_ns, horizon_ns=hold_ns,
                          latency_ns=INTERVAL, notional=2_000.0, threshold=threshold)
    anchor = plain_vectorbt(book, predictions, threshold, hold_ns, fee_bps)
    result = run_backtest(predictions, book, realistic)  # warm-up: Numba caches, imports
    anchor()
    touch = 0.5 + 1e-9  # the best level lies 0.5 from the mid: beyond it, the order walked
    walked = float(((result.trades["entry_px"] - result.trades["entry_mid"]).abs() > touch).mean())
    t_real = best_of(3, lambda: run_backtest(predictions, book, realistic))
    t_plain = best_of(3, anchor)
    t_full = best_of(1, lambda: run_backtest(predictions, book, full))
    n = len(book)
    print(f"vectorbt engine: {'rust' if is_rust_available() else 'numba'}; "
          f"{result.stats['n_trades']} round trips, {walked:.0%} deeper than one level")
    print(f"realistic backtest (book walking, latency, net+gross): {t_real * 1e3:8.1f} ms "
          f"= {n / t_real:12,.0f} snapshots/s")
    print(f"vectorbt from_signals on mid closes (anchor):         {t_plain * 1e3:8.1f} ms "
          f"= {n / t_plain:12,.0f} snapshots/s")
    print(f"ratio realistic / plain: {t_real / t_plain:.2f}x slower (target <= 2x)")
    print(f"full report (+3 comparison rows, fee & latency curves, interval): "
          f"{t_full * 1e3:8.1f} ms = {n / t_full:12,.0f} snapshots/s")
    wall, how = cold_start()
    print(f"cold start, {how} in a new process (20,000 snapshots): {wall:.2f} s wall")


if __name__ == "__main__":
    main()
