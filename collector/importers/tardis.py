"""`bookcast import tardis`: tardis.dev CSV files -> the snapshots and trades datasets.

tardis.dev's documented CSV data types (https://docs.tardis.dev/downloadable-csv-files),
timestamps in µs since the epoch, `local_timestamp` the receive time:

- `incremental_book_L2`: exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,
  amount. Rows sharing a local_timestamp are one update; amount 0 deletes a level; a block
  of is_snapshot=true rows is a whole book, and one that follows updates is a resync
  (tardis reconnected): the book is invalid from its last update to that snapshot.
- `book_snapshot_N` (N = 5, 10, 25...): each row the top N levels, `asks[i].price,
  asks[i].amount, bids[i].price, bids[i].amount`; a missing level is an empty field.
- `quotes`: the best bid and ask (`ask_amount,ask_price,bid_price,bid_amount`).
- `trades`: `id`, `side` (the aggressor: buy/sell), `price`, `amount`.

Books go through the collector's Pipeline (sampler and writers) on the receive-time grid
of `local_timestamp`, so an import gives exactly what replay gives: the same rows, gap
flags, atomic Hive-partitioned files and metadata (`source` = `tardis`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa

from bookcast.errors import UserError
from collector.importers.csvfile import UNITS, WORDS, read_header
from collector.importers.feed import (
    BookFeed,
    FileRows,
    ImportWarnings,
    PendingSnapshot,
    TimeWindow,
    apply_top_rows,
    level_units,
    mask_of,
    numbers,
    runs,
    side_flags,
)
from collector.importers.session import ImportSession
from collector.pipeline import DEFAULT_ROTATE_ROWS, Pipeline

SOURCE = "tardis"
US = 1_000
DEFAULT_DEPTH = 100
SKIPPED = "update rows without a book"

# tardis exchange ids -> bookcast venues, where they are the same feed; others keep their id
EXCHANGE_VENUES = {"binance": "binance-spot", "binance-futures": "binance-usdm",
                   "coinbase": "coinbase-exchange", "kraken": "kraken"}

COMMON = ["exchange", "symbol", "timestamp", "local_timestamp"]
L2_COLUMNS = [*COMMON, "is_snapshot", "side", "price", "amount"]
TRADE_COLUMNS = [*COMMON, "id", "side", "price", "amount"]
QUOTE_COLUMNS = [*COMMON, "ask_amount", "ask_price", "bid_price", "bid_amount"]
# tardis types bookcast knows of but does not import, by their first distinctive column
OTHER_TYPES = {"funding_rate": "derivative_ticker", "open_interest": "derivative_ticker",
               "strike_price": "options_chain", "expiration": "options_chain"}
_SNAPSHOT_COLUMN = re.compile(r"^(asks|bids)\[(\d+)\]\.(price|amount)$")

Depth = int | Literal["full"] | None  # None: not given (100, or a snapshot file's N)


@dataclass(frozen=True)
class DataType:
    """What one tardis file holds."""

    name: str  # incremental_book_L2, book_snapshot_25, quotes, trades
    dataset: str  # snapshots or trades
    levels: int | None = None  # levels a side a row gives (snapshots, quotes)


def data_type(path: Path, header: list[str]) -> DataType:
    """The tardis data type of a file, from its header (and its name, where the header
    is ambiguous); anything else is a UserError naming the file."""
    if header == L2_COLUMNS:
        return DataType("incremental_book_L2", "snapshots")
    if header == TRADE_COLUMNS:
        if "liquidations" in path.name:
            raise UserError(f"'{path}' line 1: a tardis liquidations file; bookcast imports "
                            f"trades, not liquidations.")
        return DataType("trades", "trades")
    if header == QUOTE_COLUMNS:
        return DataType("quotes", "snapshots", levels=1)
    if header[:4] == COMMON and len(header) > 4:
        levels = _snapshot_levels(header[4:])
        if levels:
            return DataType(f"book_snapshot_{levels}", "snapshots", levels=levels)
        for column in header[4:]:
            if column in OTHER_TYPES:
                raise UserError(f"'{path}' line 1: a tardis {OTHER_TYPES[column]} file; "
                                f"bookcast imports incremental_book_L2, book_snapshot_N, "
                                f"quotes and trades.")
    shown = ",".join(header[:10]) + (",…" if len(header) > 10 else "")
    raise UserError(f"'{path}' line 1: the header '{shown}' is not a tardis data type "
                    f"bookcast imports (incremental_book_L2, book_snapshot_N, quotes, trades).")


def _snapshot_levels(columns: list[str]) -> int | None:
    """N when the columns are exactly book_snapshot_N's, in tardis's order."""
    if len(columns) % 4:
        return None
    levels = len(columns) // 4
    expected = [f"{side}[{i}].{field}" for i in range(levels)
                for side in ("asks", "bids") for field in ("price", "amount")]
    return levels if columns == expected and levels else None


def venue_of(exchange: str) -> str:
    return EXCHANGE_VENUES.get(exchange, exchange)


# -- the summary ----------------------------------------------------------------------------
@dataclass
class ImportedStream:
    """What one (venue, symbol, dataset) got from the files."""

    venue: str
    symbol: str
    data_type: str
    files: int = 0
    updates: int = 0
    rows_written: int = 0
    resyncs: int = 0
    gaps: int = 0
    crossed: int = 0


@dataclass
class ImportSummary:
    streams: list[ImportedStream] = field(default_factory=list)
    rows_read: int = 0
    seconds: float = 0.0
    files_written: list[Path] = field(default_factory=list)
    warnings: ImportWarnings = field(default_factory=ImportWarnings)
    pipelines: list[Pipeline] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0


# -- one file, looked at before any work ----------------------------------------------------
@dataclass
class TardisFile:
    path: Path
    header: list[str]
    kind: DataType
    exchange: str
    symbol: str  # of the first data row (the first wanted one under --symbol)
    first_local_us: int

    @property
    def venue(self) -> str:
        return venue_of(self.exchange)


def look_at(path: Path, symbols: set[str] | None) -> TardisFile:
    import csv

    from collector.importers.csvfile import open_text

    header = read_header(path)
    kind = data_type(path, header)
    try:
        with open_text(path) as fh:
            reader = csv.reader(fh)
            next(reader)
            for lineno, fields in enumerate(reader, start=2):
                if not fields:
                    continue
                if len(fields) != len(header):
                    raise UserError(f"'{path}' line {lineno}: expected {len(header)} columns "
                                    f"({','.join(header[:8])}…), found {len(fields)}.")
                exchange, symbol, _ts, local = fields[:4]
                if symbols is not None and symbol not in symbols:
                    continue
                if not local.isdigit():
                    raise UserError(f"'{path}' line {lineno}: local_timestamp '{local}' is not "
                                    f"an integer of µs.")
                return TardisFile(path, header, kind, exchange, symbol, int(local))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise UserError(f"The file '{path}' is corrupt or truncated ({exc}).") from None
    wanted = "" if symbols is None else f" for {', '.join(sorted(symbols))}"
    raise UserError(f"'{path}' holds no data rows{wanted}.")


# -- the command ----------------------------------------------------------------------------
def import_tardis(paths: list[Path | str], data_dir: Path | str,
                  interval_ns: int = 1_000_000_000, depth: Depth = None,
                  symbols: list[str] | None = None, window: TimeWindow | None = None,
                  rotate_rows: int = DEFAULT_ROTATE_ROWS, rotate_ns: int | None = None,
                  progress: bool = False) -> ImportSummary:
    """Import tardis.dev CSV files into `data_dir`; nothing is written unless all succeed."""
    from collector.replay import check_sampling, progress_bar

    if not paths:
        raise UserError("No tardis files were given to import.")
    check_sampling(interval_ns, depth if isinstance(depth, int) else None)
    window = window or TimeWindow()
    wanted = set(symbols) if symbols else None
    files = [look_at(Path(p), wanted) for p in paths]
    groups = _groups(files)
    summary = ImportSummary()
    started = time.perf_counter()
    total = sum(f.path.stat().st_size for f in files)
    with ImportSession(data_dir, SOURCE) as session, progress_bar("import", progress,
                                                                  total) as on_bytes:
        for (venue, kind), group in groups.items():
            levels = depth_for(kind, depth, group[0].path)
            pipeline = session.pipeline(venue, interval_ns, levels, symbols,
                                        rotate_rows=rotate_rows, rotate_ns=rotate_ns,
                                        trades=kind.dataset == "trades")
            summary.pipelines.append(pipeline)
            if kind.dataset == "trades":
                summary.rows_read += _import_trades(pipeline, group, wanted, window,
                                                    summary.warnings, on_bytes)
            else:
                feed = BookFeed(pipeline, window, summary.warnings)
                read = _import_l2 if kind.name == "incremental_book_L2" else _import_levels
                summary.rows_read += read(feed, group, wanted, summary.warnings, on_bytes)
                feed.finish()
                _require_books(pipeline, group)
            pipeline.flush()
            summary.streams += _streams(pipeline, kind, len(group))
        summary.files_written = session.commit()
    summary.seconds = time.perf_counter() - started
    return summary


def _groups(files: list[TardisFile]) -> dict[tuple[str, DataType], list[TardisFile]]:
    """Files of one venue and data type make one stream, read in time order; two book
    data types of one venue and symbol would both write its snapshots: refused."""
    groups: dict[tuple[str, DataType], list[TardisFile]] = {}
    for f in files:
        groups.setdefault((f.venue, f.kind), []).append(f)
    books: dict[tuple[str, str], TardisFile] = {}
    for f in files:
        if f.kind.dataset != "snapshots":
            continue
        other = books.setdefault((f.venue, f.symbol), f)
        if other.kind != f.kind:
            raise UserError(f"'{other.path}' ({other.kind.name}) and '{f.path}' "
                            f"({f.kind.name}) both give {f.venue} {f.symbol} snapshots; "
                            f"import one of them.")
    for group in groups.values():
        group.sort(key=lambda f: f.first_local_us)
    return groups


def depth_for(kind: DataType, depth: Depth, path: Path) -> int | None:
    """The depth to store: --depth if given (refused above the levels a row holds), else
    100 levels, or all a snapshot file's rows hold if fewer; 'full' is every level."""
    if kind.levels is None:
        return None if depth == "full" else (depth or DEFAULT_DEPTH)
    if isinstance(depth, int) and depth > kind.levels:
        raise UserError(f"'{path}' is {kind.name}, {kind.levels} level"
                        f"{'s' if kind.levels > 1 else ''} a side; --depth {depth} asks for "
                        f"more than it holds (use --depth {kind.levels} or less).")
    return kind.levels if depth in (None, "full") else depth  # type: ignore[return-value]


