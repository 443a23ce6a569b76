"""Fee presets: the one table of trading fees, with where each figure comes from.

Figures are in basis points per side for the lowest (regular) tier. Fees change;
each row names its source and the date it was read, and `--fee-bps` overrides.
"""

from __future__ import annotations

from dataclasses import dataclass

from bookcast.errors import UserError


@dataclass(frozen=True)
class FeePreset:
    name: str
    venue: str
    taker_bps: float
    maker_bps: float
    source: str
    as_of: str


FEE_PRESETS: dict[str, FeePreset] = {
    p.name: p
    for p in [
        FeePreset("binance-spot", "binance-spot", 10.0, 10.0,
                  "binance.com/en/fee/schedule (spot, Regular user)", "2026-11"),
        FeePreset("binance-spot-bnb", "binance-spot", 7.5, 7.5,
                  "binance.com/en/fee/schedule (spot, Regular, 25% BNB discount)", "2026-11"),
        FeePreset("binance-usdm", "binance-usdm", 5.0, 2.0,
                  "binance.com/en/fee/futureFee (USDⓈ-M, Regular)", "2026-11"),
        FeePreset("binance-usdm-bnb", "binance-usdm", 4.5, 1.8,
                  "binance.com/en/fee/futureFee (USDⓈ-M, Regular, 10% BNB discount)", "2026-11"),
        FeePreset("coinbase-advanced", "coinbase-advanced", 120.0, 60.0,
                  "help.coinbase.com Advanced Trade fees ($0-1K 30-day volume tier)", "2026-11"),
        FeePreset("coinbase-advanced-vip", "coinbase-advanced", 5.0, 0.0,
                  "help.coinbase.com Advanced Trade fees (top published tier)", "2026-11"),
        FeePreset("coinbase-exchange", "coinbase-exchange", 60.0, 40.0,
                  "exchange.coinbase.com/fees ($0-10K tier)", "2026-11"),
        FeePreset("kraken", "kraken", 40.0, 25.0,
                  "kraken.com/features/fee-schedule (Kraken Pro, $0-10K tier)", "2026-11"),
        FeePreset("zero", "any", 0.0, 0.0, "no fees: a frictionless reference", "-"),
    ]
}

DEFAULT_PRESET_FOR_VENUE = {
    "binance-spot": "binance-spot",
    "binance-usdm": "binance-usdm",
    "coinbase-advanced": "coinbase-advanced",
    "coinbase-exchange": "coinbase-exchange",
    "kraken": "kraken",
}


def fee_preset(name: str) -> FeePreset:
    try:
        return FEE_PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(FEE_PRESETS))
        raise UserError(f"Unknown fee preset '{name}'; known presets are: {known}.") from None


def default_preset_name(venue: str | None) -> str:
    """The venue's regular-tier preset (Binance spot's for an unknown venue)."""
    return DEFAULT_PRESET_FOR_VENUE.get(venue or "", "binance-spot")


@dataclass(frozen=True)
class ResolvedFees:
    taker_bps: float
    maker_bps: float
    source: str  # "--fee-bps" or "preset <name>"


def resolve_fees(preset: str | None = None, fee_bps: float | None = None,
                 venue: str | None = None) -> ResolvedFees:
    """--fee-bps (both sides of the book) / --fee-preset / the venue's default preset."""
    if preset is not None and fee_bps is not None:
        raise UserError("Give either --fee-preset or --fee-bps, not both.")
    if fee_bps is not None:
        if fee_bps < 0:
            raise UserError(f"The fee {fee_bps} bps is negative; fees are zero or more.")
        return ResolvedFees(float(fee_bps), float(fee_bps), "--fee-bps")
    name = preset or default_preset_name(venue)
    found = fee_preset(name)
    return ResolvedFees(found.taker_bps, found.maker_bps, f"preset {name}")


def taker_fee_bps(preset: str | None = None, fee_bps: float | None = None,
                  venue: str | None = None) -> float:
    """Resolve --fee-bps / --fee-preset / the venue's default into taker bps per side."""
    if fee_bps is not None:
        return resolve_fees(None, fee_bps, venue).taker_bps
    return resolve_fees(preset, None, venue).taker_bps
