"""`bookcast import binance-depth`: Binance's historical order-book files -> snapshots.

Two of Binance's public historical files (https://www.binance.com/en/landing/data):

- Order-book updates (`T_DEPTH`): `symbol,timestamp,first_update_id,last_update_id,side,
  update_type,price,qty,pu`, sides `a`/`b`. Rows with update_type `snap` and one
  last_update_id are a whole book; `set` rows sharing a last_update_id are one update
  (qty 0 deletes the level). Each update must continue the one before it by the venue
  module's own rule (futures: `pu` = previous `last_update_id`; spot: first_update_id =
  previous last_update_id + 1); a break is a gap: the book is invalid until the next
  `snap` block, and the first row after it has gap = true.
- `bookTicker`: `update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,
  transaction_time,event_time`, imported as one-level snapshots.

Both are in ms and carry no receive time: the grid is on the exchange's time (`timestamp`,
`event_time`), which is also stored as ts_recv. Files written without a header are read
in the documented column order.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bookcast.errors import UserError
from collector.importers.csvfile import UNITS, WORDS, check_readable, open_text
from collector.importers.feed import (
    BookFeed,
    FileRows,
    ImportWarnings,
    PendingSnapshot,
    TimeWindow,
    apply_top_rows,
    codes_of,
    level_units,
    mask_of,
    numbers,
    runs,
    side_flags,
)
from collector.importers.session import ImportSession
from collector.importers.tardis import (
    SKIPPED,
    DataType,
    Depth,
    ImportedStream,
    ImportSummary,
    depth_for,
)
from collector.pipeline import DEFAULT_ROTATE_ROWS, Pipeline
from collector.venues.binance_spot import BinanceSpot
from collector.venues.binance_usdm import coin_margined

SOURCE = "binance-depth"
MS = 1_000_000
VENUES = ("binance-usdm", "binance-spot")

DEPTH_COLUMNS = ["symbol", "timestamp", "first_update_id", "last_update_id", "side",
                 "update_type", "price", "qty", "pu"]
DEPTH_COLUMNS_WITH_TRANS_ID = ["symbol", "timestamp", "trans_id", "first_update_id",
                               "last_update_id", "side", "update_type", "price", "qty"]
TICKER_COLUMNS = ["update_id", "best_bid_price", "best_bid_qty", "best_ask_price",
                  "best_ask_qty", "transaction_time", "event_time"]
DATA_TYPES = {"depth": DataType("depth", "snapshots"),
              "bookTicker": DataType("bookTicker", "snapshots", levels=1)}
_TICKER_NAME = re.compile(r"^([A-Z0-9]+(?:_[A-Z0-9]+)?)-bookTicker-")


@dataclass(frozen=True)
class BinanceFile:
    path: Path
    header: list[str]
    has_header: bool
    kind: str  # depth or bookTicker
    symbol: str
    first_ms: int


def look_at(path: Path, symbol: str | None) -> BinanceFile:
    """A file's kind (from its header, or its first row when it has none), its symbol and
    its first time."""
    import csv

    check_readable(path)
    try:
        with open_text(path) as fh:
            reader = csv.reader(fh)
            first = next(reader, None)
            second = next(reader, None)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise UserError(f"The file '{path}' is corrupt or truncated ({exc}).") from None
    if not first:
        raise UserError(f"The file '{path}' has no header line (line 1 is empty).")
    has_header = not first[0].replace(".", "").isdigit() and first[0] != "" and (
        first[0] in ("symbol", "update_id") or not (len(first) > 1 and first[1].isdigit()))
    header = first if has_header else _headerless_columns(path, first)
    row = second if has_header else first
    if sorted(header) == sorted(DEPTH_COLUMNS) or sorted(header) == sorted(
            DEPTH_COLUMNS_WITH_TRANS_ID):
        kind = "depth"
    elif sorted(header) == sorted(TICKER_COLUMNS):
        kind = "bookTicker"
    else:
        shown = ",".join(header[:10])
        raise UserError(f"'{path}' line 1: the header '{shown}' is neither Binance's "
                        f"order-book update file ({','.join(DEPTH_COLUMNS)}) nor its "
                        f"bookTicker file ({','.join(TICKER_COLUMNS)}).")
    if row is None:
        raise UserError(f"'{path}' holds no data rows.")
    fields = dict(zip(header, row, strict=False))
    if kind == "depth":
        file_symbol = fields["symbol"]
        if symbol is not None and file_symbol != symbol:
            raise UserError(f"'{path}' line {2 if has_header else 1}: symbol '{file_symbol}', "
                            f"not the {symbol} asked for with --symbol.")
        first_time = fields["timestamp"]
    else:
        match = _TICKER_NAME.match(path.name)
        file_symbol = symbol or (match.group(1) if match else "")
        if not file_symbol:
            raise UserError(f"'{path}' is a bookTicker file, which names no symbol; pass "
                            f"--symbol.")
        first_time = fields["event_time"]
    if not first_time.isdigit():
        raise UserError(f"'{path}' line {2 if has_header else 1}: the time '{first_time}' is "
                        f"not an integer of ms.")
    return BinanceFile(path, header, has_header, kind, file_symbol, int(first_time))


def _headerless_columns(path: Path, row: list[str]) -> list[str]:
    """Binance's documented column orders, for files written without a header."""
    if len(row) == len(TICKER_COLUMNS):
        return TICKER_COLUMNS
    if len(row) == len(DEPTH_COLUMNS):
        return DEPTH_COLUMNS if row[4] in ("a", "b") else DEPTH_COLUMNS_WITH_TRANS_ID
    raise UserError(f"'{path}' line 1: {len(row)} columns and no header, which is neither "
                    f"Binance's order-book update file nor its bookTicker file.")


