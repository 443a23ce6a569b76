"""The statistics that say whether a book stream looks like a real market.

One function, `book_statistics`, reads replayed snapshots and trades (real or
simulated alike) and measures the stylised facts the simulator must reproduce:
the spread is mostly one tick, the best level holds more than the levels behind it,
trade sizes are heavy-tailed, the mid moves many times a minute, and the imbalance
of the best queues predicts the sign of the next mid move, weakly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from bookcast.errors import UserError
from bookcast.paths import path_safe


@dataclass(frozen=True)
class BookStatistics:
    rows: int
    tick_size: float
    spread_one_tick: float           # share of rows whose spread is one tick
    depth_profile: list[float]       # mean size at level k (best = 0) / mean size of 1..9
    best_over_deeper: float          # depth_profile[0]
    mid_changes_per_minute: float    # rows whose mid differs from the previous row, per minute
    imbalance_next_move_corr: float  # corr(L1 imbalance - 1/2, sign of the next mid change)
    trade_size_tail_index: float     # Hill estimate on the largest 5% of trade sizes
    trade_size_p99_over_median: float
    trades_per_second: float
    mean_trade_size: float
    median_trade_size: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def read_replayed(data_dir: Path, venue: str, symbol: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(snapshots, trades) of one symbol as the replay wrote them, in time order."""
    frames = []
    for dataset in ("snapshots", "trades"):
        root = data_dir / dataset / f"venue={venue}" / f"symbol={path_safe(symbol)}"
        files = sorted(root.glob("date=*/*.parquet"))
        if not files and dataset == "snapshots":
            raise UserError(f"No replayed snapshots of {venue} {symbol} under '{data_dir}'.")
        frame = pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()
        frames.append(frame.sort(frame.columns[0]) if files else frame)
    return frames[0], frames[1]


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


def book_statistics(snapshots: pl.DataFrame, trades: pl.DataFrame,
                    tick_size: float | None = None, levels: int = 10) -> BookStatistics:
    """The stylised facts of one symbol's replayed snapshots and trades.

    Rows flagged `gap` and rows without both quotes are left out; a mid change is
    measured from one kept row to the next, so it never spans a gap.
    """
    snaps = snapshots.filter(~pl.col("gap") & (pl.col("bid_px").list.len() > 0)
                             & (pl.col("ask_px").list.len() > 0))
    if snaps.height < 10:
        raise UserError(f"Only {snaps.height} usable snapshot rows: too few for statistics.")
    tick = tick_size if tick_size is not None else infer_tick_size(snaps)
    bid = snaps["bid_px"].list.first().to_numpy()
    ask = snaps["ask_px"].list.first().to_numpy()
    bid_sz = snaps["bid_sz"].list.first().to_numpy()
    ask_sz = snaps["ask_sz"].list.first().to_numpy()
    spread_ticks = np.rint((ask - bid) / tick)

    profile = _depth_profile(snaps, levels)

    mid = (bid + ask) / 2.0
    changed = mid[1:] != mid[:-1]
    ts = snaps["ts"].dt.epoch("ns").to_numpy()
    minutes = max((ts[-1] - ts[0]) / 60e9, 1e-9)

    # sign of the next mid change after each row (0 where none follows)
    next_sign = np.zeros(len(mid))
    following = 0.0
    for k in range(len(mid) - 2, -1, -1):
        if mid[k + 1] != mid[k]:
            following = np.sign(mid[k + 1] - mid[k])
        next_sign[k] = following
    imbalance = bid_sz / (bid_sz + ask_sz) - 0.5
    moving = next_sign != 0
    corr = (float(np.corrcoef(imbalance[moving], next_sign[moving])[0, 1])
            if moving.sum() > 2 else float("nan"))

    sizes = trades["size"].to_numpy() if trades.height else np.zeros(0)
    if trades.height > 1:
        t = trades["ts_recv"].dt.epoch("ns").to_numpy()
        trades_per_s = float(trades.height / max((t[-1] - t[0]) / 1e9, 1e-9))
    else:
        trades_per_s = 0.0
    median = float(np.median(sizes)) if len(sizes) else float("nan")
    return BookStatistics(
        rows=snaps.height,
        tick_size=tick,
        spread_one_tick=float(np.mean(spread_ticks == 1)),
        depth_profile=profile,
        best_over_deeper=profile[0],
        mid_changes_per_minute=float(changed.sum() / minutes),
        imbalance_next_move_corr=corr,
        trade_size_tail_index=hill_tail_index(sizes) if len(sizes) > 40 else float("nan"),
        trade_size_p99_over_median=(float(np.quantile(sizes, 0.99)) / median
                                    if len(sizes) else float("nan")),
        trades_per_second=trades_per_s,
        mean_trade_size=float(np.mean(sizes)) if len(sizes) else float("nan"),
        median_trade_size=median,
    )


def _depth_profile(snaps: pl.DataFrame, levels: int) -> list[float]:
    """Mean size by level index, both sides pooled, scaled by the mean of levels 1..levels-1."""
    means = []
    for k in range(levels):
        sizes = pl.concat([snaps["bid_sz"].list.get(k, null_on_oob=True),
                           snaps["ask_sz"].list.get(k, null_on_oob=True)]).drop_nulls()
        means.append(float(sizes.mean()) if sizes.len() else float("nan"))
    deeper = float(np.nanmean(means[1:]))
    return [m / deeper for m in means]
