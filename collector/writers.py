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
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bookcast.paths import partition_dir
from bookcast.schema import LEVEL_COLUMNS, SNAPSHOT_SCHEMA, TRADE_SCHEMA, TS, file_metadata
from bookcast.timeutil import NS_PER_UNIT, utc_date
from collector.book import UNIT, BookLevels

DAY_NS = NS_PER_UNIT["d"]


# A snapshot row group holds about this many levels per list column: 10,240 rows at
# depth 100, a few hundred at full depth. A reader of a time window (a chart of five
# minutes) decodes only the groups it overlaps: 0.19-0.36 s for 8-16k-row groups against
# 4.5 s for one group of 200,000 rows; reading whole files is as fast either way.
ROW_GROUP_LEVELS = 1 << 20


def snapshot_row_group_rows(levels_per_row: float) -> int:
    """Rows per snapshot row group for books of about `levels_per_row` levels a side."""
    return max(64, int(ROW_GROUP_LEVELS / max(1.0, levels_per_row)))


# How the files are encoded, by what they hold (measured 2026-12-01 with `bench/features.py
# --codecs` and `bench/collector_replay.py --codecs`, figures in docs/benchmarks.md):
# - snapshot files, whose level lists are most of what a feature build reads: LZ4 raw blocks
#   at HC level 3. As small as zstd 1 on depth-100 books (236 against 235 B a row) and 10%
#   smaller at full depth, and `features.level_pages` decodes them in 0.18 s against zstd's
#   0.31 s (200,000 rows, one thread). Encoding costs about twice zstd's CPU a row, which
#   the replay did not show at depth 100 (0.96x of zstd's CPU, paired medians of 5) and
#   showed as 1.04-1.06x at full depth; the live collector's few rows a second never notice
#   it. Plain LZ4 decodes as fast but is 46% larger at depth 100 and four times larger at
#   full depth; zstd's other levels decode no faster.
# - every other file (trades): zstd 1. A feature build spends 0.05 s reading them, and LZ4 HC
#   on them too cost the replay more CPU in most runs (1.08-1.30x at depth 100 in earlier
#   runs, 0.94-1.19x in these, 1.10-1.11x at full depth).
SNAPSHOT_COMPRESSION: tuple[str, int | None] = ("lz4_raw", 3)
RECORD_COMPRESSION: tuple[str, int | None] = ("zstd", 1)


def parquet_compression(schema: pa.Schema) -> tuple[str, int | None]:
    """(codec, level) for a file of this schema: `SNAPSHOT_COMPRESSION` for snapshots (the
    level lists), `RECORD_COMPRESSION` for the rest."""
    lists = any(name in schema.names for name in LEVEL_COLUMNS)
    return SNAPSHOT_COMPRESSION if lists else RECORD_COMPRESSION


def write_table_atomic(table: pa.Table, path: Path, row_group_rows: int | None = None) -> None:
    """Write a Parquet file under a temporary name, fsync it, then rename it into place.

    Encoded as `parquet_compression` says for its schema. No dictionaries: level values
    hardly repeat within a page, and dictionaries made files larger and writes slower. On
    any failure the temporary file is removed and the error raised as it came, so a retry
    starts clean and never finds debris.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    codec, level = parquet_compression(table.schema)
    try:
        with tmp.open("wb") as fh:
            pq.write_table(table, fh, compression=codec, compression_level=level,
                           use_dictionary=False, row_group_size=row_group_rows)
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

    __slots__ = ("_row_group_rows", "_table", "first_ts", "path", "rows")

    def __init__(self, path: Path, rows: int, first_ts: int,
                 table: Callable[[], pa.Table], row_group_rows: int | None = None) -> None:
        self.path, self.rows, self.first_ts = path, rows, first_ts
        self._table, self._row_group_rows = table, row_group_rows

    def write(self) -> Path:
        """Build the Arrow table, encode it, write it atomically; returns the final path."""
        write_table_atomic(self._table(), self.path, self._row_group_rows)
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
                           self._first_ts, build, self._row_group_rows())
        self.rows = 0
        self._reset()
        return part

    def take_pending(self) -> list[PendingPart]:
        """Hand over the parts that rotation cut inside add(), oldest first."""
        parts, self._pending = self._pending, []
        return parts

    def write_pending(self) -> list[Path]:
        """Write the parts rotation cut, oldest first, on this thread; the files written.

        A part that fails stays pending (with those after it), so calling this again
        retries from it: no row is lost or written twice.
        """
        written = []
        while self._pending:
            path = self._pending[0].write()
            done = self._pending.pop(0)
            self.files.append(path)
            self.rows_written += done.rows
            written.append(path)
        return written

    def flush(self) -> Path | None:
        """Write the pending parts, then the current buffer, in order; the last path written."""
        part = self.detach()
        if part is not None:
            self._pending.append(part)
        written = self.write_pending()
        return written[-1] if written else None

    def _table_builder(self, metadata: dict[bytes, bytes]) -> Callable[[], pa.Table]:
        """A function that builds the Arrow table of the current buffer's rows, later."""
        raise NotImplementedError

    def _row_group_rows(self) -> int | None:
        """Rows per Parquet row group of the current buffer (None: pyarrow's default)."""
        return None


