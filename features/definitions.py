"""The features, declared as polars expressions over one snapshot partition.

Every feature is a function of the rows at or before its own row: windows look
back, never forward, and a window that would reach across a `gap` row (a book
resynchronisation) or a hole in the sampling grid is null. Formulas and sources
are in docs/features.md; names here match the column names there.

Data layout the expressions rely on (added by `prepare_book`):
- `_ts_ns` int64 grid time, `_seg` the gap segment (cumulative count of gap rows);
- `_bp{i}`, `_bs{i}`, `_ap{i}`, `_as{i}`: price and size of level i (0 = best),
  null where the book is thinner than i + 1 levels;
- `best_bid`, `best_ask`, `best_bid_sz`, `best_ask_sz`, `mid`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import polars as pl

from bookcast.errors import UserError
from bookcast.timeutil import NS_PER_UNIT, format_duration_ns

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


def prepare_book(snapshots: pl.LazyFrame, levels: int) -> pl.LazyFrame:
    """Sort by time, number the gap segments and pull levels 0..levels-1 out of the lists."""
    level_columns = []
    for i in range(levels):
        for short, name in (("bp", "bid_px"), ("bs", "bid_sz"), ("ap", "ask_px"),
                            ("as", "ask_sz")):
            level_columns.append(pl.col(name).list.get(i, null_on_oob=True).alias(f"_{short}{i}"))
    return (
        snapshots.sort("ts")
        .with_columns(
            pl.col("ts").dt.epoch("ns").alias("_ts_ns"),
            # A gap row opens a new segment: nothing is computed across segments.
            pl.col("gap").fill_null(False).cast(pl.Int64).cum_sum().alias("_seg"),
            *level_columns,
        )
        .with_columns(
            pl.col("_bp0").alias("best_bid"),
            pl.col("_ap0").alias("best_ask"),
            pl.col("_bs0").alias("best_bid_sz"),
            pl.col("_as0").alias("best_ask_sz"),
            ((pl.col("_bp0") + pl.col("_ap0")) / 2).alias("mid"),
        )
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
    """Size resting within x bps of the mid on each side (all stored levels)."""
    out = []
    for x in depth_bps:
        name = f"{x:g}bps"
        bid_floor = pl.col("mid") * (1 - x * BPS)
        ask_cap = pl.col("mid") * (1 + x * BPS)
        bid_in = (pl.col("bid_px") - bid_floor).list.eval(pl.element() >= 0).cast(
            pl.List(pl.Float64))
        ask_in = (pl.col("ask_px") - ask_cap).list.eval(pl.element() <= 0).cast(
            pl.List(pl.Float64))
        out.append((pl.col("bid_sz") * bid_in).list.sum().alias(f"depth_bid_{name}"))
        out.append((pl.col("ask_sz") * ask_in).list.sum().alias(f"depth_ask_{name}"))
    return out


def slope_features(levels: int) -> list[pl.Expr]:
    """Cumulative size over the first `levels` levels per bp of distance to the last of them."""
    out = []
    for side, px, sz, sign in (("bid", "bid_px", "bid_sz", 1), ("ask", "ask_px", "ask_sz", -1)):
        size = pl.col(sz).list.slice(0, levels).list.sum()
        last_px = pl.col(px).list.slice(0, levels).list.last()
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
        bid = pl.sum_horizontal([_level_size("bs", i) for i in range(k)])
        ask = pl.sum_horizontal([_level_size("as", i) for i in range(k)])
        out.append(_safe_ratio(bid - ask, bid + ask).alias(f"imb_cum_{k}"))
    weights = [math.exp(-cfg.ew_imbalance_decay * i) for i in range(cfg.levels)]
    bid = pl.sum_horizontal([w * _level_size("bs", i) for i, w in enumerate(weights)])
    ask = pl.sum_horizontal([w * _level_size("as", i) for i, w in enumerate(weights)])
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


def return_features(windows: list[tuple[str, int]]) -> list[pl.Expr]:
    out = []
    for name, n in windows:
        log_ret = (pl.col("mid") / pl.col("mid").shift(n)).log()
        out.append(pl.when(_ok(n)).then(log_ret).alias(f"ret_{name}"))
        out.append(windowed_sum(pl.col("_r1") ** 2, n).sqrt().alias(f"rvol_{name}"))
    return out


def time_of_day_features() -> list[pl.Expr]:
    angle = (pl.col("_ts_ns") % NS_PER_UNIT["d"]) / NS_PER_UNIT["d"] * (2 * math.pi)
    return [angle.sin().alias("tod_sin"), angle.cos().alias("tod_cos")]


# ---------------------------------------------------------------- trades


def trade_buckets(trades: pl.LazyFrame, grid: pl.LazyFrame) -> pl.LazyFrame:
    """Buy and sell volume per grid row: row t gets the trades with ts[t-1] < ts_recv <= ts[t].

    That is the only alignment that uses no trade received after the row's time.
    """
    return (
        trades.select("ts_recv", "size", "side")
        .sort("ts_recv")
        .join_asof(grid.select("ts"), left_on="ts_recv", right_on="ts", strategy="forward")
        .drop_nulls("ts")
        .group_by("ts", maintain_order=True)
        .agg(
            pl.col("size").filter(pl.col("side") > 0).sum().alias("_buy"),
            pl.col("size").filter(pl.col("side") < 0).sum().alias("_sell"),
        )
    )


def trade_features(windows: list[tuple[str, int]], has_trades: bool) -> list[pl.Expr]:
    out = []
    for name, n in windows:
        if not has_trades:
            # Not recorded is not the same as no trading: leave the columns null.
            out.append(pl.lit(None, pl.Float64).alias(f"tfi_{name}"))
            out.append(pl.lit(None, pl.Float64).alias(f"signed_vol_{name}"))
            continue
        buy, sell = windowed_sum(pl.col("_buy"), n), windowed_sum(pl.col("_sell"), n)
        total = buy + sell
        out.append(pl.when(total > 0).then((buy - sell) / total)
                   .otherwise(pl.when(total.is_not_null()).then(0.0)).alias(f"tfi_{name}"))
        out.append((buy - sell).alias(f"signed_vol_{name}"))
    return out


# ---------------------------------------------------------------- the whole set


def snapshot_features(
    book: pl.LazyFrame,
    trades: pl.LazyFrame | None,
    cfg: FeatureConfig,
    interval_ns: int,
) -> pl.LazyFrame:
    """Add every feature of `cfg` to a frame from `prepare_book` (one partition)."""
    windows = [
        (format_duration_ns(w), rows_for(w, interval_ns, what="lookback"))
        for w in cfg.lookbacks_ns
    ]
    window_rows = sorted({1} | {n for _, n in windows})
    lf = book.with_columns(window_ok(n, interval_ns).alias(f"_ok{n}") for n in window_rows)
    if trades is not None:
        lf = lf.join(trade_buckets(trades, lf), on="ts", how="left", maintain_order="left").with_columns(
            pl.col("_buy").fill_null(0.0), pl.col("_sell").fill_null(0.0))
    lf = lf.with_columns(
        pl.when(_ok(1)).then((pl.col("mid") / pl.col("mid").shift(1)).log()).alias("_r1"),
        *[order_flow_imbalance_event(i).alias(f"_ofi{i}") for i in range(cfg.ofi_levels)],
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
    probe = pl.LazyFrame(schema={
        "ts": pl.Datetime("ns", "UTC"), "gap": pl.Boolean,
        **{c: pl.List(pl.Float64) for c in ("bid_px", "bid_sz", "ask_px", "ask_sz")},
    })
    trades = pl.LazyFrame(schema={"ts_recv": pl.Datetime("ns", "UTC"), "size": pl.Float64,
                                  "side": pl.Int8})
    lf = snapshot_features(prepare_book(probe, cfg.levels), trades, cfg, interval_ns)
    names = [c for c in lf.collect_schema().names() if c in BOOK_COLUMNS or is_feature_column(c)]
    return [*BOOK_COLUMNS, *[c for c in names if c not in BOOK_COLUMNS]] + (
        ["microprice"] if cfg.microprice else [])


BOOK_COLUMNS = ("best_bid", "best_ask", "best_bid_sz", "best_ask_sz", "mid")
_SOURCE_COLUMNS = {"ts", "ts_event", "ts_recv", "seq", "bid_px", "bid_sz", "ask_px", "ask_sz",
                   "n_updates", "gap"}


def is_feature_column(column: str) -> bool:
    return not column.startswith("_") and column not in _SOURCE_COLUMNS
