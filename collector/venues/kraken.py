"""Kraken spot, websocket v1: the `book` channel (with checksums) and `trade`.

Sync rule (Kraken "Spot Websockets (v1) Book Checksum"): a subscription answers
with one snapshot message (`as`/`bs`), then update messages with `a` and/or `b`
entries [price, volume, timestamp(, "r")] — asks and bids may come as two dicts in
one message, and the checksum `c` sits in the last one. Entries are applied in
array order (never sorted by timestamp); volume 0 deletes the level; after each
message the book is truncated to the subscribed depth (Kraken sends no deletes for
levels that fall out of scope). Then the CRC32 checksum is verified on EVERY
update: the top 10 asks (ascending) then the top 10 bids (descending), each as
price then volume, with the '.' removed and leading zeros stripped, concatenated.
A mismatch marks the book invalid and asks for a resubscription (live:
unsubscribe + subscribe, which answers with a new snapshot). The rows before an
update are written only once that update's checksum verifies.

What the checksum cannot see: it covers the top 10 levels, so a lost update deeper
in the book leaves those levels wrong until they change again. `verified_depth` is
10, and `needs_refresh` makes the daemon resubscribe each pair periodically, which
bounds such an error to the refresh period. An unreadable book message invalidates
its pair at once (the channel id at its start names it), since no sequence number
would show the loss later.

The checksum needs the venue's own decimal spelling of every price and volume, so
each pair's price and volume decimals are learnt from its snapshot strings
(Kraken's websocket prints more price decimals than AssetPairs' `pair_decimals`).
Books carry no sequence numbers: `seq` stays null. Channel ids are mapped to pairs
by `subscriptionStatus`, and every data message also ends with its channel name and
pair, spelled as Kraken spells it ("XBT/USD").

Trades: `side` "b"/"s" is the aggressor's side. Kraken v1 trades carry no id; the
id written is "<timestamp>-<index in message>", stable across replays.
"""

from __future__ import annotations

import re
import zlib
from typing import Any, ClassVar

import orjson

from collector.book import format_units, parse_units
from collector.state import SymbolState
from collector.venues.base import Venue

DEFAULT_DEPTH = 10  # Kraken's depth when a subscription names none
CHECKSUM_LEVELS = 10
CHANNEL_ID = re.compile(r"^\s*\[\s*(\d+)\s*,")


def parse_epoch_seconds_ns(text: str) -> int:
    """Exact int ns of Kraken's '1618678133.365913' (seconds since the epoch, a string)."""
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 9:
        raise ValueError(f"{text!r} is not a timestamp in seconds")
    return int(whole) * 1_000_000_000 + int(frac.ljust(9, "0"))


def decimals_of(text: str) -> int:
    return len(text.partition(".")[2])


FIELD_CACHE_MAX = 1 << 16  # distinct (units, decimals) spellings remembered (then cleared)
_field_cache: dict[tuple[int, int], str] = {}


def checksum_field(units: int, decimals: int) -> str:
    """One price or volume as the checksum spells it: venue decimals, no '.', no leading 0s.

    Remembered: every update re-spells the same top 10 levels, and spelling them was
    most of the cost of a Kraken update. A value that does not fit raises every time.
    """
    key = (units, decimals)
    text = _field_cache.get(key)
    if text is None:
        text = format_units(units, decimals).replace(".", "").lstrip("0")
        if len(_field_cache) >= FIELD_CACHE_MAX:
            _field_cache.clear()
        _field_cache[key] = text
    return text


def book_checksum(state: SymbolState) -> int:
    """Kraken's CRC32 over the top 10 asks (ascending) then top 10 bids (descending)."""
    price_dp, volume_dp = state.extra["kraken_decimals"]
    parts = []
    for price, volume in state.book.asks(CHECKSUM_LEVELS):
        parts.append(checksum_field(price, price_dp))
        parts.append(checksum_field(volume, volume_dp))
    for price, volume in state.book.bids(CHECKSUM_LEVELS):
        parts.append(checksum_field(price, price_dp))
        parts.append(checksum_field(volume, volume_dp))
    return zlib.crc32("".join(parts).encode())


