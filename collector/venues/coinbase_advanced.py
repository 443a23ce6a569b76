"""Coinbase Advanced Trade: the `level2` channel (`l2_data` messages), trades and ticker.

Sync rule: every message on one websocket connection carries `sequence_num`,
contiguous across ALL channels of that connection (level2, ticker, trades,
heartbeats, subscriptions). A missing number means a message was lost and no one
can tell which product it was for, so a gap invalidates every book fed by that
connection and asks for a resubscription (live: unsubscribe + subscribe, which
answers with a fresh `snapshot` event). Books on other connections are untouched.

`l2_data` events: `snapshot` replaces the product's book; `update` sets levels.
Each entry has side "bid"/"offer" and `new_quantity`, the absolute size at
`price_level` ("0" deletes). `market_trades` give trades; `ticker` best_bid and
best_ask are compared with the rebuilt book (see `on_tickers`). Tick sizes come
from the REST products reply (`quote_increment`) when one is in the stream.
All times are RFC 3339 strings with up to nanoseconds, parsed exactly.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from collector.book import parse_units
from collector.state import SymbolState
from collector.venues.base import Venue
from collector.venues.coinbase_exchange import parse_rfc3339_ns, product_tick_sizes


class CoinbaseAdvanced(Venue):
    name: ClassVar[str] = "coinbase-advanced"
    hosts: ClassVar[tuple[str, ...]] = ("advanced-trade-ws.coinbase.com", "api.coinbase.com")
    conn_prefixes: ClassVar[tuple[str, ...]] = ("coinbase-advanced", "COINBASE")
    ws_endpoint: ClassVar[str] = "wss://advanced-trade-ws.coinbase.com"
    channels: ClassVar[tuple[str, ...]] = ("level2", "market_trades", "ticker", "heartbeats")
    # quote_increment and base_increment of the products REST reply
    tick_sizes: ClassVar[dict[str, float]] = {"BTC-USD": 0.01, "ETH-USD": 0.01}
    lot_sizes: ClassVar[dict[str, float]] = {"BTC-USD": 0.00000001, "ETH-USD": 0.00000001}
    products_url: ClassVar[str] = "https://api.coinbase.com/api/v3/brokerage/market/products"

    def __init__(self, sink: Any) -> None:
        super().__init__(sink)
        self.rest_tick_sizes: dict[str, float] = {}
        self.last_seq: dict[str, int] = {}  # connection -> last sequence_num seen on it
        self.conn_products: dict[str, set[str]] = {}  # connection -> products its level2 feeds
        self.sequence_gaps = 0
        self.tickers_seen = 0
        self.tickers_compared = 0

    # -- live endpoints ---------------------------------------------------------------
    def ws_url(self, symbols: list[str]) -> str:
        return self.ws_endpoint

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        # one channel per subscribe message, as the Advanced Trade API requires;
        # heartbeats keep quiet products' subscriptions open
        return [orjson.dumps({"type": "subscribe", "product_ids": list(symbols),
                              "channel": channel}).decode() for channel in self.channels]

    def resync_messages(self, symbol: str) -> list[str]:
        """Unsubscribe then subscribe the product's level2: the feed answers with a snapshot."""
        return [orjson.dumps({"type": kind, "product_ids": [symbol],
                              "channel": "level2"}).decode()
                for kind in ("unsubscribe", "subscribe")]

    # -- messages ---------------------------------------------------------------------
    def on_connect(self, ts_recv: int, conn: str, url: str) -> None:
        """A new connection restarts its sequence; its books wait for new snapshots."""
        self.last_seq.pop(conn, None)
        for state in self.connection_states(conn):
            if state.valid:
                self.invalidate(state, ts_recv, "reconnected: waiting for a new snapshot")
        self.conn_products.pop(conn, None)  # the new connection's subscriptions will say

    def on_message(self, ts_recv: int, conn: str, data: str, where: str) -> None:
        msg = self.decode(data, where)
        if msg is None:
            return
        try:
            seq = msg.get("sequence_num")
            if seq is not None:
                self.check_sequence(conn, seq, ts_recv)
            channel = msg.get("channel")
            if channel == "l2_data":
                for event in msg["events"]:
                    self.on_l2_event(event, seq, ts_recv, conn)
            elif channel == "market_trades":
                for event in msg["events"]:
                    self.on_trades(event, ts_recv)
            elif channel == "ticker":
                for event in msg["events"]:
                    self.on_tickers(event, ts_recv)
            elif channel == "subscriptions":
                for event in msg["events"]:
                    products = event["subscriptions"].get("level2", ())
                    self.conn_products.setdefault(conn, set()).update(products)
            elif msg.get("type") == "error":
                self.sink.parse_error(where, f"the venue reported an error: {msg.get('message')}")
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            self.sink.parse_error(where, f"unexpected message shape ({exc!r})")

    def check_sequence(self, conn: str, seq: int, ts_recv: int) -> None:
        last = self.last_seq.get(conn)
        self.last_seq[conn] = seq
        if last is None or seq == last + 1:
            return
        self.sequence_gaps += 1
        reason = f"gap: sequence_num {seq} after {last} on connection {conn}"
        for state in self.connection_states(conn):
            state.gaps += 1
            self.invalidate(state, ts_recv, reason)
            self.sink.request_snapshot(state)

    def connection_states(self, conn: str) -> list[SymbolState]:
        """The books fed by one connection (products seen in its level2 data or subscriptions)."""
        return [self.sink.state(s) for s in sorted(self.conn_products.get(conn, ()))
                if self.sink.wants(s)]

    def on_l2_event(self, event: dict[str, Any], seq: int | None, ts_recv: int,
                    conn: str) -> None:
        symbol = event["product_id"]
        if not self.sink.wants(symbol):
            return
        self.conn_products.setdefault(conn, set()).add(symbol)
        state = self.sink.state(symbol)
        state.messages += 1
        kind = event["type"]
        if kind == "snapshot":
            self.apply_snapshot(state, event, seq, ts_recv)
        elif kind == "update":
            if not state.valid:
                return  # nothing to apply to until the product's snapshot arrives
            self.apply_updates(state, event["updates"], seq, ts_recv)
            self.check_crossed(state, ts_recv)

    def apply_snapshot(self, state: SymbolState, event: dict[str, Any], seq: int | None,
                       ts_recv: int) -> None:
        state.book.clear()
        self.apply_updates(state, event["updates"], seq, ts_recv)
        state.level_updates -= len(event["updates"])  # a snapshot is not a level update
        tick = self.rest_tick_sizes.get(state.symbol)
        if tick is not None:
            state.tick_size, state.tick_size_source = tick, "products REST reply"
        elif state.tick_size is None:
            self.sink.infer_tick_size(state)
        self.finish_snapshot(state, ts_recv)

    def apply_updates(self, state: SymbolState, updates: list[dict[str, Any]], seq: int | None,
                      ts_recv: int) -> None:
        book = state.book
        last_time = None
        for u in updates:
            side = u["side"]
            if side == "bid":
                book.set_bid(parse_units(u["price_level"]), parse_units(u["new_quantity"]))
            elif side == "offer":
                book.set_ask(parse_units(u["price_level"]), parse_units(u["new_quantity"]))
            else:
                raise ValueError(f"unknown side {side!r}")
            last_time = u.get("event_time", last_time)
        n = len(updates)
        state.seq = seq
        if last_time is not None:
            state.ts_event = parse_rfc3339_ns(last_time)
        state.ts_recv = ts_recv
        state.n_updates += n
        state.level_updates += n

    def on_trades(self, event: dict[str, Any], ts_recv: int) -> None:
        # a snapshot event lists recent trades newest first: emit them oldest first
        trades = sorted(event["trades"], key=_trade_order)
        for t in trades:
            symbol = t["product_id"]
            if not self.sink.wants(symbol):
                continue
            state = self.sink.state(symbol)
            order = _trade_order(t)
            if order <= state.extra.get("last_trade_order", (-1, "")):
                continue  # already recorded (a snapshot repeats recent trades)
            state.extra["last_trade_order"] = order
            # `side` is the maker's side, as on Coinbase Exchange: a SELL print is a
            # resting sell order lifted by a buyer (the capture's prints at the best
            # ask are all SELL), so the aggressor is the opposite side
            side = -1 if t["side"] == "BUY" else 1
            self.sink.trade(state, ts_recv, parse_rfc3339_ns(t["time"]), str(t["trade_id"]),
                            float(t["price"]), float(t["size"]), side)

    def on_tickers(self, event: dict[str, Any], ts_recv: int) -> None:
        """Compare each ticker's best bid/ask with the book, where they describe one moment.

        The ticker and level2 channels are separate streams from the matching
        engine. A ticker is comparable when the book has been updated at least once
        since its snapshot and the ticker is not older than the book: the message
        timestamp of the ticker is at or after the exchange time of the last level
        change applied (`ts_event`). See the tests for how many qualify.
        """
        for ticker in event["tickers"]:
            symbol = ticker["product_id"]
            if not self.sink.wants(symbol) or not ticker.get("best_bid"):
                continue
            state = self.sink.state(symbol)
            self.tickers_seen += 1
            if not state.valid or state.ts_event is None:
                continue
            self.tickers_compared += 1
            self.sink.reference_top(state, state.seq, parse_units(ticker["best_bid"]),
                                    parse_units(ticker["best_ask"]), ts_recv)

    # -- REST ---------------------------------------------------------------------------
    def on_http(self, ts_recv: int, conn: str, url: str, data: str, where: str) -> None:
        reply = self.decode(data, where)
        if reply is None:
            return
        ticks = product_tick_sizes(reply)
        self.rest_tick_sizes.update(ticks)
        for state in self.sink.states():
            if state.symbol in ticks:
                state.tick_size, state.tick_size_source = ticks[state.symbol], "products REST reply"


def _trade_order(trade: dict[str, Any]) -> tuple[int, str]:
    """Trade ids are increasing integers per product; anything else sorts by time."""
    trade_id = str(trade["trade_id"])
    return (int(trade_id), "") if trade_id.isdigit() else (0, str(trade["time"]))
