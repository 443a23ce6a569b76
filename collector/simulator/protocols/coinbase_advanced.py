"""Coinbase Advanced Trade, spelled as the real feed spells it.

The shapes are those of the shared capture coinbase-advanced/l2_trades_btc_eth_20260809:
one websocket connection for every product; the client's subscribe messages (one per
channel, from the venue module); `subscriptions` replies; a `level2` snapshot per
product, then `l2_data` updates (sides `bid` / `offer`, absolute `new_quantity`, "0"
deletes); `market_trades` (`side` is the maker's: a buyer lifting the offer prints
SELL); `ticker` after each 100 ms window that traded, holding the book's best quotes;
`heartbeats` every second. Every message on the connection takes the next
`sequence_num`, across all channels and products, which is the venue's sync rule. A
products REST reply first gives the tick sizes, as the real capture has it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import orjson

from collector.simulator.presets import SymbolPreset
from collector.simulator.protocols.base import (
    ChunkOutput,
    DecimalCache,
    Protocol,
    Record,
    trimmed_decimal,
)
from collector.venues.coinbase_advanced import CoinbaseAdvanced

if TYPE_CHECKING:
    from collector.simulator.simulate import SimulatedBook

NS = 1_000_000_000
MS = 1_000_000
SIDES = ("bid", "offer")  # model side 0 / 1 as level2 names them
MAKER_SIDE = ("SELL", "BUY")  # a market buy (model side 0) lifts a resting SELL


class Clock:
    """RFC 3339 times as Coinbase writes them, the date part cached per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, ns: int, digits: int = 9) -> str:
        second, frac = divmod(ns, NS)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{frac:09d}"[: len(self._prefix) + 1 + digits] + "Z"