def import_binance(paths: list[Path | str], data_dir: Path | str,
                   interval_ns: int = 1_000_000_000, depth: Depth = None,
                   venue: str = "binance-usdm", symbol: str | None = None,
                   window: TimeWindow | None = None, rotate_rows: int = DEFAULT_ROTATE_ROWS,
                   rotate_ns: int | None = None, progress: bool = False) -> ImportSummary:
    """Import Binance historical order-book and bookTicker files into `data_dir`."""
    from collector.replay import check_sampling, progress_bar

    if not paths:
        raise UserError("No Binance files were given to import.")
    if venue not in VENUES:
        raise UserError(f"Binance's historical files import into {' or '.join(VENUES)}, not "
                        f"'{venue}'.")
    check_sampling(interval_ns, depth if isinstance(depth, int) else None)
    window = window or TimeWindow()
    files = [look_at(Path(p), symbol) for p in paths]
    groups: dict[tuple[str, str], list[BinanceFile]] = {}
    for f in files:
        _refuse_other_family(f, venue)
        groups.setdefault((f.kind, f.symbol), []).append(f)
    kinds = {}
    for kind, sym in groups:
        if kinds.setdefault(sym, kind) != kind:
            raise UserError(f"Both order-book update files and bookTicker files of {sym} were "
                            f"given; each gives its snapshots: import one kind.")
    summary = ImportSummary()
    started = time.perf_counter()
    total = sum(f.path.stat().st_size for f in files)
    with ImportSession(data_dir, SOURCE) as session, progress_bar("import", progress,
                                                                  total) as on_bytes:
        for (kind, sym), group in groups.items():
            group.sort(key=lambda f: f.first_ms)
            levels = depth_for(DATA_TYPES[kind], depth, group[0].path)
            # order-book updates are chained by their ids; bookTicker rows are not
            pipeline = session.pipeline(venue, interval_ns, levels, [sym],
                                        rotate_rows=rotate_rows, rotate_ns=rotate_ns,
                                        checked=kind == "depth")
            summary.pipelines.append(pipeline)
            feed = BookFeed(pipeline, window, summary.warnings)
            read = _import_depth if kind == "depth" else _import_book_ticker
            summary.rows_read += read(feed, group, summary.warnings, on_bytes)
            feed.finish()
            _require_books(pipeline, group)
            summary.streams += [_stream(pipeline, state.symbol, kind, len(group))
                                for state in pipeline.states()]
        summary.files_written = session.commit()
    summary.seconds = time.perf_counter() - started
    return summary


