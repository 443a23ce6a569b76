"""Parsed level updates -> the collector's Pipeline: what a venue module does for replay.

An importer parses its file into runs of levels and hands them to a `BookFeed`, which keeps
replay's exact rules: before an update received at t, every grid point strictly before t
is sampled (a row is the book as of the last update at or before its grid time); a book is
sampled only while synchronised; the first row after a (re)synchronisation has gap = true.
Everything a symbol receives at one time is one update (a snapshot with the diffs that
follow it at its receive time, or a diff's bids and asks, even interleaved with another
symbol's rows): only once time moves on is the book checked, and a crossed book is
invalid until its next snapshot.

`--from/--to` (a `TimeWindow`): updates before the window still build the book, but no
row is due before it opens; reading stops at the first update after it.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from bookcast.errors import UserError
from collector.pipeline import Pipeline
from collector.state import SymbolState

log = logging.getLogger("bookcast.collector")

MAX_WARNINGS_SHOWN = 20
REORDER_WINDOW_NS = 1_000_000_000  # rows up to 1 s out of receive order are put back in order


@dataclass(frozen=True)
class TimeWindow:
    """--from/--to in ns; None is open-ended. Both ends are inclusive."""

    start: int | None = None
    end: int | None = None

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise UserError("--to is before --from; nothing would be imported.")


@dataclass
class ImportWarnings:
    """Recoverable problems, counted by kind; the first few are logged with file and line."""

    counts: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, kind: str, sentence: str, count: int = 1) -> None:
        """Count `count` occurrences of `kind`; `sentence` describes the first of them."""
        self.counts[kind] += count
        if len(self.examples) < MAX_WARNINGS_SHOWN:
            self.examples.append(sentence)
            log.warning("%s", sentence)
            if len(self.examples) == MAX_WARNINGS_SHOWN:
                log.warning("more warnings may follow; only their counts are kept")

    def summary(self) -> str:
        return ", ".join(f"{n:,} {kind}" for kind, n in sorted(self.counts.items()))


class BookFeed:
    """Feeds one stream of imported updates into a Pipeline (one clock for its symbols)."""

    def __init__(self, pipeline: Pipeline, window: TimeWindow, warnings: ImportWarnings) -> None:
        self.pipeline = pipeline
        self.warnings = warnings
        self.step = pipeline.interval_ns
        self.start = window.start
        self.end = window.end
        self.opened = window.start is None
        self.due = -math.inf  # the next grid point that may be due
        self.last_t = 0
        self.read_past_end = False  # an update after --to was met (and vouches up to it)
        self._ready: set[str] = set()  # books holding a snapshot (valid, or waiting to open)
        self._unchecked: dict[str, str] = {}  # books changed at last_t -> where, last line

    # -- time -------------------------------------------------------------------------------
    def past_end(self, t: int) -> bool:
        if self.end is not None and t > self.end:
            self.read_past_end = True
            return True
        return False

    def advance(self, t: int) -> None:
        """Sample every grid point before t; call before applying an update received at t."""
        if self._unchecked and t > self.last_t:
            self._check_books()
        if not self.opened:
            if t < self.start:  # type: ignore[operator]
                return
            self._open()
        if t > self.due:
            self.pipeline.sample_until(t)
            self.pipeline.write_pending()
            self.due = -(-t // self.step) * self.step
        if t > self.last_t:
            self.last_t = t

    def _open(self) -> None:
        """The window opens: books built from the updates before it are synchronised at its
        start, so the first row is the book as of --from, flagged gap = true."""
        self.opened = True
        for symbol in sorted(self._ready):
            state = self.pipeline.state(symbol)
            state.n_updates = 0
            self.pipeline.synced(state, self.start)  # type: ignore[arg-type]

    def finish(self) -> None:
        """Write everything. As in replay, the rows before the last update were written when
        it came, and none after it: no later update vouches for them. Only an update met
        after --to vouches for the rows up to --to (inclusive)."""
        self._check_books()
        if self.opened and self.read_past_end:
            self.pipeline.sample_until(self.end + 1)  # type: ignore[operator]
        self.pipeline.flush()

    # -- books ------------------------------------------------------------------------------
    def state(self, symbol: str) -> SymbolState:
        return self.pipeline.state(symbol)

    def ready(self, state: SymbolState) -> bool:
        """The book holds a snapshot: updates apply to it."""
        return state.symbol in self._ready

    def load_snapshot(self, state: SymbolState, bids: list[tuple[int, int]],
                      asks: list[tuple[int, int]], t: int, ts_event: int | None,
                      seq: int | None, where: str, n_updates: int | None = None) -> None:
        """Replace the whole book; it is synchronised at t unless it comes out crossed.
        `n_updates` counts the levels that changed (every level of the snapshot if None)."""
        book = state.book
        book.load(bids, asks)
        if state.tick_size is None:
            self.pipeline.infer_tick_size(state)
        state.ts_recv, state.ts_event, state.seq = t, ts_event, seq
        state.n_updates += len(bids) + len(asks) if n_updates is None else n_updates
        state.messages += 1
        self._ready.add(state.symbol)
        self._unchecked[state.symbol] = where
        if self.opened and not state.valid:
            self.pipeline.synced(state, t)

    def apply_levels(self, state: SymbolState, prices: list[int], sizes: list[int],
                     bids: list[bool], t: int, ts_event: int | None, seq: int | None,
                     where: str) -> None:
        """One update's levels (size 0 deletes), received at t: the importers' hot loop,
        on the book's own setters, as a venue module applies a diff."""
        book = state.book
        set_bid, set_ask = book.set_bid, book.set_ask
        for price, size, bid in zip(prices, sizes, bids, strict=True):
            if bid:
                set_bid(price, size)
            else:
                set_ask(price, size)
        self.updated(state, len(prices), t, ts_event, seq, where)

    def updated(self, state: SymbolState, n_levels: int, t: int, ts_event: int | None,
                seq: int | None, where: str) -> None:
        """Levels were applied to the book: count them; the book is checked once
        everything received at t is applied."""
        if t != state.ts_recv:
            state.messages += 1
        state.ts_recv, state.ts_event, state.seq = t, ts_event, seq
        state.n_updates += n_levels
        state.level_updates += n_levels
        self._unchecked[state.symbol] = where

    def invalidate(self, state: SymbolState, t: int, reason: str) -> None:
        """No rows for this book until its next snapshot."""
        self._ready.discard(state.symbol)
        state.book.clear()
        self.pipeline.invalidate(state, t, reason)

    def _check_books(self) -> None:
        """A book that came out of its last update crossed is a broken book."""
        for symbol, where in self._unchecked.items():
            state = self.pipeline.state(symbol)
            if state.book.is_crossed():
                self._crossed(state, state.ts_recv, where)
        self._unchecked.clear()

    def _crossed(self, state: SymbolState, t: int, where: str) -> None:
        state.crossed += 1
        best_bid, best_ask = state.book.best_bid(), state.book.best_ask()
        from collector.book import units_to_float

        self.warnings.add("crossed books", f"{where}: the {state.symbol} book crossed (bid "
                          f"{units_to_float(best_bid[0])} >= ask {units_to_float(best_ask[0])})"
                          f"; no rows until its next snapshot")  # type: ignore[index]
        self.invalidate(state, t, "crossed book")


