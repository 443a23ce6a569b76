"""Labels: the fee-aware round trip (DESIGN.md, the product's core definition) and the
FI-2010 research label.

The round trip, `round_trips`, is the one implementation of the definition; the labels
here, the models' datasets (`models.dataset`) and the backtest's oracle all call it:

- entry at row e (the book as of ts[e]): a long buys at ask[e], a short sells at bid[e];
- exit at the row x with ts[x] == ts[e] + h exactly; there is no round trip when no such
  row exists (past the data, or a hole in the grid) or when a row in (e, x] is flagged
  `gap` (the book was resynchronised: nothing is computed across it), or when one of the
  four touch prices is missing;
- gross long = bid[x] / ask[e] - 1, gross short = 1 - ask[x] / bid[e] (fractions);
- at a taker fee f bps per side, net = gross - 2f (a fee on each leg, both as a share of
  the entry price: exactly the inequality of DESIGN.md, `bid[x] / ask[e] - 1 > 2f`).

Fee-aware label at fee f: +1 if the long's net is > 0, else -1 if the short's net is
> 0, else 0; null without a round trip. Both cannot pay on an uncrossed book; should a
crossed book make both pay, +1 wins (the long is tested first).

Labels are computed across date partitions: the builder hands `label_columns` the first
rows of the next partition (`book_head`), so a label is null only past the data or
across a gap, never at midnight.

Research (FI-2010, Ntakaris et al. 2018): the mean mid over the next k rows against the
current mid, l = mean(mid[t+1..t+k]) / mid[t] - 1, with y = sign(l) where |l| > alpha
and 0 otherwise; alpha is fitted on training rows only. It is computed within one frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from bookcast.errors import UserError
from bookcast.timeutil import format_duration_ns
from features.definitions import BPS, rows_for

# ---------------------------------------------------------------- the round trip


@dataclass(frozen=True)
class RoundTrips:
    """Taker round trips entered at `entry` rows and closed one horizon later.

    `exit` is the exit row (-1 where there is none); `long_gross` and `short_gross` are
    fractions, NaN where there is no round trip. Fees enter only through `net`, so one
    set of round trips serves every fee level exactly.
    """

    entry: np.ndarray
    exit: np.ndarray
    long_gross: np.ndarray
    short_gross: np.ndarray

    @property
    def ok(self) -> np.ndarray:
        """Rows with a round trip (both directions priced)."""
        return np.isfinite(self.long_gross) & np.isfinite(self.short_gross)

    def net(self, fee_bps: float) -> tuple[np.ndarray, np.ndarray]:
        """(long, short) net returns after a taker fee of `fee_bps` on each leg."""
        cost = round_trip_cost(fee_bps)
        return self.long_gross - cost, self.short_gross - cost

    def labels(self, fee_bps: float) -> np.ndarray:
        """-1 / 0 / +1 as float64, NaN where there is no round trip."""
        long_net, short_net = self.net(fee_bps)
        return np.where(self.ok, fee_aware_side(long_net, short_net), np.nan)


def round_trip_cost(fee_bps: float) -> float:
    """Both legs' taker fees as a fraction of the entry price."""
    if fee_bps < 0:
        raise UserError(f"The fee {fee_bps} bps is negative; fees are zero or more.")
    return 2.0 * fee_bps * BPS