def _require_books(pipeline: Pipeline, group: list[TardisFile]) -> None:
    for state in pipeline.states():
        if not state.resyncs:
            names = ", ".join(f"'{f.path}'" for f in group)
            raise UserError(f"{names} hold{'s' if len(group) == 1 else ''} no book snapshot "
                            f"for {state.symbol} (no is_snapshot=true rows), so no book could "
                            f"be built.")


def _streams(pipeline: Pipeline, kind: DataType, n_files: int) -> list[ImportedStream]:
    out = []
    for state in pipeline.states():
        if kind.dataset == "trades":
            writer = pipeline.trade_writers.get(state.symbol)
        else:
            writer = pipeline.snapshot_writers.get(state.symbol)
        out.append(ImportedStream(pipeline.venue_name, state.symbol, kind.name, n_files,
                                  state.messages if kind.dataset == "snapshots" else
                                  state.trades, writer.rows_written if writer else 0,
                                  state.resyncs, state.gaps, state.crossed))
    return out


# -- incremental_book_L2 ------------------------------------------------------------------
L2_TYPES = {"exchange": WORDS, "symbol": WORDS, "timestamp": pa.int64(),
            "local_timestamp": pa.int64(), "is_snapshot": pa.bool_(), "side": WORDS,
            "price": UNITS, "amount": UNITS}