def _refuse_other_family(f: BinanceFile, venue: str) -> None:
    if coin_margined(f.symbol):
        raise UserError(f"'{f.path}' holds {f.symbol}, a Binance COIN-M contract (sizes in "
                        f"contracts, inverse PnL), which {venue} does not speak; bookcast has "
                        f"no COIN-M venue.")


def _require_books(pipeline: Pipeline, group: list[BinanceFile]) -> None:
    for state in pipeline.states():
        if not state.resyncs:
            names = ", ".join(f"'{f.path}'" for f in group)
            raise UserError(f"{names} hold{'s' if len(group) == 1 else ''} no snapshot of "
                            f"{state.symbol} (no 'snap' rows), so no book could be built.")


def _stream(pipeline: Pipeline, symbol: str, kind: str, n_files: int) -> ImportedStream:
    state = pipeline.state(symbol)
    writer = pipeline.snapshot_writers.get(symbol)
    return ImportedStream(pipeline.venue_name, symbol, kind, n_files, state.messages,
                          writer.rows_written if writer else 0, state.resyncs, state.gaps,
                          state.crossed)


def _file_rows(f: BinanceFile, types: dict[str, pa.DataType], time_column: str,
               warnings: ImportWarnings, on_bytes: Callable[[int], None] | None,
               required: tuple[str, ...]) -> FileRows:
    return FileRows(f.path, f.header, types, time_column, MS, warnings,
                    file_symbol=f.symbol, on_bytes=on_bytes, required=required,
                    has_header=f.has_header)


# -- order-book updates ---------------------------------------------------------------------
def _depth_types(header: list[str]) -> dict[str, pa.DataType]:
    types = {"symbol": WORDS, "timestamp": pa.int64(), "first_update_id": pa.int64(),
             "last_update_id": pa.int64(), "side": WORDS, "update_type": WORDS,
             "price": UNITS, "qty": UNITS}
    if "pu" in header:
        types["pu"] = pa.int64()
    return types


def _import_depth(feed: BookFeed, group: list[BinanceFile], warnings: ImportWarnings,
                  on_bytes: Callable[[int], None] | None) -> int:
    venue: BinanceSpot = feed.pipeline.venue  # type: ignore[assignment]
    chain = _Chain(feed, venue, warnings, group[0].symbol)
    read = 0
    for f in group:
        if "pu" not in f.header and venue.name == "binance-usdm":
            raise UserError(f"'{f.path}' has no pu column, so the futures rule (pu = the "
                            f"previous last_update_id) cannot be checked and a lost update "
                            f"would go unnoticed.")
        rows = _file_rows(f, _depth_types(f.header), "timestamp", warnings, on_bytes,
                          ("first_update_id", "last_update_id", "update_type", "price", "qty"))
        tables = rows.tables()
        for table in tables:
            if not chain.apply(rows, table):
                tables.close()
                break
        read += rows.rows_read
    chain.finish()
    return read