class Kraken(Venue):
    name: ClassVar[str] = "kraken"
    hosts: ClassVar[tuple[str, ...]] = ("ws.kraken.com", "beta-ws.kraken.com", "api.kraken.com")
    conn_prefixes: ClassVar[tuple[str, ...]] = ("kraken",)
    symbol_pattern: ClassVar[re.Pattern[str]] = re.compile(r"^[A-Z0-9]{1,12}/[A-Z0-9]{1,12}$")
    symbol_spelling: ClassVar[str] = "BASE/QUOTE like XBT/USD"
    verified_depth: ClassVar[int | None] = CHECKSUM_LEVELS
    needs_refresh: ClassVar[bool] = True
    ws_endpoint: ClassVar[str] = "wss://ws.kraken.com"
    depth: ClassVar[int] = 1000  # the deepest book Kraken's v1 feed offers

    def __init__(self, sink: Any) -> None:
        super().__init__(sink)
        self.rest_tick_sizes: dict[str, float] = {}
        self.book_depth: dict[tuple[str, int], int] = {}  # (conn, channel id) -> depth
        self.book_channels: dict[tuple[str, int], str] = {}  # (conn, channel id) -> pair
        self.checksums_verified = 0

    # -- live endpoints ---------------------------------------------------------------
    def ws_url(self, symbols: list[str]) -> str:
        return self.ws_endpoint

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [self._subscription("subscribe", symbols, {"name": "book", "depth": self.depth}),
                self._subscription("subscribe", symbols, {"name": "trade"})]

    def resync_messages(self, symbol: str) -> list[str]:
        """Unsubscribe then subscribe the pair's book: Kraken answers with a new snapshot."""
        book = {"name": "book", "depth": self.depth}
        return [self._subscription(kind, [symbol], book) for kind in ("unsubscribe", "subscribe")]

    @staticmethod
    def _subscription(event: str, pairs: list[str], subscription: dict[str, Any]) -> str:
        return orjson.dumps({"event": event, "pair": list(pairs),
                             "subscription": subscription}).decode()

    @staticmethod
    def subscription_status(channel_id: int, pair: str, status: str,
                            subscription: dict[str, Any]) -> str:
        """Kraken's reply to a subscribe or unsubscribe (the emulator sends it)."""
        name = subscription.get("name", "book")
        channel = f"{name}-{subscription['depth']}" if "depth" in subscription else name
        return orjson.dumps({"channelID": channel_id, "channelName": channel,
                             "event": "subscriptionStatus", "pair": pair, "status": status,
                             "subscription": subscription}).decode()

    @staticmethod
    def snapshot_message(channel_id: int, pair: str, depth: int, state: SymbolState,
                         stamp: str) -> str:
        """A `book` snapshot of the book in `state`, in the pair's own decimals."""
        price_dp, volume_dp = state.extra["kraken_decimals"]

        def side(levels: list[tuple[int, int]]) -> list[list[str]]:
            return [[format_units(p, price_dp), format_units(v, volume_dp), stamp]
                    for p, v in levels]

        return orjson.dumps([channel_id, {"as": side(state.book.asks(depth)),
                                          "bs": side(state.book.bids(depth))},
                             f"book-{depth}", pair]).decode()

    # -- messages ---------------------------------------------------------------------
    def on_connect(self, ts_recv: int, conn: str, url: str) -> None:
        for key in [k for k in self.book_depth if k[0] == conn]:
            del self.book_depth[key]
        for key in [k for k in self.book_channels if k[0] == conn]:
            del self.book_channels[key]
        super().on_connect(ts_recv, conn, url)

    def on_unparseable(self, ts_recv: int, conn: str, data: str, where: str,
                       reason: str) -> None:
        """No sequence shows the loss later: invalidate the pair the message was for.

        A book message starts with its channel id; one that cannot be told from a
        trade (no id left) invalidates every book of the connection.
        """
        super().on_unparseable(ts_recv, conn, data, where, reason)
        found = CHANNEL_ID.match(data)
        if found is None:
            if data.lstrip().startswith("{"):
                return  # an event (heartbeat, status): no book changed
            states = self.connection_states(conn)
        else:
            pair = self.book_channels.get((conn, int(found.group(1))))
            states = [self.sink.state(pair)] if pair is not None and self.sink.wants(pair) \
                else []
        for state in states:
            if state.valid:
                state.gaps += 1
                self.resync(state, ts_recv, f"an unreadable book message ({reason})")

    def on_message(self, ts_recv: int, conn: str, data: str, where: str) -> None:
        msg = self.decode(data, where, conn, ts_recv)
        if msg is None:
            return
        try:
            if isinstance(msg, dict):
                self.on_event(msg, conn, where)
                return
            channel, pair = msg[-2], msg[-1]
            if channel.startswith("book"):
                self.book_channels[(conn, msg[0])] = pair
            elif channel == "trade":
                self.on_trades(msg[1], pair, ts_recv)
                return
            else:
                return
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            self.on_unparseable(ts_recv, conn, data, where, f"unexpected message shape ({exc!r})")
            return
        try:
            self.on_book(msg, channel, pair, conn, ts_recv)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            self.on_unparseable(ts_recv, conn, data, where,
                                f"an inconsistent book message ({exc!r})")

    def on_event(self, msg: dict[str, Any], conn: str, where: str) -> None:
        if msg.get("event") != "subscriptionStatus":
            return  # heartbeat, systemStatus, pong
        if msg.get("status") == "error":
            self.sink.parse_error(where, f"the venue refused a subscription: "
                                         f"{msg.get('errorMessage')}")
            return
        subscription = msg.get("subscription", {})
        if subscription.get("name") == "book" and "channelID" in msg:
            self.book_depth[(conn, msg["channelID"])] = subscription.get("depth", DEFAULT_DEPTH)
            if isinstance(msg.get("pair"), str):
                self.book_channels[(conn, msg["channelID"])] = msg["pair"]

    def subscribed_depth(self, msg: list[Any], channel: str, conn: str) -> int:
        depth = self.book_depth.get((conn, msg[0]))
        if depth is None:  # no subscriptionStatus seen: the channel name says "book-<depth>"
            suffix = channel.rpartition("-")[2]
            depth = int(suffix) if suffix.isdigit() else DEFAULT_DEPTH
        return depth

    def on_book(self, msg: list[Any], channel: str, pair: str, conn: str, ts_recv: int) -> None:
        if not self.sink.wants(pair):
            return
        state = self.sink.state(pair)
        state.messages += 1
        payloads = msg[1:-2]
        depth = self.subscribed_depth(msg, channel, conn)
        if "as" in payloads[0] or "bs" in payloads[0]:
            self.apply_snapshot(state, payloads[0], depth, conn, ts_recv)
            return
        if not state.valid:
            return  # nothing to apply to until the pair's snapshot arrives
        held = self.sink.hold(state, ts_recv)
        self.apply_updates(state, payloads, depth, ts_recv)
        expected = payloads[-1].get("c")
        if expected is None:
            return  # unverified: its rows wait for the next checksum
        actual = book_checksum(state)
        if actual != int(expected):
            state.checksum_failures += 1
            self.resync(state, ts_recv, f"checksum mismatch: venue {expected}, book {actual}")
            return
        self.checksums_verified += 1
        self.sink.release(state, held)
        self.check_crossed(state, ts_recv)

    def apply_snapshot(self, state: SymbolState, snapshot: dict[str, Any], depth: int,
                       conn: str, ts_recv: int) -> None:
        asks, bids = snapshot.get("as", []), snapshot.get("bs", [])
        sample = (asks or bids)[0]
        state.extra["kraken_decimals"] = (decimals_of(sample[0]), decimals_of(sample[1]))
        state.book.load([(parse_units(e[0]), parse_units(e[1])) for e in bids],
                        [(parse_units(e[0]), parse_units(e[1])) for e in asks])
        state.book.truncate(depth)
        self.book_conn[state.symbol] = conn
        tick = self.rest_tick_sizes.get(state.symbol)
        if tick is not None:
            state.tick_size, state.tick_size_source = tick, "AssetPairs REST reply"
        elif state.tick_size is None:
            self.sink.infer_tick_size(state)
        state.seq = None
        state.ts_event = max(parse_epoch_seconds_ns(e[2]) for e in (*asks, *bids))
        state.ts_recv = ts_recv
        state.n_updates += len(asks) + len(bids)
        self.finish_snapshot(state, ts_recv)

    def apply_updates(self, state: SymbolState, payloads: list[dict[str, Any]], depth: int,
                      ts_recv: int) -> None:
        book = state.book
        n = 0
        last_event = state.ts_event or 0
        for payload in payloads:
            for key, entries in payload.items():
                if key == "a":
                    set_level = book.set_ask
                elif key == "b":
                    set_level = book.set_bid
                else:
                    continue  # "c", the checksum
                for entry in entries:  # entry[3] == "r" (republish) is applied the same way
                    set_level(parse_units(entry[0]), parse_units(entry[1]))
                    last_event = max(last_event, parse_epoch_seconds_ns(entry[2]))
                    n += 1
        book.truncate(depth)
        state.ts_event = last_event
        state.ts_recv = ts_recv
        state.n_updates += n
        state.level_updates += n

    def on_trades(self, trades: list[list[str]], pair: str, ts_recv: int) -> None:
        if not self.sink.wants(pair):
            return
        state = self.sink.state(pair)
        for i, (price, volume, when, side, *_) in enumerate(trades):
            if side not in ("b", "s"):
                raise ValueError(f"unknown trade side {side!r}")
            self.sink.trade(state, ts_recv, parse_epoch_seconds_ns(when), f"{when}-{i}",
                            float(price), float(volume), 1 if side == "b" else -1)

    # -- REST ---------------------------------------------------------------------------
    def on_http(self, ts_recv: int, conn: str, url: str, data: str, where: str) -> None:
        """AssetPairs: each pair's tick size, `tick_size` or else 10^-pair_decimals."""
        reply = self.decode(data, where, conn, ts_recv)
        if not isinstance(reply, dict) or not isinstance(reply.get("result"), dict):
            return
        for info in reply["result"].values():
            if not isinstance(info, dict) or "wsname" not in info:
                continue
            if info.get("tick_size"):
                tick = float(info["tick_size"])
            elif isinstance(info.get("pair_decimals"), int):
                tick = float(f"1e-{info['pair_decimals']}")
            else:
                continue
            self.rest_tick_sizes[info["wsname"]] = tick
        for state in self.sink.states():
            if state.symbol in self.rest_tick_sizes:
                state.tick_size = self.rest_tick_sizes[state.symbol]
                state.tick_size_source = "AssetPairs REST reply"
