"""Finding and reading the (venue, symbol, date) partitions of the snapshots and trades datasets.

A partition is the unit of work: feature building maps one function over them,
so a cluster engine could run each on its own worker.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from bookcast.errors import UserError
from bookcast.paths import partition_dir
from bookcast.schema import LEVEL_COLUMNS
from features.level_pages import (
    ChunkBuffers,
    ColumnLayout,
    DecodedRowGroup,
    LevelList,
    UnsupportedPagesError,
    column_layouts,
    read_level_list,
)


@dataclass(frozen=True)
class Partition:
    venue: str
    symbol: str  # as the venue spells it (from the file metadata)
    date: str
    files: tuple[Path, ...]
    interval_ns: int
    depth: int | None
    tick_size: float | None

    @property
    def key(self) -> str:
        return f"{self.venue} {self.symbol} {self.date}"


def _hive_value(path: Path, key: str) -> str:
    name = path.name
    if not name.startswith(f"{key}="):
        raise UserError(f"The folder {path} is not a '{key}=' partition of the snapshots dataset.")
    return name.split("=", 1)[1]


def parquet_files(folder: Path) -> tuple[Path, ...]:
    """Finished Parquet files only: temporary names are still being written."""
    return tuple(sorted(p for p in folder.glob("*.parquet") if p.is_file()))


def snapshot_partitions(root: Path) -> list[Partition]:
    """Every snapshots partition under the data root, in (venue, symbol, date) order."""
    base = root / "snapshots"
    found = []
    for folder in sorted(base.glob("venue=*/symbol=*/date=*")):
        files = parquet_files(folder)
        if not files:
            continue
        try:
            meta = pq.read_schema(files[0]).metadata or {}
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise UserError(f"The snapshot file {files[0]} is not readable Parquet ({exc}).") from None
        meta = {k.decode(): v.decode() for k, v in meta.items()}
        if "interval_ns" not in meta:
            raise UserError(f"The snapshot file {files[0]} has no interval_ns metadata; "
                            "rewrite it with `bookcast replay`.")
        found.append(Partition(
            venue=meta.get("venue", _hive_value(folder.parents[1], "venue")),
            symbol=meta.get("symbol", _hive_value(folder.parent, "symbol")),
            date=_hive_value(folder, "date"),
            files=files,
            interval_ns=int(meta["interval_ns"]),
            depth=int(meta["depth"]) if meta.get("depth", "").isdigit() else None,
            tick_size=float(meta["tick_size"]) if meta.get("tick_size") not in (None, "", "None")
            else None,
        ))
    if not found:
        raise UserError(
            f"There are no snapshots under {base}; write some first with "
            f"`bookcast replay CAPTURE --data-dir {root}` (or `bookcast collect`)."
        )
    return found


def scan_snapshots(partition: Partition) -> pl.LazyFrame:
    return pl.scan_parquet(list(partition.files))


def scan_trades(root: Path, partition: Partition) -> pl.LazyFrame | None:
    """The same (venue, symbol, date) of the trades dataset, or None if it was not recorded."""
    folder = partition_dir(root, "trades", partition.venue, partition.symbol, partition.date)
    files = parquet_files(folder) if folder.is_dir() else ()
    return pl.scan_parquet(list(files)) if files else None


def read_snapshot_batches(
    partition: Partition, columns: Sequence[str], batch_rows: int = 4096
) -> Iterator[pa.RecordBatch]:
    """The partition's snapshots as Arrow record batches of `columns` only, file by file.

    Streaming keeps two batches of the 100-level lists in memory at a time (a whole
    partition decoded at once weighs about 3 kB a row). Two threads share the decoding,
    each reading half of the list columns, and the next batch is decoded while the caller
    walks this one.
    """
    with ThreadPoolExecutor(2, thread_name_prefix="decode") as pool:
        for path in partition.files:
            yield from _arrow_batches(path, columns, batch_rows, pool)


def _arrow_batches(path: Path, columns: Sequence[str], batch_rows: int,
                   pool: ThreadPoolExecutor) -> Iterator[pa.RecordBatch]:
    groups = _decode_groups(columns)
    readers = [_parquet_file(path).iter_batches(batch_size=batch_rows, columns=group)
               for group in groups]
    decoding = [pool.submit(next, reader, None) for reader in readers]
    while True:
        try:
            parts = [future.result() for future in decoding]
        except (OSError, pa.ArrowException) as exc:
            raise _damaged(path, exc) from None
        if parts[0] is None:
            return
        decoding = [pool.submit(next, reader, None) for reader in readers]
        arrays = {name: part.column(name) for part in parts for name in part.schema.names}
        yield pa.RecordBatch.from_arrays([arrays[c] for c in columns], names=list(columns))


# A row group whose list columns hold more levels than this is streamed by pyarrow in
# small batches instead (a decoded chunk stays in memory whole, twice over): the
# collector's groups hold about a million (collector.writers.ROW_GROUP_LEVELS).
MAX_DECODED_LEVELS = 1 << 22


class SnapshotBooks:
    """A partition's snapshots for a feature build (`read_snapshot_books`): iterating gives
    the row groups, `num_rows` their count from the footers, before any is decoded (the
    walk then writes its columns in place, `features.definitions.BookColumns`)."""

    def __init__(self, partition: Partition, columns: Sequence[str]) -> None:
        self.partition, self.columns = partition, tuple(columns)

    @property
    def num_rows(self) -> int:
        return sum(_parquet_file(path).metadata.num_rows for path in self.partition.files)

    def __iter__(self) -> Iterator[DecodedRowGroup | pa.RecordBatch]:
        return _snapshot_books(self.partition, self.columns)


def read_snapshot_books(partition: Partition, columns: Sequence[str]) -> SnapshotBooks:
    """The partition's snapshots for a feature build, a row group at a time, the level
    lists decoded by `features.level_pages` (2.4 times less CPU than pyarrow's lists).

    Two threads decode the next row group, a column a job, while the caller walks this one
    (decoding two or three ahead measured no faster). Row groups alternate between two sets
    of buffers, so the decode that starts when the caller asks for the next batch overwrites
    the previous one's levels: a caller keeps what it computes from a batch, never its
    values (asked for its lists after that, a batch refuses them). A file or a row group
    that reader does not take comes from pyarrow, in the same values.
    """
    return SnapshotBooks(partition, columns)


def _snapshot_books(partition: Partition, columns: Sequence[str]
                    ) -> Iterator[DecodedRowGroup | pa.RecordBatch]:
    lists = [c for c in columns if c in LEVEL_COLUMNS]
    plain = [c for c in columns if c not in LEVEL_COLUMNS]
    with ThreadPoolExecutor(2, thread_name_prefix="decode") as pool:
        for path in partition.files:
            decoder = _RowGroupDecoder.of(path, lists, plain)
            if decoder is None:
                yield from _arrow_batches(path, columns, 4096, pool)
                continue
            groups = decoder.file.metadata.num_row_groups
            jobs = decoder.start(pool, 0) if groups else []
            for group in range(groups):
                ahead = decoder.start(pool, group + 1) if group + 1 < groups else []
                yield decoder.finish(group, jobs, columns)
                jobs = ahead


class _RowGroupDecoder:
    """Decodes a file's row groups into two sets of buffers in turn (one being walked, the
    other being decoded into)."""

    def __init__(self, path: Path, file: pq.ParquetFile, layouts: dict[str, ColumnLayout],
                 plain: list[str]) -> None:
        self.path, self.file, self.layouts, self.plain = path, file, layouts, plain
        self.buffers = [{c: ChunkBuffers() for c in layouts} for _ in range(2)]
        self.handed: list[DecodedRowGroup | None] = [None] * len(self.buffers)

    @classmethod
    def of(cls, path: Path, lists: list[str], plain: list[str]) -> _RowGroupDecoder | None:
        """A decoder for the file, or None where pyarrow should stream it: list columns in
        a layout level_pages does not read, or row groups too large to hold decoded."""
        file = _parquet_file(path)
        try:
            layouts = column_layouts(file, lists)
        except UnsupportedPagesError:
            return None
        meta = file.metadata
        if any(meta.row_group(g).column(layout.index).num_values > MAX_DECODED_LEVELS
               for g in range(meta.num_row_groups) for layout in layouts.values()):
            return None
        return cls(path, file, layouts, plain)

    def start(self, pool: ThreadPoolExecutor, group: int) -> list[Future]:
        """Row group `group` decoding on the pool: the plain columns, then a list a job."""
        generation = group % len(self.buffers)
        if (earlier := self.handed[generation]) is not None:
            earlier.release()  # its values are about to be overwritten
        jobs = [pool.submit(self.file.read_row_group, group, columns=self.plain,
                            use_threads=False)]
        buffers = self.buffers[generation]
        return jobs + [pool.submit(self._level_list, group, name, buffers[name])
                       for name in self.layouts]

    def _level_list(self, group: int, name: str, buffers: ChunkBuffers) -> LevelList | None:
        try:
            return read_level_list(self.path, self.file, group, self.layouts[name], buffers)
        except UnsupportedPagesError:
            return None  # this row group comes from pyarrow

    def finish(self, group: int, jobs: list[Future], columns: Sequence[str]
               ) -> DecodedRowGroup | pa.RecordBatch:
        try:
            table, *levels = [job.result() for job in jobs]
        except (OSError, pa.ArrowException) as exc:  # pyarrow on the plain columns
            raise _damaged(self.path, exc) from None
        if any(level is None for level in levels):
            try:
                table = _parquet_file(self.path).read_row_group(group, columns=list(columns))
            except (OSError, pa.ArrowException) as exc:
                raise _damaged(self.path, exc) from None
            return pa.RecordBatch.from_arrays(
                [table.column(c).combine_chunks() for c in columns], names=list(columns))
        decoded = dict(zip(self.layouts, levels, strict=True))
        decoded.update({c: table.column(c).combine_chunks() for c in self.plain})
        batch = DecodedRowGroup({c: decoded[c] for c in columns},
                                self.file.metadata.row_group(group).num_rows)
        self.handed[group % len(self.buffers)] = batch
        return batch


def _decode_groups(columns: Sequence[str]) -> list[list[str]]:
    """Two column groups of about equal decoding work: the list columns alternate."""
    lists = [c for c in columns if c in LEVEL_COLUMNS]
    first = [c for c in columns if c not in LEVEL_COLUMNS] + lists[0::2]
    return [first, lists[1::2]] if lists[1::2] else [first]


def _damaged(path: Path, exc: BaseException) -> UserError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UserError(f"The snapshot file {path} is damaged: its pages cannot be decoded "
                     f"({reason}); write it again with `bookcast replay` or delete it.")


def _parquet_file(path: Path) -> pq.ParquetFile:
    try:
        # Buffered page reads, not the whole column chunk up front: half the memory.
        return pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise UserError(f"The snapshot file {path} is not readable Parquet ({exc}).") from None
