"""Binance spot and USDⓈ-M futures, spelled as the real feeds spell them.

The shapes are those of the shared captures (binance-spot/btcusdt_20240808-09,
binance-usdm/btcusdt_20240808): the combined-stream envelope, `depthUpdate` diffs with
absolute sizes (zero deletes a level), `trade` messages, and one REST depth reply
answering a request sent while the first diffs arrive. Stream names, REST addresses and
decimals come from the venue modules. USDⓈ-M differs where the venue does: diffs carry
`T` and `pu` (the previous diff's `u`), update ids are not contiguous (futures number
the events of every symbol in one sequence: here every third id is this symbol's, so
`U != pu + 1` and only the `pu` rule joins them), trades carry `X`, and the REST reply
carries `E` and `T`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from collector.simulator.presets import SymbolPreset
from collector.simulator.protocols.base import (
    ChunkOutput,
    DecimalCache,
    Protocol,
    Record,
    fixed_decimal,
)
from collector.venues.binance_spot import BinanceSpot
from collector.venues.binance_usdm import BinanceUsdm

if TYPE_CHECKING:
    from collector.simulator.simulate import SimulatedBook

MS = 1_000_000


class BinanceEncoder:
    """One symbol's messages, from the model's integer rows."""

    def __init__(self, preset: SymbolPreset, venue: type[BinanceSpot], futures: bool,
                 id_stride: int) -> None:
        self.symbol = preset.symbol
        self.futures = futures
        self.stride = id_stride
        price_decimals, size_decimals = venue.wire_decimals
        self.price = DecimalCache(preset.tick_e8, lambda u: fixed_decimal(u, price_decimals))
        self.size = DecimalCache(preset.lot_e8, lambda u: fixed_decimal(u, size_decimals))
        low = preset.symbol.lower()
        self._depth_head = (f'{{"stream":"{low}@{venue.depth_stream}","data":'
                            f'{{"e":"depthUpdate","E":')
        self._trade_head = f'{{"stream":"{low}@trade","data":{{"e":"trade","E":'
        self.venue = venue

    def wire_id(self, model_id: int) -> int:
        return model_id * self.stride

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
        book = (f'"b":[{self._levels(bids[:, 1].tolist(), bids[:, 2].tolist())}],'
                f'"a":[{self._levels(asks[:, 1].tolist(), asks[:, 2].tolist())}]}}}}')
        u_first, u_last = self.wire_id(first_id), self.wire_id(last_id)
        if self.futures:
            return (f'{self._depth_head}{event_ms},"T":{event_ms},"s":"{self.symbol}",'
                    f'"U":{u_first},"u":{u_last},"pu":{self.wire_id(first_id - 1)},{book}')
        return (f'{self._depth_head}{event_ms},"s":"{self.symbol}","U":{u_first},'
                f'"u":{u_last},{book}')

    def trade(self, event_ms: int, trade_id: int, trade_ms: int, price_ticks: int,
              size_lots: int, buyer_is_maker: bool) -> str:
        m = "true" if buyer_is_maker else "false"
        price, qty = self.price(price_ticks), self.size(size_lots)
        if self.futures:
            return (f'{self._trade_head}{event_ms},"T":{trade_ms},"s":"{self.symbol}",'
                    f'"t":{trade_id},"p":"{price}","q":"{qty}","X":"MARKET","m":{m}}}}}')
        return (f'{self._trade_head}{event_ms},"s":"{self.symbol}","t":{trade_id},'
                f'"p":"{price}","q":"{qty}","T":{trade_ms},"m":{m},"M":true}}}}')

    def depth_snapshot(self, last_update_id: int, event_ms: int, bids: np.ndarray,
                       asks: np.ndarray) -> str:
        """The REST depth reply; bids and asks rows are (price ticks, size lots)."""
        times = f'"E":{event_ms},"T":{event_ms},' if self.futures else ""
        return (f'{{"lastUpdateId":{self.wire_id(last_update_id)},{times}'
                f'"bids":[{self._levels(bids[:, 0].tolist(), bids[:, 1].tolist())}],'
                f'"asks":[{self._levels(asks[:, 0].tolist(), asks[:, 1].tolist())}]}}')


class BinanceSpotWire(Protocol):
    venue: ClassVar[str] = BinanceSpot.name
    module: ClassVar[type[BinanceSpot]] = BinanceSpot
    futures: ClassVar[bool] = False
    id_stride: ClassVar[int] = 1
    snapshot_after_ns: ClassVar[int | None] = 250 * MS  # while the first diffs arrive

    def __init__(self, presets: list[SymbolPreset], start_ns: int,
                 rng: np.random.Generator) -> None:
        super().__init__(presets, start_ns, rng)
        self.encoders = [BinanceEncoder(p, self.module, self.futures, self.id_stride)
                         for p in presets]
        self.ws_conn = f"{self.venue}.ws"
        self.rest_conn = f"{self.venue}.rest"
        self.probe = self.module(None)  # type: ignore[arg-type]  # for its addresses only

    def chunk(self, outputs: list[ChunkOutput], t_from: int, t_to: int) -> list[Record]:
        records: list[Record] = []
        for encoder, out in zip(self.encoders, outputs, strict=True):
            records += self._symbol_chunk(encoder, out)
        if len(outputs) > 1:
            records.sort(key=lambda r: r.send_ns)
        return records

    def _symbol_chunk(self, encoder: BinanceEncoder, out: ChunkOutput) -> list[Record]:
        hdr, lvl, trd = out.diff_headers, out.diff_levels, out.trades
        n_d = len(hdr)
        send = np.concatenate([hdr[:, 0] * MS, trd[:, 0]])
        order = np.argsort(send, kind="stable")  # a diff sent at t precedes trades at t
        # the trade's event time E is its trade time T or the next millisecond
        engine_ms = (self.rng.random(len(trd)) < 0.5).astype(np.int64)
        starts = np.concatenate([[0], hdr[:, 3]]).astype(np.int64)
        records = []
        conn = self.ws_conn
        for idx in order.tolist():
            if idx < n_d:
                e_ms, first, last, end = hdr[idx, :4].tolist()
                text = encoder.depth_update(e_ms, first, last, lvl[starts[idx]:end])
                records.append(Record(e_ms * MS, "recv", conn, text))
            else:
                r = idx - n_d
                t_ns, trade_id, px, qty, maker = trd[r].tolist()
                t_ms = t_ns // MS
                text = encoder.trade(t_ms + int(engine_ms[r]), trade_id, t_ms, px, qty,
                                     bool(maker))
                records.append(Record(t_ns, "recv", conn, text))
        return records

    def rest_snapshots(self, books: list[SimulatedBook], sent_ns: int) -> list[Record]:
        records = []
        for encoder, book in zip(self.encoders, books, strict=True):
            bids, asks = book.depth(self.module.snapshot_limit)
            text = encoder.depth_snapshot(book.last_update_id, sent_ns // MS, bids, asks)
            url = self.probe.snapshot_url(book.preset.symbol)
            records.append(Record(sent_ns, "http", self.rest_conn, text, url))
        return records


class BinanceUsdmWire(BinanceSpotWire):
    venue: ClassVar[str] = BinanceUsdm.name
    module: ClassVar[type[BinanceSpot]] = BinanceUsdm
    futures: ClassVar[bool] = True
    id_stride: ClassVar[int] = 3
