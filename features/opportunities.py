"""`bookcast opportunities`: how often would a long or a short have paid spread and fees?

For each (venue, symbol), horizon h and fee level f (bps per side), over every
labelled snapshot row (t+h on the same gap segment and grid):
- share_long / share_short: rows whose fee-aware label (features.labels) is +1 / -1,
- mean_abs_move_bps: mean |mid[t+h] / mid[t] - 1|,
- round_trip_cost_bps: mean relative spread plus 2f, the cost of a round trip,
- move_over_cost: the ratio of the two; below 1 the average move cannot pay its way.
Saved to <data root>/reports/opportunities.parquet for the dashboard.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from bookcast.paths import data_root
from bookcast.timeutil import format_duration_ns
from features.definitions import BPS, rows_for
from features.labels import fee_aware_label, forward_return, with_grid
from features.partitions import Partition, scan_snapshots, snapshot_partitions

DEFAULT_FEE_LEVELS_BPS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0)
COLUMNS = ("venue", "symbol", "horizon", "horizon_ns", "fee_bps", "rows", "share_long",
           "share_short", "share_either", "mean_abs_move_bps", "mean_spread_bps",
           "round_trip_cost_bps", "move_over_cost")


def report_path(root: Path) -> Path:
    return root / "reports" / "opportunities.parquet"


def partition_counts(
    partition: Partition, horizons_ns: Sequence[int], fee_levels_bps: Sequence[float]
) -> pl.DataFrame:
    """Sums for one partition (pure): rows, long/short wins, |move| and spread in bps."""
    book = with_grid(scan_snapshots(partition).select(
        "ts", "gap",
        pl.col("bid_px").list.first().alias("best_bid"),
        pl.col("ask_px").list.first().alias("best_ask"),
    )).with_columns(((pl.col("best_bid") + pl.col("best_ask")) / 2).alias("mid"))
    interval = partition.interval_ns
    parts = []
    for h in horizons_ns:
        n = rows_for(h, interval, what="horizon")
        move = forward_return(n, interval)
        labelled = move.is_not_null()
        spread_bps = (pl.col("best_ask") - pl.col("best_bid")) / pl.col("mid") / BPS
        aggs = [
            labelled.sum().alias("rows"),
            (move.abs() / BPS).sum().alias("sum_abs_move_bps"),
            spread_bps.filter(labelled).sum().alias("sum_spread_bps"),
        ]
        for i, fee in enumerate(fee_levels_bps):
            y = fee_aware_label(n, interval, fee)
            aggs += [(y == 1).sum().alias(f"long_{i}"), (y == -1).sum().alias(f"short_{i}")]
        sums = book.select(aggs).collect().row(0, named=True)
        for i, fee in enumerate(fee_levels_bps):
            parts.append({
                "venue": partition.venue, "symbol": partition.symbol,
                "horizon": format_duration_ns(h), "horizon_ns": int(h), "fee_bps": float(fee),
                "rows": sums["rows"], "long": sums[f"long_{i}"], "short": sums[f"short_{i}"],
                "sum_abs_move_bps": sums["sum_abs_move_bps"] or 0.0,
                "sum_spread_bps": sums["sum_spread_bps"] or 0.0,
            })
    return pl.DataFrame(parts)


def opportunity_table(
    data_dir: str | os.PathLike[str] | None,
    horizons_ns: Sequence[int],
    fee_levels_bps: Sequence[float] = DEFAULT_FEE_LEVELS_BPS,
) -> pl.DataFrame:
    """The report over every snapshots partition (sums per partition, then combined)."""
    root = data_root(data_dir)
    counts = pl.concat([partition_counts(p, horizons_ns, fee_levels_bps)
                        for p in snapshot_partitions(root)])
    rows = pl.col("rows")
    return (
        counts.group_by("venue", "symbol", "horizon", "horizon_ns", "fee_bps")
        .agg(pl.col("rows", "long", "short", "sum_abs_move_bps", "sum_spread_bps").sum())
        .with_columns(
            pl.when(rows > 0).then(pl.col("long") / rows).alias("share_long"),
            pl.when(rows > 0).then(pl.col("short") / rows).alias("share_short"),
            pl.when(rows > 0).then((pl.col("long") + pl.col("short")) / rows)
            .alias("share_either"),
            pl.when(rows > 0).then(pl.col("sum_abs_move_bps") / rows).alias("mean_abs_move_bps"),
            pl.when(rows > 0).then(pl.col("sum_spread_bps") / rows).alias("mean_spread_bps"),
        )
        .with_columns((pl.col("mean_spread_bps") + 2 * pl.col("fee_bps"))
                      .alias("round_trip_cost_bps"))
        .with_columns(pl.when(pl.col("round_trip_cost_bps") > 0)
                      .then(pl.col("mean_abs_move_bps") / pl.col("round_trip_cost_bps"))
                      .alias("move_over_cost"))
        .sort("venue", "symbol", "horizon_ns", "fee_bps")
        .select(COLUMNS)
    )


def write_report(table: pl.DataFrame, root: Path) -> Path:
    path = report_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    table.write_parquet(tmp)
    os.replace(tmp, path)
    return path
