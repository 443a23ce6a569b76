"""The statistics that say whether a book stream behaves like the real market, and the one
band table the simulator must stay within.

`market_statistics` reads snapshots replayed on the 1-second grid with 10 levels
(`bookcast replay ... --interval 1s --depth 10`) and trades, real or simulated alike, and
measures what matters for the product's question: how strongly the L1 imbalance
(bid_sz[0] - ask_sz[0]) / (bid_sz[0] + ask_sz[0]) predicts the next mid change, how often
the mid moves, the spread, the depth profile, trades and volatility. `BANDS` states, per
statistic, how far a simulation may sit from the real capture; the tests, `bookcast
simulate --compare` and docs/simulator.md all read it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from bookcast.errors import UserError
from bookcast.paths import path_safe

GRID_NS = 1_000_000_000  # the statistics are defined on the 1-second grid
DEPTH = 10               # ... with 10 levels a side
LONG_H = 10              # the long horizon, in grid steps (10 s)


@dataclass(frozen=True)
class Market:
    """One symbol's replayed snapshots and trades, with the facts their files carry."""

    venue: str
    symbol: str
    snapshots: pl.DataFrame
    trades: pl.DataFrame
    tick_size: float
    interval_ns: int


@dataclass(frozen=True)
class MarketStatistics:
    rows: int                      # usable snapshot rows
    seconds: float                 # time they span
    imbalance_corr_1s: float       # corr(L1 imbalance, next 1 s mid change)
    imbalance_hit_1s: float        # share of 1 s moves whose sign the imbalance's sign gave
    imbalance_corr_10s: float      # corr(L1 imbalance, next 10 s mid change)
    mid_move_share: float          # share of 1 s steps in which the mid changes
    volatility_10s_bps: float      # std of the 10 s mid change, basis points of the mid
    one_tick_spread_share: float   # share of rows whose spread is one tick
    median_spread_ticks: float
    touch_depth_ratio: float       # mean size at the best / mean size of levels 2-10
    depth_slope: float             # mean size of levels 7-10 / mean size of levels 2-5
    depth_profile: list[float]     # mean size at level k / mean size of levels 2-10
    trades_per_second: float
    trade_size_tail_index: float   # Hill estimate on the largest 5 % of trade sizes
    trade_size_p99_over_median: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Band:
    """How far a simulated statistic may sit from the real one.

    kind 'abs': |sim - real| <= width; kind 'ratio': real / width <= sim <= real * width.
    """

    statistic: str
    label: str
    kind: str
    width: float
    why: str

    def bounds(self, real: float) -> tuple[float, float]:
        if self.kind == "abs":
            return real - self.width, real + self.width
        if self.kind == "ratio":
            return real / self.width, real * self.width
        raise ValueError(f"unknown band kind {self.kind!r}")

    def holds(self, real: float, sim: float) -> bool:
        lo, hi = self.bounds(real)
        return bool(lo <= sim <= hi)

    def describe(self) -> str:
        if self.kind == "abs":
            return f"real ± {self.width:g}"
        return f"real ×/÷ {self.width:g}"


