"""The path every message takes after the socket, live or replayed.

venue parser -> sync rule -> OrderBook -> sampler (fixed receive-time grid) -> writers.

Each row is the book as of the last event received at or before its grid time. A
row is written only once the venue's checks vouch for it: when the next record of
that book (or, for a venue that sequences a whole connection, of that connection)
passes its sync check, the venue module calls `advance`, and the grid rows before
that record are written from the book as it stood. A record that fails its check
(a sequence gap, a checksum mismatch, an unreadable message) invalidates the book
instead, and the rows since its last verified record are never written: they
would stand for moments at which a message was lost. So are the rows after a
disconnect or a stale stream, and the rows at the end of a stream that no later
record vouched for. A book that is not synchronised is not sampled; the first row
after a (re)sync carries `gap = true`.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from collector.book import BookLevels
from collector.capture import CaptureRecord
from collector.state import SymbolState
from collector.venues import Venue, venue_class
from collector.writers import SnapshotWriter, TradeWriter

log = logging.getLogger("bookcast.collector")

DEFAULT_ROTATE_ROWS = 1_000_000
MAX_PARSE_WARNINGS = 20
SOURCES = ("capture", "simulator")  # besides an import format's name (DESIGN.md metadata)


@dataclass
class TopCheck:
    """Venue top-of-book messages compared with the rebuilt book at the same sequence."""

    checked: int = 0
    mismatched: int = 0
    examples: list[str] = field(default_factory=list)


class Pipeline:
    """One venue's books, sampler and writers; implements the venue modules' FeedSink."""

    def __init__(self, venue: str, data_dir: Path | str, interval_ns: int = 1_000_000_000,
                 depth: int | None = 100, symbols: list[str] | None = None,
                 rotate_rows: int = DEFAULT_ROTATE_ROWS, rotate_ns: int | None = None,
                 on_snapshot_request: Callable[[SymbolState], None] | None = None,
                 on_event: Callable[[str, SymbolState, str], None] | None = None,
                 top_of_book_check: bool = False, source: str = "capture",
                 protocol: type[Venue] | None = None) -> None:
        self.venue_name = venue
        # importers feed books themselves and may name a venue bookcast has no module for
        self.venue = (protocol or venue_class(venue))(self)
        self.source = source  # file metadata: capture, simulator, tardis, binance-depth
        # live: also subscribe to the venue's own top-of-book stream, to cross-check books
        self.venue.top_of_book_streams = top_of_book_check
        self.root = Path(data_dir)
        self.interval_ns = interval_ns
        self.depth = depth
        self.symbols = set(symbols) if symbols else None
        self.rotate_rows, self.rotate_ns = rotate_rows, rotate_ns
        self.on_snapshot_request = on_snapshot_request
        self.on_event = on_event
        self._states: dict[str, SymbolState] = {}
        self._next_grid: dict[str, int] = {}  # first grid point not yet written or skipped
        self._last_levels: dict[str, BookLevels] = {}
        self.snapshot_writers: dict[str, SnapshotWriter] = {}
        self.trade_writers: dict[str, TradeWriter] = {}
        self.top_check = TopCheck()
        self._waiting_refs: dict[str, deque[tuple[int, int, int]]] = {}
        self.parse_errors = 0
        self.messages = 0
        self.last_ts = 0
        self.rows_written = 0

    # -- driving ---------------------------------------------------------------------
    def feed(self, rec: CaptureRecord) -> None:
        t = rec.ts_ns
        if t > self.last_ts:
            self.last_ts = t
        self.messages += 1
        self.venue.on_record(rec)
        if self._waiting_refs:
            self._check_waiting_refs()

    def connection_lost(self, conn: str, ts_recv: int, reason: str) -> None:
        """Live only: a connection closed or went stale; its books are invalid at once.

        Replay meets the same books invalid at the next `connect` record of that
        connection, and no row of the time between is ever written either way (no
        record of the lost connection vouches for one), so both write the same rows.
        """
        self.venue.on_disconnect(ts_recv, conn, reason)

    def finish(self) -> None:
        """Write everything out (rows no record vouched for are not written)."""
        self.flush()

    def mark_gap(self, symbol: str) -> None:
        """Rows of `symbol` were lost after being sampled: flag the next one."""
        state = self._states.get(symbol)
        if state is not None:
            state.gap_pending = True

    def flush(self) -> list[Path]:
        """Write every buffered and pending part; the files written, in order."""
        written = []
        for writer in (*self.snapshot_writers.values(), *self.trade_writers.values()):
            before = len(writer.files)
            writer.flush()
            written.extend(writer.files[before:])
        return written

    def write_pending(self) -> list[Path]:
        """Write the parts the writers' rotation cut so far (not the rows still buffered)."""
        return [path for writer in (*self.snapshot_writers.values(),
                                    *self.trade_writers.values())
                for path in writer.write_pending()]

    # -- sampling --------------------------------------------------------------------------
    def sample_until(self, t: int) -> None:
        """Write every synchronised book's grid rows before `t`: for importers, whose
        streams carry no sequence numbers, so one update vouches for the whole stream."""
        for state in self._states.values():
            self.advance(state, t)

    def advance(self, state: SymbolState, ts_recv: int) -> None:
        """Write the grid rows before `ts_recv` from the book as it stands (FeedSink).
        `hold` then `release` without the list: this runs for every diff of a replay."""
        if not state.valid:
            return
        g = self._next_grid[state.symbol]
        if g >= ts_recv:
            return
        step = self.interval_ns
        while g < ts_recv:
            self._write_row(state, self._row(state, g))
            g += step
        self._next_grid[state.symbol] = g

    def hold(self, state: SymbolState, ts_recv: int) -> list[tuple]:
        """The rows `advance` would write, taken now and written only by `release`."""
        if not state.valid:
            return []
        g = self._next_grid[state.symbol]
        if g >= ts_recv:
            return []
        held = []
        step = self.interval_ns
        while g < ts_recv:
            held.append(self._row(state, g))
            g += step
        self._next_grid[state.symbol] = g
        return held

    def release(self, state: SymbolState, held: list[tuple]) -> None:
        for row in held:
            self._write_row(state, row)

    def _row(self, state: SymbolState, g: int) -> tuple:
        symbol = state.symbol
        if state.n_updates or state.gap_pending or symbol not in self._last_levels:
            self._last_levels[symbol] = state.book.levels(self.depth)
        row = (g, state.ts_event, state.ts_recv, state.seq, self._last_levels[symbol],
               state.n_updates, state.gap_pending)
        state.n_updates = 0
        state.gap_pending = False
        return row

    def _write_row(self, state: SymbolState, row: tuple) -> None:
        writer = self.snapshot_writers.get(state.symbol)
        if writer is None:
            writer = self._snapshot_writer(state)
        writer.add(*row)
        self.rows_written += 1

    def verified_depth(self) -> int | str:
        """How many levels of each row the venue's own checks cover (DESIGN.md metadata)."""
        checked = self.venue.verified_depth
        if checked is None:
            return "full" if self.depth is None else self.depth
        return checked if self.depth is None else min(checked, self.depth)

    def _snapshot_writer(self, state: SymbolState) -> SnapshotWriter:
        meta = {"depth": "full" if self.depth is None else self.depth,
                "interval_ns": self.interval_ns,
                "tick_size": "" if state.tick_size is None else repr(state.tick_size),
                "tick_size_source": state.tick_size_source,
                "verified_depth": self.verified_depth(),
                "source": self.source}
        writer = SnapshotWriter(self.root, self.venue_name, state.symbol, self.rotate_rows,
                                self.rotate_ns, meta)
        self.snapshot_writers[state.symbol] = writer
        return writer

    # -- FeedSink ------------------------------------------------------------------------------
    def wants(self, symbol: str) -> bool:
        return self.symbols is None or symbol in self.symbols

    def state(self, symbol: str) -> SymbolState:
        state = self._states.get(symbol)
        if state is None:
            state = SymbolState(self.venue_name, symbol)
            tick = self.venue.tick_sizes.get(symbol)
            if tick is not None:
                state.tick_size, state.tick_size_source = tick, "venue preset"
            self._states[symbol] = state
            self._next_grid[symbol] = 0
        return state

    def states(self) -> list[SymbolState]:
        return list(self._states.values())

    def trade(self, state: SymbolState, ts_recv: int, ts_event: int | None, trade_id: str,
              price: float, size: float, side: int) -> None:
        state.trades += 1
        writer = self.trade_writers.get(state.symbol)
        if writer is None:
            writer = TradeWriter(self.root, self.venue_name, state.symbol, self.rotate_rows,
                                 self.rotate_ns, {"source": self.source})
            self.trade_writers[state.symbol] = writer
        writer.add(ts_recv, ts_event, trade_id, price, size, side)

    def synced(self, state: SymbolState, ts_recv: int) -> None:
        state.valid = True
        state.gap_pending = True
        state.resyncs += 1
        step = self.interval_ns
        # the first grid point at or after the sync; rows before it that no record
        # vouched for (a refresh of a valid book) are skipped
        self._next_grid[state.symbol] = -(-ts_recv // step) * step
        self._notify("synced", state, f"book synchronised at seq {state.seq}")

    def invalidate(self, state: SymbolState, ts_recv: int, reason: str) -> None:
        was_valid = state.valid
        state.valid = False
        state.gap_pending = True
        self._last_levels.pop(state.symbol, None)
        if self.on_event is None and (was_valid or "gap" in reason or "checksum" in reason):
            log.warning("%s %s: book invalid until resynchronised: %s", self.venue_name,
                        state.symbol, reason)
        self._notify("invalid", state, reason)

    def request_snapshot(self, state: SymbolState) -> None:
        state.snapshot_requests += 1
        state.awaiting_snapshot = True
        if self.on_snapshot_request is not None:
            self.on_snapshot_request(state)

    def reference_top(self, state: SymbolState, seq: int | None, bid: int, ask: int,
                      ts_recv: int) -> bool | None:
        """Compare a venue's own top-of-book message with the rebuilt book.

        They are comparable only when the book stands at exactly the message's
        sequence id. A ticker usually arrives before the batched diff that ends at its
        id, so one ahead of the book waits for that diff; it is dropped unchecked if
        the book moves past its id without stopping there. Returns whether they agree,
        or None when the comparison waits or cannot be made.
        """
        if not state.valid:
            return None
        if seq == state.seq:  # also a venue without sequence ids that judged it comparable
            return self._compare_top(state, seq, bid, ask)
        if seq is None or state.seq is None or seq < state.seq:
            return None
        waiting = self._waiting_refs.get(state.symbol)
        if waiting is None:
            waiting = self._waiting_refs[state.symbol] = deque()
        if len(waiting) < 10_000:
            waiting.append((seq, bid, ask))
        return None

    def _check_waiting_refs(self) -> None:
        """Settle the waiting top-of-book references the books have now reached or passed."""
        for symbol, waiting in list(self._waiting_refs.items()):
            state = self._states[symbol]
            if not state.valid:
                waiting.clear()
            else:
                # references arrive in sequence order: only the head can be due
                while waiting and waiting[0][0] <= state.seq:
                    seq, bid, ask = waiting.popleft()
                    if seq == state.seq:
                        self._compare_top(state, seq, bid, ask)
            if not waiting:
                del self._waiting_refs[symbol]

    def _compare_top(self, state: SymbolState, seq: int | None, bid: int, ask: int) -> bool:
        best_bid, best_ask = state.book.best_bid(), state.book.best_ask()
        self.top_check.checked += 1
        if best_bid is None or best_ask is None or best_bid[0] != bid or best_ask[0] != ask:
            self.top_check.mismatched += 1
            if len(self.top_check.examples) < 10:
                self.top_check.examples.append(
                    f"{state.symbol} seq {seq}: book {best_bid}/{best_ask}, venue {bid}/{ask}")
            return False
        return True

    def parse_error(self, where: str, reason: str) -> None:
        self.parse_errors += 1
        if self.parse_errors <= MAX_PARSE_WARNINGS:
            log.warning("skipped a message at %s: %s", where, reason)
        elif self.parse_errors == MAX_PARSE_WARNINGS + 1:
            log.warning("more unparseable messages follow; only their count is kept")

    def infer_tick_size(self, state: SymbolState) -> None:
        """Without a published tick size, take the gcd of the price steps in the book."""
        prices = [p for p, _ in state.book.bids(200)] + [p for p, _ in state.book.asks(200)]
        step = 0
        for a, b in itertools.pairwise(prices):
            step = math.gcd(step, abs(a - b))
        if step:
            from collector.book import UNIT

            state.tick_size, state.tick_size_source = step / UNIT, "inferred from the book"

    def _notify(self, event: str, state: SymbolState, detail: str) -> None:
        if self.on_event is not None:
            self.on_event(event, state, detail)
