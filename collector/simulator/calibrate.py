"""Estimate a simulator preset from a real capture (`bookcast simulate --calibrate-from`).

Two steps, each rule one line below and in docs/simulator.md:

1. Moment rules. The capture is replayed by the project's own replay twice: on a 100 ms
   grid with 100 levels for the book's shape (occupancy, sizes, event rates), and on the
   1 s grid with 10 levels for the band table's statistics (stats.py). The deep book,
   the sizes, the market-order rate and the null control come straight from them.
2. Simulated moments. Five parameters have no closed form: the touch's arrival rate and
   order size, the market orders' reaction to the imbalance, the requote jump and the
   trades a fill prints. Each drives one statistic most (the share of seconds with a
   move, the touch / depth ratio, the 1 s imbalance correlation, the 10 s volatility,
   the trade rate), so a few rounds of "simulate 30 minutes of the model, measure, correct each by
   its own statistic" settle them. The rounds use one seed (common random numbers), so
   the corrections follow the parameters, not the noise.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl

from bookcast.errors import UserError
from collector.simulator import model
from collector.simulator.presets import SymbolPreset, check_venue, exact_decimal
from collector.simulator.stats import (
    DEPTH,
    GRID_NS,
    Market,
    MarketStatistics,
    hill_tail_index,
    infer_tick_size,
    market_statistics,
    read_market,
)

SHAPE_GRID_NS = 100_000_000
MAX_DEPTH_TICKS = model.GRID_TICKS // 8  # room for the volatile scenario's stretch
ROUNDS = 10
ROUND_MINUTES = 30.0
ROUND_SEED = 20240809
JUMP_SIGMA = 0.3  # requotes are compact; the variety of moves comes from the book behind
MAX_ORDER_QUANTILE = 0.999
# orders at the touch are of a kind (market makers' quotes): how many rest there, not how
# big each is, makes the touch's size vary
TOUCH_SIGMA = 0.5
SHARED_IDS_FACTOR = 20.0  # ids this much faster than level changes belong to many symbols


@dataclass(frozen=True)
class Calibration:
    preset: SymbolPreset
    real: MarketStatistics
    simulated: MarketStatistics  # the model alone, sampled on the 1 s grid, last round


def calibrate_preset(capture: Path, venue: str = "binance-spot", symbol: str | None = None,
                     rounds: int = ROUNDS, minutes: float = ROUND_MINUTES,
                     progress: Callable[[int, int], None] | None = None) -> Calibration:
    """Replay `capture` and estimate one symbol's preset from it."""
    from collector.replay import replay_captures

    check_venue(venue)
    if rounds < 1:
        raise UserError(f"--calibrate-rounds must be at least 1, not {rounds}.")
    with tempfile.TemporaryDirectory(prefix="bookcast-calibrate-") as tmp:
        shape_dir, grid_dir = Path(tmp) / "shape", Path(tmp) / "grid"
        summary = replay_captures([capture], shape_dir, interval_ns=SHAPE_GRID_NS, depth=100,
                                  venue=venue)
        found = sorted(st.symbol for p in summary.pipelines.values() for st in p.states()
                       if st.resyncs and st.trades)
        if not found:
            raise UserError(f"The capture '{capture}' holds no {venue} book with trades to "
                            f"calibrate from.")
        if symbol is None:
            symbol = found[0]
        elif symbol not in found:
            raise UserError(f"The capture '{capture}' holds no {symbol} book with trades; it "
                            f"has {', '.join(found)}.")
        replay_captures([capture], grid_dir, interval_ns=GRID_NS, depth=DEPTH, venue=venue,
                        symbols=[symbol])
        shape = read_market(shape_dir, venue, symbol)
        real = market_statistics(read_market(grid_dir, venue, symbol))
    first = moment_preset(shape, real, venue, symbol)
    return refine(first, real, rounds, minutes, progress)


# -- 1. moment rules -------------------------------------------------------------------------