# Widths: about 2.5 standard errors of the statistic on an 11-minute capture (block
# bootstrap over 30 s blocks of the shared BTCUSDT and ETHUSDT captures), plus the
# simulated hour's own noise; the 10 s figures rest on ~65 independent windows. The hit
# rate's band is wider (4 errors): the model calls the direction less often than the
# BTCUSDT capture at the same correlation (docs/simulator.md, Limits).
BANDS: tuple[Band, ...] = (
    Band("imbalance_corr_1s", "corr(L1 imbalance, next 1 s mid change)", "abs", 0.08,
         "the signal the models must find"),
    Band("imbalance_hit_1s", "sign hit rate of the imbalance, next 1 s move", "abs", 0.10,
         "how often the imbalance calls the direction"),
    Band("imbalance_corr_10s", "corr(L1 imbalance, next 10 s mid change)", "abs", 0.10,
         "how fast the signal decays"),
    Band("mid_move_share", "share of seconds in which the mid moves", "abs", 0.08,
         "how often there is anything to predict"),
    Band("volatility_10s_bps", "std of the 10 s mid change (bps)", "ratio", 1.4,
         "how often a move beats the fee"),
    Band("one_tick_spread_share", "share of rows with a one-tick spread", "abs", 0.03,
         "the cost of crossing the spread"),
    Band("touch_depth_ratio", "best level size / mean of levels 2-10", "ratio", 1.5,
         "the queues whose race sets the signal"),
    Band("depth_slope", "mean size of levels 7-10 / levels 2-5", "ratio", 1.4,
         "the depth profile behind the touch"),
    Band("trades_per_second", "trades per second", "ratio", 1.4, "trade rate"),
    Band("trade_size_tail_index", "Hill tail index of trade sizes (top 5 %)", "abs", 0.4,
         "heavy-tailed trade sizes"),
)
BAND_BY_NAME = {b.statistic: b for b in BANDS}
NULL_MAX_ABS_CORR = 0.05  # the null control: the imbalance must say nothing


def read_market(data_dir: Path, venue: str, symbol: str) -> Market:
    """One symbol's replayed snapshots and trades, in time order, with their tick size."""
    frames: list[pl.DataFrame] = []
    meta: dict[bytes, bytes] = {}
    for dataset in ("snapshots", "trades"):
        root = data_dir / dataset / f"venue={venue}" / f"symbol={path_safe(symbol)}"
        files = sorted(root.glob("date=*/*.parquet"))
        if not files and dataset == "snapshots":
            raise UserError(f"No replayed snapshots of {venue} {symbol} under '{data_dir}'.")
        if dataset == "snapshots":
            meta = pq.read_schema(files[0]).metadata or {}
        frame = pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()
        frames.append(frame.sort(frame.columns[0]) if files else frame)
    tick_text = meta.get(b"tick_size", b"").decode()
    tick = float(tick_text) if tick_text else infer_tick_size(frames[0])
    interval = int(meta.get(b"interval_ns", str(GRID_NS).encode()))
    return Market(venue, symbol, frames[0], frames[1], tick, interval)


