"""Binance spot: `<symbol>@depth@100ms` diffs joined to a REST depth snapshot.

Sync rule (Binance "How to manage a local order book correctly"):
buffer diffs until the REST snapshot arrives; drop diffs with u <= lastUpdateId;
the first applied diff must span lastUpdateId+1 (U <= lastUpdateId+1 <= u);
afterwards every diff must have U == previous u + 1, or the book has a gap.
Quantities are absolute; a zero quantity deletes the level.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import orjson

from bookcast.errors import UserError
from collector.book import UNIT_DECIMALS, format_units, parse_units
from collector.state import FeedSink, SymbolState
from collector.venues.base import Venue

MS = 1_000_000
# a snapshot without a symbol is matched to diffs whose update ids are this close to it
SNAPSHOT_MATCH_IDS = 100_000
PROBE_LIMIT = 5  # the depth asked at start-up only to learn whether the symbol exists

# Binance's REST error codes (https://developers.binance.com/docs/binance-spot-api-docs/errors)
TOO_MANY_REQUESTS = -1003
BACKEND_TIMEOUT = -1007
ILLEGAL_CHARS = -1100
MANDATORY_PARAM = -1102
INVALID_SYMBOL = -1121


def decimal_text(units: int, decimals: int = 8) -> str:
    """A price or quantity in Binance's fixed-decimal spelling (`decimals`, the venue's
    `wire_decimals`; more where a value needs them)."""
    for places in (decimals, 8, UNIT_DECIMALS):
        try:
            return format_units(units, max(places, decimals))
        except ValueError:
            continue
    raise ValueError(f"{units} units do not fit {UNIT_DECIMALS} decimals")


def error_reply(code: int, message: str) -> dict[str, Any]:
    """Binance's JSON error body."""
    return {"code": code, "msg": message}


def stream_key(name: str) -> tuple[str, str]:
    """'btcusdt@depth@100ms' -> ('BTCUSDT', 'depth'): the update speed does not matter here."""
    symbol, _, rest = name.partition("@")
    return symbol.upper(), rest.partition("@")[0]


