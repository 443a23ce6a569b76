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
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pyarrow as pa

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
    received_trades,
    snapshot_features,
)
from features.labels import HEAD_COLUMNS, BookHead, book_head, label_columns
from features.level_pages import DecodedRowGroup
from features.microprice import MicropriceTable, fit_microprice, microprice_expr
from features.partitions import (
    Partition,
    SnapshotBooks,
    read_snapshot_batches,
    read_snapshot_books,
    scan_snapshots,
    scan_trades,
    snapshot_partitions,
)

DEFAULT_HORIZONS_NS = [h * NS_PER_UNIT["s"] for h in (1, 5, 10, 30, 60)]
# Without an explicit end, the micro-price is fitted on the first 60% of each
# symbol's time range: the training share of the default chronological split.
DEFAULT_MICROPRICE_TRAIN_FRACTION = 0.6


def _book(snapshots: pl.LazyFrame | Iterable[pa.RecordBatch | DecodedRowGroup],
          config: FeatureConfig) -> pl.DataFrame:
    if isinstance(snapshots, pl.LazyFrame):
        table = snapshots.select(SNAPSHOT_COLUMNS).collect().to_arrow()
        return prepare_book(table.to_batches(), config, table.num_rows)
    rows = snapshots.num_rows if isinstance(snapshots, SnapshotBooks) else 0
    return prepare_book(snapshots, config, rows)


def feature_frame(
    snapshots: pl.LazyFrame | Iterable[pa.RecordBatch | DecodedRowGroup],
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
    # Beside the main thread, on the core the walk and polars leave idle part of the time:
    # the trades are read while the snapshots decode, and the labels (which need only the
    # book's touch; the features keep its rows and order) computed while polars computes
    # the features.
    received = _BESIDE.submit(received_trades, trades) if trades is not None else None
    book = _book(snapshots, config)
    labels = _BESIDE.submit(label_columns, book, horizons_ns, interval_ns, fee_bps, next_head)
    # The book is in memory already. Polars' default engine (streaming) took three times the
    # CPU on these windows and cut the frame into ~70 chunks, which every later select then
    # glued together again.
    read = received.result() if received is not None else None
    frame = snapshot_features(book.lazy(), read, config, interval_ns).collect(engine="in-memory")
    return frame.with_columns(labels.result())


_BESIDE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="features")


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
    snapshots: pl.LazyFrame | Iterable[pa.RecordBatch | DecodedRowGroup],
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

    `snapshots` is the partition's snapshots as a LazyFrame, or as batches of
    `SNAPSHOT_COLUMNS` streamed from the files (`read_snapshot_books`, which keeps the
    100-level lists out of memory but for two row groups at a time).
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
    # select first: filtering the whole frame would copy every feature column
    return (frame.select(*_MICROPRICE_INPUTS, "_ts_ns").filter(pl.col("_ts_ns") < train_end_ns)
            .drop("_ts_ns"))


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


# Chosen by measurement on real-like partitions (bench/features.py --codecs): polars'
# multi-threaded writer; lz4 writes and reads back fastest of the codecs that still
# compress (zstd is a third smaller and slower both ways).
FEATURES_COMPRESSION = "lz4"


