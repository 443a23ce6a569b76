"""Binance spot: `<symbol>@depth@100ms` diffs joined to a REST depth snapshot.

Sync rule (Binance "How to manage a local order book correctly"):
buffer diffs until the REST snapshot arrives; drop diffs with u <= lastUpdateId;
the first applied diff must span lastUpdateId+1 (U <= lastUpdateId+1 <= u);
afterwards every diff must have U == previous u + 1, or the book has a gap.
Quantities are absolute; a zero quantity deletes the level.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

from collector.book import parse_units
from collector.state import SymbolState
from collector.venues.base import Venue

MS = 1_000_000
UNITS_CACHE_MAX = 1 << 16  # distinct price and quantity strings remembered (then cleared)
_units_cache: dict[str, int] = {}


def cached_units(text: str) -> int:
    """`parse_units`, remembering its answers: diffs repeat the same prices and quantities
    ("0.00000000" above all), and parsing was half the cost of applying a diff.
    Invalid text is not remembered, so it raises every time, as parse_units does."""
    units = _units_cache.get(text)
    if units is None:
        units = parse_units(text)
        if len(_units_cache) >= UNITS_CACHE_MAX:
            _units_cache.clear()
        _units_cache[text] = units
    return units


class BinanceSpot(Venue):
    name: ClassVar[str] = "binance-spot"
    hosts: ClassVar[tuple[str, ...]] = ("stream.binance.com", "api.binance.com",
                                        "data-stream.binance.vision")
    conn_prefixes: ClassVar[tuple[str, ...]] = ("binance-spot",)
    tick_sizes: ClassVar[dict[str, float]] = {"BTCUSDT": 0.01, "ETHUSDT": 0.01}
    lot_sizes: ClassVar[dict[str, float]] = {"BTCUSDT": 0.00001, "ETHUSDT": 0.0001}
    # decimals the venue writes prices and quantities with ("61837.63000000")
    wire_decimals: ClassVar[tuple[int, int]] = (8, 8)
    ws_base: ClassVar[str] = "wss://stream.binance.com:9443"
    rest_base: ClassVar[str] = "https://api.binance.com"
    depth_path: ClassVar[str] = "/api/v3/depth"
    depth_stream: ClassVar[str] = "depth@100ms"
    snapshot_limit: ClassVar[int] = 5000

    # -- live endpoints ---------------------------------------------------------------
    def ws_url(self, symbols: list[str]) -> str:
        streams = []
        for s in symbols:
            low = s.lower()
            streams += [f"{low}@{self.depth_stream}", f"{low}@trade"]
            if self.top_of_book_streams:
                streams.append(f"{low}@bookTicker")
        return f"{self.ws_base}/stream?streams={'/'.join(streams)}"

    def snapshot_url(self, symbol: str) -> str:
        return f"{self.rest_base}{self.depth_path}?symbol={symbol}&limit={self.snapshot_limit}"

    # -- messages ---------------------------------------------------------------------
    def on_message(self, ts_recv: int, conn: str, data: str, where: str) -> None:
        msg = self.decode(data, where)
        if msg is None:
            return
        try:
            payload = msg["data"] if "stream" in msg else msg
            event = payload.get("e")
            if event == "depthUpdate":
                self.on_depth_update(payload, ts_recv)
            elif event == "trade":
                self.on_trade(payload, ts_recv)
            elif "u" in payload and "b" in payload and "a" in payload and "B" in payload:
                self.on_book_ticker(payload, ts_recv)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.sink.parse_error(where, f"unexpected message shape ({exc!r})")

    def on_depth_update(self, msg: dict[str, Any], ts_recv: int) -> None:
        symbol = msg["s"]
        if not self.sink.wants(symbol):
            return
        state = self.sink.state(symbol)
        state.messages += 1
        if not state.valid:
            if len(state.pending) >= self.max_buffered:
                del state.pending[0]  # the snapshot will have to be newer than this diff
            state.pending.append((msg, ts_recv))
            if not state.snapshot_requests:
                self.sink.request_snapshot(state)
            return
        join_at = state.extra.get("join_at")
        if join_at is not None:
            # the snapshot was newer than every buffered diff: the first diff applied after
            # it must join it, as a buffered one would have
            if self.stale(msg, join_at):
                return
            del state.extra["join_at"]
            ok = self.joins(msg, join_at)
        else:
            if msg["u"] <= state.seq:
                return  # an old diff, already inside the book
            ok = self.continues(msg, state.seq)
        if not ok:
            state.gaps += 1
            self.invalidate(state, ts_recv, f"gap: diff {msg['U']}..{msg['u']} after {state.seq}")
            state.pending.append((msg, ts_recv))
            self.sink.request_snapshot(state)
            return
        self.apply_diff(state, msg, ts_recv)
        self.check_crossed(state, ts_recv)

    def continues(self, msg: dict[str, Any], last_u: int) -> bool:
        """Spot: each diff starts right after the previous one ended."""
        return msg["U"] == last_u + 1

    def joins(self, msg: dict[str, Any], last_update_id: int) -> bool:
        """Spot: the first diff applied after a snapshot spans lastUpdateId + 1."""
        return msg["U"] <= last_update_id + 1 <= msg["u"]

    def stale(self, msg: dict[str, Any], last_update_id: int) -> bool:
        """Spot: diffs wholly inside the snapshot are dropped."""
        return msg["u"] <= last_update_id

    def apply_diff(self, state: SymbolState, msg: dict[str, Any], ts_recv: int) -> None:
        book = state.book
        units = cached_units
        n = 0
        for px, qty in msg["b"]:
            book.set_bid(units(px), units(qty))
            n += 1
        for px, qty in msg["a"]:
            book.set_ask(units(px), units(qty))
            n += 1
        state.seq = msg["u"]
        state.ts_event = msg["E"] * MS
        state.ts_recv = ts_recv
        state.n_updates += n
        state.level_updates += n

    def on_trade(self, msg: dict[str, Any], ts_recv: int) -> None:
        symbol = msg["s"]
        if not self.sink.wants(symbol):
            return
        if msg.get("X", "MARKET") != "MARKET":
            return  # futures insurance-fund and ADL fills are not market trades
        state = self.sink.state(symbol)
        # m: the buyer is the maker, so the seller hit the bid
        side = -1 if msg["m"] else 1
        self.sink.trade(state, ts_recv, msg["T"] * MS, str(msg["t"]), float(msg["p"]),
                        float(msg["q"]), side)

    def on_book_ticker(self, msg: dict[str, Any], ts_recv: int) -> None:
        symbol = msg["s"]
        if not self.sink.wants(symbol):
            return
        state = self.sink.state(symbol)
        self.sink.reference_top(state, msg["u"], parse_units(msg["b"]), parse_units(msg["a"]),
                                ts_recv)

    # -- REST snapshot ------------------------------------------------------------------
    def on_http(self, ts_recv: int, conn: str, url: str, data: str, where: str) -> None:
        reply = self.decode(data, where)
        if not isinstance(reply, dict) or "lastUpdateId" not in reply:
            return
        state = self.snapshot_owner(url, reply)
        if state is None:
            self.sink.parse_error(where, "a depth snapshot that matches no subscribed symbol")
            return
        self.apply_snapshot(state, reply, ts_recv)

    def snapshot_owner(self, url: str, reply: dict[str, Any]) -> SymbolState | None:
        """The symbol a REST snapshot belongs to: from its url, else from the buffered ids."""
        query = parse_qs(urlparse(url).query)
        if "symbol" in query:
            symbol = query["symbol"][0].upper()
            return self.sink.state(symbol) if self.sink.wants(symbol) else None
        last_id = reply["lastUpdateId"]
        waiting = [s for s in self.sink.states() if not s.valid and s.pending]
        for state in waiting:
            first, last = state.pending[0][0], state.pending[-1][0]
            if first["U"] <= last_id + 1 and last_id <= last["u"] + 100_000:
                return state
        return waiting[0] if len(waiting) == 1 else None

    def apply_snapshot(self, state: SymbolState, reply: dict[str, Any], ts_recv: int) -> None:
        last_id = reply["lastUpdateId"]
        bids = [(parse_units(p), parse_units(q)) for p, q in reply["bids"]]
        asks = [(parse_units(p), parse_units(q)) for p, q in reply["asks"]]
        pending = [(m, t) for m, t in state.pending if not self.stale(m, last_id)]
        state.pending.clear()
        if pending and not self.joins(pending[0][0], last_id):
            # the snapshot is older than the oldest diff we hold: it cannot be joined
            state.gaps += 1
            self.invalidate(state, ts_recv, f"snapshot {last_id} does not join the buffered "
                                            f"diffs starting at {pending[0][0]['U']}")
            state.pending.extend(pending)
            self.sink.request_snapshot(state)
            return
        state.book.load(bids, asks)
        if state.tick_size is None:
            self.sink.infer_tick_size(state)
        state.seq = last_id
        state.ts_event = reply["E"] * MS if "E" in reply else None
        state.ts_recv = ts_recv
        state.n_updates += len(bids) + len(asks)
        state.extra.pop("join_at", None)
        prev_u = None
        for msg, t in pending:
            if prev_u is not None and not self.continues(msg, prev_u):
                state.gaps += 1
                self.invalidate(state, t, f"gap inside the buffered diffs after {prev_u}")
                self.sink.request_snapshot(state)
                return
            self.apply_diff(state, msg, t)
            prev_u = msg["u"]
        if prev_u is None:
            state.extra["join_at"] = last_id  # the next diff must span the snapshot
        self.finish_snapshot(state, ts_recv)