def message_stream(text: str) -> str | None:
    """The stream name of a combined-stream message, read without parsing the JSON."""
    if not text.startswith('{"stream":"'):
        return None
    end = text.find('"', 11)
    return text[11:end] if end > 0 else None
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
    symbol_pattern: ClassVar[re.Pattern[str]] = re.compile(r"^[A-Z0-9]{2,20}$")
    symbol_spelling: ClassVar[str] = "upper-case letters like BTCUSDT"
    tick_sizes: ClassVar[dict[str, float]] = {"BTCUSDT": 0.01, "ETHUSDT": 0.01}
    rest_weight_limit: ClassVar[int | None] = 6000  # per minute per IP, published
    used_weight_header: ClassVar[str | None] = "X-MBX-USED-WEIGHT-1M"
    lot_sizes: ClassVar[dict[str, float]] = {"BTCUSDT": 0.00001, "ETHUSDT": 0.0001}
    # decimals the venue writes prices and quantities with ("61837.63000000")
    wire_decimals: ClassVar[tuple[int, int]] = (8, 8)
    ws_base: ClassVar[str] = "wss://stream.binance.com:9443"
    rest_base: ClassVar[str] = "https://api.binance.com"
    depth_path: ClassVar[str] = "/api/v3/depth"
    depth_stream: ClassVar[str] = "depth@100ms"
    snapshot_limit: ClassVar[int] = 5000
    # hosts of the product families this module must not read, and what to do instead
    other_families: ClassVar[dict[str, str]] = {
        "fstream.binance.com": "Binance USDⓈ-M futures; replay it with --venue binance-usdm",
        "fapi.binance.com": "Binance USDⓈ-M futures; replay it with --venue binance-usdm",
        "dstream.binance.com": "Binance COIN-M futures, which bookcast has no venue for",
        "dapi.binance.com": "Binance COIN-M futures, which bookcast has no venue for",
    }

    def __init__(self, sink: FeedSink) -> None:
        super().__init__(sink)
        self.subscribed: set[str] = set()  # depth streams named in the connection addresses
        # REST snapshots that arrived before any diff they could be matched to
        self.held_snapshots: list[tuple[dict[str, Any], int]] = []

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
        return self.depth_url(symbol, self.snapshot_limit)

    def probe_url(self, symbol: str) -> str:
        return self.depth_url(symbol, PROBE_LIMIT)

    def depth_url(self, symbol: str, limit: int) -> str:
        return f"{self.rest_base}{self.depth_path}?symbol={symbol}&limit={limit}"

    @staticmethod
    def depth_weight(limit: int) -> int:
        """Spot: the weight of a depth request by its `limit`."""
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250

    def request_weight(self, url: str) -> int:
        return self.depth_weight(int(parse_qs(urlparse(url).query).get("limit", ["100"])[0]))

    def refused_symbol(self, status: int, body: str) -> bool:
        if status != 400:
            return False
        try:
            reply = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        return isinstance(reply, dict) and reply.get("code") == INVALID_SYMBOL

    def depth_reply(self, state: SymbolState, limit: int) -> dict[str, Any]:
        """The REST depth reply for a book (the emulator serves it): best `limit` levels."""
        price_dp, size_dp = self.wire_decimals
        return {"lastUpdateId": state.seq,
                "bids": [[decimal_text(p, price_dp), decimal_text(q, size_dp)]
                         for p, q in state.book.bids(limit)],
                "asks": [[decimal_text(p, price_dp), decimal_text(q, size_dp)]
                         for p, q in state.book.asks(limit)]}

    # -- messages ---------------------------------------------------------------------
    def on_message(self, ts_recv: int, conn: str, data: str, where: str) -> None:
        msg = self.decode(data, where, conn, ts_recv)
        if msg is None:
            return  # a lost diff: the next one of its symbol will not continue the book
        try:
            payload = msg["data"] if "stream" in msg else msg
            event = payload.get("e")
            if event == "depthUpdate":
                self.on_depth_update(payload, ts_recv, conn, where)
            elif event == "trade":
                self.on_trade(payload, ts_recv)
            elif "u" in payload and "b" in payload and "a" in payload and "B" in payload:
                self.on_book_ticker(payload, ts_recv)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.sink.parse_error(where, f"unexpected message shape ({exc!r})")

    def on_depth_update(self, msg: dict[str, Any], ts_recv: int, conn: str = "",
                        where: str = "") -> None:
        symbol = msg["s"]
        if not self.sink.wants(symbol):
            return
        state = self.sink.state(symbol)
        state.messages += 1
        self.book_conn[symbol] = conn
        if not state.valid:
            self.check_family(msg, where)
            if len(state.pending) >= self.max_buffered:
                del state.pending[0]  # the snapshot will have to be newer than this diff
            state.pending.append((msg, ts_recv))
            if self.held_snapshots and self._join_held_snapshot(state, msg, ts_recv):
                return
            if not state.awaiting_snapshot:
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
            self.resync(state, ts_recv, f"gap: diff {msg['U']}..{msg['u']} after {state.seq}")
            state.pending.append((msg, ts_recv))
            return
        # the diff continues the book: nothing was lost before it
        self.sink.advance(state, ts_recv)
        self.apply_diff(state, msg, ts_recv)
        self.check_crossed(state, ts_recv)

    def check_family(self, msg: dict[str, Any], where: str) -> None:
        """A diff of another Binance product family would be mis-read by this module's sync
        rule and sizes: one sentence naming what was found."""
        if "pu" in msg:
            raise UserError(f"{where}: a Binance futures diff (it has a 'pu' field) in a "
                            f"{self.name} replay; replay it with --venue binance-usdm.")

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

    # -- connections --------------------------------------------------------------------
    def on_connect(self, ts_recv: int, conn: str, url: str) -> None:
        super().on_connect(ts_recv, conn, url)
        # the streams asked for in the address name the subscribed symbols
        for stream in parse_qs(urlparse(url).query).get("streams", [""])[0].split("/"):
            symbol, _, channel = stream.partition("@")
            if channel.startswith("depth") and symbol:
                self.subscribed.add(symbol.upper())

    # -- REST snapshot ------------------------------------------------------------------
    def on_http(self, ts_recv: int, conn: str, url: str, data: str, where: str) -> None:
        reply = self.decode(data, where, conn, ts_recv)
        if not isinstance(reply, dict) or "lastUpdateId" not in reply:
            return
        state = self.snapshot_owner(url, reply)
        if state is None:
            # no diff names its symbol yet: the first diffs that match its ids will join it
            self.held_snapshots.append((reply, ts_recv))
            self.unmatched_snapshots += 1
            return
        self.apply_snapshot(state, reply, ts_recv)

    def snapshot_owner(self, url: str, reply: dict[str, Any]) -> SymbolState | None:
        """The symbol a REST snapshot belongs to: from its url (the request the collector
        made), else the diffs waiting for it by their ids, else the only subscribed symbol.
        Never by elimination: another symbol's snapshot, loaded under this one, could look
        joined (every diff older than it) and stay "valid" with the wrong levels."""
        query = parse_qs(urlparse(url).query)
        if "symbol" in query:
            symbol = query["symbol"][0].upper()
            return self.sink.state(symbol) if self.sink.wants(symbol) else None
        last_id = reply["lastUpdateId"]
        waiting = [s for s in self.sink.states() if not s.valid and s.pending]
        for state in waiting:
            first, last = state.pending[0][0], state.pending[-1][0]
            if first["U"] <= last_id + 1 and last_id <= last["u"] + SNAPSHOT_MATCH_IDS:
                return state
        if not waiting and len(self.subscribed) == 1:
            symbol = next(iter(self.subscribed))
            return self.sink.state(symbol) if self.sink.wants(symbol) else None
        return None

    def _join_held_snapshot(self, state: SymbolState, msg: dict[str, Any], ts_recv: int
                            ) -> bool:
        """A snapshot that arrived before any diff belongs to the first symbol whose diff ids
        are close to its own (another symbol's ids are billions away): join it now."""
        for i, (reply, _ts) in enumerate(self.held_snapshots):
            last_id = reply["lastUpdateId"]
            if msg["U"] - SNAPSHOT_MATCH_IDS <= last_id <= msg["u"] + SNAPSHOT_MATCH_IDS:
                del self.held_snapshots[i]
                self.unmatched_snapshots -= 1
                # the book is rebuilt now, so it is synchronised as of this diff's receipt
                self.apply_snapshot(state, reply, ts_recv)
                return True
        return False

    def apply_snapshot(self, state: SymbolState, reply: dict[str, Any], ts_recv: int) -> None:
        last_id = reply["lastUpdateId"]
        bids = [(parse_units(p), parse_units(q)) for p, q in reply["bids"]]
        asks = [(parse_units(p), parse_units(q)) for p, q in reply["asks"]]
        pending = [(m, t) for m, t in state.pending if not self.stale(m, last_id)]
        state.pending.clear()
        if pending and not self.joins(pending[0][0], last_id):
            # the snapshot is older than the oldest diff we hold: it cannot be joined
            state.gaps += 1
            self.resync(state, ts_recv, f"snapshot {last_id} does not join the buffered "
                                        f"diffs starting at {pending[0][0]['U']}")
            state.pending.extend(pending)
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
                self.resync(state, t, f"gap inside the buffered diffs after {prev_u}")
                return
            self.apply_diff(state, msg, t)
            prev_u = msg["u"]
        if prev_u is None:
            state.extra["join_at"] = last_id  # the next diff must span the snapshot
        self.finish_snapshot(state, ts_recv)
