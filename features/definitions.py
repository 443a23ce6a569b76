"""The features, declared as polars expressions over one snapshot partition.

Every feature is a function of the rows at or before its own row: windows look
back, never forward, and a window that would reach across a `gap` row (a book
resynchronisation) or a hole in the sampling grid is null. Formulas and sources
are in docs/features.md; names here match the column names there.

Data layout the expressions rely on (built by `prepare_book`, which walks the list
columns once with NumPy/Numba; everything after it is polars expressions):
- `_ts_ns` int64 grid time, `_seg` the gap segment (cumulative count of gap rows);
- `_bp{i}`, `_bs{i}`, `_ap{i}`, `_as{i}`: price and size of level i (0 = best) for the
  first max(1, ofi_levels) levels, null where the book is thinner than i + 1 levels;
- `_depth_{side}_{x}bps`, `_cum_{side}_{k}`, `_ew_{side}`, `_last_{side}`: the level
  sums of `BookColumns`;
- `best_bid`, `best_ask`, `best_bid_sz`, `best_ask_sz`, `mid`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numba
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from bookcast.errors import UserError
from bookcast.schema import SNAPSHOT_SCHEMA
from bookcast.timeutil import NS_PER_UNIT, format_duration_ns
from features.level_pages import DecodedRowGroup, LevelList

BPS = 1e-4


@dataclass(frozen=True)
class FeatureConfig:
    """What a feature set computes; stored in the set's config.json."""

    levels: int = 10  # levels extracted per side (imbalance, OFI, slope)
    cumulative_imbalance_levels: tuple[int, ...] = (2, 3, 5, 10)
    ew_imbalance_decay: float = 0.5  # weight of level i is exp(-decay * i)
    depth_bps: tuple[float, ...] = (5.0, 25.0)
    ofi_levels: int = 5
    lookbacks_ns: tuple[int, ...] = (
        1 * NS_PER_UNIT["s"], 10 * NS_PER_UNIT["s"], 60 * NS_PER_UNIT["s"],
    )
    microprice: bool = True  # needs a table fitted on training rows (features.microprice)

    def __post_init__(self) -> None:
        if self.levels < 1 or self.ofi_levels > self.levels:
            raise UserError(
                f"The feature set needs levels >= 1 and ofi_levels <= levels, got "
                f"levels={self.levels}, ofi_levels={self.ofi_levels}."
            )
        if max(self.cumulative_imbalance_levels, default=1) > self.levels:
            raise UserError(
                f"Cumulative imbalance levels {self.cumulative_imbalance_levels} exceed "
                f"the {self.levels} extracted levels."
            )

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["lookbacks"] = [format_duration_ns(n) for n in self.lookbacks_ns]
        return out


FEATURE_SETS: dict[str, FeatureConfig] = {
    "default": FeatureConfig(),
    # Few columns and short windows: quick experiments and tests.
    "compact": FeatureConfig(
        levels=5, cumulative_imbalance_levels=(3, 5), depth_bps=(10.0,), ofi_levels=3,
        lookbacks_ns=(1 * NS_PER_UNIT["s"], 5 * NS_PER_UNIT["s"]),
    ),
}


def feature_config(name: str) -> FeatureConfig:
    try:
        return FEATURE_SETS[name]
    except KeyError:
        known = ", ".join(sorted(FEATURE_SETS))
        raise UserError(f"Unknown feature set '{name}'; known sets are: {known}.") from None


def rows_for(duration_ns: int, interval_ns: int, *, what: str) -> int:
    """A duration as a whole number of grid rows; durations must be grid multiples."""
    if duration_ns <= 0 or duration_ns % interval_ns != 0:
        raise UserError(
            f"The {what} {format_duration_ns(duration_ns)} is not a positive multiple of the "
            f"snapshot interval {format_duration_ns(interval_ns)}; pick one that is."
        )
    return duration_ns // interval_ns


# ---------------------------------------------------------------- book preparation
#
# The list columns are the bulk of a partition (4 x 100 float64 per row). They are read
# once as Arrow list arrays and walked row by row in one compiled pass per side
# (`walk_side`) straight over the flat values and offsets, copying nothing, so a
# per-level column exists only for the few levels the features output or difference.

