"""Hive-partitioned Parquet writers for snapshots and trades (DESIGN.md).

Rows are buffered column-wise per (venue, symbol) and written as
`<dataset>/venue=<v>/symbol=<s>/date=<d>/part-<first_ts>.parquet`: first under a
hidden temporary name, fsynced, then renamed, so a reader never sees a partial
file. A part is cut when the UTC date changes, after `rotate_rows` rows, after
`rotate_ns` of data, or on an explicit `detach()` / `flush()`.

Writing has two phases, so the expensive one can leave the caller's thread (the
daemon's event loop): `add()` and `detach()` only move rows between buffers; a
`PendingPart` holds a cut's rows, unencoded, until its `write()` builds the Arrow
table, encodes, fsyncs and renames, on whichever thread calls it. A cut made inside
`add()` waits in the writer's pending list for `take_pending()` (or `flush()`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bookcast.paths import partition_dir
from bookcast.schema import SNAPSHOT_SCHEMA, TRADE_SCHEMA, file_metadata
from bookcast.timeutil import NS_PER_UNIT, utc_date

DAY_NS = NS_PER_UNIT["d"]


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file under a temporary name, fsync it, then rename it into place.

    On any failure the temporary file is removed and the error raised as it came, so a
    retry starts clean and never finds debris.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("wb") as fh:
            pq.write_table(table, fh, compression="zstd", use_dictionary=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a failed or interrupted write leaves no debris
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PendingPart:
    """The rows of one future Parquet file, taken out of a writer but not yet encoded.

    The writer hands its buffers over and starts fresh ones, so nothing here is shared
    with the caller's thread: `write()` may run on any thread. It raises OSError as it
    came (disk full, EIO); calling it again retries the same file from scratch, and a
    successful retry leaves exactly the file one clean write would have left.
    """

    __slots__ = ("_table", "first_ts", "path", "rows")

    def __init__(self, path: Path, rows: int, first_ts: int,
                 table: Callable[[], pa.Table]) -> None:
        self.path, self.rows, self.first_ts = path, rows, first_ts
        self._table = table

    def write(self) -> Path:
        """Build the Arrow table, encode it, write it atomically; returns the final path."""
        write_table_atomic(self._table(), self.path)
        return self.path

    def __repr__(self) -> str:
        return f"PendingPart({str(self.path)!r}, rows={self.rows})"


class _PartitionBuffer:
    """Column buffers for one (venue, symbol); subclasses say which columns."""

    dataset = ""
    schema: pa.Schema

    def __init__(self, root: Path, venue: str, symbol: str, rotate_rows: int,
                 rotate_ns: int | None, metadata: dict[str, object]) -> None:
        self.root, self.venue, self.symbol = root, venue, symbol
        self.rotate_rows, self.rotate_ns = rotate_rows, rotate_ns
        self.metadata = metadata
        self.rows = 0  # in the current buffer, not yet detached
        self.rows_written = 0  # written by this writer's own flush()
        self.files: list[Path] = []  # likewise
        self._pending: list[PendingPart] = []
        self._day: int | None = None
        self._first_ts: int | None = None
        self._reset()

    def _reset(self) -> None:
        raise NotImplementedError

    @property
    def rows_pending(self) -> int:
        """Rows cut into parts by rotation that no one has taken or written yet."""
        return sum(part.rows for part in self._pending)

    def _before_row(self, ts: int) -> None:
        day = ts // DAY_NS
        if self.rows and (day != self._day or self.rows >= self.rotate_rows or (
                self.rotate_ns is not None and ts - self._first_ts >= self.rotate_ns)):
            self._pending.append(self.detach())
        if not self.rows:
            self._day, self._first_ts = day, ts

    def detach(self) -> PendingPart | None:
        """Take the rows buffered so far as a part (no encoding here) and start afresh."""
        if not self.rows:
            return None
        directory = partition_dir(self.root, self.dataset, self.venue, self.symbol,
                                  utc_date(self._first_ts))
        build = self._table_builder(file_metadata(self.venue, self.symbol, **self.metadata))
        part = PendingPart(directory / f"part-{self._first_ts}.parquet", self.rows,
                           self._first_ts, build)
        self.rows = 0
        self._reset()
        return part

    def take_pending(self) -> list[PendingPart]:
        """Hand over the parts that rotation cut inside add(), oldest first."""
        parts, self._pending = self._pending, []
        return parts

    def flush(self) -> Path | None:
        """Write the pending parts, then the current buffer, in order; the last path written.

        A part that fails stays pending (with those after it), so calling flush() again
        retries from it: no row is lost or written twice.
        """
        part = self.detach()
        if part is not None:
            self._pending.append(part)
        return self.write_pending()

    def write_pending(self) -> Path | None:
        """Write the parts rotation has cut, in order, keeping the rows still buffered; the
        last path written. Replay and imports call it as they go, so memory holds one
        file's rows, not the whole run's (the daemon's writer thread takes them instead)."""
        last = None
        while self._pending:
            last = self._pending[0].write()
            done = self._pending.pop(0)
            self.files.append(last)
            self.rows_written += done.rows
        return last

    def _table_builder(self, metadata: dict[bytes, bytes]) -> Callable[[], pa.Table]:
        """A function that builds the Arrow table of the current buffer's rows, later."""
        raise NotImplementedError


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

    def _table_builder(self, metadata: dict[bytes, bytes]) -> Callable[[], pa.Table]:
        ts, ts_event, ts_recv, seq = self.ts, self.ts_event, self.ts_recv, self.seq
        (fbp, fbs, fap, fas), (bid_offsets, ask_offsets) = self.flat, self.offsets
        n_updates, gap = self.n_updates, self.gap

        def build() -> pa.Table:
            bid_off = pa.array(np.asarray(bid_offsets, dtype=np.int32))
            ask_off = pa.array(np.asarray(ask_offsets, dtype=np.int32))

            def lists(offsets: pa.Array, values: list[float]) -> pa.Array:
                return pa.ListArray.from_arrays(offsets, pa.array(np.asarray(values, np.float64)))

            ts_type = SNAPSHOT_SCHEMA.field("ts").type
            columns = [
                pa.array(np.asarray(ts, np.int64)).cast(ts_type),
                pa.array(ts_event, pa.int64()).cast(ts_type),
                pa.array(np.asarray(ts_recv, np.int64)).cast(ts_type),
                pa.array(seq, pa.int64()),
                lists(bid_off, fbp), lists(bid_off, fbs), lists(ask_off, fap), lists(ask_off, fas),
                pa.array(np.asarray(n_updates, np.int32)),
                pa.array(gap, pa.bool_()),
            ]
            return pa.Table.from_arrays(columns, schema=SNAPSHOT_SCHEMA.with_metadata(metadata))

        return build


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

    def _table_builder(self, metadata: dict[bytes, bytes]) -> Callable[[], pa.Table]:
        ts_recv, ts_event, trade_id = self.ts_recv, self.ts_event, self.trade_id
        price, size, side = self.price, self.size, self.side

        def build() -> pa.Table:
            ts_type = TRADE_SCHEMA.field("ts_recv").type
            columns = [
                pa.array(np.asarray(ts_recv, np.int64)).cast(ts_type),
                pa.array(ts_event, pa.int64()).cast(ts_type),
                pa.array(trade_id, pa.string()),
                pa.array(np.asarray(price, np.float64)),
                pa.array(np.asarray(size, np.float64)),
                pa.array(np.asarray(side, np.int8)),
            ]
            return pa.Table.from_arrays(columns, schema=TRADE_SCHEMA.with_metadata(metadata))

        return build
