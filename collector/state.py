"""Per-symbol sync state and the sink interface a venue module reports into.

A venue module owns its protocol and its sync rule; it never writes files. It
reports what happened (levels applied, a trade, a gap, a resync, a reference
top-of-book, that a record passed its check) to a `FeedSink`, which the pipeline
implements for live and replay alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from collector.book import OrderBook


@dataclass
class SymbolState:
    """One symbol's book and where it stands in the venue's sequence."""

    venue: str
    symbol: str
    book: OrderBook = field(default_factory=OrderBook)
    valid: bool = False  # the book is synchronised and may be sampled
    gap_pending: bool = True  # the next snapshot row carries gap = true
    awaiting_snapshot: bool = False  # a snapshot was asked for since the book went invalid
    seq: int | None = None  # last applied update id / sequence number
    ts_event: int | None = None  # exchange time (ns) of the last applied update
    ts_recv: int = 0  # receive time (ns) of the last applied update
    n_updates: int = 0  # level updates applied since the previous snapshot row
    tick_size: float | None = None
    tick_size_source: str = "unknown"
    # counters for the summary and /metrics
    messages: int = 0
    level_updates: int = 0
    trades: int = 0
    gaps: int = 0
    resyncs: int = 0
    checksum_failures: int = 0
    crossed: int = 0
    snapshot_requests: int = 0
    # venue-private sync data (buffered diffs, decimals, checksums...)
    pending: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)


class FeedSink(Protocol):
    """What a venue module may tell the pipeline."""

    def state(self, symbol: str) -> SymbolState: ...

    def wants(self, symbol: str) -> bool: ...

    def states(self) -> list[SymbolState]: ...

    def infer_tick_size(self, state: SymbolState) -> None: ...

    def trade(self, state: SymbolState, ts_recv: int, ts_event: int | None, trade_id: str,
              price: float, size: float, side: int) -> None: ...

    def synced(self, state: SymbolState, ts_recv: int) -> None: ...

    def advance(self, state: SymbolState, ts_recv: int) -> None:
        """The record at `ts_recv` passed the venue's sync check: the grid rows before it
        stand for moments the venue vouches for; write them from the book as it is."""

    def hold(self, state: SymbolState, ts_recv: int) -> list[tuple]:
        """The grid rows before `ts_recv` from the book as it is, not yet written (for a
        check that can only run after the record is applied, like Kraken's checksum)."""

    def release(self, state: SymbolState, held: list[tuple]) -> None:
        """Write rows taken with `hold` once the check passed (dropping them is silence)."""

    def invalidate(self, state: SymbolState, ts_recv: int, reason: str) -> None: ...

    def request_snapshot(self, state: SymbolState) -> None: ...

    def reference_top(self, state: SymbolState, seq: int | None, bid: int, ask: int,
                      ts_recv: int) -> bool | None:
        """Compare the venue's own best bid/ask with the book: agree, differ, or None
        when they cannot be compared (yet)."""

    def parse_error(self, where: str, reason: str) -> None: ...
