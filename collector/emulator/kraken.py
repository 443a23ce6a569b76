"""Kraken websocket v1: sessions keyed by `pair`, book channels by their channel id.

A client's `{"event": "unsubscribe", "pair": [...], "subscription": {"name": "book"}}`
is confirmed with a `subscriptionStatus` ("unsubscribed"); a later subscribe with one
("subscribed") and a fresh `book` snapshot of the session's book at its depth, whose
levels the updates that follow (and their checksums) continue.
"""

from __future__ import annotations

from typing import Any

import orjson

from collector.emulator.sessions import Session, SubscribeServer
from collector.venues.kraken import Kraken

SNAPSHOT_DEPTH = Kraken.depth


class KrakenServer(SubscribeServer):
    def classify(self, text: str) -> tuple[str | None, bool, bool]:
        if not text.startswith("["):
            return None, False, False
        try:
            msg = orjson.loads(text)
            channel, pair = msg[-2], msg[-1]
        except (orjson.JSONDecodeError, IndexError, TypeError):
            return None, False, False
        if not isinstance(channel, str) or not channel.startswith("book"):
            return pair if isinstance(pair, str) else None, False, False
        snapshot = isinstance(msg[1], dict) and ("as" in msg[1] or "bs" in msg[1])
        return pair, not snapshot, True

    def book_requests(self, msg: Any) -> list[tuple[str, str]]:
        if not isinstance(msg, dict) or msg.get("event") not in ("subscribe", "unsubscribe"):
            return []
        if (msg.get("subscription") or {}).get("name") != "book":
            return []
        return [(msg["event"], p) for p in msg.get("pair", []) if isinstance(p, str)]

    @staticmethod
    def subscribed_symbols(msg: Any) -> list[str]:
        if not isinstance(msg, dict) or msg.get("event") != "subscribe":
            return []
        return [p for p in msg.get("pair", []) if isinstance(p, str)]

    def _channel(self, session: Session, pair: str) -> int:
        protocol = session.exchange.venue
        assert isinstance(protocol, Kraken)
        for (_, channel_id), name in protocol.book_channels.items():
            if name == pair:
                return channel_id
        return 0

    def unsubscribed_replies(self, session: Session, pair: str) -> list[str]:
        return [Kraken.subscription_status(self._channel(session, pair), pair, "unsubscribed",
                                           {"depth": SNAPSHOT_DEPTH, "name": "book"})]

    def subscribed_replies(self, session: Session, pair: str) -> list[str]:
        state = session.exchange.state(pair)
        channel_id = self._channel(session, pair)
        seconds, frac = divmod(state.ts_event or 0, 1_000_000_000)
        stamp = f"{seconds}.{frac // 1000:06d}"
        return [Kraken.subscription_status(channel_id, pair, "subscribed",
                                           {"depth": SNAPSHOT_DEPTH, "name": "book"}),
                Kraken.snapshot_message(channel_id, pair, SNAPSHOT_DEPTH, state, stamp)]