class ReceiveOrder:
    """Rows in receive-time order: rows a little late (within `window`, in the file's time
    unit) are put back in place, counted; a row later than that is a UserError naming
    its line. Rows are held back by at most `window` to allow for late ones."""

    def __init__(self, column: str, window: int, where: Callable[[int], str],
                 warnings: ImportWarnings, unit_ns: int) -> None:
        self.column, self.window, self.where = column, window, where
        self.warnings, self.unit_ns = warnings, unit_ns
        self._carry: pa.Table | None = None
        self._latest = np.iinfo(np.int64).min  # the latest time seen so far

    def push(self, table: pa.Table) -> pa.Table | None:
        """Add rows (with a `_row` column: their data-row index); returns the rows whose
        place is now certain, in order."""
        ts = numbers(table[self.column])
        latest = np.maximum(np.maximum.accumulate(ts), self._latest)  # seen up to each row
        late = ts < latest
        if late.any():
            too_late = ts < latest - self.window
            if too_late.any():
                self._too_late(table, ts, latest, int(np.flatnonzero(too_late)[0]))
            self._count_late(table, ts, latest, late)
        self._latest = int(latest[-1])
        if self._carry is not None:
            table = pa.concat_tables([self._carry, table]).combine_chunks()
            ts = numbers(table[self.column])
        if late.any():
            order = np.argsort(ts, kind="stable")  # the held-back rows come first on ties
            table, ts = table.take(_int64s(order)), ts[order]
        cut = int(np.searchsorted(ts, ts[-1] - self.window, side="right"))
        self._carry = table.slice(cut)
        return table.slice(0, cut) if cut else None

    def drain(self) -> pa.Table | None:
        rest, self._carry = self._carry, None
        return rest if rest is not None and rest.num_rows else None

    def _count_late(self, table: pa.Table, ts: np.ndarray, latest: np.ndarray,
                    late: np.ndarray) -> None:
        rows = np.flatnonzero(late)
        i = int(rows[0])
        self.warnings.add("rows put back in receive order",
                          f"{self.where(int(table['_row'][i].as_py()))}: received "
                          f"{(latest[i] - ts[i]) * self.unit_ns / 1e6:g} ms before a row above "
                          f"it; {len(rows):,} such rows put back in receive order",
                          count=len(rows))

    def _too_late(self, table: pa.Table, ts: np.ndarray, latest: np.ndarray, i: int) -> None:
        by = (latest[i] - ts[i]) * self.unit_ns
        raise UserError(f"{self.where(int(table['_row'][i].as_py()))}: its {self.column} is "
                        f"{by / 1e9:g} s before a row above it, more than the "
                        f"{self.window * self.unit_ns / 1e9:g} s a file may be out of "
                        f"order; sort the file by {self.column}.")


