"""Coinbase Exchange and Coinbase Advanced Trade: sessions keyed by `product_ids`.

Both ask for channels by product (`{"type": "subscribe", "product_ids": [...], ...}`)
and confirm with a `subscriptions` message; they differ in how a channel is named
(Exchange: `channels` list, `level2`/`level2_batch`; Advanced: one `channel`,
`level2`) and in what a book message looks like. Advanced numbers every message of a
connection (`sequence_num`), so this emulator numbers what it sends itself: a
message a fault takes still uses its number, as a message lost on the way would.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from collector.emulator.sessions import Session, SubscribeServer
from collector.venues.coinbase_advanced import CoinbaseAdvanced
from collector.venues.coinbase_exchange import CoinbaseExchange, format_rfc3339_ns

SEQUENCE_NUM = re.compile(r'"sequence_num":\s*\d+')
EXCHANGE_BOOK_CHANNELS = ("level2", "level2_batch")


def _product_requests(msg: Any, wants_book: bool) -> list[tuple[str, str]]:
    if not isinstance(msg, dict) or msg.get("type") not in ("subscribe", "unsubscribe") \
            or not wants_book:
        return []
    return [(msg["type"], p) for p in msg.get("product_ids", []) if isinstance(p, str)]


def _subscribed(msg: Any) -> list[str]:
    if not isinstance(msg, dict) or msg.get("type") != "subscribe":
        return []
    return [p for p in msg.get("product_ids", []) if isinstance(p, str)]


class CoinbaseExchangeServer(SubscribeServer):
    subscribed_symbols = staticmethod(_subscribed)

    def classify(self, text: str) -> tuple[str | None, bool, bool]:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None, False, False
        if not isinstance(msg, dict):
            return None, False, False
        kind = msg.get("type")
        return msg.get("product_id"), kind == "l2update", kind in ("l2update", "snapshot")

    def book_requests(self, msg: Any) -> list[tuple[str, str]]:
        channels = msg.get("channels", []) if isinstance(msg, dict) else []
        names = {c if isinstance(c, str) else c.get("name") for c in channels}
        return _product_requests(msg, bool(names & set(EXCHANGE_BOOK_CHANNELS)))

    def _subscriptions(self, session: Session) -> str:
        products = sorted(s.symbol for s in session.exchange.states()
                          if s.symbol not in session.unsubscribed)
        return CoinbaseExchange.subscription_reply({"level2": products})

    def unsubscribed_replies(self, session: Session, symbol: str) -> list[str]:
        return [self._subscriptions(session)]

    def subscribed_replies(self, session: Session, symbol: str) -> list[str]:
        state = session.exchange.state(symbol)
        protocol = session.exchange.venue
        assert isinstance(protocol, CoinbaseExchange)
        return [self._subscriptions(session),
                protocol.snapshot_message(symbol, state.book.bids(), state.book.asks(),
                                          state.extra.get("decimals", (8, 8)))]


class CoinbaseAdvancedServer(SubscribeServer):
    subscribed_symbols = staticmethod(_subscribed)

    def classify(self, text: str) -> tuple[str | None, bool, bool]:
        if '"l2_data"' not in text:
            return None, False, False
        try:
            events = orjson.loads(text)["events"]
            event = events[0]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            return None, False, False
        return event.get("product_id"), event.get("type") == "update", True

    def book_requests(self, msg: Any) -> list[tuple[str, str]]:
        return _product_requests(msg, isinstance(msg, dict) and msg.get("channel") == "level2")

    def number(self, session: Session, text: str) -> str:
        n = session.sequence
        session.sequence += 1
        return SEQUENCE_NUM.sub(f'"sequence_num":{n}', text, count=1)

    def _now(self, session: Session, symbol: str) -> str:
        state = session.exchange.get(symbol)
        return format_rfc3339_ns(state.ts_event if state and state.ts_event else 0)

    def unsubscribed_replies(self, session: Session, symbol: str) -> list[str]:
        products = sorted(s.symbol for s in session.exchange.states()
                          if s.symbol not in session.unsubscribed)
        return [CoinbaseAdvanced.subscription_reply({"level2": products}, 0,
                                                    self._now(session, symbol))]

    def subscribed_replies(self, session: Session, symbol: str) -> list[str]:
        state = session.exchange.state(symbol)
        now = self._now(session, symbol)
        products = sorted(s.symbol for s in session.exchange.states()
                          if s.symbol not in session.unsubscribed)
        return [CoinbaseAdvanced.subscription_reply({"level2": products}, 0, now),
                CoinbaseAdvanced.snapshot_message(symbol, state, 0, now,
                                                  state.extra.get("decimals", (2, 8)))]
