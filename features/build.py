"""`bookcast features`: snapshots + trades -> features and fee-aware labels, one partition at a time.

`partition_features` is a pure function of one (venue, symbol, date) partition
(plus the fitted micro-price table, which is fixed before the map starts, and the head
of the next partition, which its last labels reach into), so an existing cluster engine
could map it over partitions. `build_features` is the
local driver: fit on training rows, map, write each output with temp-then-rename,
and store the full configuration beside the dataset.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

import bookcast
from bookcast.errors import UserError
from bookcast.fees import DEFAULT_PRESET_FOR_VENUE, taker_fee_bps
from bookcast.paths import data_root, features_dir, partition_dir
from bookcast.schema import file_metadata
from bookcast.timeutil import NS_PER_UNIT, format_duration_ns
from features.definitions import (
    BOOK_COLUMNS,
    SNAPSHOT_COLUMNS,
    FeatureConfig,
    feature_config,
    is_feature_column,
    prepare_book,
    snapshot_features,
)
from features.labels import HEAD_COLUMNS, BookHead, book_head, label_columns
from features.microprice import MicropriceTable, fit_microprice, microprice_expr
from features.partitions import (
    Partition,
    read_snapshot_batches,
    scan_snapshots,
    scan_trades,
    snapshot_partitions,
)

DEFAULT_HORIZONS_NS = [h * NS_PER_UNIT["s"] for h in (1, 5, 10, 30, 60)]
# Without an explicit end, the micro-price is fitted on the first 60% of each
# symbol's time range: the training share of the default chronological split.
DEFAULT_MICROPRICE_TRAIN_FRACTION = 0.6


def _book(snapshots: pl.LazyFrame | Iterable[pa.RecordBatch], config: FeatureConfig) -> pl.DataFrame:
    if isinstance(snapshots, pl.LazyFrame):
        batches = snapshots.select(SNAPSHOT_COLUMNS).collect().to_arrow().to_batches()
    else:
        batches = snapshots
    return prepare_book(batches, config)


def feature_frame(
    snapshots: pl.LazyFrame | Iterable[pa.RecordBatch],
    trades: pl.LazyFrame | None,
    *,
    interval_ns: int,
    config: FeatureConfig,
    horizons_ns: Sequence[int],
    fee_bps: float,
    next_head: BookHead | None = None,
) -> pl.DataFrame:
    """Every column `partition_features` outputs but the micro-price, plus `gap` and the
    working columns (`_*`) the micro-price fit needs. `next_head` (the first rows of the
    next partition, `next_partition_head`) lets labels near the end look past midnight."""
    book = _book(snapshots, config)
    frame = snapshot_features(book.lazy(), trades, config, interval_ns).collect()
    return frame.with_columns(label_columns(frame, horizons_ns, interval_ns, fee_bps, next_head))


def next_partition_head(group: list[Partition], i: int, horizons_ns: Sequence[int]
                        ) -> BookHead | None:
    """The rows of the partition after group[i] that its labels reach (one horizon), if
    it continues the same grid."""
    if i + 1 >= len(group) or group[i + 1].interval_ns != group[i].interval_ns:
        return None
    return book_head(read_snapshot_batches(group[i + 1], HEAD_COLUMNS, batch_rows=4096),
                     max(horizons_ns))


def output_columns(frame: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """`ts`, book columns, features (micro-price last), then `fwd_ret_<h>` and `y_<h>`."""
    names = frame.collect_schema().names()
    features = [c for c in names if is_feature_column(c) and c not in BOOK_COLUMNS
                and c != "microprice" and not c.startswith(("fwd_ret_", "y_"))]
    labels = [c for c in names if c.startswith(("fwd_ret_", "y_"))]
    micro = ["microprice"] if "microprice" in names else []
    return ["ts", *BOOK_COLUMNS, *features, *micro, *labels]


def with_microprice(
    frame: pl.DataFrame, config: FeatureConfig, microprice: MicropriceTable | None
) -> pl.DataFrame:
    if not config.microprice:
        return frame
    return frame.with_columns(microprice_expr(microprice) if microprice is not None
                              else pl.lit(None, pl.Float64).alias("microprice"))


def partition_features(
    snapshots: pl.LazyFrame | Iterable[pa.RecordBatch],
    trades: pl.LazyFrame | None,
    *,
    interval_ns: int,
    config: FeatureConfig,
    horizons_ns: Sequence[int],
    fee_bps: float,
    microprice: MicropriceTable | None = None,
    next_head: BookHead | None = None,
) -> pl.LazyFrame:
    """`ts`, book columns, features, `fwd_ret_<h>` and `y_<h>` for one partition.

    `snapshots` is the partition's snapshots as a LazyFrame or as Arrow record batches of
    `SNAPSHOT_COLUMNS` (streamed from the files by `read_snapshot_batches`, which keeps
    the 100-level lists out of memory but for one batch at a time).
    """
    frame = feature_frame(snapshots, trades, interval_ns=interval_ns, config=config,
                          horizons_ns=horizons_ns, fee_bps=fee_bps, next_head=next_head)
    frame = with_microprice(frame, config, microprice)
    return frame.lazy().select(output_columns(frame))


def _microprice_train_end(partitions: list[Partition], fraction: float) -> int:
    span = (
        pl.concat([scan_snapshots(p).select("ts") for p in partitions])
        .select(pl.col("ts").min().dt.epoch("ns").alias("lo"),
                pl.col("ts").max().dt.epoch("ns").alias("hi"))
        .collect()
    )
    lo, hi = span["lo"][0], span["hi"][0]
    return int(lo + fraction * (hi - lo))


_MICROPRICE_INPUTS = ("ts", "gap", "best_bid", "best_ask", "best_bid_sz", "best_ask_sz")


def training_rows(frame: pl.DataFrame, train_end_ns: int) -> pl.DataFrame:
    """The rows of a feature frame the micro-price may be fitted on (ts < train_end_ns)."""
    return frame.filter(pl.col("_ts_ns") < train_end_ns).select(_MICROPRICE_INPUTS)


def fit_microprice_on_training(
    train: pl.DataFrame, partition: Partition
) -> MicropriceTable | None:
    """Fit one symbol's micro-price table on its training rows (`training_rows`)."""
    tick = partition.tick_size
    if tick is None or tick <= 0:
        return None  # without a tick size the spread states are undefined
    if train.height < 2:
        return None
    return fit_microprice(train, tick_size=tick, interval_ns=partition.interval_ns)