def round_trips(ts: np.ndarray, gap: np.ndarray, bid: np.ndarray, ask: np.ndarray,
                horizon_ns: int, entry: np.ndarray | None = None) -> RoundTrips:
    """The fee-aware round trip (module docstring) from each `entry` row (default: all).

    `ts` int64 ns, strictly increasing; `gap` bool; `bid`, `ask` the touch prices (NaN
    where a side is empty). Entry rows may equal len(ts) (past the data: no round trip).
    """
    ts = np.asarray(ts, np.int64)
    n = ts.shape[0]
    entry = np.arange(n, dtype=np.int64) if entry is None else np.asarray(entry, np.int64)
    if n == 0:
        nothing = np.full(entry.shape[0], np.nan)
        return RoundTrips(entry, np.full(entry.shape[0], -1, np.int64), nothing, nothing)
    inside = entry < n
    e = np.minimum(entry, n - 1)
    target = ts[e] + np.int64(horizon_ns)
    x = np.searchsorted(ts, target, side="left")
    xc = np.minimum(x, n - 1)
    # Equal segments: no gap row in (e, x]. Counted over the rows these round trips span
    # only, so a chunk of entries costs its span, not the whole book.
    lo = int(min(e.min(), xc.min())) if e.shape[0] else 0
    segment = np.cumsum(np.asarray(gap, bool)[lo:int(xc.max(initial=lo)) + 1])
    has_exit = inside & (x < n) & (ts[xc] == target) & (segment[xc - lo] == segment[e - lo])
    bid = np.asarray(bid, np.float64)
    ask = np.asarray(ask, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        long_gross = np.where(has_exit, bid[xc] / ask[e] - 1.0, np.nan)
        short_gross = np.where(has_exit, 1.0 - ask[xc] / bid[e], np.nan)
    priced = np.isfinite(long_gross) & np.isfinite(short_gross)
    long_gross[~priced] = np.nan
    short_gross[~priced] = np.nan
    return RoundTrips(entry, np.where(has_exit, xc, -1).astype(np.int64), long_gross,
                      short_gross)


def fee_aware_side(long_net: np.ndarray, short_net: np.ndarray) -> np.ndarray:
    """+1 where the long pays, else -1 where the short pays, else 0 (int8; NaN is 0)."""
    long_pays = long_net > 0
    return np.where(long_pays, 1, np.where(short_net > 0, -1, 0)).astype(np.int8)


# ---------------------------------------------------------------- label columns


@dataclass(frozen=True)
class BookHead:
    """The first rows of the next partition: what labels near a partition's end need."""

    ts: np.ndarray
    gap: np.ndarray
    bid: np.ndarray
    ask: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])


HEAD_COLUMNS = ("ts", "gap", "bid_px", "ask_px")