def write_partition(frame: pl.DataFrame, out_dir: Path, metadata: dict[bytes, bytes]) -> Path:
    """Replace the partition's files with one new file, written under a temporary name first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    first_ts = frame["ts"].dt.epoch("ns")[0] if frame.height else 0
    final = out_dir / f"part-{first_ts}.parquet"
    tmp = out_dir / f".{final.name}.tmp"
    # the metadata goes into the Arrow schema too, where pyarrow's readers look for it
    schema = frame.head(0).to_arrow().schema.with_metadata(metadata)
    try:
        frame.write_parquet(tmp, compression=FEATURES_COMPRESSION, arrow_schema=schema,
                            metadata={k.decode(): v.decode() for k, v in metadata.items()})
        for stale in out_dir.glob("part-*.parquet"):
            if stale != final:
                stale.unlink()
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


class _WaitingFrames:
    """Feature frames computed before their symbol's micro-price table is fitted.

    They wait in memory (a frame is a fifth of its snapshots' size), so nothing is
    decoded or computed twice; past `budget_bytes` (many training days at once) the
    rest wait in uncompressed Arrow files beside their output.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.held_bytes = 0
        self._frames: list[tuple[Partition, Path, pl.DataFrame | Path]] = []

    def add(self, partition: Partition, out_dir: Path, frame: pl.DataFrame) -> None:
        size = frame.estimated_size()
        if self.held_bytes + size <= self.budget_bytes:
            self.held_bytes += size
            self._frames.append((partition, out_dir, frame))
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        spill = out_dir / ".features-before-microprice.arrow.tmp"
        frame.write_ipc(spill, compression="uncompressed")
        self._frames.append((partition, out_dir, spill))

    def drain(self) -> Iterator[tuple[Partition, Path, pl.DataFrame]]:
        """The waiting frames in the order they came, each let go once handed over."""
        while self._frames:
            partition, out_dir, held = self._frames.pop(0)
            if isinstance(held, Path):
                frame = pl.read_ipc(held)
                held.unlink()
            else:
                frame = held
                self.held_bytes -= frame.estimated_size()
            yield partition, out_dir, frame

    def discard(self) -> None:
        for _, _, held in self._frames:
            if isinstance(held, Path):
                held.unlink(missing_ok=True)
        self._frames.clear()


# Frames waiting for a micro-price fit stay in memory up to this size (about 4 days of
# 100 ms rows of the default set); beyond it they wait on disk.
WAITING_FRAMES_BUDGET_BYTES = 2 << 30


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
            fee = fees[group[0].venue]
            # The micro-price table needs every training row of the symbol (the earliest
            # partitions); their frames wait until it is fitted, the later ones go
            # straight out.
            train_end = None
            if config.microprice:
                train_end = train_ends[key] = (
                    microprice_train_end_ns if microprice_train_end_ns is not None
                    else _microprice_train_end(group, DEFAULT_MICROPRICE_TRAIN_FRACTION))
            waiting = _WaitingFrames(WAITING_FRAMES_BUDGET_BYTES)
            train: list[pl.DataFrame] = []
            try:
                for i, p in enumerate(group):
                    trades = scan_trades(root, p)
                    frame = feature_frame(
                        read_snapshot_books(p, SNAPSHOT_COLUMNS), trades,
                        interval_ns=p.interval_ns, config=config, horizons_ns=horizons,
                        fee_bps=fee, next_head=next_partition_head(group, i, horizons))
                    sources.append({"venue": p.venue, "symbol": p.symbol, "date": p.date,
                                    "rows": frame.height, "interval_ns": p.interval_ns,
                                    "files": [str(f.relative_to(root)) for f in p.files],
                                    "trades": trades is not None})
                    out_dir = partition_dir(root / "features", feature_set, p.venue, p.symbol,
                                            p.date)
                    if train_end is None or key in tables:
                        written += _write(frame, config, tables.get(key), p, out_dir,
                                          feature_set, fee)
                    else:
                        train.append(training_rows(frame, train_end))
                        waiting.add(p, out_dir, frame)
                        if frame.height and frame["_ts_ns"][-1] >= train_end:
                            # later partitions hold no training rows: fit now
                            tables[key] = fit_microprice_on_training(pl.concat(train), group[0])
                            for q, q_dir, held in waiting.drain():
                                written += _write(held, config, tables[key], q, q_dir,
                                                  feature_set, fee)
                    del frame
                    advance(p.key)
                if train_end is not None and key not in tables:
                    tables[key] = fit_microprice_on_training(pl.concat(train), group[0])
                    for q, q_dir, held in waiting.drain():
                        written += _write(held, config, tables[key], q, q_dir, feature_set, fee)
            finally:
                waiting.discard()

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


def _write(frame: pl.DataFrame, config: FeatureConfig, microprice: MicropriceTable | None,
           p: Partition, out_dir: Path, feature_set: str, fee: float) -> list[Path]:
    """The partition's output file (none for a partition without rows)."""
    if not frame.height:
        return []
    frame = with_microprice(frame, config, microprice)
    meta = file_metadata(p.venue, p.symbol, feature_set=feature_set,
                         interval_ns=p.interval_ns, fee_bps=fee)
    return [write_partition(frame.select(output_columns(frame)), out_dir, meta)]


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