def write_partition(frame: pl.DataFrame, out_dir: Path, metadata: dict[bytes, bytes]) -> Path:
    """Replace the partition's files with one new file, written under a temporary name first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    first_ts = frame["ts"].dt.epoch("ns")[0] if frame.height else 0
    final = out_dir / f"part-{first_ts}.parquet"
    tmp = out_dir / f".{final.name}.tmp"
    table = frame.to_arrow()
    # No dictionaries: float features hardly repeat, and building them triples write time.
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata}),
                   tmp, compression="zstd", use_dictionary=False)
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
    written: list[Path] = []
    sources = []
    with _PartitionProgress(progress, len(partitions)) as advance:
        for key, group in by_symbol.items():
            if config.microprice:
                train_ends[key] = (
                    microprice_train_end_ns if microprice_train_end_ns is not None
                    else _microprice_train_end(group, DEFAULT_MICROPRICE_TRAIN_FRACTION))
            # The micro-price table needs every training row of the symbol, and each
            # partition's features are computed once: they wait in an uncompressed Arrow
            # file (fast to write and to map back) until the table is fitted, instead of
            # decoding the 100-level snapshots a second time for the fit.
            pending: list[tuple[Partition, Path, Path]] = []
            train: list[pl.DataFrame] = []
            try:
                for i, p in enumerate(group):
                    frame = feature_frame(
                        read_snapshot_batches(p, SNAPSHOT_COLUMNS), scan_trades(root, p),
                        interval_ns=p.interval_ns, config=config, horizons_ns=horizons,
                        fee_bps=fees[p.venue],
                        next_head=next_partition_head(group, i, horizons))
                    out_dir = partition_dir(root / "features", feature_set, p.venue, p.symbol,
                                            p.date)
                    sources.append({"venue": p.venue, "symbol": p.symbol, "date": p.date,
                                    "rows": frame.height, "interval_ns": p.interval_ns,
                                    "files": [str(f.relative_to(root)) for f in p.files],
                                    "trades": scan_trades(root, p) is not None})
                    if config.microprice:
                        train.append(training_rows(frame, train_ends[key]))
                    if frame.height and config.microprice:
                        out_dir.mkdir(parents=True, exist_ok=True)
                        spill = out_dir / ".features-before-microprice.arrow.tmp"
                        frame.select(output_columns(frame)).write_ipc(spill, compression="uncompressed")
                        pending.append((p, out_dir, spill))
                    elif frame.height:
                        written.append(_write(frame.select(output_columns(frame)), p, out_dir,
                                              feature_set, fees[p.venue]))
                    del frame
                    advance(p.key)
                if config.microprice:
                    tables[key] = fit_microprice_on_training(pl.concat(train), group[0])
                del train
                for p, out_dir, spill in pending:
                    frame = with_microprice(pl.read_ipc(spill), config,
                                            tables[key])
                    written.append(_write(frame.select(output_columns(frame)), p, out_dir,
                                          feature_set, fees[p.venue]))
                    del frame
            finally:
                for _, _, spill in pending:
                    spill.unlink(missing_ok=True)

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


def _write(frame: pl.DataFrame, p: Partition, out_dir: Path, feature_set: str,
           fee: float) -> Path:
    meta = file_metadata(p.venue, p.symbol, feature_set=feature_set,
                         interval_ns=p.interval_ns, fee_bps=fee)
    return write_partition(frame, out_dir, meta)


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
