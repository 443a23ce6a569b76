"""Binance USDⓈ-M futures: like spot, with the futures join and continuity rule.

The first diff after the snapshot must satisfy U <= lastUpdateId <= u (diffs with
u < lastUpdateId are dropped); afterwards each diff's `pu` must equal the
previous diff's `u`.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from bookcast.errors import UserError
from collector.state import SymbolState
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
    symbol_pattern: ClassVar[re.Pattern[str]] = re.compile(r"^[A-Z0-9_]{2,30}$")
    tick_sizes: ClassVar[dict[str, float]] = {"BTCUSDT": 0.1, "ETHUSDT": 0.01}
    rest_weight_limit: ClassVar[int | None] = 2400
    lot_sizes: ClassVar[dict[str, float]] = {"BTCUSDT": 0.001, "ETHUSDT": 0.001}
    wire_decimals: ClassVar[tuple[int, int]] = (2, 3)  # "61800.20", "2.909"
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

    @staticmethod
    def depth_weight(limit: int) -> int:
        """USDⓈ-M: the weight of a depth request by its `limit`."""
        return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20

    def depth_reply(self, state: SymbolState, limit: int) -> dict[str, Any]:
        """Futures replies also carry the event and transaction times (ms)."""
        event_ms = (state.ts_event or 0) // 1_000_000
        return {"lastUpdateId": state.seq, "E": event_ms, "T": event_ms,
                **{k: v for k, v in super().depth_reply(state, limit).items()
                   if k != "lastUpdateId"}}

    def continues(self, msg: dict[str, Any], last_u: int) -> bool:
        return msg["pu"] == last_u

    def joins(self, msg: dict[str, Any], last_update_id: int) -> bool:
        return msg["U"] <= last_update_id <= msg["u"]

    def stale(self, msg: dict[str, Any], last_update_id: int) -> bool:
        return msg["u"] < last_update_id
