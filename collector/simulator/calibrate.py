"""Estimate a simulator preset from a real capture (`bookcast simulate --calibrate-from`).

The capture is replayed by the project's own replay (100 ms grid, 100 levels) and the
preset is read off its snapshots and trades with moment-matching rules; each rule is
one line below and in docs/simulator.md. They are first-order: the point is a preset
of the right magnitude for a new symbol, not a maximum-likelihood fit.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from bookcast.errors import UserError
from collector.simulator import model
from collector.simulator.presets import SymbolPreset, check_venue
from collector.simulator.stats import hill_tail_index, infer_tick_size, read_replayed

GRID_INTERVAL_NS = 100_000_000
MAX_DEPTH_TICKS = model.GRID_TICKS // 4 - 1


def calibrate_preset(capture: Path, venue: str = "binance-spot",
                     symbol: str | None = None) -> SymbolPreset:
    """Replay `capture` and estimate one symbol's preset from it."""
    from collector.replay import replay_captures

    check_venue(venue)
    with tempfile.TemporaryDirectory(prefix="bookcast-calibrate-") as tmp:
        data = Path(tmp)
        summary = replay_captures([capture], data, interval_ns=GRID_INTERVAL_NS, depth=100,
                                  venue=venue)
        found = sorted(st.symbol for p in summary.pipelines.values() for st in p.states()
                       if st.valid or st.trades)
        if not found:
            raise UserError(f"The capture '{capture}' holds no {venue} book to calibrate from.")
        if symbol is None:
            symbol = found[0]
        elif symbol not in found:
            raise UserError(f"The capture '{capture}' holds no {symbol}; it has "
                            f"{', '.join(found)}.")
        snaps, trades = read_replayed(data, venue, symbol)
        seq_rate = _update_id_rate(snaps)
    return estimate_preset(snaps, trades, venue, symbol, seq_rate)


def _update_id_rate(snaps: pl.DataFrame) -> float:
    """Book changes per second, from the venue's update ids (Binance counts every one)."""
    seq = snaps.filter(pl.col("seq").is_not_null())
    if seq.height < 2:
        raise UserError("The replayed capture has no update ids to measure event rates from.")
    ts = seq["ts"].dt.epoch("ns").to_numpy()
    s = seq["seq"].to_numpy()
    return float((s[-1] - s[0]) / max((ts[-1] - ts[0]) / 1e9, 1e-9))