def moment_preset(shape: Market, real: MarketStatistics, venue: str,
                  symbol: str) -> SymbolPreset:
    """Every parameter read off the 100 ms replay and the 1 s statistics by a moment rule."""
    snaps = shape.snapshots.filter(~pl.col("gap") & (pl.col("bid_px").list.len() > 1)
                                   & (pl.col("ask_px").list.len() > 1))
    trades = shape.trades
    if snaps.height < 600 or trades.height < 200:
        raise UserError(f"{symbol}: {snaps.height} snapshot rows of 100 ms and "
                        f"{trades.height} trades are too few to calibrate from (need a "
                        f"minute of book and 200 trades).")
    tick = shape.tick_size or infer_tick_size(snaps)
    ts = snaps["ts"].dt.epoch("ns").to_numpy()
    seconds = (ts[-1] - ts[0]) / 1e9
    bid = snaps["bid_px"].to_list()
    ask = snaps["ask_px"].to_list()
    bid_sz = snaps["bid_sz"].to_list()
    best_bid = np.array([b[0] for b in bid])
    best_ask = np.array([a[0] for a in ask])
    mid = (best_bid + best_ask) / 2.0

    # depth_ticks: far enough that 100-level snapshots are full 9 times in 10
    reach = np.array([(a[0] - b[-1]) / tick for a, b in zip(ask, bid, strict=True)])
    depth_ticks = int(min(MAX_DEPTH_TICKS, max(50, np.quantile(reach, 0.9) * 1.5)))

    # occupancy p(i) of the bid i ticks below the best ask -> Poisson mean orders m(i),
    # counting only rows whose 100 levels reach that far
    occupied = np.zeros(depth_ticks + 1)
    for a, b in zip(ask, bid, strict=True):
        i = np.rint((a[0] - np.asarray(b)) / tick).astype(np.int64)
        np.add.at(occupied, i[(i >= 1) & (i <= depth_ticks)], 1)
    seen = np.array([np.sum(reach >= i) for i in range(depth_ticks + 1)], dtype=np.float64)
    p = np.clip(occupied / np.maximum(seen, 1.0), 0.0, 0.999)
    m = -np.log1p(-p)

    # deep orders: a deep level mostly holds one order; lognormal by its median and mean
    deep = np.concatenate([np.asarray(q[1:DEPTH]) for q in bid_sz])
    deep = deep[deep > 0]
    limit_size = float(np.median(deep))
    limit_sigma = math.sqrt(2.0 * max(math.log(float(np.mean(deep)) / limit_size), 0.01))

    # market orders: fills with one exchange time and side came from one order
    orders = (trades.group_by(["ts_event", "side"]).agg(pl.col("size").sum())["size"]
              .to_numpy())
    market_rate = len(orders) / seconds / 2.0
    tail = float(np.clip(hill_tail_index(orders), 1.2, 3.0))
    log_sizes = np.log(orders[orders > 0])
    # log size = log scale + sigma Z + Exp(1) / beta
    size_sigma = math.sqrt(max(float(np.var(log_sizes)) - 1.0 / tail**2, 0.1))
    market_size = math.exp(float(np.median(log_sizes)) - math.log(2.0) / tail)
    # one trade per resting order met; bigger fills meet more: a fill's trades have the
    # tail index of orders / (1 - gamma), which gives gamma from the two Hill estimates
    fill_scale = max(trades.height / max(len(orders), 1) - 1.0, 0.05)
    fill_tail = hill_tail_index(trades["size"].to_numpy())
    fill_power = float(np.clip(1.0 - hill_tail_index(orders) / fill_tail, 0.0, 0.9)) \
        if math.isfinite(fill_tail) and fill_tail > 0 else 0.0
    # no simulated order exceeds the largest the capture measures reliably: a single huge
    # order (500 ETH in 11 minutes) would otherwise set the size of the biggest sweeps
    max_order = float(np.quantile(orders, MAX_ORDER_QUANTILE))

    # theta: book changes ~ 2 sides x (arrival + cancel) x sum of m
    update_id_rate = _book_change_rate(snaps)
    trades_per_s = trades.height / seconds
    observed = int(np.median(reach))
    m_far = float(np.median(m[max(2, observed // 4): max(3, observed // 2)]))
    sum_m = float(m[2:observed].sum()) + m_far * max(depth_ticks - observed, 0)
    cancel_rate = max(0.05, (update_id_rate - trades_per_s) / (4.0 * (sum_m + 2.0)))
    far_rate = cancel_rate * m_far
    near_rate, near_decay = _fit_near(m, cancel_rate, far_rate)

    # the touch: a queue of m1 orders empties at theta m1 e^-m1 per side (M/M/inf)
    moves_per_s = float(np.sum(mid[1:] != mid[:-1]) / seconds)
    m1 = _touch_orders(moves_per_s / 4.0 / cancel_rate)
    best = np.array([q[0] for q in bid_sz])
    spreads = np.rint((best_ask - best_bid) / tick)
    wide = max(float(np.mean(spreads > 1)), 1e-3)

    # requotes: as far as the capture's moves on the 100 ms grid
    jumps = np.abs(np.diff(mid))[np.diff(mid) != 0] / tick
    jump_ticks = float(np.median(jumps)) if len(jumps) else 1.0

    # the null control: the capture's seconds-with-a-move rate, and the jump variance that
    # gives its 10 s volatility with independent moves: var10 = 10 nu E[J^2]
    nu = -math.log(max(1.0 - real.mid_move_share, 1e-3))
    var10_ticks = (real.volatility_10s_bps * 1e-4 * float(np.median(mid)) / tick) ** 2
    null_jump = math.sqrt(var10_ticks / (10.0 * nu)) * math.exp(-JUMP_SIGMA**2)

    tick_text, lot_text = _steps(venue, symbol, tick, trades["size"].to_numpy())
    return SymbolPreset(
        venue=venue, symbol=symbol, tick_size=tick_text, lot_size=lot_text,
        start_price=round(float(mid[0]), 8), near_rate=near_rate, near_decay=near_decay,
        far_rate=far_rate, depth_ticks=depth_ticks, price_scale=1.0, cancel_rate=cancel_rate,
        limit_size=limit_size, limit_sigma=limit_sigma, best_rate=cancel_rate * m1,
        touch_size=float(np.mean(best)) / m1 / math.exp(TOUCH_SIGMA**2 / 2.0),
        touch_sigma=TOUCH_SIGMA, chase_prob=float(np.clip(real.one_tick_spread_share, 0, 1)),

        refill_rate=float(np.clip(moves_per_s / (4.0 * wide), 1.0, 200.0)),
        market_rate=market_rate, market_react=1.0, market_size=market_size,
        size_sigma=size_sigma, size_tail=tail, max_order=max_order,
        fill_scale=fill_scale, fill_power=fill_power,
        jump_ticks=jump_ticks, jump_sigma=JUMP_SIGMA, requote_rate=0.0,
        null_requote_rate=nu, null_jump_ticks=null_jump, touch_refill=False)


def _steps(venue: str, symbol: str, tick: float, sizes: np.ndarray) -> tuple[str, str]:
    """Tick and lot size: the venue module's where it knows them, else read off the data."""
    from collector.venues import venue_class

    cls = venue_class(venue)
    tick_text = exact_decimal(cls.tick_sizes.get(symbol, tick))
    lot = cls.lot_sizes.get(symbol)
    return tick_text, exact_decimal(lot) if lot is not None else _lot_size(sizes)


def _book_change_rate(snaps: pl.DataFrame) -> float:
    """Book changes per second. Binance spot gives every change of a symbol's book one
    update id; futures number the changes of every symbol in one sequence, so where the ids
    run far faster than the levels the diffs change, count those levels instead."""
    ts = snaps["ts"].dt.epoch("ns").to_numpy()
    seconds = max((ts[-1] - ts[0]) / 1e9, 1e-9)
    level_rate = float(snaps["n_updates"].to_numpy()[1:].sum() / seconds)
    seq = snaps.filter(pl.col("seq").is_not_null())
    if seq.height < 2:
        return level_rate
    s = seq["seq"].to_numpy()
    id_rate = float((s[-1] - s[0]) / seconds)
    return id_rate if id_rate < SHARED_IDS_FACTOR * level_rate else level_rate


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


def _lot_size(sizes: np.ndarray) -> str:
    """The coarsest power of ten that every traded size is a multiple of."""
    for decimals in range(0, 9):
        scaled = sizes * 10**decimals
        if np.all(np.abs(scaled - np.rint(scaled)) < 1e-6):
            return exact_decimal(10.0**-decimals)
    return "0.00000001"


# -- 2. simulated moments --------------------------------------------------------------------

def refine(preset: SymbolPreset, real: MarketStatistics, rounds: int = ROUNDS,
           minutes: float = ROUND_MINUTES,
           progress: Callable[[int, int], None] | None = None) -> Calibration:
    """Correct the five knobs round by round, each by the statistic it drives most; the
    result is the mean of the last rounds' knobs (the corrections fluctuate around it)."""
    history: list[SymbolPreset] = []
    sim = market_statistics(sample_market(preset, minutes, ROUND_SEED))
    for k in range(rounds):
        if progress is not None:
            progress(k, rounds)
        preset = _corrected(preset, real, sim)
        history.append(preset)
        sim = market_statistics(sample_market(preset, minutes, ROUND_SEED))
    settled = history[-max(1, len(history) // 3):]
    knobs = {name: float(np.exp(np.mean([math.log(max(getattr(p, name), 1e-9))
                                         for p in settled])))
             for name in ("best_rate", "touch_size", "jump_ticks", "fill_scale")}
    knobs["market_react"] = float(np.mean([p.market_react for p in settled]))
    final = rounded(replace(preset, **knobs))
    if progress is not None:
        progress(rounds, rounds)
    return Calibration(final, real, market_statistics(sample_market(final, minutes,
                                                                    ROUND_SEED)))


def _corrected(p: SymbolPreset, real: MarketStatistics, sim: MarketStatistics) -> SymbolPreset:
    """One round: each knob moved by the ratio (or gap) of its own statistic."""
    def ratio(stat: str) -> float:
        r, s = getattr(real, stat), getattr(sim, stat)
        return r / s if s > 0 and r > 0 and math.isfinite(r / s) else 1.0

    def gap(stat: str) -> float:
        g = getattr(real, stat) - getattr(sim, stat)
        return g if math.isfinite(g) else 0.0

    # more arrivals at the touch, fewer depletions: moves fall about as 1 / rate; the
    # touch's mean size is rate x order size / theta, so the order size moves inversely
    # to keep the touch / depth ratio apart from the moves
    more = 1.0 / ratio("mid_move_share")
    return replace(
        p,
        best_rate=p.best_rate * more,
        touch_size=p.touch_size * ratio("touch_depth_ratio") ** 0.8 / more,
        market_react=float(np.clip(p.market_react + 1.5 * gap("imbalance_corr_1s"), 0.0, 1.0)),
        jump_ticks=max(p.jump_ticks * ratio("volatility_10s_bps") ** 1.5, 1.0),
        fill_scale=p.fill_scale * ratio("trades_per_second") ** 1.5)


def rounded(p: SymbolPreset) -> SymbolPreset:
    """Four significant digits on every float but the start price (a preset is read by people)."""
    values = {}
    for name, value in p.to_dict().items():
        if isinstance(value, float) and name != "start_price":
            values[name] = float(f"{value:.4g}")
    return replace(p, **values)


def sample_market(preset: SymbolPreset, minutes: float, seed: int) -> Market:
    """The model alone (no wire, no replay), its book sampled every second, 10 levels.

    Used where speed matters more than the wire; the tests measure the real path
    (capture -> replay) with the same statistics.
    """
    from collector.simulator.simulate import SIM_START_NS, WARMUP_NS, SimulatedBook

    book = SimulatedBook(preset, np.random.default_rng(seed), SIM_START_NS - WARMUP_NS)
    book.advance(SIM_START_NS)
    tick, lot = float(preset.tick_size), float(preset.lot_size)
    columns: dict[str, list] = {k: [] for k in ("ts", "bid_px", "bid_sz", "ask_px", "ask_sz")}
    fills = []
    t = SIM_START_NS
    for _ in range(int(minutes * 60)):
        t += GRID_NS
        _, _, trades = book.advance(t)
        fills.append(trades[:, 3])
        bids, asks = book.depth(DEPTH)
        columns["ts"].append(t)
        columns["bid_px"].append((bids[:, 0] * tick).tolist())
        columns["bid_sz"].append((bids[:, 1] * lot).tolist())
        columns["ask_px"].append((asks[:, 0] * tick).tolist())
        columns["ask_sz"].append((asks[:, 1] * lot).tolist())
    snaps = pl.DataFrame(columns).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")),
                                               pl.lit(False).alias("gap"))
    trades_frame = pl.DataFrame({"size": np.concatenate(fills) * lot})
    return Market(preset.venue, preset.symbol, snaps, trades_frame, tick, GRID_NS)