# The snapshot columns the features read: Parquet decodes nothing else.
SNAPSHOT_COLUMNS = ("ts", "gap", "bid_px", "bid_sz", "ask_px", "ask_sz")
_SIDES = (("bid", "bid_px", "bid_sz", "bp", "bs"), ("ask", "ask_px", "ask_sz", "ap", "as"))
_SIDE_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="walk_side")


def list_levels(
    column: pa.Array | pa.ChunkedArray | LevelList, fill: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Offsets (int64, rows + 1) into the flat float64 values of a list column, and the
    rows whose list is null (None if none is). Row r holds values[offsets[r]:offsets[r + 1]];
    a null list has no levels, a null element reads as `fill`. Zero-copy for one chunk of
    null-free float64 values, the way the collector writes them, and for a column
    `features.level_pages` decoded (which holds no null element)."""
    if isinstance(column, LevelList):
        return column
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    null_rows = None
    if column.null_count:
        null_rows = column.is_null().to_numpy(zero_copy_only=False)
        column = pc.if_else(column.is_null(), pa.scalar([], column.type), column)
    values = column.values
    if values.null_count:
        values = pc.fill_null(values, fill)
    offsets = column.offsets.to_numpy().astype(np.int64, copy=False)
    flat = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    return offsets, flat, null_rows


@numba.njit(cache=True, nogil=True)
def walk_side(px_offsets, px, sz_offsets, sz, bounds, is_bid, levels, cum_levels, weights,
              depth, cum, weighted, last_px, head_px, head_sz, at):
    """One pass over every row's levels of one book side (layout of `list_levels`), row r
    written at column `at + r` of the outputs, every element of it.

    Per row: the size within each bound (bids priced at or above it, asks at or below; all
    stored levels) into depth[j]; the size over levels 1..k for each k of `cum_levels`
    (missing levels count 0) into cum[c]; the `weights`-weighted size over the first
    `levels` levels; the price of the last of those levels (NaN for an empty side); the
    prices and sizes of the first head_px.shape[0] levels (NaN where the side is thinner).
    Each quantity is one contiguous array over the rows, so it becomes a column without a
    copy.
    """
    n = px_offsets.size - 1
    n_bounds, n_cum, head = depth.shape[0], cum_levels.size, head_px.shape[0]
    for r in range(n):
        o = at + r
        p0, s0 = px_offsets[r], sz_offsets[r]
        length = px_offsets[r + 1] - p0
        k = min(length, levels)
        total, wsum, c = 0.0, 0.0, 0
        for i in range(k):
            s = sz[s0 + i]
            total += s
            wsum += weights[i] * s
            while c < n_cum and cum_levels[c] == i + 1:
                cum[c, o] = total
                c += 1
        while c < n_cum:  # a thinner book: its missing levels count 0
            cum[c, o] = total
            c += 1
        weighted[o] = wsum
        last_px[o] = px[p0 + k - 1] if k > 0 else np.nan
        for i in range(head):
            if i < length:
                head_px[i, o] = px[p0 + i]
                head_sz[i, o] = sz[s0 + i]
            else:
                head_px[i, o] = np.nan
                head_sz[i, o] = np.nan
        # Two bounds per pass over every level (a row's levels stay in L1 cache): one
        # running sum waits on its previous add, two independent ones share the wait
        # (0.076 against 0.101 s for both sides of 200,000 rows, the same sums bit for bit).
        # (p - bound) against 0 is the formula's own arithmetic.
        for j in range(0, n_bounds, 2):
            pair = j + 1 < n_bounds
            b0 = bounds[r, j]
            b1 = bounds[r, j + 1] if pair else b0
            acc0, acc1 = 0.0, 0.0
            if is_bid:
                for i in range(length):
                    p, s = px[p0 + i], sz[s0 + i]
                    if p - b0 >= 0.0:
                        acc0 += s
                    if p - b1 >= 0.0:
                        acc1 += s
            else:
                for i in range(length):
                    p, s = px[p0 + i], sz[s0 + i]
                    if p - b0 <= 0.0:
                        acc0 += s
                    if p - b1 <= 0.0:
                        acc1 += s
            depth[j, o] = acc0
            if pair:
                depth[j + 1, o] = acc1


def _first_level(offsets: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Level 1 of every row (NaN for an empty side), read straight from the flat values."""
    lengths = np.diff(offsets)
    first = np.full(lengths.size, np.nan)
    present = lengths > 0
    first[present] = values[offsets[:-1][present]]
    return first


class BookColumns:
    """The per-row book quantities of a partition's snapshot batches (columns
    `SNAPSHOT_COLUMNS`), walked batch by batch into arrays for all the rows, NaN where a
    value is missing.

    Columns: `ts`, `gap`; `_bp{i}`, `_bs{i}`, `_ap{i}`, `_as{i}` for the first
    max(1, ofi_levels) levels; `_depth_{side}_{x}bps`; `_cum_{side}_{k}` (size over levels
    1..k, for the cumulative imbalance levels and `levels`); `_ew_{side}` (weighted size);
    `_last_{side}` (price of level min(levels, depth)).

    Given the partition's row count (its footers know it), the walk writes every batch in
    place: no batch has arrays of its own to be concatenated afterwards (that concatenation
    was a twentieth of a build's CPU, most of it faulting in fresh pages). Past it, or
    without it, the arrays grow by doubling.
    """

    def __init__(self, cfg: FeatureConfig, rows: int = 0) -> None:
        self.cfg = cfg
        self.head = max(1, cfg.ofi_levels)
        self.cum_levels = np.array(sorted({*cfg.cumulative_imbalance_levels, cfg.levels}),
                                   np.int64)
        self.weights = np.array([math.exp(-cfg.ew_imbalance_decay * i)
                                 for i in range(cfg.levels)])
        self.scales = {side: np.array([1 - x * BPS if side == "bid" else 1 + x * BPS
                                       for x in cfg.depth_bps]) for side, *_ in _SIDES}
        self.rows = 0
        self.ts: list[pa.Array] = []
        self.gap: list[pa.Array] = []
        self.sides = {side: self._arrays(rows) for side, *_ in _SIDES}

    def _arrays(self, capacity: int) -> dict[str, np.ndarray]:
        n_bounds, n_cum = len(self.cfg.depth_bps), self.cum_levels.size
        return {"depth": np.empty((n_bounds, capacity)), "cum": np.empty((n_cum, capacity)),
                "weighted": np.empty(capacity), "last_px": np.empty(capacity),
                "head_px": np.empty((self.head, capacity)),
                "head_sz": np.empty((self.head, capacity))}

    def _room(self, rows: int) -> None:
        capacity = self.sides["bid"]["weighted"].size
        if self.rows + rows <= capacity:
            return
        grown = max(2 * capacity, self.rows + rows)
        for side, arrays in self.sides.items():
            bigger = self._arrays(grown)
            for name, values in arrays.items():
                bigger[name][..., :self.rows] = values[..., :self.rows]
            self.sides[side] = bigger

    def add(self, batch: pa.RecordBatch | pa.Table | DecodedRowGroup) -> None:
        """Walk one batch into the rows after those already added."""
        levels = {}
        for side, px_name, sz_name, _, _ in _SIDES:
            px_off, px, null_rows = list_levels(batch.column(px_name), fill=np.nan)
            sz_off, sz, _ = list_levels(batch.column(sz_name), fill=0.0)
            if not np.array_equal(np.diff(px_off), np.diff(sz_off)):
                raise UserError(f"A snapshot row has {px_name} and {sz_name} lists of "
                                "different lengths; the partition is damaged, write it "
                                "again with replay.")
            levels[side] = (px_off, px, sz_off, sz, null_rows)
        n = batch.num_rows
        self._room(n)
        at = self.rows
        mid = (_first_level(*levels["bid"][:2]) + _first_level(*levels["ask"][:2])) / 2

        def walk(side: str) -> None:
            px_off, px, sz_off, sz, _ = levels[side]
            out = self.sides[side]
            walk_side(px_off, px, sz_off, sz, mid[:, None] * self.scales[side][None, :],
                      side == "bid", self.cfg.levels, self.cum_levels, self.weights,
                      out["depth"], out["cum"], out["weighted"], out["last_px"],
                      out["head_px"], out["head_sz"], at)

        # The kernel releases the GIL: the two sides walk on the two cores at once.
        ask_walk = _SIDE_POOL.submit(walk, "ask")
        walk("bid")
        ask_walk.result()
        for side in self.sides:
            null_rows = levels[side][4]
            if null_rows is not None:  # a null list sums to null, an empty one to 0
                self.sides[side]["depth"][:, at + np.flatnonzero(null_rows)] = np.nan
        self.ts.append(_one_chunk(batch.column("ts")))
        self.gap.append(_one_chunk(batch.column("gap")))
        self.rows += n

    def columns(self) -> dict[str, pa.ChunkedArray | np.ndarray]:
        """Every column, `ts` and `gap` as Arrow, the rest as NumPy views of the arrays
        (after at least one batch, which may be empty)."""
        columns: dict[str, pa.ChunkedArray | np.ndarray] = {
            "ts": pa.chunked_array(self.ts), "gap": pa.chunked_array(self.gap)}
        n = self.rows
        for side, _, _, px_short, sz_short in _SIDES:
            out = self.sides[side]
            columns.update({f"_depth_{side}_{x:g}bps": out["depth"][j, :n]
                            for j, x in enumerate(self.cfg.depth_bps)})
            columns.update({f"_cum_{side}_{k}": out["cum"][j, :n]
                            for j, k in enumerate(self.cum_levels)})
            columns[f"_ew_{side}"] = out["weighted"][:n]
            columns[f"_last_{side}"] = out["last_px"][:n]
            columns.update({f"_{px_short}{i}": out["head_px"][i, :n] for i in range(self.head)})
            columns.update({f"_{sz_short}{i}": out["head_sz"][i, :n] for i in range(self.head)})
        return columns


def _one_chunk(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks()
    return column


def prepare_book(batches: Iterable[pa.RecordBatch | pa.Table | DecodedRowGroup],
                 cfg: FeatureConfig, rows: int = 0) -> pl.DataFrame:
    """Per-row book quantities of a partition's snapshot batches (`BookColumns`; `rows`,
    their row count when it is known), sorted by time, with `_ts_ns`, `_seg` (gap
    segment) and the level-1 book columns."""
    book_columns = BookColumns(cfg, rows)
    for batch in batches:
        book_columns.add(batch)
    if not book_columns.ts:  # a partition without rows still has the columns
        book_columns.add(pa.RecordBatch.from_pylist(
            [], pa.schema([SNAPSHOT_SCHEMA.field(c) for c in SNAPSHOT_COLUMNS])))
    book = pl.DataFrame([pl.Series(name, values) if isinstance(values, pa.ChunkedArray)
                         else pl.Series(name, values, nan_to_null=True)
                         for name, values in book_columns.columns().items()])
    if not book["ts"].is_sorted():
        book = book.sort("ts", maintain_order=True)
    return book.with_columns(
        pl.col("ts").dt.epoch("ns").alias("_ts_ns"),
        # A gap row opens a new segment: nothing is computed across segments.
        pl.col("gap").fill_null(False).cast(pl.Int64).cum_sum().alias("_seg"),
        pl.col("_bp0").alias("best_bid"),
        pl.col("_ap0").alias("best_ask"),
        pl.col("_bs0").alias("best_bid_sz"),
        pl.col("_as0").alias("best_ask_sz"),
        ((pl.col("_bp0") + pl.col("_ap0")) / 2).alias("mid"),
    )


def window_ok(n: int, interval_ns: int) -> pl.Expr:
    """True where rows t-n..t lie in one gap segment on an unbroken grid (n > 0 looks back)."""
    return (pl.col("_seg").shift(n) == pl.col("_seg")) & (
        pl.col("_ts_ns").shift(n) == pl.col("_ts_ns") - n * interval_ns
    )


def _ok(n: int) -> pl.Expr:
    return pl.col(f"_ok{n}")


def _safe_ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num / den)


# ---------------------------------------------------------------- snapshot features


def spread_features() -> list[pl.Expr]:
    spread = pl.col("best_ask") - pl.col("best_bid")
    return [spread.alias("spread"), (spread / pl.col("mid") / BPS).alias("spread_bps")]


def depth_features(depth_bps: tuple[float, ...]) -> list[pl.Expr]:
    """Size resting within x bps of the mid on each side (all stored levels, summed in
    `walk_side`): bids priced >= mid(1 - x 1e-4), asks priced <= mid(1 + x 1e-4)."""
    return [
        pl.col(f"_depth_{side}_{x:g}bps").alias(f"depth_{side}_{x:g}bps")
        for x in depth_bps
        for side in ("bid", "ask")
    ]


def slope_features(levels: int) -> list[pl.Expr]:
    """Cumulative size over the first `levels` levels per bp of distance to the last of them."""
    out = []
    for side, sign in (("bid", 1), ("ask", -1)):
        size = pl.col(f"_cum_{side}_{levels}")
        last_px = pl.col(f"_last_{side}")
        distance_bps = sign * (pl.col("mid") - last_px) / pl.col("mid") / BPS
        out.append(_safe_ratio(size, distance_bps).alias(f"slope_{side}"))
    return out


def _level_size(side: str, i: int) -> pl.Expr:
    return pl.col(f"_{side}{i}").fill_null(0.0)


def imbalance_features(cfg: FeatureConfig) -> list[pl.Expr]:
    """(bid - ask) / (bid + ask) of resting size: level 1, cumulative 1..k, and weighted."""
    out = [
        _safe_ratio(_level_size("bs", 0) - _level_size("as", 0),
                    _level_size("bs", 0) + _level_size("as", 0)).alias("imb_1")
    ]
    for k in cfg.cumulative_imbalance_levels:
        bid, ask = pl.col(f"_cum_bid_{k}"), pl.col(f"_cum_ask_{k}")
        out.append(_safe_ratio(bid - ask, bid + ask).alias(f"imb_cum_{k}"))
    # weights w_i = exp(-decay * i) over the first `levels` levels, applied in `walk_side`
    bid, ask = pl.col("_ew_bid"), pl.col("_ew_ask")
    out.append(_safe_ratio(bid - ask, bid + ask).alias("imb_ew"))
    return out


def weighted_mid() -> pl.Expr:
    """Imbalance-weighted mid: the price leans toward the side with less resting size."""
    bs, as_ = pl.col("best_bid_sz"), pl.col("best_ask_sz")
    return _safe_ratio(pl.col("best_bid") * as_ + pl.col("best_ask") * bs, bs + as_).alias("wmid")


def order_flow_imbalance_event(i: int) -> pl.Expr:
    """e_i(t) of Cont, Kukanov & Stoikov (2014) at level i between rows t-1 and t."""
    bp, bs, ap, as_ = (pl.col(f"_{s}{i}") for s in ("bp", "bs", "ap", "as"))
    bp0, bs0, ap0, as0 = (c.shift(1) for c in (bp, bs, ap, as_))
    zero = pl.lit(0.0)
    e = (
        pl.when(bp >= bp0).then(bs).otherwise(zero)
        - pl.when(bp <= bp0).then(bs0).otherwise(zero)
        - pl.when(ap <= ap0).then(as_).otherwise(zero)
        + pl.when(ap >= ap0).then(as0).otherwise(zero)
    )
    return pl.when(_ok(1)).then(e)


def windowed_sum(per_row: pl.Expr, n: int) -> pl.Expr:
    """Sum of a per-row quantity over rows t-n+1..t, null if rows t-n..t are not one segment."""
    return pl.when(_ok(n)).then(per_row.rolling_sum(n))


def windowed_sparse_sum(per_row: pl.Expr, n: int) -> pl.Expr:
    """`windowed_sum` of a quantity that is often exactly 0 (no trade, an unchanged mid),
    exactly 0 where every row of the window is.

    A running sum keeps residues after the last non-zero row leaves the window: 2e-17 of
    volume made the trade-flow imbalance of real BTCUSDT rows -3, and -1e-20 under a square
    root made realised volatility NaN. The count of non-zero rows is an exact integer sum.
    """
    nonzero = (per_row != 0).cast(pl.Int32).rolling_sum(n)
    return pl.when(_ok(n)).then(pl.when(nonzero > 0).then(per_row.rolling_sum(n))
                                .otherwise(0.0))


def return_features(windows: list[tuple[str, int]]) -> list[pl.Expr]:
    out = []
    for name, n in windows:
        log_ret = (pl.col("mid") / pl.col("mid").shift(n)).log()
        out.append(pl.when(_ok(n)).then(log_ret).alias(f"ret_{name}"))
        out.append(windowed_sparse_sum(pl.col("_r1") ** 2, n).clip(lower_bound=0.0).sqrt()
                   .alias(f"rvol_{name}"))
    return out


def time_of_day_features() -> list[pl.Expr]:
    angle = (pl.col("_ts_ns") % NS_PER_UNIT["d"]) / NS_PER_UNIT["d"] * (2 * math.pi)
    return [angle.sin().alias("tod_sin"), angle.cos().alias("tod_cos")]


# ---------------------------------------------------------------- trades


def received_trades(trades: pl.LazyFrame) -> pl.DataFrame:
    """What `trade_buckets` reads of a partition's trades: receive time (int ns), size, side."""
    return (trades.select(pl.col("ts_recv").dt.epoch("ns"), "size", "side").drop_nulls()
            .collect())


def trade_buckets(trades: pl.LazyFrame | pl.DataFrame, grid_ns: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Buy and sell volume per grid row (grid times sorted, int ns): row t gets the trades
    with ts[t-1] < ts_recv <= ts[t], the first row every earlier one, none a later row.

    That is the only alignment that uses no trade received after the row's time. A
    binary search and a weighted count, where a join and a group-by cost most of the
    features' time on real trade rates.
    """
    t = trades if isinstance(trades, pl.DataFrame) else received_trades(trades)
    received = t["ts_recv"].to_numpy()
    size, side = t["size"].cast(pl.Float64).to_numpy(), t["side"].cast(pl.Int8).to_numpy()
    if received.size < 2 or (received[1:] >= received[:-1]).all():
        # trades in receive order (as the collector writes them): one merge pass
        buy, sell = np.zeros(grid_ns.size), np.zeros(grid_ns.size)
        _merge_trades(np.ascontiguousarray(grid_ns, np.int64), received, size, side, buy, sell)
        return buy, sell
    row = np.searchsorted(grid_ns, received, side="left")
    kept = row < grid_ns.size
    row, size, side = row[kept], size[kept], side[kept]
    buys, sells = side > 0, side < 0
    return (np.bincount(row[buys], weights=size[buys], minlength=grid_ns.size),
            np.bincount(row[sells], weights=size[sells], minlength=grid_ns.size))


@numba.njit(cache=True, nogil=True)
def _merge_trades(grid_ns, received, size, side, buy, sell):  # pragma: no cover - compiled
    """`trade_buckets` for trades sorted by receive time: each goes to the first grid row
    at or after it (a binary search's row), in trade order (bincount's order of sums)."""
    row = 0
    for k in range(received.size):
        while row < grid_ns.size and grid_ns[row] < received[k]:
            row += 1
        if row == grid_ns.size:
            return
        if side[k] > 0:
            buy[row] += size[k]
        elif side[k] < 0:
            sell[row] += size[k]


def trade_window_sums(windows: list[tuple[str, int]]) -> list[pl.Expr]:
    """`_buy_<w>` and `_sell_<w>`: the volume bought and sold over each window, computed once
    here because `trade_features` reads each several times (polars did not share them
    between the expressions: five times the work)."""
    return [windowed_sparse_sum(pl.col(f"_{side}"), n).alias(f"_{side}_{name}")
            for name, n in windows for side in ("buy", "sell")]


def trade_features(windows: list[tuple[str, int]], has_trades: bool) -> list[pl.Expr]:
    """Trade-flow imbalance and signed volume per window (over `trade_window_sums`)."""
    out = []
    for name, _ in windows:
        if not has_trades:
            # Not recorded is not the same as no trading: leave the columns null.
            out.append(pl.lit(None, pl.Float64).alias(f"tfi_{name}"))
            out.append(pl.lit(None, pl.Float64).alias(f"signed_vol_{name}"))
            continue
        buy, sell = pl.col(f"_buy_{name}"), pl.col(f"_sell_{name}")
        total = buy + sell
        out.append(pl.when(total > 0).then((buy - sell) / total)
                   .otherwise(pl.when(total.is_not_null()).then(0.0)).alias(f"tfi_{name}"))
        out.append((buy - sell).alias(f"signed_vol_{name}"))
    return out


# ---------------------------------------------------------------- the whole set


def snapshot_features(
    book: pl.LazyFrame,
    trades: pl.LazyFrame | pl.DataFrame | None,
    cfg: FeatureConfig,
    interval_ns: int,
) -> pl.LazyFrame:
    """Add every feature of `cfg` to a frame from `prepare_book` (one partition); `trades`
    as scanned, or as `received_trades` read them."""
    windows = [
        (format_duration_ns(w), rows_for(w, interval_ns, what="lookback"))
        for w in cfg.lookbacks_ns
    ]
    window_rows = sorted({1} | {n for _, n in windows})
    lf = book
    if trades is not None:
        grid_ns = book.select(pl.col("ts").dt.epoch("ns")).collect().to_series().to_numpy()
        if grid_ns.size > 1 and (np.diff(grid_ns) < 0).any():
            raise ValueError("snapshot_features needs the book sorted by ts (prepare_book)")
        buy, sell = trade_buckets(trades, grid_ns)
        lf = lf.with_columns(pl.Series("_buy", buy), pl.Series("_sell", sell))
    lf = lf.with_columns(window_ok(n, interval_ns).alias(f"_ok{n}") for n in window_rows)
    lf = lf.with_columns(
        pl.when(_ok(1)).then((pl.col("mid") / pl.col("mid").shift(1)).log()).alias("_r1"),
        *[order_flow_imbalance_event(i).alias(f"_ofi{i}") for i in range(cfg.ofi_levels)],
        *(trade_window_sums(windows) if trades is not None else []),
    )
    ofi = [
        windowed_sum(pl.col(f"_ofi{i}"), n).alias(f"ofi_{i + 1}_{name}")
        for name, n in windows
        for i in range(cfg.ofi_levels)
    ]
    return lf.with_columns(
        *spread_features(),
        *depth_features(cfg.depth_bps),
        *slope_features(cfg.levels),
        *imbalance_features(cfg),
        weighted_mid(),
        *ofi,
        *trade_features(windows, trades is not None),
        *return_features(windows),
        *time_of_day_features(),
    )


def feature_names(cfg: FeatureConfig, interval_ns: int = NS_PER_UNIT["s"]) -> list[str]:
    """The model-input columns a feature set writes, in order (microprice last if fitted)."""
    trades = pl.LazyFrame(schema={"ts_recv": pl.Datetime("ns", "UTC"), "size": pl.Float64,
                                  "side": pl.Int8})
    lf = snapshot_features(prepare_book([], cfg).lazy(), trades, cfg, interval_ns)
    names = [c for c in lf.collect_schema().names() if c in BOOK_COLUMNS or is_feature_column(c)]
    return [*BOOK_COLUMNS, *[c for c in names if c not in BOOK_COLUMNS]] + (
        ["microprice"] if cfg.microprice else [])


BOOK_COLUMNS = ("best_bid", "best_ask", "best_bid_sz", "best_ask_sz", "mid")
_SOURCE_COLUMNS = {"ts", "ts_event", "ts_recv", "seq", "bid_px", "bid_sz", "ask_px", "ask_sz",
                   "n_updates", "gap"}


def is_feature_column(column: str) -> bool:
    return not column.startswith("_") and column not in _SOURCE_COLUMNS
