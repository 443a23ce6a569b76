"""The venue protocols the simulator writes: a table from venue name to its spelling."""

from __future__ import annotations

from collector.simulator.protocols.base import ChunkOutput, Protocol, Record
from collector.simulator.protocols.binance import BinanceSpotWire, BinanceUsdmWire
from collector.simulator.protocols.coinbase_advanced import CoinbaseAdvancedWire

PROTOCOLS: dict[str, type[Protocol]] = {
    p.venue: p for p in (BinanceSpotWire, BinanceUsdmWire, CoinbaseAdvancedWire)}

__all__ = ["PROTOCOLS", "ChunkOutput", "Protocol", "Record"]
