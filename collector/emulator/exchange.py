"""The exchange's side of the emulator: its books, as the capture says they were.

`ExchangeBook` runs the played records through the venue module's own sync rule and
keeps only the books and their sequence ids (it writes nothing), so the emulator can
answer a REST depth request or a resubscription with the book the exchange holds at
that point of playback.
"""

from __future__ import annotations

from collector.capture import CaptureRecord
from collector.state import SymbolState
from collector.venues import venue_class


class ExchangeBook:
    """The FeedSink of collector/state.py, keeping books only."""

    def __init__(self, venue: str) -> None:
        self.venue = venue_class(venue)(self)
        self._states: dict[str, SymbolState] = {}
        self.parse_errors = 0

    def feed(self, rec: CaptureRecord) -> None:
        self.venue.on_record(rec)

    def state(self, symbol: str) -> SymbolState:
        state = self._states.get(symbol)
        if state is None:
            state = self._states[symbol] = SymbolState(self.venue.name, symbol)
        return state

    def wants(self, symbol: str) -> bool:
        return True

    def states(self) -> list[SymbolState]:
        return list(self._states.values())

    def get(self, symbol: str) -> SymbolState | None:
        return self._states.get(symbol)

    def infer_tick_size(self, state: SymbolState) -> None:
        pass

    def trade(self, state: SymbolState, ts_recv: int, ts_event: int | None, trade_id: str,
              price: float, size: float, side: int) -> None:
        pass

    def synced(self, state: SymbolState, ts_recv: int) -> None:
        state.valid = True

    def advance(self, state: SymbolState, ts_recv: int) -> None:
        pass

    def hold(self, state: SymbolState, ts_recv: int) -> list[tuple]:
        return []

    def release(self, state: SymbolState, held: list[tuple]) -> None:
        pass

    def invalidate(self, state: SymbolState, ts_recv: int, reason: str) -> None:
        state.valid = False

    def request_snapshot(self, state: SymbolState) -> None:
        state.snapshot_requests += 1  # the capture carries its own snapshot replies
        state.awaiting_snapshot = True

    def reference_top(self, state: SymbolState, seq: int | None, bid: int, ask: int,
                      ts_recv: int) -> bool | None:
        return None

    def parse_error(self, where: str, reason: str) -> None:
        self.parse_errors += 1