class CoinbaseAdvancedWire(Protocol):
    venue: ClassVar[str] = CoinbaseAdvanced.name
    one_symbol_per_session: ClassVar[bool] = False

    def __init__(self, presets: list[SymbolPreset], start_ns: int,
                 rng: np.random.Generator) -> None:
        super().__init__(presets, start_ns, rng)
        self.conn = f"{self.venue}.ws"
        self.http_conn = f"{self.venue}.http"
        self.products = [p.symbol for p in presets]
        self.prices = [DecimalCache(p.tick_e8, trimmed_decimal) for p in presets]
        self.sizes = [DecimalCache(p.lot_e8, trimmed_decimal) for p in presets]
        self.clock = Clock()
        self.seq = 0
        self.heartbeats = 0
        self.last_trade_px: list[int | None] = [None] * len(presets)

    # -- the session's opening -------------------------------------------------------------
    def opening(self, books: list[SimulatedBook]) -> list[Record]:
        t = self.start_ns
        products = [{"product_id": p.symbol, "price": trimmed_decimal(
            round(p.start_price * 10**8 / p.tick_e8) * p.tick_e8),
            "base_increment": p.lot_size, "quote_increment": p.tick_size,
            "status": "online", "product_type": "SPOT"} for p in self.presets]
        records = [Record(t - 400 * MS, "http", self.http_conn,
                          orjson.dumps({"products": products,
                                        "num_products": len(products)}).decode(),
                          CoinbaseAdvanced.products_url),
                   Record(t - 300 * MS, "connect", self.conn, None,
                          CoinbaseAdvanced.ws_endpoint)]
        subscribed: dict[str, list[str]] = {}
        messages = CoinbaseAdvanced(None).subscribe_messages(self.products)  # type: ignore[arg-type]
        for k, text in enumerate(messages):
            sent = t - 200 * MS + k * MS
            records.append(Record(sent, "send", self.conn, text, CoinbaseAdvanced.ws_endpoint))
            subscribed[orjson.loads(text)["channel"]] = list(self.products)
            records.append(self._message(sent + 50 * MS, "subscriptions",
                                         [{"subscriptions": dict(subscribed)}]))
        for i, book in enumerate(books):
            bids, asks = book.depth(1 << 30)
            event_time = self.clock(t, 6)
            updates = ([self._update(0, int(p), int(q), event_time, i) for p, q in bids]
                       + [self._update(1, int(p), int(q), event_time, i) for p, q in asks])
            records.append(self._message(t + i * 1000, "l2_data", [
                {"type": "snapshot", "product_id": self.products[i], "updates": updates}]))
        return records

    # -- one chunk -------------------------------------------------------------------------
    def chunk(self, outputs: list[ChunkOutput], t_from: int, t_to: int) -> list[Record]:
        """Messages in send order; sequence numbers are taken in that order."""
        pending: list[tuple[int, int, int, int, object]] = []  # (send, rank, product, row, x)
        for i, out in enumerate(outputs):
            hdr = out.diff_headers
            for row in range(len(hdr)):
                pending.append((int(hdr[row, 0]) * MS, 0, i, row, out))
            trades = out.trades
            if len(trades):
                times = trades[:, 0]
                cuts = np.flatnonzero(np.diff(times)) + 1  # one message per market order
                for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(times)], strict=True):
                    pending.append((int(times[lo]), 1, i, int(lo), (out, int(hi))))
                # a ticker after each window that traded: the window's diff ends at E
                windows = np.unique(-(-times // (100 * MS)) * 100)
                for e_ms in windows.tolist():
                    match = np.flatnonzero(hdr[:, 0] == e_ms)
                    if len(match):
                        pending.append((e_ms * MS, 2, i, int(match[0]), out))
        first_beat = -(-(t_from + 1) // NS) * NS
        for beat in range(first_beat, t_to + 1, NS):
            pending.append((beat, 3, -1, 0, None))
        pending.sort(key=lambda x: (x[0], x[1], x[2], x[3]))
        records = []
        for send, rank, i, row, extra in pending:
            if rank == 0:
                records.append(self._diff(send, i, row, extra))  # type: ignore[arg-type]
            elif rank == 1:
                out, hi = extra  # type: ignore[misc]
                records.append(self._trades(send, i, out.trades[row:hi]))
            elif rank == 2:
                records.append(self._ticker(send, i, extra.diff_headers[row]))  # type: ignore[union-attr]
            else:
                records.append(self._heartbeat(send))
        return records

    def _diff(self, send: int, i: int, row: int, out: ChunkOutput) -> Record:
        hdr = out.diff_headers
        start = int(hdr[row - 1, 3]) if row else 0
        levels = out.diff_levels[start:int(hdr[row, 3])]
        event_time = self.clock(send, 6)
        updates = [self._update(side, price, lots, event_time, i)
                   for side, price, lots in levels.tolist()]
        return self._message(send, "l2_data", [{"type": "update",
                                                "product_id": self.products[i],
                                                "updates": updates}])

    def _update(self, side: int, price: int, lots: int, event_time: str,
                i: int) -> dict[str, str]:
        return {"side": SIDES[side], "event_time": event_time,
                "price_level": self.prices[i](price), "new_quantity": self.sizes[i](lots)}

    def _trades(self, send: int, i: int, rows: np.ndarray) -> Record:
        trades = []
        for t_ns, trade_id, price, lots, maker in rows.tolist():
            trades.append({"product_id": self.products[i], "trade_id": str(trade_id),
                           "price": self.prices[i](price), "size": self.sizes[i](lots),
                           "time": self.clock(t_ns, 6), "side": MAKER_SIDE[maker]})
            self.last_trade_px[i] = price
        return self._message(send, "market_trades", [{"type": "update", "trades": trades}])

    def _ticker(self, send: int, i: int, header: np.ndarray) -> Record:
        bid, bid_lots, ask, ask_lots = (int(x) for x in header[4:8])
        last = self.last_trade_px[i]
        ticker = {"type": "ticker", "product_id": self.products[i],
                  "price": self.prices[i](last if last is not None else bid),
                  "best_bid": self.prices[i](bid), "best_bid_quantity": self.sizes[i](bid_lots),
                  "best_ask": self.prices[i](ask), "best_ask_quantity": self.sizes[i](ask_lots)}
        return self._message(send, "ticker", [{"type": "update", "tickers": [ticker]}])

    def _heartbeat(self, send: int) -> Record:
        self.heartbeats += 1
        now = self.clock(send).replace("T", " ").rstrip("Z")
        return self._message(send, "heartbeats", [{
            "current_time": f"{now} +0000 UTC m=+{self.heartbeats}.000000001",
            "heartbeat_counter": self.heartbeats}])

    def _message(self, send: int, channel: str, events: list) -> Record:
        body = {"channel": channel, "timestamp": self.clock(send),
                "sequence_num": self.seq, "events": events}
        self.seq += 1
        return Record(send, "recv", self.conn, orjson.dumps(body).decode())