def book_head(batches: Iterable[pa.RecordBatch], span_ns: int) -> BookHead:
    """Rows of a partition's snapshot batches (`HEAD_COLUMNS`) within `span_ns` of its first
    row; stops reading once past it, so only the head of the partition is decoded."""
    parts: list[pl.DataFrame] = []
    first: int | None = None
    for batch in batches:
        frame = pl.from_arrow(batch).select(
            pl.col("ts").dt.epoch("ns").alias("ts"), pl.col("gap").fill_null(False),
            pl.col("bid_px").list.first().alias("bid"), pl.col("ask_px").list.first().alias("ask"))
        if frame.height == 0:
            continue
        first = int(frame["ts"][0]) if first is None else first
        parts.append(frame.filter(pl.col("ts") < first + span_ns))
        if int(frame["ts"][-1]) >= first + span_ns:
            break
    if not parts:
        return BookHead(np.empty(0, np.int64), np.empty(0, bool), np.empty(0), np.empty(0))
    head = pl.concat(parts).sort("ts")
    return BookHead(head["ts"].to_numpy(), head["gap"].to_numpy(),
                    head["bid"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
                    head["ask"].cast(pl.Float64).fill_null(np.nan).to_numpy())


def _touch(frame: pl.DataFrame, column: str) -> np.ndarray:
    return frame[column].cast(pl.Float64).fill_null(np.nan).to_numpy()


def label_columns(frame: pl.DataFrame, horizons_ns: Sequence[int], interval_ns: int,
                  fee_bps: float, next_head: BookHead | None = None) -> list[pl.Series]:
    """`fwd_ret_<h>` (float64, mid to mid) and `y_<h>` (int8) for each horizon, for a frame
    with `ts`, `best_bid`, `best_ask` (and `gap`), time-ordered; `next_head` continues the
    book past the frame's last row."""
    ts = frame["ts"].dt.epoch("ns").to_numpy()
    gap = (frame["gap"].fill_null(False).to_numpy() if "gap" in frame.columns
           else np.zeros(frame.height, bool))
    bid, ask = _touch(frame, "best_bid"), _touch(frame, "best_ask")
    if next_head is not None and len(next_head):
        ts = np.concatenate([ts, next_head.ts])
        gap = np.concatenate([gap, next_head.gap])
        bid = np.concatenate([bid, next_head.bid])
        ask = np.concatenate([ask, next_head.ask])
    rows = np.arange(frame.height, dtype=np.int64)
    mid = (bid + ask) / 2.0
    out = []
    for h in horizons_ns:
        rows_for(h, interval_ns, what="horizon")  # a horizon must be whole grid steps
        name = format_duration_ns(h)
        trips = round_trips(ts, gap, bid, ask, h, entry=rows)
        x = np.maximum(trips.exit, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            fwd = np.where(trips.exit >= 0, mid[x] / mid[rows] - 1.0, np.nan)
        y = trips.labels(fee_bps)
        out.append(pl.Series(f"fwd_ret_{name}", fwd, pl.Float64, nan_to_null=True))
        out.append(pl.Series(f"y_{name}", y, pl.Float64, nan_to_null=True).cast(pl.Int8))
    return out


def fee_aware_labels(book: pl.DataFrame, horizons_ns: list[int], interval_ns: int,
                     fee_bps: float) -> pl.DataFrame:
    """Labels for a frame with `ts`, `best_bid`, `best_ask` (and `gap` if known)."""
    book = book.sort("ts")
    return pl.DataFrame([book["ts"], *label_columns(book, horizons_ns, interval_ns, fee_bps)])


# ---------------------------------------------------------------- research label


def with_grid(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Add `_ts_ns` and `_seg` to a frame with `ts` (and `gap` when it has one)."""
    lf = frame.lazy().sort("ts")
    names = lf.collect_schema().names()
    gap = pl.col("gap").fill_null(False) if "gap" in names else pl.lit(False)
    return lf.with_columns(pl.col("ts").dt.epoch("ns").alias("_ts_ns"),
                           gap.cast(pl.Int64).cum_sum().alias("_seg"))


def forward_ok(n: int, interval_ns: int) -> pl.Expr:
    """True where row t+n exists, is exactly n grid steps later, and is in t's gap segment."""
    return (pl.col("_seg").shift(-n) == pl.col("_seg")) & (
        pl.col("_ts_ns").shift(-n) == pl.col("_ts_ns") + n * interval_ns
    )


def research_move(k: int, interval_ns: int) -> pl.Expr:
    """mean(mid[t+1..t+k]) / mid[t] - 1, null unless all k rows are on t's segment and grid."""
    future_mean = pl.mean_horizontal([pl.col("mid").shift(-j) for j in range(1, k + 1)])
    return pl.when(forward_ok(k, interval_ns)).then(future_mean / pl.col("mid") - 1)


def fit_research_threshold(
    train: pl.DataFrame, k: int, interval_ns: int, flat_share: float = 1 / 3
) -> float:
    """alpha such that `flat_share` of the training rows have |l| <= alpha (training only)."""
    if not 0 < flat_share < 1:
        raise UserError(f"The flat share {flat_share} must lie strictly between 0 and 1.")
    moves = with_grid(train).select(research_move(k, interval_ns).abs().alias("m")).collect()
    moves = moves.drop_nulls()
    if moves.height == 0:
        raise UserError(f"The training slice has no row with {k} rows of future; it is too short.")
    return float(moves["m"].quantile(flat_share, interpolation="linear"))


def research_labels(frame: pl.DataFrame, k: int, interval_ns: int, alpha: float) -> pl.DataFrame:
    """`ts` and `y_research` (int8, null without k rows of future) with a fitted alpha."""
    move = research_move(k, interval_ns)
    label = (
        pl.when(move.is_null()).then(None)
        .when(move > alpha).then(1)
        .when(move < -alpha).then(-1)
        .otherwise(0)
        .cast(pl.Int8)
    )
    return with_grid(frame).select("ts", label.alias("y_research")).collect()
