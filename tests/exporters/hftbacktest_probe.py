"""Runs inside hftbacktest's own environment (.venv-hftbacktest): loads exported .npz files
with hftbacktest from PyPI and writes its book's best bid and ask at the given times.

    python hftbacktest_probe.py JOBS.json

JOBS.json: a list of {"events": .npz, "times": .npy of ns, "tick": float, "lot": float,
"out": .npy}. Each `out` gets one row per time: best bid, best ask, best bid qty, best ask
qty (NaN for a side without levels). The backtest is stepped with `elapse` to each time in
turn, and hftbacktest's own local book (the strategy's view, on local_ts) is read.
"""

import json
import sys

import numpy as np
from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest


def best_quotes(events: str, times: np.ndarray, tick: float, lot: float) -> np.ndarray:
    asset = (BacktestAsset().data([events]).linear_asset(1.0).constant_order_latency(0, 0)
             .risk_adverse_queue_model().no_partial_fill_exchange()
             .trading_value_fee_model(0.0, 0.0).tick_size(tick).lot_size(lot)
             .last_trades_capacity(0))
    hbt = HashMapMarketDepthBacktest([asset])
    hbt.elapse(0)  # the clock starts at the first event
    rows = np.full((len(times), 4), np.nan)
    for k, t in enumerate(times):
        now = hbt.current_timestamp
        if t > now:
            hbt.elapse(int(t - now))
        depth = hbt.depth(0)
        if depth.best_bid_tick > -(2**62):
            rows[k, 0], rows[k, 2] = depth.best_bid, depth.best_bid_qty
        if depth.best_ask_tick < 2**62:
            rows[k, 1], rows[k, 3] = depth.best_ask, depth.best_ask_qty
    hbt.close()
    return rows


def main() -> None:
    with open(sys.argv[1]) as fh:
        jobs = json.load(fh)
    for job in jobs:
        rows = best_quotes(job["events"], np.load(job["times"]), job["tick"], job["lot"])
        np.save(job["out"], rows)


if __name__ == "__main__":
    main()
