"""Runs inside hftbacktest's own environment (.venv-hftbacktest): loads an exported .npz
with hftbacktest from PyPI and writes its book's best bid and ask at the given times.

    python hftbacktest_probe.py EVENTS.npz TIMES.npy TICK LOT OUT.npy

OUT.npy: one row per time: best bid, best ask, best bid qty, best ask qty (NaN without a
side). The backtest is stepped with `elapse` to each time in turn; hftbacktest's own
local book (the strategy's view, on local_ts) is what is read.
"""

import sys

import numpy as np
from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest


def main() -> None:
    events, times_file, tick, lot, out = sys.argv[1:6]
    times = np.load(times_file)
    asset = (BacktestAsset().data([events]).linear_asset(1.0).constant_order_latency(0, 0)
             .risk_adverse_queue_model().no_partial_fill_exchange()
             .trading_value_fee_model(0.0, 0.0).tick_size(float(tick)).lot_size(float(lot))
             .last_trades_capacity(0))
    hbt = HashMapMarketDepthBacktest([asset])
    hbt.elapse(0)  # the clock starts at the first event
    rows = np.full((len(times), 4), np.nan)
    for k, t in enumerate(times):
        now = hbt.current_timestamp
        if t > now:
            hbt.elapse(int(t - now))
        depth = hbt.depth(0)
        bid, ask = depth.best_bid, depth.best_ask
        if np.isfinite(bid) and depth.best_bid_tick > -(2**62):
            rows[k, 0], rows[k, 2] = bid, depth.best_bid_qty
        if np.isfinite(ask) and depth.best_ask_tick < 2**62:
            rows[k, 1], rows[k, 3] = ask, depth.best_ask_qty
    hbt.close()
    np.save(out, rows)


if __name__ == "__main__":
    main()