# ---------------------------------------------------------------- column buffers
#
# Rows land in preallocated NumPy arrays that double when full; a detached part keeps
# views of the filled prefix and the writer starts new arrays, so the part's memory is
# never written again. Arrow arrays are built over those buffers without copying
# (`pa.Array.from_buffers`): `pa.array()` would import pandas on first use (a second
# of start-up on the collect path) and build from Python objects.

# A list array's int32 offsets address at most this many values; a bigger part (full
# depth, many rows) becomes several list chunks of one column.
_MAX_LIST_VALUES = 2**31 - 1
# Integers below this are exact in float64, so `units / UNIT` in NumPy is the one
# correctly rounded division Python's int / int does.
_EXACT_UNITS = 2**53


def _grown(array: np.ndarray, used: int, needed: int) -> np.ndarray:
    """A copy of array[:used] with room for at least `needed` elements."""
    bigger = np.empty(max(needed, 2 * array.size, 16), array.dtype)
    bigger[:used] = array[:used]
    return bigger


def _arrow(array: np.ndarray, arrow_type: pa.DataType,
           valid: np.ndarray | None = None) -> pa.Array:
    """A zero-copy Arrow array over a NumPy array of the same width (valid: non-null rows)."""
    bitmap = None
    null_count = 0
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        null_count = int(valid.size - np.count_nonzero(valid))
    return pa.Array.from_buffers(arrow_type, array.size, [bitmap, pa.py_buffer(array)],
                                 null_count)


