"""Labels: fee-aware three-class labels (DESIGN.md) and the FI-2010 research label.

Fee-aware, horizon h (n grid rows), taker fee f bps per side:
    long wins  if bid[t+h] / ask[t] - 1 > 2f      (buy at the ask, sell at the bid)
    short wins if 1 - ask[t+h] / bid[t] > 2f      (sell at the bid, buy back at the ask)
    y = +1 / -1 / 0; null where t+h is past the data, off the grid, or across a gap.
Both cannot win on an uncrossed book; should a crossed book make both true, +1 wins.

Research (FI-2010, Ntakaris et al. 2018): the mean mid over the next k rows against
the current mid, l = mean(mid[t+1..t+k]) / mid[t] - 1, with y = sign(l) where
|l| > alpha and 0 otherwise; alpha is fitted on training rows only.

The expressions need `_ts_ns`, `_seg` (from `features.definitions.prepare_book` or
`with_grid`), `best_bid`, `best_ask` and `mid`.
"""

from __future__ import annotations

import polars as pl

from bookcast.errors import UserError
from bookcast.timeutil import format_duration_ns
from features.definitions import BPS, rows_for


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


def forward_return(n: int, interval_ns: int) -> pl.Expr:
    return pl.when(forward_ok(n, interval_ns)).then(pl.col("mid").shift(-n) / pl.col("mid") - 1)


def long_edge(n: int, interval_ns: int) -> pl.Expr:
    """Gross return of buying at the ask now and selling at the bid n rows later."""
    return pl.when(forward_ok(n, interval_ns)).then(
        pl.col("best_bid").shift(-n) / pl.col("best_ask") - 1)


def short_edge(n: int, interval_ns: int) -> pl.Expr:
    """Gross return of selling at the bid now and buying back at the ask n rows later."""
    return pl.when(forward_ok(n, interval_ns)).then(
        1 - pl.col("best_ask").shift(-n) / pl.col("best_bid"))


def fee_aware_label(n: int, interval_ns: int, fee_bps: float) -> pl.Expr:
    if fee_bps < 0:
        raise UserError(f"The fee {fee_bps} bps is negative; fees are zero or more.")
    cost = 2 * fee_bps * BPS
    long_, short = long_edge(n, interval_ns), short_edge(n, interval_ns)
    return (
        pl.when(long_.is_null()).then(None)
        .when(long_ > cost).then(1)
        .when(short > cost).then(-1)
        .otherwise(0)
        .cast(pl.Int8)
    )


def label_columns(horizons_ns: list[int], interval_ns: int, fee_bps: float) -> list[pl.Expr]:
    """`fwd_ret_<h>` (float64, mid to mid) and `y_<h>` (int8) for each horizon."""
    out = []
    for h in horizons_ns:
        n = rows_for(h, interval_ns, what="horizon")
        name = format_duration_ns(h)
        out.append(forward_return(n, interval_ns).cast(pl.Float64).alias(f"fwd_ret_{name}"))
        out.append(fee_aware_label(n, interval_ns, fee_bps).alias(f"y_{name}"))
    return out


def fee_aware_labels(
    book: pl.DataFrame, horizons_ns: list[int], interval_ns: int, fee_bps: float
) -> pl.DataFrame:
    """Labels for a frame with `ts`, `best_bid`, `best_ask`, `mid` (and `gap` if known)."""
    return with_grid(book).select("ts", *label_columns(horizons_ns, interval_ns, fee_bps)).collect()


# ---------------------------------------------------------------- research label


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
