"""What every venue module provides: parsing raw messages, its sync rule, and its facts.

A venue module owns everything venue-specific (DESIGN.md): how a symbol is spelled,
its addresses, subscribe messages, how a lost message shows, its REST weights and
error codes, and how its messages are written on the wire. The daemon, the emulator
and the simulator import these facts from here; none of them retypes one.
"""

from __future__ import annotations

import base64
import re
from typing import Any, ClassVar

import orjson

from collector.capture import CaptureRecord
from collector.state import FeedSink, SymbolState


class Venue:
    """A venue's protocol: one instance per stream of records (a capture or a live feed).

    Subclasses implement `on_message` (a websocket text frame) and, where the venue
    has REST snapshots, `on_http`. Everything venue-specific stays in the subclass.

    Rows are written only for moments the venue's own checks vouch for: a venue calls
    `sink.advance(state, t)` once the record at receive time `t` has passed its sync
    check (a contiguous sequence number, a verified checksum), before applying it; the
    grid rows before `t` are then written from the book as it stood. A record that
    fails its check invalidates the book instead, and those rows are never written.
    """

    name: ClassVar[str]
    # how a capture of this venue is recognised: host names in urls, conn prefixes
    hosts: ClassVar[tuple[str, ...]] = ()
    conn_prefixes: ClassVar[tuple[str, ...]] = ()
    # how the venue spells a symbol (DESIGN.md), and an example for error messages
    symbol_pattern: ClassVar[re.Pattern[str]] = re.compile(r"^\S+$")
    symbol_spelling: ClassVar[str] = "the venue's own spelling"
    # tick sizes known without a REST call; others come from REST replies or inference
    tick_sizes: ClassVar[dict[str, float]] = {}
    # how many levels the venue's own checks cover (None: every level, by sequence)
    verified_depth: ClassVar[int | None] = None
    # whether books need a periodic fresh snapshot to bound errors no check can see
    needs_refresh: ClassVar[bool] = False
    # REST request weight the venue allows per minute per IP (None: no published budget)
    rest_weight_limit: ClassVar[int | None] = None
    # the reply header in which the venue reports the weight already used
    used_weight_header: ClassVar[str | None] = None
    # size steps (lot sizes) of the symbols above, as the venue's exchange info lists them
    lot_sizes: ClassVar[dict[str, float]] = {}
    # hosts of other product families whose data this module would misread -> what they are
    other_families: ClassVar[dict[str, str]] = {}

    # most diffs a book buffers while it waits for a snapshot; older ones are dropped
    max_buffered: ClassVar[int] = 50_000

    def __init__(self, sink: FeedSink) -> None:
        self.sink = sink
        # subscribe live to the venue's own top-of-book stream (Binance bookTicker) so
        # every rebuilt book is cross-checked; off by default, it is most of the traffic
        self.top_of_book_streams = False
        # which connection feeds each symbol's book, to invalidate it when that one drops
        self.book_conn: dict[str, str] = {}
        # snapshots no symbol could be matched to (so far): said when no book was built
        self.unmatched_snapshots = 0

    # -- dispatch ---------------------------------------------------------------
    def on_record(self, rec: CaptureRecord) -> None:
        kind = rec.kind
        if kind == "recv":
            data = rec.data
            if data is None:
                data = self._binary_text(rec)
                if data is None:
                    return
            self.on_message(rec.ts_ns, rec.conn, data, _where(rec))
        elif kind == "http":
            if rec.data is not None:
                self.on_http(rec.ts_ns, rec.conn, rec.url or "", rec.data, _where(rec))
        elif kind == "connect":
            self.on_connect(rec.ts_ns, rec.conn, rec.url or "")

    def _binary_text(self, rec: CaptureRecord) -> str | None:
        """A frame kept as b64: a binary frame, or a text frame that was not UTF-8.

        None of the venues sends book data in binary frames, so those are skipped; a
        text frame that is not valid UTF-8 is a message lost to corruption and is
        treated like any other unparseable message of its connection.
        """
        if rec.b64 is None:
            return None
        raw = base64.b64decode(rec.b64)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            self.on_unparseable(rec.ts_ns, rec.conn, raw.decode("utf-8", "replace"),
                                _where(rec), "a text frame that is not UTF-8")
        return None

    def on_message(self, ts_recv: int, conn: str, data: str, where: str) -> None:
        raise NotImplementedError

    def on_http(self, ts_recv: int, conn: str, url: str, data: str, where: str) -> None:
        """A REST reply (depth snapshot, product list...). Most venues ignore them."""

    def on_connect(self, ts_recv: int, conn: str, url: str) -> None:
        """A (re)connection: books fed by that connection must be rebuilt from a snapshot."""
        self.invalidate_connection(conn, ts_recv, "reconnected: waiting for a new snapshot")

    def on_disconnect(self, ts_recv: int, conn: str, reason: str) -> None:
        """The connection is gone (live only): its books are invalid at once."""
        self.invalidate_connection(conn, ts_recv, f"disconnected: {reason}")

    def on_unparseable(self, ts_recv: int, conn: str, data: str, where: str,
                       reason: str) -> None:
        """A message that could not be read. Venues with sequence numbers see the loss
        in the next message; the others must invalidate what it may have been for."""
        self.sink.parse_error(where, reason)

    # -- live collection ----------------------------------------------------------
    def ws_url(self, symbols: list[str]) -> str:
        raise NotImplementedError

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return []

    def snapshot_url(self, symbol: str) -> str | None:
        """REST address of a depth snapshot, for venues that sync that way."""
        return None

    def probe_url(self, symbol: str) -> str | None:
        """A cheap REST request that tells whether the venue lists `symbol` (None: none)."""
        return None

    def resync_messages(self, symbol: str) -> list[str]:
        """Messages to send on the symbol's live connection to get a fresh book snapshot.

        Venues whose snapshot comes with a subscription (Coinbase, Kraken) answer with
        unsubscribe + subscribe; venues with a REST snapshot (`snapshot_url`) send none.
        """
        return []

    def request_weight(self, url: str) -> int:
        """The REST weight a request spends from the venue's per-minute budget."""
        return 1

    def refused_symbol(self, status: int, body: str) -> bool:
        """Whether a REST reply says the venue does not list the requested symbol."""
        return False

    # -- shared steps ---------------------------------------------------------------
    def decode(self, data: str, where: str, conn: str = "", ts_recv: int = 0) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self.on_unparseable(ts_recv, conn, data, where, f"invalid JSON ({exc.msg})")
            return None

    def invalidate(self, state: SymbolState, ts_recv: int, reason: str) -> None:
        state.book.clear()
        state.pending.clear()
        state.awaiting_snapshot = False
        self.sink.invalidate(state, ts_recv, reason)

    def resync(self, state: SymbolState, ts_recv: int, reason: str) -> None:
        """Invalidate a book the venue's checks found wrong, and ask for a fresh snapshot."""
        self.invalidate(state, ts_recv, reason)
        self.sink.request_snapshot(state)

    def finish_snapshot(self, state: SymbolState, ts_recv: int) -> None:
        """A snapshot was loaded: the book is synchronised unless it came out crossed."""
        state.awaiting_snapshot = False
        if not self.check_crossed(state, ts_recv):
            self.sink.synced(state, ts_recv)

    def connection_states(self, conn: str) -> list[SymbolState]:
        """The books fed by one connection (of the symbols this feed keeps)."""
        wants = self.sink.wants
        return [self.sink.state(symbol) for symbol, fed_by in sorted(self.book_conn.items())
                if fed_by == conn and wants(symbol)]

    def invalidate_connection(self, conn: str, ts_recv: int, reason: str) -> None:
        """Every book `conn` fed waits for a new snapshot."""
        for state in self.connection_states(conn):
            if state.valid:
                self.invalidate(state, ts_recv, reason)

    def check_crossed(self, state: SymbolState, ts_recv: int) -> bool:
        """A crossed book is a broken book: invalidate it and ask for a resync."""
        if state.book.is_crossed():
            state.crossed += 1
            self.resync(state, ts_recv, "crossed book")
            return True
        return False


def _where(rec: CaptureRecord) -> str:
    return f"{rec.source}:{rec.line}" if rec.source else rec.conn
