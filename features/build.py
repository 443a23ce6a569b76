"""`bookcast features`: snapshots + trades -> features and fee-aware labels, one partition at a time.

`partition_features` is a pure function of one (venue, symbol, date) partition
(plus the fitted micro-price table, which is fixed before the map starts), so an
existing cluster engine could map it over partitions. `build_features` is the
local driver: fit on training rows, map, write each output with temp-then-rename,
and store the full configuration beside the dataset.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

import bookcast
from bookcast.errors import UserError
from bookcast.fees import DEFAULT_PRESET_FOR_VENUE, taker_fee_bps
from bookcast.paths import data_root, features_dir, partition_dir
from bookcast.schema import file_metadata
from bookcast.timeutil import NS_PER_UNIT, format_duration_ns
from features.definitions import (
    BOOK_COLUMNS,
    FeatureConfig,
    feature_config,
    is_feature_column,
    prepare_book,
    snapshot_features,
)
from features.labels import label_columns
from features.microprice import MicropriceTable, fit_microprice, microprice_expr
from features.partitions import Partition, scan_snapshots, scan_trades, snapshot_partitions

DEFAULT_HORIZONS_NS = [h * NS_PER_UNIT["s"] for h in (1, 5, 10, 30, 60)]
# Without an explicit end, the micro-price is fitted on the first 60% of each
# symbol's time range: the training share of the default chronological split.
DEFAULT_MICROPRICE_TRAIN_FRACTION = 0.6


def partition_features(
    snapshots: pl.LazyFrame,
    trades: pl.LazyFrame | None,
    *,
    interval_ns: int,
    config: FeatureConfig,
    horizons_ns: Sequence[int],
    fee_bps: float,
    microprice: MicropriceTable | None = None,
) -> pl.LazyFrame:
    """`ts`, book columns, features, `fwd_ret_<h>` and `y_<h>` for one partition."""
    # Materialising between stages keeps polars from re-deriving the level columns and
    # window masks inside every expression that uses them (3-4x faster on 100 levels).
    book = prepare_book(snapshots, config.levels).collect().lazy()
    lf = snapshot_features(book, trades, config, interval_ns).collect().lazy()
    if config.microprice:
        lf = lf.with_columns(microprice_expr(microprice) if microprice is not None
                             else pl.lit(None, pl.Float64).alias("microprice"))
    lf = lf.with_columns(label_columns(list(horizons_ns), interval_ns, fee_bps))
    names = lf.collect_schema().names()
    features = [c for c in names if is_feature_column(c) and c not in BOOK_COLUMNS
                and not c.startswith(("fwd_ret_", "y_"))]
    labels = [c for c in names if c.startswith(("fwd_ret_", "y_"))]
    return lf.select("ts", *BOOK_COLUMNS, *features, *labels)


def _microprice_train_end(partitions: list[Partition], fraction: float) -> int:
    span = (
        pl.concat([scan_snapshots(p).select("ts") for p in partitions])
        .select(pl.col("ts").min().dt.epoch("ns").alias("lo"),
                pl.col("ts").max().dt.epoch("ns").alias("hi"))
        .collect()
    )
    lo, hi = span["lo"][0], span["hi"][0]
    return int(lo + fraction * (hi - lo))


def fit_microprice_on_training(
    partitions: list[Partition], train_end_ns: int
) -> MicropriceTable | None:
    """Fit one symbol's micro-price table on its rows with ts < train_end_ns only."""
    tick = partitions[0].tick_size
    if tick is None or tick <= 0:
        return None  # without a tick size the spread states are undefined
    end = pl.lit(train_end_ns).cast(pl.Datetime("ns", "UTC"))
    train = pl.concat([
        scan_snapshots(p).filter(pl.col("ts") < end).select(
            "ts", "gap",
            pl.col("bid_px").list.first().alias("best_bid"),
            pl.col("ask_px").list.first().alias("best_ask"),
            pl.col("bid_sz").list.first().alias("best_bid_sz"),
            pl.col("ask_sz").list.first().alias("best_ask_sz"),
        )
        for p in partitions
    ]).collect()
    if train.height < 2:
        return None
    return fit_microprice(train, tick_size=tick, interval_ns=partitions[0].interval_ns)