def infer_tick_size(snapshots: pl.DataFrame) -> float:
    """The price step: the smallest gap between neighbouring levels, over both sides."""
    gaps = []
    for column in ("bid_px", "ask_px"):
        px = snapshots.select(pl.col(column).list.head(20)).to_series().to_list()
        for levels in px[:: max(1, len(px) // 500)]:
            if len(levels) > 1:
                gaps.append(np.min(np.abs(np.diff(levels))))
    if not gaps:
        raise UserError("The snapshots hold no two levels on one side: no tick size to infer.")
    tick = float(np.min(gaps))
    return float(f"{tick:.1g}")  # 0.00999999 read from floats is the tick 0.01


def hill_tail_index(sizes: np.ndarray, top_fraction: float = 0.05) -> float:
    """Hill's estimator of a Pareto tail index from the largest sizes (smaller = heavier)."""
    x = np.sort(sizes[sizes > 0])[::-1]
    k = max(10, int(len(x) * top_fraction))
    if len(x) <= k:
        return float("nan")
    logs = np.log(x[:k] / x[k])
    return float(1.0 / np.mean(logs)) if np.mean(logs) > 0 else float("inf")


def forward_pairs(ts: np.ndarray, gap: np.ndarray, steps: int, interval_ns: int) -> np.ndarray:
    """Row indices t whose row t + steps lies exactly steps grid intervals later with no
    resynchronisation in between: nothing is computed across a gap or a missing row."""
    if len(ts) <= steps:
        return np.zeros(0, dtype=np.int64)
    segment = np.cumsum(gap)
    t = np.arange(len(ts) - steps)
    ok = (ts[t + steps] - ts[t] == steps * interval_ns) & (segment[t + steps] == segment[t])
    return t[ok]


def market_statistics(market: Market) -> MarketStatistics:
    """The statistics of the band table, on the 1-second grid with 10 levels."""
    if market.interval_ns != GRID_NS:
        raise UserError(f"The statistics are defined on the 1 s grid; {market.symbol} was "
                        f"replayed every {market.interval_ns / 1e9:g} s.")
    snaps = market.snapshots.filter((pl.col("bid_px").list.len() > 0)
                                    & (pl.col("ask_px").list.len() > 0))
    if snaps.height < 60:
        raise UserError(f"{market.symbol}: only {snaps.height} usable 1 s snapshot rows; "
                        f"the statistics need a minute at least.")
    ts = snaps["ts"].dt.epoch("ns").to_numpy()
    gap = snaps["gap"].to_numpy()
    bid = snaps["bid_px"].list.first().to_numpy()
    ask = snaps["ask_px"].list.first().to_numpy()
    bid_sz = snaps["bid_sz"].list.first().to_numpy()
    ask_sz = snaps["ask_sz"].list.first().to_numpy()
    mid = (bid + ask) / 2.0
    imbalance = (bid_sz - ask_sz) / (bid_sz + ask_sz)

    one = forward_pairs(ts, gap, 1, market.interval_ns)
    long = forward_pairs(ts, gap, LONG_H, market.interval_ns)
    move_1 = mid[one + 1] - mid[one]
    move_long = mid[long + LONG_H] - mid[long]
    moved = move_1 != 0
    spread_ticks = np.rint((ask - bid) / market.tick_size)
    profile = depth_profile(snaps)

    sizes = market.trades["size"].to_numpy() if market.trades.height else np.zeros(0)
    seconds = float(ts[-1] - ts[0]) / 1e9
    median = float(np.median(sizes)) if len(sizes) else float("nan")
    return MarketStatistics(
        rows=snaps.height,
        seconds=seconds,
        imbalance_corr_1s=_corr(imbalance[one], move_1),
        imbalance_hit_1s=(float(np.mean(np.sign(imbalance[one][moved]) == np.sign(move_1[moved])))
                          if moved.any() else float("nan")),
        imbalance_corr_10s=_corr(imbalance[long], move_long),
        mid_move_share=float(np.mean(moved)) if len(one) else float("nan"),
        volatility_10s_bps=float(np.std(move_long / mid[long]) * 1e4) if len(long) else
        float("nan"),
        one_tick_spread_share=float(np.mean(spread_ticks == 1)),
        median_spread_ticks=float(np.median(spread_ticks)),
        touch_depth_ratio=profile[0],
        depth_slope=float(np.mean(profile[6:DEPTH]) / np.mean(profile[1:5])),
        depth_profile=profile,
        trades_per_second=float(len(sizes) / max(seconds, 1e-9)),
        trade_size_tail_index=hill_tail_index(sizes) if len(sizes) > 200 else float("nan"),
        trade_size_p99_over_median=(float(np.quantile(sizes, 0.99)) / median
                                    if len(sizes) else float("nan")),
    )


def depth_profile(snaps: pl.DataFrame) -> list[float]:
    """Mean size by level (best = 0), both sides pooled, over the mean of levels 2-10."""
    means = []
    for k in range(DEPTH):
        sizes = pl.concat([snaps["bid_sz"].list.get(k, null_on_oob=True),
                           snaps["ask_sz"].list.get(k, null_on_oob=True)]).drop_nulls()
        means.append(float(sizes.mean()) if sizes.len() else float("nan"))  # type: ignore[arg-type]
    deeper = float(np.nanmean(means[1:]))
    return [m / deeper for m in means]


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


@dataclass(frozen=True)
class Comparison:
    statistic: str
    label: str
    real: float
    simulated: float
    low: float
    high: float
    holds: bool


def compare(real: MarketStatistics, simulated: MarketStatistics) -> list[Comparison]:
    """Every band of the table, real against simulated."""
    rows = []
    for band in BANDS:
        r = float(getattr(real, band.statistic))
        s = float(getattr(simulated, band.statistic))
        lo, hi = band.bounds(r)
        rows.append(Comparison(band.statistic, band.label, r, s, lo, hi, band.holds(r, s)))
    return rows
