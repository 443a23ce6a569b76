"""Binance USDⓈ-M futures: like spot, with the futures join and continuity rule.

The first diff after the snapshot must satisfy U <= lastUpdateId <= u (diffs with
u < lastUpdateId are dropped); afterwards each diff's `pu` must equal the
previous diff's `u`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from collector.venues.binance_spot import BinanceSpot


class BinanceUsdm(BinanceSpot):
    name: ClassVar[str] = "binance-usdm"
    hosts: ClassVar[tuple[str, ...]] = ("fstream.binance.com", "fapi.binance.com")
    conn_prefixes: ClassVar[tuple[str, ...]] = ("binance-usdm",)
    tick_sizes: ClassVar[dict[str, float]] = {"BTCUSDT": 0.1, "ETHUSDT": 0.01}
    lot_sizes: ClassVar[dict[str, float]] = {"BTCUSDT": 0.001, "ETHUSDT": 0.001}
    wire_decimals: ClassVar[tuple[int, int]] = (2, 3)  # "61800.20", "2.909"
    ws_base: ClassVar[str] = "wss://fstream.binance.com"
    rest_base: ClassVar[str] = "https://fapi.binance.com"
    depth_path: ClassVar[str] = "/fapi/v1/depth"
    depth_stream: ClassVar[str] = "depth@100ms"
    snapshot_limit: ClassVar[int] = 1000

    def continues(self, msg: dict[str, Any], last_u: int) -> bool:
        return msg["pu"] == last_u

    def joins(self, msg: dict[str, Any], last_update_id: int) -> bool:
        return msg["U"] <= last_update_id <= msg["u"]

    def stale(self, msg: dict[str, Any], last_update_id: int) -> bool:
        return msg["u"] < last_update_id