def _rows(f: TardisFile, types: dict[str, pa.DataType], wanted: set[str] | None,
          warnings: ImportWarnings, on_bytes: Callable[[int], None] | None,
          required: tuple[str, ...]) -> FileRows:
    return FileRows(f.path, f.header, types, "local_timestamp", US, warnings, symbols=wanted,
                    file_symbol=f.symbol, exchange=f.exchange, on_bytes=on_bytes,
                    required=("timestamp", *required))


def _import_l2(feed: BookFeed, group: list[TardisFile], wanted: set[str] | None,
               warnings: ImportWarnings, on_bytes: Callable[[int], None] | None) -> int:
    snapshots: dict[str, PendingSnapshot] = {}
    skipped: dict[str, int] = {}
    read = 0
    for f in group:
        rows = _rows(f, L2_TYPES, wanted, warnings, on_bytes, ("is_snapshot", "price", "amount"))
        tables = rows.tables()
        for table in tables:
            if not _apply_l2(feed, rows, table, snapshots, skipped):
                tables.close()
                break
        read += rows.rows_read
    for symbol, pending in snapshots.items():  # a file that ends inside a snapshot block
        feed.load_snapshot(feed.state(symbol), pending.bids, pending.asks, pending.t,
                           pending.ts_event, pending.seq, pending.where)
    for symbol, n in skipped.items():
        warnings.add(SKIPPED, f"{symbol}: {n:,} update rows skipped while its book had no "
                              f"snapshot (before the first, or after it went invalid)", count=n)
    return read