class _Chain:
    """Binance updates applied in id order, joined and continued by the venue's own rules."""

    def __init__(self, feed: BookFeed, venue: BinanceSpot, warnings: ImportWarnings,
                 symbol: str) -> None:
        self.feed, self.venue, self.warnings = feed, venue, warnings
        self.state = feed.state(symbol)
        self.pending: PendingSnapshot | None = None
        self.join_at: int | None = None  # a snapshot's id the next update must join
        self.skipped = 0

    def apply(self, rows: FileRows, table: pa.Table) -> bool:
        """One table of rows; False once past --to."""
        feed, venue = self.feed, self.venue
        times = numbers(table["timestamp"])
        first_ids = numbers(table["first_update_id"])
        last_ids = numbers(table["last_update_id"])
        pus = _ids_or_none(table["pu"]) if "pu" in table.column_names else None
        codes, kinds = codes_of(table["update_type"])
        odd = [i for i, kind in enumerate(kinds) if kind not in ("snap", "set")]
        if odd:
            i = int(np.flatnonzero(np.isin(codes, odd))[0])
            raise UserError(f"{rows.where_in(table, i)}: update_type '{kinds[codes[i]]}' is "
                            f"neither 'snap' nor 'set'.")
        snap = codes == (kinds.index("snap") if "snap" in kinds else -1)
        is_bid = side_flags(rows, table, "b", "a")
        prices, _ = level_units(rows, table, "price")
        sizes, _ = level_units(rows, table, "qty")
        state = self.state
        for a, b in runs([last_ids, snap]):
            t = int(times[a]) * MS
            if feed.past_end(t):
                return False
            if snap[a]:
                if self.pending is None or self.pending.seq != int(last_ids[a]):
                    self._finish_snapshot()
                    if feed.ready(state):
                        state.gaps += 1  # the file resynchronised: treat it as a new book
                        feed.invalidate(state, t, f"a new snapshot at {rows.where_in(table, a)}")
                    self.pending = PendingSnapshot(t, t, int(last_ids[a]), rows.where_in(table, a))
                feed.advance(t)
                for i in range(a, b):
                    (self.pending.bids if is_bid[i] else self.pending.asks).append(
                        (prices[i], sizes[i]))
                continue
            self._finish_snapshot()
            feed.advance(t)
            if not feed.ready(state):
                self.skipped += b - a
                continue
            msg: dict[str, Any] = {"U": int(first_ids[a]), "u": int(last_ids[a]),
                                   "pu": None if pus is None else pus[a]}
            if self.join_at is not None:
                if venue.stale(msg, self.join_at):
                    continue  # wholly inside the snapshot
                ok = venue.joins(msg, self.join_at) or venue.continues(msg, self.join_at)
                self.join_at = None
            else:
                ok = venue.continues(msg, state.seq)
            if not ok:
                where = rows.where_in(table, a)
                state.gaps += 1  # counted per stream and logged by the pipeline
                self.skipped += b - a
                feed.invalidate(state, t, f"gap: update {msg['U']}..{msg['u']} after "
                                          f"{state.seq} at {where}")
                continue
            feed.apply_levels(state, prices[a:b], sizes[a:b], is_bid[a:b], t, t, msg["u"],
                              rows.where_in(table, b - 1))
        return True

    def _finish_snapshot(self) -> None:
        pending, self.pending = self.pending, None
        if pending is None:
            return
        self.feed.load_snapshot(self.state, pending.bids, pending.asks, pending.t, pending.ts_event,
                                pending.seq, pending.where)
        self.join_at = pending.seq

    def finish(self) -> None:
        self._finish_snapshot()  # a file that ends inside a snapshot block
        if self.skipped:
            self.warnings.add(SKIPPED, f"{self.state.symbol}: {self.skipped:,} update rows "
                                       f"skipped while its book had no snapshot (before the "
                                       f"first, or after a gap)", count=self.skipped)


def _ids_or_none(column: pa.ChunkedArray) -> list[int | None]:
    """An id column as Python ints, None where the field was empty."""
    values = numbers(column).tolist()  # an empty field's slot holds some value: masked below
    if not column.null_count:
        return values
    nulls = mask_of(column.is_null()).tolist()
    return [None if null else v for v, null in zip(values, nulls, strict=True)]


# -- bookTicker -----------------------------------------------------------------------------
TICKER_TYPES = {"update_id": pa.int64(), "best_bid_price": UNITS, "best_bid_qty": UNITS,
                "best_ask_price": UNITS, "best_ask_qty": UNITS,
                "transaction_time": pa.int64(), "event_time": pa.int64()}
TICKER_LEVELS = [(True, "best_bid_price", "best_bid_qty"),
                 (False, "best_ask_price", "best_ask_qty")]


def _import_book_ticker(feed: BookFeed, group: list[BinanceFile], warnings: ImportWarnings,
                        on_bytes: Callable[[int], None] | None) -> int:
    read = 0
    previous: dict[str, tuple[dict, dict]] = {}
    for f in group:
        rows = _file_rows(f, TICKER_TYPES, "event_time", warnings, on_bytes,
                          ("update_id", "transaction_time"))
        tables = rows.tables()
        for table in tables:
            if not apply_top_rows(feed, rows, table, TICKER_LEVELS, "transaction_time",
                                  "update_id", previous):
                tables.close()
                break
        read += rows.rows_read
    return read
