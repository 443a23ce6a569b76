"""Coinbase Exchange (the legacy Pro feed): `level2` snapshot + `l2update` changes.

Sync rule: after subscribing, the feed sends one `snapshot` per product (full
`bids`/`asks`), then `l2update` messages whose `changes` are [side, price, size]
with side "buy"/"sell" and an absolute size; size "0" deletes the level.

The level2 channel carries NO sequence numbers, so a lost message cannot be
detected by counting. The guards are: a crossed book (bid >= ask) invalidates
the product and asks for a resubscription; a (re)connection invalidates every
book fed by that connection until its new snapshot arrives.

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
from functools import lru_cache
from typing import Any, ClassVar

import orjson

from collector.book import parse_units
from collector.state import SymbolState
from collector.venues.base import Venue

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SECOND = dt.timedelta(seconds=1)


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
    ws_endpoint: ClassVar[str] = "wss://ws-feed.exchange.coinbase.com"
    level2_channel: ClassVar[str] = "level2_batch"

    def __init__(self, sink: Any) -> None:
        super().__init__(sink)
        self.rest_tick_sizes: dict[str, float] = {}
        # which connection feeds each product's book, to invalidate on reconnect
        self.book_conn: dict[str, str] = {}
        self.tickers_seen = 0
        self.tickers_compared = 0

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

    # -- messages ---------------------------------------------------------------------
    def on_connect(self, ts_recv: int, conn: str, url: str) -> None:
        self.invalidate_connection(conn, ts_recv, self.book_conn)

    def on_message(self, ts_recv: int, conn: str, data: str, where: str) -> None:
        msg = self.decode(data, where)
        if msg is None:
            return
        try:
            kind = msg["type"]
            if kind == "l2update":
                self.on_l2update(msg, ts_recv)
            elif kind == "snapshot":
                self.on_snapshot(msg, ts_recv, conn)
            elif kind in ("match", "last_match"):
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
        book = state.book
        n = 0
        for side, px, qty in msg["changes"]:
            if side == "buy":
                book.set_bid(parse_units(px), parse_units(qty))
            elif side == "sell":
                book.set_ask(parse_units(px), parse_units(qty))
            else:
                raise ValueError(f"unknown side {side!r}")
            n += 1
        state.ts_event = parse_rfc3339_ns(msg["time"]) if "time" in msg else None
        state.ts_recv = ts_recv
        state.n_updates += n
        state.level_updates += n
        self.check_crossed(state, ts_recv)

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
        """Compare the ticker's best bid/ask with the book, where they describe one moment.

        A ticker is emitted by the matching engine at a match; the level2 feed
        reports the same match's book change in its own message, which may arrive
        before or after the ticker. The two are comparable only when the book
        has had no level change in between, i.e. when the book's last applied update
        is not newer than the ticker (`time` of the last l2update <= ticker `time`)
        AND at least one update has been applied after the snapshot, so the book
        is live, not the snapshot sent before the ticker's match.
        """
        symbol = msg["product_id"]
        if not self.sink.wants(symbol) or "best_bid" not in msg:
            return
        state = self.sink.state(symbol)
        self.tickers_seen += 1
        if not state.valid or state.ts_event is None:
            return
        if parse_rfc3339_ns(msg["time"]) < state.ts_event:
            return
        self.tickers_compared += 1
        self.sink.reference_top(state, state.seq, parse_units(msg["best_bid"]),
                                parse_units(msg["best_ask"]), ts_recv)

    # -- REST ---------------------------------------------------------------------------
    def on_http(self, ts_recv: int, conn: str, url: str, data: str, where: str) -> None:
        reply = self.decode(data, where)
        if reply is None:
            return
        ticks = product_tick_sizes(reply)
        if not ticks:
            return
        self.rest_tick_sizes.update(ticks)
        for state in self.sink.states():
            if state.symbol in ticks:
                state.tick_size, state.tick_size_source = ticks[state.symbol], "products REST reply"
