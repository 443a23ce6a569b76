"""Binance USDⓈ-M futures: like spot, with the futures join and continuity rule.

The first diff after the snapshot must satisfy U <= lastUpdateId <= u (diffs with
u < lastUpdateId are dropped); afterwards each diff's `pu` must equal the
previous diff's `u`.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from bookcast.errors import UserError
from collector.venues.binance_spot import BinanceSpot

# COIN-M (coin-margined) contracts: BTCUSD_PERP, ETHUSD_240927; USDⓈ-M quarterlies are
# spelled BTCUSDT_240927, so the quote asset tells them apart
_COIN_M_SYMBOL = re.compile(r"^[A-Z0-9]+USD_(PERP|\d{6})$")


def coin_margined(symbol: str) -> bool:
    """A Binance COIN-M symbol: sizes in contracts (100 USD each for BTC), inverse PnL."""
    return bool(_COIN_M_SYMBOL.match(symbol))


class BinanceUsdm(BinanceSpot):
    name: ClassVar[str] = "binance-usdm"
    hosts: ClassVar[tuple[str, ...]] = ("fstream.binance.com", "fapi.binance.com")
    conn_prefixes: ClassVar[tuple[str, ...]] = ("binance-usdm",)
    tick_sizes: ClassVar[dict[str, float]] = {"BTCUSDT": 0.1, "ETHUSDT": 0.01}
    ws_base: ClassVar[str] = "wss://fstream.binance.com"
    rest_base: ClassVar[str] = "https://fapi.binance.com"
    depth_path: ClassVar[str] = "/fapi/v1/depth"
    depth_stream: ClassVar[str] = "depth@100ms"
    snapshot_limit: ClassVar[int] = 1000
    other_families: ClassVar[dict[str, str]] = {
        "stream.binance.com": "Binance spot; replay it with --venue binance-spot",
        "api.binance.com": "Binance spot; replay it with --venue binance-spot",
        "dstream.binance.com": "Binance COIN-M futures, which bookcast has no venue for",
        "dapi.binance.com": "Binance COIN-M futures, which bookcast has no venue for",
    }

    def check_family(self, msg: dict[str, Any], where: str) -> None:
        symbol = msg["s"]
        if "ps" in msg or coin_margined(symbol):
            raise UserError(f"{where}: {symbol} is a Binance COIN-M contract (its diffs carry "
                            f"a 'ps' field; sizes are contracts, PnL is inverse), which "
                            f"{self.name} does not speak; bookcast has no COIN-M venue.")
        if "pu" not in msg:
            raise UserError(f"{where}: a Binance spot diff (it has no 'pu' field) in a "
                            f"{self.name} replay; replay it with --venue binance-spot.")

    def continues(self, msg: dict[str, Any], last_u: int) -> bool:
        return msg["pu"] == last_u

    def joins(self, msg: dict[str, Any], last_update_id: int) -> bool:
        return msg["U"] <= last_update_id <= msg["u"]

    def stale(self, msg: dict[str, Any], last_update_id: int) -> bool:
        return msg["u"] < last_update_id