def runs(keys: list[np.ndarray]) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of rows where all `keys` stay the same."""
    n = len(keys[0])
    if not n:
        return iter(())
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    starts = np.flatnonzero(change).tolist()
    return zip(starts, [*starts[1:], n], strict=True)


class FileRows:
    """One file's data rows as Arrow tables, batch by batch: blank lines dropped, the
    exchange and symbol checked (or filtered by --symbol), in receive-time order.

    Each table carries `_row`, the data-row index of each row, so any later complaint
    can name its line.
    """

    def __init__(self, path: Path, header: list[str], column_types: dict[str, pa.DataType],
                 time_column: str, unit_ns: int, warnings: ImportWarnings,
                 symbols: set[str] | None = None, file_symbol: str | None = None,
                 exchange: str | None = None, on_bytes: Callable[[int], None] | None = None,
                 required: tuple[str, ...] = (), has_header: bool = True) -> None:
        from collector.importers.csvfile import CsvFile

        self.path = path
        self.csv = CsvFile(path, header, column_types, on_bytes, has_header=has_header)
        self.time_column, self.unit_ns = time_column, unit_ns
        self.symbols, self.file_symbol, self.exchange = symbols, file_symbol, exchange
        self.required = (time_column, *required)
        self.order = ReceiveOrder(time_column, REORDER_WINDOW_NS // unit_ns, self.where,
                                  warnings, unit_ns)

    @property
    def rows_read(self) -> int:
        return self.csv.rows_read

    def tables(self) -> Iterator[pa.Table]:
        for batch in self.csv.batches():
            table = self._checked(batch.data, batch.first_row)
            if table is None:
                continue
            released = self.order.push(table)
            if released is not None:
                yield released
        rest = self.order.drain()
        if rest is not None:
            yield rest

    def where(self, row: int) -> str:
        """'file' line N, for data row `row`."""
        return f"'{self.path}' line {self.csv.line_of(row)}"

    def where_in(self, table: pa.Table, i: int) -> str:
        """'file' line N, for row i of a table from `tables()`."""
        return self.where(int(table["_row"][i].as_py()))

    def symbol_keys(self, table: pa.Table) -> tuple[np.ndarray, list[str]]:
        """Per row, an index into the list of the table's symbols."""
        if "symbol" not in table.column_names:
            return np.zeros(table.num_rows, dtype=np.int32), [self.file_symbol or ""]
        return codes_of(table["symbol"])

    def _checked(self, batch: pa.RecordBatch, first_row: int) -> pa.Table | None:
        n = batch.num_rows
        table = pa.Table.from_batches([batch]).append_column(
            "_row", _int64s(np.arange(first_row, first_row + n, dtype=np.int64)))
        time = table[self.time_column]
        if time.null_count:
            table = table.filter(bools(~_blank_rows(table, self.time_column)))
            if not table.num_rows:
                return None
        for name in self.required:
            column = table[name]
            if column.null_count:
                i = int(np.flatnonzero(mask_of(column.is_null()))[0])
                raise UserError(f"{self.where_in(table, i)}: the {name} field is empty.")
        if self.exchange is not None:
            codes, names = codes_of(table["exchange"])
            if names != [self.exchange]:
                ours = names.index(self.exchange) if self.exchange in names else -1
                i = int(np.flatnonzero(codes != ours)[0])
                raise UserError(f"{self.where_in(table, i)}: exchange '{names[codes[i]]}' in "
                                f"a file of '{self.exchange}'; a file holds one exchange.")
        if "symbol" in table.column_names:
            codes, names = codes_of(table["symbol"])
            if self.symbols is not None:
                wanted = [i for i, name in enumerate(names) if name in self.symbols]
                if len(wanted) < len(names):
                    table = table.filter(bools(np.isin(codes, wanted)))
            elif self.file_symbol is not None and names != [self.file_symbol]:
                ours = names.index(self.file_symbol) if self.file_symbol in names else -1
                i = int(np.flatnonzero(codes != ours)[0])
                raise UserError(f"{self.where_in(table, i)}: symbol '{names[codes[i]]}' after "
                                f"'{self.file_symbol}': the file mixes symbols; choose them "
                                f"with --symbol.")
        return table if table.num_rows else None