def _apply_l2(feed: BookFeed, rows: FileRows, table: pa.Table,
              snapshots: dict[str, PendingSnapshot], skipped: dict[str, int]) -> bool:
    """Apply one table of L2 rows; False once past --to."""
    local = numbers(table["local_timestamp"])
    exchange_ts = numbers(table["timestamp"])
    snap = mask_of(table["is_snapshot"])
    row_index = numbers(table["_row"])
    is_bid = side_flags(rows, table, "bid", "ask")
    prices, _ = level_units(rows, table, "price")
    sizes, _ = level_units(rows, table, "amount")
    codes, names = rows.symbol_keys(table)
    states = [feed.state(name) for name in names]
    for a, b in runs([local, snap, codes]):
        t = int(local[a]) * US
        if feed.past_end(t):
            return False
        state = states[codes[a]]
        symbol = state.symbol
        if snap[a]:
            pending = snapshots.get(symbol)
            if pending is None:
                where = rows.where(int(row_index[a]))
                if feed.ready(state):
                    state.gaps += 1
                    feed.invalidate(state, t, f"a new snapshot at {where}: tardis "
                                              f"resynchronised the feed")
                pending = snapshots[symbol] = PendingSnapshot(t, int(exchange_ts[a]) * US, None,
                                                              where)
            feed.advance(t)
            bids, asks = pending.bids, pending.asks
            for i in range(a, b):
                (bids if is_bid[i] else asks).append((prices[i], sizes[i]))
            continue
        pending = snapshots.pop(symbol, None)
        if pending is not None:
            feed.load_snapshot(state, pending.bids, pending.asks, pending.t, pending.ts_event,
                               pending.seq, pending.where)
        feed.advance(t)
        if not feed.ready(state):
            skipped[symbol] = skipped.get(symbol, 0) + b - a
            continue
        feed.apply_levels(state, prices[a:b], sizes[a:b], is_bid[a:b], t,
                          int(exchange_ts[b - 1]) * US, None, rows.where(int(row_index[b - 1])))
    return True


