"""Binance spot's wire protocol, written from the model's integer buffers.

The texts are byte-for-byte in the shape of the real feed (see the capture
../shared/data/captures/binance-spot/btcusdt_20240808-09.jsonl.gz): the combined
stream envelope, fixed 8-decimal strings, absolute sizes with "0.00000000" deleting
a level, and the REST depth reply.
"""

from __future__ import annotations

import numpy as np

WS_CONN = "binance-spot.ws"
REST_CONN = "binance-spot.rest"
REST_DEPTH_LIMIT = 5000
E8 = 10**8


def rest_depth_url(symbol: str) -> str:
    return f"https://api.binance.com/api/v3/depth?symbol={symbol}&limit={REST_DEPTH_LIMIT}"


def decimal8(units_e8: int) -> str:
    """An integer of 1e-8 units as Binance writes it: '61837.63000000'."""
    whole, frac = divmod(units_e8, E8)
    return f"{whole}.{frac:08d}"


class BinanceSpotEncoder:
    """Turns one symbol's diff, trade and book rows into Binance spot message texts."""

    def __init__(self, symbol: str, tick_e8: int, lot_e8: int) -> None:
        self.symbol = symbol
        self.tick_e8 = tick_e8
        self.lot_e8 = lot_e8
        low = symbol.lower()
        self._depth_head = f'{{"stream":"{low}@depth@100ms","data":{{"e":"depthUpdate","E":'
        self._trade_head = f'{{"stream":"{low}@trade","data":{{"e":"trade","E":'
        self._prices: dict[int, str] = {}  # a book revisits the same prices all the time

    def price(self, ticks: int) -> str:
        text = self._prices.get(ticks)
        if text is None:
            if len(self._prices) > 200_000:
                self._prices.clear()
            text = decimal8(ticks * self.tick_e8)
            self._prices[ticks] = text
        return text

    def size(self, lots: int) -> str:
        return decimal8(lots * self.lot_e8)

    def _levels(self, prices: list[int], sizes: list[int]) -> str:
        price, size = self.price, self.size
        return ",".join([f'["{price(p)}","{size(q)}"]' for p, q in zip(prices, sizes,
                                                                         strict=True)])

    def depth_update(self, event_ms: int, first_id: int, last_id: int,
                     levels: np.ndarray) -> str:
        """One diff; levels rows are (side 0 bid / 1 ask, price ticks, size lots)."""
        side = levels[:, 0]
        bids = levels[side == 0]
        asks = levels[side == 1]
        return (f'{self._depth_head}{event_ms},"s":"{self.symbol}","U":{first_id},'
                f'"u":{last_id},"b":[{self._levels(bids[:, 1].tolist(), bids[:, 2].tolist())}],'
                f'"a":[{self._levels(asks[:, 1].tolist(), asks[:, 2].tolist())}]}}}}')

    def trade(self, event_ms: int, trade_id: int, trade_ms: int, price_ticks: int,
              size_lots: int, buyer_is_maker: bool) -> str:
        m = "true" if buyer_is_maker else "false"
        return (f'{self._trade_head}{event_ms},"s":"{self.symbol}","t":{trade_id},'
                f'"p":"{self.price(price_ticks)}","q":"{self.size(size_lots)}",'
                f'"T":{trade_ms},"m":{m},"M":true}}}}')

    def depth_snapshot(self, last_update_id: int, bids: np.ndarray, asks: np.ndarray) -> str:
        """The REST /api/v3/depth reply; bids and asks rows are (price ticks, size lots)."""
        return (f'{{"lastUpdateId":{last_update_id},'
                f'"bids":[{self._levels(bids[:, 0].tolist(), bids[:, 1].tolist())}],'
                f'"asks":[{self._levels(asks[:, 0].tolist(), asks[:, 1].tolist())}]}}')
