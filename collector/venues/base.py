"""What every venue module provides: parsing raw messages and applying its sync rule."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from collector.capture import CaptureRecord
from collector.state import FeedSink, SymbolState


class Venue:
    """A venue's protocol: one instance per stream of records (a capture or a live feed).

    Subclasses implement `on_message` (a websocket text frame) and, where the venue
    has REST snapshots, `on_http`. Everything venue-specific stays in the subclass.
    """

    name: ClassVar[str]
    # how a capture of this venue is recognised: host names in urls, conn prefixes
    hosts: ClassVar[tuple[str, ...]] = ()
    conn_prefixes: ClassVar[tuple[str, ...]] = ()
    # tick sizes known without a REST call; others come from REST replies or inference
    tick_sizes: ClassVar[dict[str, float]] = {}
    # size steps (lot sizes) of the symbols above, as the venue's exchange info lists them
    lot_sizes: ClassVar[dict[str, float]] = {}

    # most diffs a book buffers while it waits for a snapshot; older ones are dropped
    max_buffered: ClassVar[int] = 50_000

    def __init__(self, sink: FeedSink) -> None:
        self.sink = sink
        # subscribe live to the venue's own top-of-book stream (Binance bookTicker) so
        # every rebuilt book is cross-checked; off by default, it is most of the traffic
        self.top_of_book_streams = False

    # -- dispatch ---------------------------------------------------------------
    def on_record(self, rec: CaptureRecord) -> None:
        kind = rec.kind
        if kind == "recv":
            if rec.data is None:
                return  # binary frames are kept in the capture but carry no book data here
            self.on_message(rec.ts_ns, rec.conn, rec.data, _where(rec))
        elif kind == "http":
            if rec.data is not None:
                self.on_http(rec.ts_ns, rec.conn, rec.url or "", rec.data, _where(rec))
        elif kind == "connect":
            self.on_connect(rec.ts_ns, rec.conn, rec.url or "")

    def on_message(self, ts_recv: int, conn: str, data: str, where: str) -> None:
        raise NotImplementedError

    def on_http(self, ts_recv: int, conn: str, url: str, data: str, where: str) -> None:
        """A REST reply (depth snapshot, product list...). Most venues ignore them."""

    def on_connect(self, ts_recv: int, conn: str, url: str) -> None:
        """A (re)connection: books fed by that connection must be rebuilt from a snapshot."""

    # -- live collection ----------------------------------------------------------
    def ws_url(self, symbols: list[str]) -> str:
        raise NotImplementedError

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return []

    def snapshot_url(self, symbol: str) -> str | None:
        """REST address of a depth snapshot, for venues that sync that way."""
        return None

    def resync_messages(self, symbol: str) -> list[str]:
        """Messages to send on the symbol's live connection to get a fresh book snapshot.

        Venues whose snapshot comes with a subscription (Coinbase, Kraken) answer with
        unsubscribe + subscribe; venues with a REST snapshot (`snapshot_url`) send none.
        """
        return []

    # -- shared steps ---------------------------------------------------------------
    def decode(self, data: str, where: str) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self.sink.parse_error(where, f"invalid JSON ({exc.msg})")
            return None

    def invalidate(self, state: SymbolState, ts_recv: int, reason: str) -> None:
        state.book.clear()
        state.pending.clear()
        self.sink.invalidate(state, ts_recv, reason)

    def finish_snapshot(self, state: SymbolState, ts_recv: int) -> None:
        """A snapshot was loaded: the book is synchronised unless it came out crossed."""
        if not self.check_crossed(state, ts_recv):
            self.sink.synced(state, ts_recv)

    def invalidate_connection(self, conn: str, ts_recv: int, book_conn: dict[str, str]) -> None:
        """A (re)connection of `conn`: every book it fed waits for a new snapshot."""
        for state in self.sink.states():
            if book_conn.get(state.symbol) == conn and state.valid:
                self.invalidate(state, ts_recv, "reconnected: waiting for a new snapshot")

    def check_crossed(self, state: SymbolState, ts_recv: int) -> bool:
        """A crossed book is a broken book: invalidate it and ask for a resync."""
        if state.book.is_crossed():
            state.crossed += 1
            self.invalidate(state, ts_recv, "crossed book")
            self.sink.request_snapshot(state)
            return True
        return False


def _where(rec: CaptureRecord) -> str:
    return f"{rec.source}:{rec.line}" if rec.source else rec.conn
