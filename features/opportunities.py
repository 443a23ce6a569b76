"""`bookcast opportunities`: how often would a long or a short have paid spread and fees?

For each (venue, symbol), horizon h and fee level f (bps per side), over every
labelled snapshot row (a round trip exists: t+h on the same gap segment and grid, across
date partitions):
- share_long / share_short: rows whose fee-aware label (`features.labels.round_trips`)
  is +1 / -1,
- mean_abs_move_bps: mean |mid[t+h] / mid[t] - 1|,
- round_trip_cost_bps: mean relative spread plus 2f, the cost of a round trip,
- move_over_cost: the ratio of the two; below 1 the average move cannot pay its way.
Saved to <data root>/reports/opportunities.parquet for the dashboard.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from bookcast.paths import data_root
from bookcast.timeutil import format_duration_ns
from features.definitions import BPS, rows_for
from features.labels import HEAD_COLUMNS, BookHead, book_head, fee_aware_side, round_trips
from features.partitions import (
    Partition,
    read_snapshot_batches,
    scan_snapshots,
    snapshot_partitions,
)

DEFAULT_FEE_LEVELS_BPS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0)
COLUMNS = ("venue", "symbol", "horizon", "horizon_ns", "fee_bps", "rows", "share_long",
           "share_short", "share_either", "mean_abs_move_bps", "mean_spread_bps",
           "round_trip_cost_bps", "move_over_cost")


def report_path(root: Path) -> Path:
    return root / "reports" / "opportunities.parquet"


def partition_counts(
    partition: Partition, horizons_ns: Sequence[int], fee_levels_bps: Sequence[float],
    next_head: BookHead | None = None,
) -> pl.DataFrame:
    """Sums for one partition (pure, given the head of the next partition that its last
    round trips reach): rows, long/short wins, |move| and spread in bps."""
    book = scan_snapshots(partition).select(
        pl.col("ts").dt.epoch("ns").alias("ts"), pl.col("gap").fill_null(False),
        pl.col("bid_px").list.first().cast(pl.Float64).fill_null(np.nan).alias("bid"),
        pl.col("ask_px").list.first().cast(pl.Float64).fill_null(np.nan).alias("ask"),
    ).collect().sort("ts")
    n_rows = book.height
    ts, gap = book["ts"].to_numpy(), book["gap"].to_numpy()
    bid, ask = book["bid"].to_numpy(), book["ask"].to_numpy()
    if next_head is not None and len(next_head):
        ts, gap = np.concatenate([ts, next_head.ts]), np.concatenate([gap, next_head.gap])
        bid, ask = np.concatenate([bid, next_head.bid]), np.concatenate([ask, next_head.ask])
    mid = (bid + ask) / 2.0
    rows = np.arange(n_rows, dtype=np.int64)
    parts = []
    for h in horizons_ns:
        rows_for(h, partition.interval_ns, what="horizon")
        # One set of round trips for every fee level: fees only shift the net returns.
        trips = round_trips(ts, gap, bid, ask, h, entry=rows)
        labelled = trips.exit >= 0
        x = trips.exit[labelled]
        with np.errstate(invalid="ignore", divide="ignore"):
            move_bps = np.abs(mid[x] / mid[rows[labelled]] - 1.0) / BPS
            spread_bps = (ask[rows[labelled]] - bid[rows[labelled]]) / mid[rows[labelled]] / BPS
        for fee in fee_levels_bps:
            side = fee_aware_side(*trips.net(fee))[labelled]
            parts.append({
                "venue": partition.venue, "symbol": partition.symbol,
                "horizon": format_duration_ns(h), "horizon_ns": int(h), "fee_bps": float(fee),
                "rows": int(labelled.sum()), "long": int((side == 1).sum()),
                "short": int((side == -1).sum()),
                "sum_abs_move_bps": float(np.nansum(move_bps)),
                "sum_spread_bps": float(np.nansum(spread_bps)),
            })
    return pl.DataFrame(parts)


def opportunity_table(
    data_dir: str | os.PathLike[str] | None,
    horizons_ns: Sequence[int],
    fee_levels_bps: Sequence[float] = DEFAULT_FEE_LEVELS_BPS,
) -> pl.DataFrame:
    """The report over every snapshots partition (sums per partition, then combined)."""
    root = data_root(data_dir)
    partitions = snapshot_partitions(root)
    counts = pl.concat([partition_counts(p, horizons_ns, fee_levels_bps,
                                         _head_after(partitions, i, horizons_ns))
                        for i, p in enumerate(partitions)])
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


def _head_after(partitions: list[Partition], i: int, horizons_ns: Sequence[int]
                ) -> BookHead | None:
    """The head of the next date of the same venue and symbol, which the labels reach."""
    p = partitions[i]
    if i + 1 >= len(partitions) or not horizons_ns:
        return None
    after = partitions[i + 1]
    if (after.venue, after.symbol, after.interval_ns) != (p.venue, p.symbol, p.interval_ns):
        return None
    return book_head(read_snapshot_batches(after, HEAD_COLUMNS, batch_rows=4096),
                     max(horizons_ns))


def write_report(table: pl.DataFrame, root: Path) -> Path:
    path = report_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    table.write_parquet(tmp)
    os.replace(tmp, path)
    return path