def estimate_preset(snaps: pl.DataFrame, trades: pl.DataFrame, venue: str, symbol: str,
                    update_id_rate: float) -> SymbolPreset:
    snaps = snaps.filter(~pl.col("gap") & (pl.col("bid_px").list.len() > 1)
                         & (pl.col("ask_px").list.len() > 1))
    if snaps.height < 100 or trades.height < 50:
        raise UserError(f"{symbol}: {snaps.height} snapshot rows and {trades.height} trades "
                        f"are too few to calibrate from (need 100 and 50).")
    tick = infer_tick_size(snaps)
    ts = snaps["ts"].dt.epoch("ns").to_numpy()
    seconds = (ts[-1] - ts[0]) / 1e9
    bid = snaps["bid_px"].to_list()
    ask = snaps["ask_px"].to_list()
    bid_sz = snaps["bid_sz"].to_list()

    # depth_ticks: far enough that 100-level snapshots are full 9 times in 10
    reach = np.array([(a[0] - b[-1]) / tick for a, b in zip(ask, bid, strict=True)])
    depth_ticks = int(min(MAX_DEPTH_TICKS, max(50, np.quantile(reach, 0.9) * 1.5)))

    # occupancy p(i) of the bid i ticks below the best ask -> Poisson mean orders m(i)
    occupied = np.zeros(depth_ticks + 1)
    size_at = np.zeros(depth_ticks + 1)
    for a, b, q in zip(ask, bid, bid_sz, strict=True):
        i = np.rint((a[0] - np.asarray(b)) / tick).astype(np.int64)
        keep = (i >= 1) & (i <= depth_ticks)
        np.add.at(occupied, i[keep], 1)
        np.add.at(size_at, i[keep], np.asarray(q)[keep])
    # a tick beyond a row's 100th level was not observed in that row: count only rows
    # that reach it
    seen = np.array([np.sum(reach >= i) for i in range(depth_ticks + 1)], dtype=np.float64)
    p = np.clip(occupied / np.maximum(seen, 1.0), 0.0, 0.999)
    m = -np.log1p(-p)
    deep = np.arange(depth_ticks + 1) >= 2
    mean_occupied_deep = float(size_at[deep].sum() / max(occupied[deep].sum(), 1))
    best_size = float(np.mean([q[0] for q in bid_sz]))

    # market orders: fills with one exchange time and side came from one order
    orders = (trades.group_by(["ts_event", "side"]).agg(pl.col("size").sum())["size"]
              .to_numpy())
    market_rate = len(orders) / seconds / 2.0
    tail = float(np.clip(hill_tail_index(orders), 1.2, 3.0))
    log_sizes = np.log(orders[orders > 0])
    # log size = log scale + sigma Z + Exp(1) / beta
    sigma = math.sqrt(max(float(np.var(log_sizes)) - 1.0 / tail**2, 0.1))
    market_size = math.exp(float(np.median(log_sizes)) - math.log(2.0) / tail)
    size_mean_factor = math.exp(sigma**2 / 2.0) * tail / (tail - 1.0)

    # deep levels usually hold one order: their occupied size is about one mean order
    m_deep = float(np.mean(m[2:])) if depth_ticks > 2 else 0.1
    mean_order = mean_occupied_deep * (1.0 - math.exp(-m_deep)) / max(m_deep, 1e-9)
    limit_size = mean_order / size_mean_factor

    # every book change takes an update id: ~ 2 sides x (arrival + cancel) x Lambda
    trades_per_s = trades.height / seconds
    # deep ticks are seen in few rows: take the far rate where most rows reach, and extend it
    observed = int(np.median(reach))
    m_far = float(np.median(m[max(2, observed // 4): max(3, observed // 2)]))
    sum_m = float(m[2:observed].sum()) + m_far * max(depth_ticks - observed, 0)
    mid = (np.array([a[0] for a in ask]) + np.array([b[0] for b in bid])) / 2.0
    mid_changes = float(np.sum(mid[1:] != mid[:-1]) / seconds)
    # the touch: a queue of m1 orders empties at theta m1 e^-m1 per side (M/M/inf)
    cancel_rate = max(0.05, (update_id_rate - trades_per_s) / (4.0 * (sum_m + 2.0)))
    m1 = _touch_orders(mid_changes / 4.0 / cancel_rate)
    best_rate = cancel_rate * m1
    best_size_factor = max(1.0, best_size / (m1 * mean_order))

    far_rate = cancel_rate * m_far
    near_rate, near_decay = _fit_near(m, cancel_rate, far_rate)

    spreads = np.rint((np.array([a[0] for a in ask]) - np.array([b[0] for b in bid])) / tick)
    wide = max(float(np.mean(spreads > 1)), 1e-3)
    refill_rate = float(np.clip(mid_changes / (4.0 * wide), 1.0, 200.0))

    lot = _lot_size(trades["size"].to_numpy())
    return SymbolPreset(
        venue=venue, symbol=symbol, tick_size=_decimal(tick), lot_size=_decimal(lot),
        start_price=round(float(mid[0]), 8), best_rate=_r(best_rate), near_rate=_r(near_rate),
        near_decay=_r(near_decay), far_rate=_r(far_rate), depth_ticks=depth_ticks,
        cancel_rate=_r(cancel_rate), market_rate=_r(market_rate), refill_rate=_r(refill_rate),
        limit_size=_r(limit_size), best_size_factor=_r(best_size_factor),
        market_size=_r(market_size), size_sigma=_r(sigma), size_tail=_r(tail))


def _touch_orders(depletions_per_order_rate: float) -> float:
    """The m >= 1 with m e^-m = x (the busier the touch empties, the fewer orders it holds)."""
    x = min(depletions_per_order_rate, 1.0 / math.e)
    lo, hi = 1.0, 50.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if mid * math.exp(-mid) > x:
            lo = mid
        else:
            hi = mid
    return lo


def _fit_near(m: np.ndarray, cancel_rate: float, far_rate: float) -> tuple[float, float]:
    """Power law lambda(i) - far = near * (i - 1)^-decay, fitted on i = 2..20 in log space."""
    i = np.arange(2, min(21, len(m)))
    excess = m[i] * cancel_rate - far_rate
    ok = excess > 0
    if ok.sum() < 3:
        return max(float(excess[0]) if len(excess) else 0.0, 0.0), 1.0
    slope, intercept = np.polyfit(np.log(i[ok] - 1.0), np.log(excess[ok]), 1)
    return float(math.exp(intercept)), float(np.clip(-slope, 0.0, 3.0))


def _lot_size(sizes: np.ndarray) -> float:
    """The coarsest power of ten that every traded size is a multiple of."""
    for decimals in range(0, 9):
        scaled = sizes * 10**decimals
        if np.all(np.abs(scaled - np.rint(scaled)) < 1e-6):
            return 10.0**-decimals
    return 1e-8


def _decimal(x: float) -> str:
    return f"{x:.8f}".rstrip("0").rstrip(".") if x < 1 else f"{x:g}"


def _r(x: float) -> float:
    return float(f"{x:.4g}")
