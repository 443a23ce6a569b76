"""Hive-partitioned Parquet writers for snapshots and trades (DESIGN.md).

Rows are buffered column-wise per (venue, symbol) and written as
`<dataset>/venue=<v>/symbol=<s>/date=<d>/part-<first_ts>.parquet`: first under a
hidden temporary name, fsynced, then renamed, so a reader never sees a partial
file. A file is cut when the UTC date changes, after `rotate_rows` rows, after
`rotate_ns` of data, or on an explicit `flush()`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bookcast.paths import partition_dir
from bookcast.schema import SNAPSHOT_SCHEMA, TRADE_SCHEMA, file_metadata
from bookcast.timeutil import NS_PER_UNIT

DAY_NS = NS_PER_UNIT["d"]


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file under a temporary name, fsync it, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        pq.write_table(table, fh, compression="zstd", use_dictionary=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _PartitionBuffer:
    """Column buffers for one (venue, symbol); subclasses say which columns."""

    dataset = ""
    schema: pa.Schema

    def __init__(self, root: Path, venue: str, symbol: str, rotate_rows: int,
                 rotate_ns: int | None, metadata: dict[str, object]) -> None:
        self.root, self.venue, self.symbol = root, venue, symbol
        self.rotate_rows, self.rotate_ns = rotate_rows, rotate_ns
        self.metadata = metadata
        self.rows = 0
        self.rows_written = 0
        self.files: list[Path] = []
        self._day: int | None = None
        self._first_ts: int | None = None
        self._reset()

    def _reset(self) -> None:
        raise NotImplementedError

    def _table(self) -> pa.Table:
        raise NotImplementedError

    def _before_row(self, ts: int) -> None:
        day = ts // DAY_NS
        if self.rows and (day != self._day or self.rows >= self.rotate_rows or (
                self.rotate_ns is not None and ts - self._first_ts >= self.rotate_ns)):
            self.flush()
        if not self.rows:
            self._day, self._first_ts = day, ts

    def flush(self) -> Path | None:
        if not self.rows:
            return None
        from bookcast.timeutil import utc_date

        table = self._table().replace_schema_metadata(
            file_metadata(self.venue, self.symbol, **self.metadata))
        directory = partition_dir(self.root, self.dataset, self.venue, self.symbol,
                                  utc_date(self._first_ts))
        path = directory / f"part-{self._first_ts}.parquet"
        write_table_atomic(table, path)
        self.files.append(path)
        self.rows_written += self.rows
        self.rows = 0
        self._reset()
        return path


class SnapshotWriter(_PartitionBuffer):
    dataset = "snapshots"
    schema = SNAPSHOT_SCHEMA

    def _reset(self) -> None:
        self.ts: list[int] = []
        self.ts_event: list[int | None] = []
        self.ts_recv: list[int] = []
        self.seq: list[int | None] = []
        self.flat: tuple[list[float], list[float], list[float], list[float]] = ([], [], [], [])
        self.offsets: tuple[list[int], list[int]] = ([0], [0])  # bid side, ask side
        self.n_updates: list[int] = []
        self.gap: list[bool] = []

    def add(self, ts: int, ts_event: int | None, ts_recv: int, seq: int | None,
            levels: tuple[list[float], list[float], list[float], list[float]],
            n_updates: int, gap: bool) -> None:
        self._before_row(ts)
        self.ts.append(ts)
        self.ts_event.append(ts_event)
        self.ts_recv.append(ts_recv)
        self.seq.append(seq)
        bid_px, bid_sz, ask_px, ask_sz = levels
        fbp, fbs, fap, fas = self.flat
        fbp.extend(bid_px)
        fbs.extend(bid_sz)
        fap.extend(ask_px)
        fas.extend(ask_sz)
        self.offsets[0].append(len(fbp))
        self.offsets[1].append(len(fap))
        self.n_updates.append(min(n_updates, 2**31 - 1))
        self.gap.append(gap)
        self.rows += 1

    def _table(self) -> pa.Table:
        bid_off = pa.array(np.asarray(self.offsets[0], dtype=np.int32))
        ask_off = pa.array(np.asarray(self.offsets[1], dtype=np.int32))

        def lists(offsets: pa.Array, values: list[float]) -> pa.Array:
            return pa.ListArray.from_arrays(offsets, pa.array(np.asarray(values, np.float64)))

        fbp, fbs, fap, fas = self.flat
        ts_type = SNAPSHOT_SCHEMA.field("ts").type
        columns = [
            pa.array(np.asarray(self.ts, np.int64)).cast(ts_type),
            pa.array(self.ts_event, pa.int64()).cast(ts_type),
            pa.array(np.asarray(self.ts_recv, np.int64)).cast(ts_type),
            pa.array(self.seq, pa.int64()),
            lists(bid_off, fbp), lists(bid_off, fbs), lists(ask_off, fap), lists(ask_off, fas),
            pa.array(np.asarray(self.n_updates, np.int32)),
            pa.array(self.gap, pa.bool_()),
        ]
        return pa.Table.from_arrays(columns, schema=SNAPSHOT_SCHEMA)


class TradeWriter(_PartitionBuffer):
    dataset = "trades"
    schema = TRADE_SCHEMA

    def _reset(self) -> None:
        self.ts_recv: list[int] = []
        self.ts_event: list[int | None] = []
        self.trade_id: list[str] = []
        self.price: list[float] = []
        self.size: list[float] = []
        self.side: list[int] = []

    def add(self, ts_recv: int, ts_event: int | None, trade_id: str, price: float, size: float,
            side: int) -> None:
        self._before_row(ts_recv)
        self.ts_recv.append(ts_recv)
        self.ts_event.append(ts_event)
        self.trade_id.append(trade_id)
        self.price.append(price)
        self.size.append(size)
        self.side.append(side)
        self.rows += 1

    def _table(self) -> pa.Table:
        ts_type = TRADE_SCHEMA.field("ts_recv").type
        columns = [
            pa.array(np.asarray(self.ts_recv, np.int64)).cast(ts_type),
            pa.array(self.ts_event, pa.int64()).cast(ts_type),
            pa.array(self.trade_id, pa.string()),
            pa.array(np.asarray(self.price, np.float64)),
            pa.array(np.asarray(self.size, np.float64)),
            pa.array(np.asarray(self.side, np.int8)),
        ]
        return pa.Table.from_arrays(columns, schema=TRADE_SCHEMA)