# -- book_snapshot_N and quotes -------------------------------------------------------------
def _level_types(header: list[str]) -> dict[str, pa.DataType]:
    types: dict[str, pa.DataType] = {"exchange": WORDS, "symbol": WORDS,
                                     "timestamp": pa.int64(), "local_timestamp": pa.int64()}
    types.update({name: UNITS for name in header[4:]})
    return types


def _level_columns(kind: DataType) -> Iterator[tuple[bool, str, str]]:
    """(is_bid, price column, amount column), best level first, bids and asks."""
    if kind.name == "quotes":
        yield True, "bid_price", "bid_amount"
        yield False, "ask_price", "ask_amount"
        return
    for is_bid, word in ((True, "bids"), (False, "asks")):
        for i in range(kind.levels or 0):
            yield is_bid, f"{word}[{i}].price", f"{word}[{i}].amount"


def _import_levels(feed: BookFeed, group: list[TardisFile], wanted: set[str] | None,
                   warnings: ImportWarnings, on_bytes: Callable[[int], None] | None) -> int:
    """book_snapshot_N and quotes: every row is the whole top of the book."""
    read = 0
    previous: dict[str, tuple[dict, dict]] = {}
    for f in group:
        rows = _rows(f, _level_types(f.header), wanted, warnings, on_bytes, ())
        columns = list(_level_columns(f.kind))
        tables = rows.tables()
        for table in tables:
            if not apply_top_rows(feed, rows, table, columns, "timestamp", None, previous):
                tables.close()
                break
        read += rows.rows_read
    return read


# -- trades ---------------------------------------------------------------------------------
TRADE_TYPES = {"exchange": WORDS, "symbol": WORDS, "timestamp": pa.int64(),
               "local_timestamp": pa.int64(), "id": pa.string(), "side": WORDS,
               "price": pa.float64(), "amount": pa.float64()}
TRADE_SIDES = {"buy": 1, "sell": -1}


def _import_trades(pipeline: Pipeline, group: list[TardisFile], wanted: set[str] | None,
                   window: TimeWindow, warnings: ImportWarnings,
                   on_bytes: Callable[[int], None] | None) -> int:
    read = 0
    start = window.start if window.start is not None else -1
    end = window.end
    for f in group:
        rows = _rows(f, TRADE_TYPES, wanted, warnings, on_bytes, ("price", "amount"))
        tables = rows.tables()
        for table in tables:
            local = (numbers(table["local_timestamp"]) * US).tolist()
            event = (numbers(table["timestamp"]) * US).tolist()
            ids = table["id"].to_pylist()
            sides = table["side"].to_pylist()
            prices = numbers(table["price"]).tolist()
            sizes = numbers(table["amount"]).tolist()
            codes, names = rows.symbol_keys(table)
            states = [pipeline.state(name) for name in names]
            trade = pipeline.trade
            stop = False
            unknown = 0
            for i, t in enumerate(local):
                if end is not None and t > end:
                    stop = True
                    break
                if t < start:
                    continue
                side = TRADE_SIDES.get(sides[i])
                if side is None:
                    if not unknown:
                        unknown_where = rows.where_in(table, i)
                        unknown_side = sides[i]
                    unknown += 1
                    continue
                trade(states[codes[i]], t, event[i], ids[i], prices[i], sizes[i], side)
            pipeline.write_pending()
            if unknown:
                warnings.add("trades without an aggressor side",
                             f"{unknown_where}: trade side '{unknown_side}' is neither buy "
                             f"nor sell; {unknown:,} such trades skipped", count=unknown)
            if stop:
                tables.close()
                break
        read += rows.rows_read
    return read