def write_partition(frame: pl.DataFrame, out_dir: Path, metadata: dict[bytes, bytes]) -> Path:
    """Replace the partition's files with one new file, written under a temporary name first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    first_ts = frame["ts"].dt.epoch("ns")[0] if frame.height else 0
    final = out_dir / f"part-{first_ts}.parquet"
    tmp = out_dir / f".{final.name}.tmp"
    table = frame.to_arrow()
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata}),
                   tmp, compression="zstd")
    for stale in out_dir.glob("part-*.parquet"):
        if stale != final:
            stale.unlink()
    os.replace(tmp, final)
    return final


def build_features(
    data_dir: str | os.PathLike[str] | None,
    feature_set: str = "default",
    horizons_ns: Sequence[int] = tuple(DEFAULT_HORIZONS_NS),
    fee_bps: float | None = None,
    fee_preset: str | None = None,
    progress: bool = False,
    microprice_train_end_ns: int | None = None,
) -> list[Path]:
    """Build `features/<set>/` for every snapshots partition; returns the files written."""
    root = data_root(data_dir)
    config = feature_config(feature_set)
    horizons = sorted(set(int(h) for h in horizons_ns))
    if not horizons:
        raise UserError("No horizons were given; pass at least one, like --horizons 1s,10s.")
    partitions = snapshot_partitions(root)
    fees = {p.venue: taker_fee_bps(fee_preset, fee_bps, p.venue) for p in partitions}

    by_symbol: dict[tuple[str, str], list[Partition]] = {}
    for p in partitions:
        by_symbol.setdefault((p.venue, p.symbol), []).append(p)
    tables: dict[tuple[str, str], MicropriceTable | None] = {}
    train_ends: dict[tuple[str, str], int] = {}
    if config.microprice:
        for key, group in by_symbol.items():
            train_ends[key] = (microprice_train_end_ns if microprice_train_end_ns is not None
                               else _microprice_train_end(group, DEFAULT_MICROPRICE_TRAIN_FRACTION))
            tables[key] = fit_microprice_on_training(group, train_ends[key])

    written: list[Path] = []
    sources = []
    with _PartitionProgress(progress, len(partitions)) as advance:
        for p in partitions:
            lf = partition_features(
                scan_snapshots(p), scan_trades(root, p),
                interval_ns=p.interval_ns, config=config, horizons_ns=horizons,
                fee_bps=fees[p.venue], microprice=tables.get((p.venue, p.symbol)),
            )
            frame = lf.collect()
            out_dir = partition_dir(root / "features", feature_set, p.venue, p.symbol, p.date)
            meta = file_metadata(p.venue, p.symbol, feature_set=feature_set,
                                 interval_ns=p.interval_ns, fee_bps=fees[p.venue])
            if frame.height:
                written.append(write_partition(frame, out_dir, meta))
            sources.append({"venue": p.venue, "symbol": p.symbol, "date": p.date,
                            "rows": frame.height, "interval_ns": p.interval_ns,
                            "files": [str(f.relative_to(root)) for f in p.files],
                            "trades": scan_trades(root, p) is not None})
            advance(p.key)

    out = features_dir(root, feature_set)
    columns = pl.read_parquet_schema(written[0]) if written else {}
    config_json = {
        "feature_set": feature_set,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code_version": bookcast.__version__,
        "config": config.to_json(),
        "features": [c for c in columns if c != "ts" and not c.startswith(("fwd_ret_", "y_"))],
        "horizons": [format_duration_ns(h) for h in horizons],
        "horizons_ns": horizons,
        "labels": "fee-aware (DESIGN.md): long if bid[t+h]/ask[t]-1 > 2f, "
                  "short if 1-ask[t+h]/bid[t] > 2f",
        # One figure when every venue shares it (what a model's run records), else null.
        "fee_bps": next(iter(set(fees.values()))) if len(set(fees.values())) == 1 else None,
        "fee": {"fee_bps_override": fee_bps, "fee_preset": fee_preset,
                "taker_bps_by_venue": fees,
                "default_preset_by_venue": {v: DEFAULT_PRESET_FOR_VENUE.get(v) for v in fees}},
        "microprice": {
            f"{v} {s}": {"train_end_ns": train_ends.get((v, s)),
                         "table": t.to_json() if t is not None else None}
            for (v, s), t in tables.items()
        },
        "source": {"data_dir": str(root.resolve()), "partitions": sources},
    }
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".config.json.tmp"
    tmp.write_text(json.dumps(config_json, indent=2))
    os.replace(tmp, out / "config.json")
    return written


class _PartitionProgress:
    """A rich progress bar over partitions, or nothing when progress is off."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total

    def __enter__(self):
        if not self.enabled:
            return lambda key: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        self.bar.start()
        task = self.bar.add_task("features", total=self.total)
        return lambda key: self.bar.update(task, advance=1, description=key)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()