def _bool_arrow(values: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(pa.bool_(), values.size,
                                 [None, pa.py_buffer(np.packbits(values, bitorder="little"))])


def _list_arrow(offsets: np.ndarray, values: np.ndarray) -> pa.Array | pa.ChunkedArray:
    """list<float64> of rows values[offsets[r]:offsets[r + 1]] (offsets int64, rows + 1)."""
    if offsets[-1] <= _MAX_LIST_VALUES:
        return pa.ListArray.from_arrays(_arrow(offsets.astype(np.int32), pa.int32()),
                                        _arrow(values, pa.float64()))
    chunks, row, rows = [], 0, offsets.size - 1
    while row < rows:
        # the most rows from `row` whose values fit one chunk (at least one row)
        end = max(row + 1, int(np.searchsorted(offsets, offsets[row] + _MAX_LIST_VALUES,
                                               "right")) - 1)
        end = min(end, rows)
        base = offsets[row]
        chunks.append(pa.ListArray.from_arrays(
            _arrow((offsets[row:end + 1] - base).astype(np.int32), pa.int32()),
            _arrow(values[base:offsets[end]], pa.float64())))
        row = end
    return pa.chunked_array(chunks, pa.list_(pa.float64()))


class _LevelColumn:
    """One side's levels (prices and sizes, float64) with the rows' offsets into them."""

    __slots__ = ("offsets", "prices", "sizes", "used")

    def __init__(self, rows: int, values: int) -> None:
        self.offsets = np.zeros(rows + 1, np.int64)
        self.prices = np.empty(values)
        self.sizes = np.empty(values)
        self.used = 0

    def reserve(self, extra: int) -> int:
        """Room for `extra` more values; returns where they start."""
        start = self.used
        if start + extra > self.prices.size:
            self.prices = _grown(self.prices, start, start + extra)
            self.sizes = _grown(self.sizes, start, start + extra)
        self.used = start + extra
        return start


class SnapshotWriter(_PartitionBuffer):
    dataset = "snapshots"
    schema = SNAPSHOT_SCHEMA

    # Sizes of the last part detached: the next part's buffers start there (a daemon's
    # parts are alike; untouched pages of a guess cost no memory), within bounds.
    _rows_hint = 0
    _values_hint = 0

    def _reset(self) -> None:
        rows = min(max(64, self._rows_hint), 1 << 16)
        values = min(max(1024, self._values_hint), 1 << 22)
        self._ts = np.empty(rows, np.int64)
        self._ts_event = np.empty(rows, np.int64)
        self._ts_event_valid = np.empty(rows, np.bool_)
        self._ts_recv = np.empty(rows, np.int64)
        self._seq = np.empty(rows, np.int64)
        self._seq_valid = np.empty(rows, np.bool_)
        self._n_updates = np.empty(rows, np.int32)
        self._gap = np.empty(rows, np.bool_)
        self._bids = _LevelColumn(rows, values)
        self._asks = _LevelColumn(rows, values)
        self._last_levels: BookLevels | None = None

    def add(self, ts: int, ts_event: int | None, ts_recv: int, seq: int | None,
            levels: BookLevels | tuple[Sequence[float], ...], n_updates: int,
            gap: bool) -> None:
        """One grid row. `levels` is the book's `levels(n)` (integer units, the fast path)
        or bid_px, bid_sz, ask_px, ask_sz as floats (best first)."""
        self._before_row(ts)
        row = self.rows
        if row == self._ts.size:
            self._grow_rows()
        self._ts[row] = ts
        self._ts_event_valid[row] = ts_event is not None
        self._ts_event[row] = 0 if ts_event is None else ts_event
        self._ts_recv[row] = ts_recv
        self._seq_valid[row] = seq is not None
        self._seq[row] = 0 if seq is None else seq
        self._n_updates[row] = min(n_updates, 2**31 - 1)
        self._gap[row] = gap
        if isinstance(levels, BookLevels):
            if levels is self._last_levels and row:
                # the pipeline passes the same levels again while the book is unchanged
                self._repeat_levels(row)
            else:
                self._put_units(row, levels)
            self._last_levels = levels
        else:
            self._put_floats(row, levels)
            self._last_levels = None
        self.rows = row + 1

    def _grow_rows(self) -> None:
        n = self._ts.size
        for name in ("_ts", "_ts_event", "_ts_event_valid", "_ts_recv", "_seq", "_seq_valid",
                     "_n_updates", "_gap"):
            setattr(self, name, _grown(getattr(self, name), n, 2 * n))
        for side in (self._bids, self._asks):
            side.offsets = _grown(side.offsets, n + 1, 2 * n + 1)

    def _repeat_levels(self, row: int) -> None:
        for side in (self._bids, self._asks):
            lo, hi = side.offsets[row - 1], side.offsets[row]
            start = side.reserve(hi - lo)
            side.prices[start:side.used] = side.prices[lo:hi]
            side.sizes[start:side.used] = side.sizes[lo:hi]
            side.offsets[row + 1] = side.used

    def _put_floats(self, row: int, levels: tuple[Sequence[float], ...]) -> None:
        bid_px, bid_sz, ask_px, ask_sz = levels
        for side, prices, sizes in ((self._bids, bid_px, bid_sz), (self._asks, ask_px, ask_sz)):
            start = side.reserve(len(prices))
            side.prices[start:side.used] = prices
            side.sizes[start:side.used] = sizes
            side.offsets[row + 1] = side.used

    def _put_units(self, row: int, levels: BookLevels) -> None:
        """The book's integer units as float64, each `units / UNIT` correctly rounded."""
        bid_prices, bid_sizes, ask_keys, ask_sizes = levels
        nb, na = len(bid_prices), len(ask_keys)
        bids, asks = self._bids, self._asks
        b0, a0 = bids.reserve(nb), asks.reserve(na)
        try:
            # one conversion for all four lists (sizes last, to check them in one go)
            units = np.fromiter(chain(bid_prices, ask_keys, bid_sizes, ask_sizes), np.int64,
                                2 * (nb + na))
        except OverflowError:  # beyond int64 (sizes of a billion coins): Python's ints only
            units = None
        # prices come best first, so only the largest of each side (the best bid, the
        # deepest ask) can reach the limit of exact integers
        if units is not None and (not nb or bid_prices[0] < _EXACT_UNITS) and (
                not na or -ask_keys[-1] < _EXACT_UNITS) and (
                    not nb + na or units[nb + na:].max() < _EXACT_UNITS):
            np.divide(units[:nb], UNIT, out=bids.prices[b0:b0 + nb])
            np.divide(units[nb:nb + na], -UNIT, out=asks.prices[a0:a0 + na])
            np.divide(units[nb + na:2 * nb + na], UNIT, out=bids.sizes[b0:b0 + nb])
            np.divide(units[2 * nb + na:], UNIT, out=asks.sizes[a0:a0 + na])
        else:
            bids.prices[b0:b0 + nb] = [p / UNIT for p in bid_prices]
            asks.prices[a0:a0 + na] = [k / -UNIT for k in ask_keys]
            bids.sizes[b0:b0 + nb] = [v / UNIT for v in bid_sizes]
            asks.sizes[a0:a0 + na] = [v / UNIT for v in ask_sizes]
        bids.offsets[row + 1] = bids.used
        asks.offsets[row + 1] = asks.used

    def _row_group_rows(self) -> int:
        return snapshot_row_group_rows(max(self._bids.used, self._asks.used) / max(1, self.rows))

    def _table_builder(self, metadata: dict[bytes, bytes]) -> Callable[[], pa.Table]:
        n = self.rows
        bid_values, ask_values = self._bids.used, self._asks.used
        self._rows_hint, self._values_hint = n, max(bid_values, ask_values)
        ts, ts_recv = self._ts[:n], self._ts_recv[:n]
        ts_event, ts_event_valid = self._ts_event[:n], self._ts_event_valid[:n]
        seq, seq_valid = self._seq[:n], self._seq_valid[:n]
        n_updates, gap = self._n_updates[:n], self._gap[:n]
        bid_off, ask_off = self._bids.offsets[:n + 1], self._asks.offsets[:n + 1]
        bid_px, bid_sz = self._bids.prices[:bid_values], self._bids.sizes[:bid_values]
        ask_px, ask_sz = self._asks.prices[:ask_values], self._asks.sizes[:ask_values]

        def build() -> pa.Table:
            columns = [
                _arrow(ts, TS), _arrow(ts_event, TS, ts_event_valid), _arrow(ts_recv, TS),
                _arrow(seq, pa.int64(), seq_valid),
                _list_arrow(bid_off, bid_px), _list_arrow(bid_off, bid_sz),
                _list_arrow(ask_off, ask_px), _list_arrow(ask_off, ask_sz),
                _arrow(n_updates, pa.int32()), _bool_arrow(gap),
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
            event = np.fromiter((0 if t is None else t for t in ts_event), np.int64,
                                len(ts_event))
            valid = np.fromiter((t is not None for t in ts_event), np.bool_, len(ts_event))
            columns = [
                _arrow(np.array(ts_recv, np.int64), TS), _arrow(event, TS, valid),
                _string_arrow(trade_id),
                _arrow(np.array(price, np.float64), pa.float64()),
                _arrow(np.array(size, np.float64), pa.float64()),
                _arrow(np.array(side, np.int8), pa.int8()),
            ]
            return pa.Table.from_arrays(columns, schema=TRADE_SCHEMA.with_metadata(metadata))

        return build


def _string_arrow(values: list[str]) -> pa.Array:
    encoded = [v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])
