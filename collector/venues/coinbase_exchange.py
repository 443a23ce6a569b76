"""Coinbase Exchange (the legacy Pro feed): `level2` snapshot + `l2update` changes.

Sync rule: after subscribing, the feed sends one `snapshot` per product (full
`bids`/`asks`), then `l2update` messages whose `changes` are [side, price, size]
with side "buy"/"sell" and an absolute size; size "0" deletes the level.

The level2 channel carries NO sequence numbers, so a lost message cannot be
detected by counting. The guards are:
- an unparseable or inconsistent update invalidates its product's book (every
  book of the connection when the product cannot be read from it) and resubscribes;
- a crossed book (bid >= ask) does the same;
- the book's best bid and ask are cross-checked against the `ticker` channel, which
  the matching engine sequences: a ticker is compared with the book as it stood at the
  ticker's time (after every l2update up to that time, before the first one after it),
  and a mismatch resubscribes;
- a (re)connection or a disconnect invalidates every book fed by that connection;
- a periodic fresh snapshot (`needs_refresh`) bounds any error none of these can see:
  a lost change deep in the book that no trade touches.
Rows of a product are written once its next update has been read without fault.

`match`/`last_match` give trades; their `side` is the MAKER's side (Coinbase: "a
sell side match is an up-tick"), so the aggressor is the opposite side. Trade ids
increase per product, which drops the repeated `last_match` after a reconnect.
`ticker` best_bid/best_ask is compared with the rebuilt book (see `on_ticker`).
Tick sizes come from a REST `/products` reply (`quote_increment`) in the stream.

Live, the public channel is `level2_batch` (same messages, 50 ms batches):
plain `level2` now requires an authenticated connection.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from typing import Any, ClassVar

import orjson

from collector.book import format_units, parse_units
from collector.state import SymbolState
from collector.venues.base import Venue

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SECOND = dt.timedelta(seconds=1)
PRODUCT_ID = re.compile(r'"product_id"\s*:\s*"([^"]+)"')
MESSAGE_TYPE = re.compile(r'^\s*\{\s*"type"\s*:\s*"([^"]+)"')
BOOK_MESSAGES = ("l2update", "snapshot")
CATCH_UP_NS = 1_000_000_000  # longest the level2 feed may lag a ticker (exchange time)


@lru_cache(maxsize=4096)
def _epoch_seconds(prefix: str, offset: str) -> int:
    """Seconds since the epoch of 'YYYY-MM-DDTHH:MM:SS' at a '+HH:MM' offset."""
    moment = dt.datetime.fromisoformat(prefix + offset)
    return (moment - _EPOCH) // _SECOND


def parse_rfc3339_ns(text: str) -> int:
    """Exact int nanoseconds of an RFC 3339 time like '2026-08-09T21:05:48.228568804Z'.

    The fraction is read as digits (up to 9; finer digits must be zero), never
    through a float. Raises ValueError on anything else.
    """
    if len(text) < 20 or text[10] not in "Tt ":
        raise ValueError(f"{text!r} is not an RFC 3339 time")
    prefix, rest = text[:19], text[19:]
    frac = ""
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        frac, rest = rest[1:end], rest[end:]
        if not frac:
            raise ValueError(f"{text!r} has an empty fraction of a second")
    if rest in ("Z", "z"):
        offset = "+00:00"
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        offset = rest
    else:
        raise ValueError(f"{text!r} has no UTC offset")
    if len(frac) > 9:
        if frac[9:].strip("0"):
            raise ValueError(f"{text!r} is finer than a nanosecond")
        frac = frac[:9]
    return _epoch_seconds(prefix, offset) * 1_000_000_000 + int(frac.ljust(9, "0") or "0")


def format_rfc3339_ns(ns: int) -> str:
    """Int nanoseconds as Coinbase writes times: '2026-08-09T21:05:48.228568804Z'."""
    seconds, frac = divmod(ns, 1_000_000_000)
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def product_tick_sizes(reply: Any) -> dict[str, float]:
    """product id -> quote_increment from a Coinbase products reply (either API's shape)."""
    products = reply.get("products") if isinstance(reply, dict) else reply
    ticks: dict[str, float] = {}
    if not isinstance(products, list):
        return ticks
    for product in products:
        if not isinstance(product, dict):
            continue
        pid = product.get("product_id") or product.get("id")
        increment = product.get("quote_increment") or product.get("price_increment")
        if isinstance(pid, str) and isinstance(increment, str) and increment:
            ticks[pid] = float(increment)
    return ticks


class CoinbaseExchange(Venue):
    name: ClassVar[str] = "coinbase-exchange"
    hosts: ClassVar[tuple[str, ...]] = ("ws-feed.exchange.coinbase.com", "ws-feed.pro.coinbase.com",
                                        "api.exchange.coinbase.com", "api.pro.coinbase.com")
    conn_prefixes: ClassVar[tuple[str, ...]] = ("coinbase-exchange",)
    symbol_pattern: ClassVar[re.Pattern[str]] = re.compile(r"^[A-Z0-9]{1,12}-[A-Z0-9]{1,12}$")
    symbol_spelling: ClassVar[str] = "BASE-QUOTE like BTC-USD"
    verified_depth: ClassVar[int | None] = 0  # no sequence, no checksum: no level is proven
    needs_refresh: ClassVar[bool] = True
    ws_endpoint: ClassVar[str] = "wss://ws-feed.exchange.coinbase.com"
    level2_channel: ClassVar[str] = "level2_batch"

    def __init__(self, sink: Any) -> None:
        super().__init__(sink)
        self.rest_tick_sizes: dict[str, float] = {}
        self.tickers_seen = 0
        self.tickers_compared = 0
        self.ticker_mismatches = 0

    # -- live endpoints ---------------------------------------------------------------
    def ws_url(self, symbols: list[str]) -> str:
        return self.ws_endpoint

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        msg = {"type": "subscribe", "product_ids": list(symbols),
               "channels": [self.level2_channel, "matches", "ticker"]}
        return [orjson.dumps(msg).decode()]

    def resync_messages(self, symbol: str) -> list[str]:
        """Unsubscribe then subscribe the product's level2: the feed answers with a snapshot."""
        return [orjson.dumps({"type": kind, "product_ids": [symbol],
                              "channels": [self.level2_channel]}).decode()
                for kind in ("unsubscribe", "subscribe")]

    def snapshot_message(self, symbol: str, bids: list[tuple[int, int]],
                         asks: list[tuple[int, int]], decimals: tuple[int, int]) -> str:
        """The level2 `snapshot` the feed sends for a product (the emulator serves it)."""
        price_dp, size_dp = decimals
        return orjson.dumps({
            "type": "snapshot", "product_id": symbol,
            "bids": [[format_units(p, price_dp), format_units(q, size_dp)] for p, q in bids],
            "asks": [[format_units(p, price_dp), format_units(q, size_dp)] for p, q in asks],
        }).decode()

    @staticmethod
    def subscription_reply(channels: dict[str, list[str]]) -> str:
        """The `subscriptions` message confirming what a connection is subscribed to."""
        return orjson.dumps({"type": "subscriptions", "channels": [
            {"name": name, "product_ids": products} for name, products in channels.items()
        ]}).decode()

    # -- messages ---------------------------------------------------------------------
    def on_unparseable(self, ts_recv: int, conn: str, data: str, where: str,
                       reason: str) -> None:
        """No sequence shows the loss later: invalidate what the message was for now."""
        super().on_unparseable(ts_recv, conn, data, where, reason)
        kind = MESSAGE_TYPE.search(data)
        if kind is not None and kind.group(1) not in BOOK_MESSAGES:
            return  # a trade or ticker: no book changed
        found = PRODUCT_ID.search(data)
        symbol = found.group(1) if found else None
        if symbol is not None and self.sink.wants(symbol):
            states = [self.sink.state(symbol)]
        elif symbol is None:
            states = self.connection_states(conn)
        else:
            states = []  # a product this feed does not keep
        for state in states:
            if state.valid:
                state.gaps += 1
                self.resync(state, ts_recv, f"an unreadable message ({reason})")

    def on_message(self, ts_recv: int, conn: str, data: str, where: str) -> None:
        msg = self.decode(data, where, conn, ts_recv)
        if msg is None:
            return
        if not isinstance(msg, dict):
            self.sink.parse_error(where, f"unexpected message shape ({type(msg).__name__})")
            return
        kind = msg.get("type")
        if kind in BOOK_MESSAGES:
            try:
                if kind == "l2update":
                    self.on_l2update(msg, ts_recv)
                else:
                    self.on_snapshot(msg, ts_recv, conn)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                self.on_unparseable(ts_recv, conn, data, where,
                                    f"an inconsistent {kind} ({exc!r})")
            return
        try:
            if kind in ("match", "last_match"):
                self.on_match(msg, ts_recv)
            elif kind == "ticker":
                self.on_ticker(msg, ts_recv)
            elif kind == "error":
                self.sink.parse_error(where, f"the venue reported an error: {msg.get('message')} "
                                             f"{msg.get('reason', '')}".strip())
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            self.sink.parse_error(where, f"unexpected message shape ({exc!r})")

    def on_snapshot(self, msg: dict[str, Any], ts_recv: int, conn: str) -> None:
        symbol = msg["product_id"]
        if not self.sink.wants(symbol):
            return
        state = self.sink.state(symbol)
        state.messages += 1
        bids = [(parse_units(p), parse_units(q)) for p, q, *_ in msg["bids"]]
        asks = [(parse_units(p), parse_units(q)) for p, q, *_ in msg["asks"]]
        state.book.load(bids, asks)
        state.extra["decimals"] = _decimals(msg)
        state.extra.pop("suspect", None)
        self.book_conn[symbol] = conn
        self.set_tick_size(state)
        state.seq = None
        state.ts_event = parse_rfc3339_ns(msg["time"]) if "time" in msg else None
        state.ts_recv = ts_recv
        state.n_updates += len(bids) + len(asks)
        self.finish_snapshot(state, ts_recv)

    def set_tick_size(self, state: SymbolState) -> None:
        tick = self.rest_tick_sizes.get(state.symbol)
        if tick is not None:
            state.tick_size, state.tick_size_source = tick, "products REST reply"
        elif state.tick_size is None:
            self.sink.infer_tick_size(state)

    def on_l2update(self, msg: dict[str, Any], ts_recv: int) -> None:
        symbol = msg["product_id"]
        if not self.sink.wants(symbol):
            return
        state = self.sink.state(symbol)
        state.messages += 1
        if not state.valid:
            return  # nothing to apply to until the product's snapshot arrives
        # read the whole message before touching the book: a bad one changes nothing
        bids, asks = [], []
        for side, px, qty in msg["changes"]:
            if side == "buy":
                bids.append((parse_units(px), parse_units(qty)))
            elif side == "sell":
                asks.append((parse_units(px), parse_units(qty)))
            else:
                raise ValueError(f"unknown side {side!r}")
        event_ns = parse_rfc3339_ns(msg["time"]) if "time" in msg else None
        if event_ns is not None and self.ticker_disagrees(state, event_ns, ts_recv):
            return
        self.sink.advance(state, ts_recv)
        book = state.book
        for price, size in bids:
            book.set_bid(price, size)
        for price, size in asks:
            book.set_ask(price, size)
        n = len(bids) + len(asks)
        state.ts_event = event_ns
        state.ts_recv = ts_recv
        state.n_updates += n
        state.level_updates += n
        if not self.check_crossed(state, ts_recv):
            self._settle_suspect(state)

    def ticker_disagrees(self, state: SymbolState, event_ns: int, ts_recv: int) -> bool:
        """Before applying an update of exchange time `event_ns`: has a ticker's best
        bid/ask gone unseen in the book for longer than the level2 feed ever lags?
        Then a change was lost: the book is invalid and resubscribed (True)."""
        suspect = state.extra.get("suspect")
        if suspect is None or event_ns <= suspect[0]:
            return False
        self.ticker_mismatches += 1
        state.gaps += 1
        self.resync(state, ts_recv, f"the ticker's best bid/ask {suspect[1]}/{suspect[2]} "
                                    f"never showed in the book")
        return True

    def _settle_suspect(self, state: SymbolState) -> None:
        suspect = state.extra.get("suspect")
        if suspect is None:
            return
        best_bid, best_ask = state.book.best_bid(), state.book.best_ask()
        if best_bid and best_ask and (best_bid[0], best_ask[0]) == suspect[1:]:
            del state.extra["suspect"]  # the level2 feed caught up with the ticker

    def on_match(self, msg: dict[str, Any], ts_recv: int) -> None:
        symbol = msg["product_id"]
        if not self.sink.wants(symbol):
            return
        state = self.sink.state(symbol)
        trade_id = int(msg["trade_id"])
        if trade_id <= state.extra.get("last_trade_id", -1):
            return  # the last_match repeated after a (re)subscription
        state.extra["last_trade_id"] = trade_id
        # `side` is the maker's: a resting buy order was hit by a seller
        side = -1 if msg["side"] == "buy" else 1
        self.sink.trade(state, ts_recv, parse_rfc3339_ns(msg["time"]), str(trade_id),
                        float(msg["price"]), float(msg["size"]), side)

    def on_ticker(self, msg: dict[str, Any], ts_recv: int) -> None:
        """Cross-check the book's best bid and ask against the ticker.

        A ticker is emitted by the matching engine at a match, in arrival order right
        after the l2update of the same moment, so the book it arrives on is the book
        at its time when the book's last update is not newer than the ticker (and at
        least one update since the snapshot, whose time is unknown, has been applied).
        The level2 feed can lag the matching engine by a few milliseconds (2 of 54
        comparable tickers of the shared capture name a best price the next l2update
        only then shows), so a disagreement is only a suspicion; it becomes a lost
        change when the book has not shown the ticker's prices within CATCH_UP_NS.
        """
        symbol = msg["product_id"]
        if not self.sink.wants(symbol) or "best_bid" not in msg:
            return
        state = self.sink.state(symbol)
        self.tickers_seen += 1
        if not state.valid or state.ts_event is None:
            return
        ticker_ns = parse_rfc3339_ns(msg["time"])
        if ticker_ns < state.ts_event:
            return
        if self.ticker_disagrees(state, ticker_ns, ts_recv):
            return
        self.tickers_compared += 1
        bid, ask = parse_units(msg["best_bid"]), parse_units(msg["best_ask"])
        if self.sink.reference_top(state, None, bid, ask, ts_recv) is False:
            state.extra.setdefault("suspect", (ticker_ns + CATCH_UP_NS, bid, ask))
        else:
            state.extra.pop("suspect", None)

    # -- REST ---------------------------------------------------------------------------
    def on_http(self, ts_recv: int, conn: str, url: str, data: str, where: str) -> None:
        reply = self.decode(data, where, conn, ts_recv)
        if reply is None:
            return
        ticks = product_tick_sizes(reply)
        if not ticks:
            return
        self.rest_tick_sizes.update(ticks)
        for state in self.sink.states():
            if state.symbol in ticks:
                state.tick_size, state.tick_size_source = ticks[state.symbol], "products REST reply"


def _decimals(snapshot: dict[str, Any]) -> tuple[int, int]:
    """Price and size decimals as the feed spells them, from a snapshot's first level."""
    for side in ("bids", "asks"):
        if snapshot.get(side):
            price, size = snapshot[side][0][:2]
            return len(price.partition(".")[2]), len(size.partition(".")[2])
    return 8, 8