# Arrow from NumPy and back without pa.array() or Python scalars in compute calls: both
# import pandas (0.7 s), which nothing on this path needs.
def _int64s(values: np.ndarray) -> pa.Array:
    """An Arrow int64 array over a NumPy array's memory."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def bools(mask: np.ndarray) -> pa.Array:
    """An Arrow boolean array (bit-packed) from a NumPy mask."""
    bits = np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(bits)])


def mask_of(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow column without nulls as a NumPy mask."""
    array = _single(column)
    bits = np.frombuffer(array.buffers()[1], dtype=np.uint8)
    return np.unpackbits(bits, bitorder="little", count=array.offset + len(array))[
        array.offset:].astype(bool)


def numbers(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed-width numeric Arrow column without nulls as a NumPy view of its memory."""
    array = _single(column)
    dtype = np.dtype(array.type.to_pandas_dtype())  # a type mapping only: no pandas import
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=array.offset + len(array))[
        array.offset:]


def codes_of(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    """A string column (plain or dictionary) as integer codes into a list of its values."""
    array = _single(column)
    encoded = array if pa.types.is_dictionary(array.type) else array.dictionary_encode()
    codes, names = numbers(encoded.indices), encoded.dictionary.to_pylist()
    used = np.bincount(codes, minlength=len(names)) > 0
    if used.all():
        return codes, names
    # a filtered dictionary column keeps the values of the rows it dropped: list only those
    # still there
    renumber = np.cumsum(used) - 1
    return renumber[codes], [name for name, kept in zip(names, used, strict=True) if kept]


def _single(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def _blank_rows(table: pa.Table, time_column: str) -> np.ndarray:
    """Rows that were blank lines: no time and nothing else but empty strings."""
    blank = mask_of(table[time_column].is_null())
    for name in table.column_names:
        if name in ("_row", time_column):
            continue
        column = table[name]
        if pa.types.is_string(column.type) or pa.types.is_dictionary(column.type):
            codes, names = codes_of(column)
            blank &= codes == (names.index("") if "" in names else -1)
        else:
            blank &= mask_of(column.is_null())
    return blank


# -- columns every importer reads the same way ----------------------------------------------
@dataclass
class PendingSnapshot:
    """A block of snapshot rows being collected (it may span batches)."""

    t: int
    ts_event: int | None
    seq: int | None
    where: str
    bids: list[tuple[int, int]] = field(default_factory=list)
    asks: list[tuple[int, int]] = field(default_factory=list)


def side_flags(rows: FileRows, table: pa.Table, bid_word: str, ask_word: str) -> list[bool]:
    """True for bid rows; anything but the two words is a UserError naming its line."""
    codes, names = codes_of(table["side"])
    odd = [i for i, name in enumerate(names) if name not in (bid_word, ask_word)]
    if odd:
        i = int(np.flatnonzero(np.isin(codes, odd))[0])
        raise UserError(f"{rows.where_in(table, i)}: side '{names[codes[i]]}' is neither "
                        f"'{bid_word}' nor '{ask_word}'.")
    return (codes == (names.index(bid_word) if bid_word in names else -1)).tolist()


def level_units(rows: FileRows, table: pa.Table, name: str, allow_empty: bool = False
                ) -> tuple[list[int], list[bool]]:
    """A price or size column as exact integer units, and which entries are empty; a
    negative value, or an empty one where not allowed, is a UserError naming its line."""
    from collector.importers.csvfile import units

    values, nulls, negative = units(table[name])
    if negative is not None:
        raise UserError(f"{rows.where_in(table, negative)}: {name} "
                        f"{table[name][negative].as_py().normalize():f} is negative.")
    if not allow_empty and nulls.any():
        raise UserError(f"{rows.where_in(table, int(np.flatnonzero(nulls)[0]))}: the {name} "
                        f"field is empty.")
    return values, nulls.tolist()


def apply_top_rows(feed: BookFeed, rows: FileRows, table: pa.Table,
                   columns: list[tuple[bool, str, str]], event_column: str,
                   seq_column: str | None, previous: dict[str, tuple[dict, dict]]) -> bool:
    """Rows that each give the whole top of the book (tardis book_snapshot_N and quotes,
    Binance bookTicker): each row replaces the book. `columns` are (is_bid, price column,
    size column), best first. n_updates counts the levels that changed. False once past
    --to."""
    unit = rows.unit_ns
    local = numbers(table[rows.time_column])
    exchange_ts = numbers(table[event_column])
    seqs = numbers(table[seq_column]).tolist() if seq_column else None
    codes, names = rows.symbol_keys(table)
    states = [feed.state(name) for name in names]
    sides = []
    for is_bid, price_col, size_col in columns:
        prices, price_empty = level_units(rows, table, price_col, allow_empty=True)
        sizes, size_empty = level_units(rows, table, size_col, allow_empty=True)
        if price_empty != size_empty:
            i = next(i for i, (a, b) in enumerate(zip(price_empty, size_empty, strict=True))
                     if a != b)
            raise UserError(f"{rows.where_in(table, i)}: {price_col} and {size_col} must be "
                            f"both given or both empty.")
        sides.append((is_bid, prices, sizes, price_empty))
    for i in range(table.num_rows):
        t = int(local[i]) * unit
        if feed.past_end(t):
            return False
        state = states[codes[i]]
        bids = [(p[i], s[i]) for is_bid, p, s, empty in sides if is_bid and not empty[i]]
        asks = [(p[i], s[i]) for is_bid, p, s, empty in sides if not is_bid and not empty[i]]
        feed.advance(t)
        new = (dict(bids), dict(asks))
        old = previous.get(state.symbol, ({}, {}))
        previous[state.symbol] = new
        changed = sum(_changed_levels(o, n) for o, n in zip(old, new, strict=True))
        feed.load_snapshot(state, bids, asks, t, int(exchange_ts[i]) * unit,
                           seqs[i] if seqs else None, rows.where_in(table, i),
                           n_updates=changed)
    return True


def _changed_levels(old: dict[int, int], new: dict[int, int]) -> int:
    """Levels whose size differs between two tops of book (added and removed included)."""
    return sum(1 for p, s in new.items() if old.get(p) != s) + sum(1 for p in old if p not in new)
