"""The one table of per-symbol simulator parameters, and how a preset becomes model arrays.

Each preset was estimated with `bookcast simulate --calibrate-from` on the real Binance
captures in ../shared/data/captures/ and rounded to two or three digits; tick sizes
come from the venue module (one source of truth). docs/simulator.md explains every parameter.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from decimal import Decimal
from pathlib import Path

import numpy as np

from bookcast.errors import UserError

SUPPORTED_VENUES = ("binance-spot",)
E8 = 10**8  # Binance writes prices and sizes with 8 decimals


@dataclass(frozen=True)
class SymbolPreset:
    """What the queue model needs to imitate one symbol.

    Rates are per side and per second. lambda(i), the rate of limit orders placed i ticks
    from the opposite best quote, is best_rate at i = 1 and
    near_rate * (i - 1) ** -near_decay + far_rate for 2 <= i <= depth_ticks.
    """

    venue: str
    symbol: str
    tick_size: str          # price step, as a decimal string
    lot_size: str           # size step, as a decimal string
    start_price: float      # first mid price
    best_rate: float        # lambda(1): limit orders joining or improving the best quote
    near_rate: float        # lambda(2) - far_rate
    near_decay: float       # power-law decay of lambda beyond the best
    far_rate: float         # background rate per tick out to depth_ticks
    depth_ticks: int        # farthest placement from the opposite best (ticks)
    cancel_rate: float      # theta: each resting order is cancelled at this rate (1/s)
    market_rate: float      # mu: market orders per second per side
    refill_rate: float      # rho: orders per second per side into a spread wider than a tick
    limit_size: float       # scale of limit-order sizes (base asset)
    best_size_factor: float  # limit orders at the best quote are this many times larger
    market_size: float      # scale of market-order sizes (base asset)
    size_sigma: float       # width of the lognormal body of sizes
    size_tail: float        # Pareto tail index beta of sizes (heavier when smaller)

    def arrival_rates(self) -> np.ndarray:
        """lambda(i) for i = 1..depth_ticks (orders / s, one side)."""
        i = np.arange(1, self.depth_ticks + 1, dtype=np.float64)
        rates = self.near_rate * np.power(np.maximum(i - 1.0, 1.0), -self.near_decay)
        rates += self.far_rate
        rates[0] = self.best_rate
        return rates

    @property
    def tick_e8(self) -> int:
        return _to_e8(self.tick_size, "tick size")

    @property
    def lot_e8(self) -> int:
        return _to_e8(self.lot_size, "lot size")

    def lots(self, size: float) -> float:
        return size * E8 / self.lot_e8

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _to_e8(text: str, what: str) -> int:
    value = Decimal(text) * E8
    if value != value.to_integral_value() or value <= 0:
        raise UserError(f"The {what} '{text}' is not a positive multiple of 1e-8.")
    return int(value)


def _venue_tick(venue: str, symbol: str) -> str:
    """The tick size the venue module knows, written as an exact decimal string."""
    from collector.venues.binance_spot import BinanceSpot

    return str(Decimal(repr(BinanceSpot.tick_sizes[symbol])))


def _builtin_presets() -> dict[tuple[str, str], SymbolPreset]:
    table = [
        # --calibrate-from btcusdt_20240808-09.jsonl.gz (11 min, 2024-08-08 23:54 UTC)
        SymbolPreset(venue="binance-spot", symbol="BTCUSDT",
                     tick_size=_venue_tick("binance-spot", "BTCUSDT"), lot_size="0.00001",
                     start_price=61837.635, best_rate=1.64, near_rate=0.23, near_decay=1.08,
                     far_rate=0.0264, depth_ticks=5900, cancel_rate=0.94, market_rate=5.5,
                     refill_rate=40.0, limit_size=0.0018, best_size_factor=6.8,
                     market_size=0.0018, size_sigma=2.36, size_tail=1.2),
        # --calibrate-from ethusdt_20240808-09.jsonl.gz
        SymbolPreset(venue="binance-spot", symbol="ETHUSDT",
                     tick_size=_venue_tick("binance-spot", "ETHUSDT"), lot_size="0.0001",
                     start_price=2683.805, best_rate=0.72, near_rate=0.0, near_decay=1.0,
                     far_rate=0.36, depth_ticks=410, cancel_rate=0.72, market_rate=3.8,
                     refill_rate=57.0, limit_size=0.0385, best_size_factor=3.6,
                     market_size=0.0146, size_sigma=2.28, size_tail=1.2),
    ]
    return {(p.venue, p.symbol): p for p in table}


PRESETS: dict[tuple[str, str], SymbolPreset] = _builtin_presets()


def check_venue(venue: str) -> None:
    if venue not in SUPPORTED_VENUES:
        raise UserError(f"The venue '{venue}' cannot be simulated; the simulator supports "
                        f"{', '.join(SUPPORTED_VENUES)} only for now.")


def preset_for(venue: str, symbol: str) -> SymbolPreset:
    """The preset of a symbol, or a UserError naming the symbols that have one."""
    check_venue(venue)
    key = (venue, symbol.upper())
    if key not in PRESETS:
        known = ", ".join(s for v, s in PRESETS if v == venue)
        raise UserError(f"The symbol '{symbol}' has no simulator preset for {venue}; "
                        f"known symbols: {known} (or pass --preset FILE from "
                        f"--calibrate-from).")
    return PRESETS[key]


def model_arrays(preset: SymbolPreset) -> tuple[np.ndarray, np.ndarray]:
    """(arrival_cdf, par) as model.run_until reads them."""
    from collector.simulator import model

    rates = preset.arrival_rates()
    cdf = np.cumsum(rates)
    limit_scale = preset.lots(preset.limit_size)
    market_scale = preset.lots(preset.market_size)
    par = np.zeros(model.PAR_LEN)
    par[model.LIMIT_RATE] = cdf[-1]
    par[model.CANCEL_RATE] = preset.cancel_rate
    par[model.MARKET_RATE] = preset.market_rate
    par[model.LIMIT_SCALE] = limit_scale
    par[model.MARKET_SCALE] = market_scale
    par[model.SIZE_SIGMA] = preset.size_sigma
    par[model.SIZE_TAIL] = preset.size_tail
    par[model.SIZE_CAP] = 1000.0 * limit_scale
    par[model.BEST_SIZE] = preset.best_size_factor
    par[model.REFILL_RATE] = preset.refill_rate
    return cdf, par


def load_preset(path: str | Path) -> SymbolPreset:
    """A preset written by --calibrate-from (TOML or JSON)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"The preset file '{p}' does not exist.")
    try:
        text = p.read_text(encoding="utf-8")
        raw = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise UserError(f"The preset file '{p}' cannot be read: {exc}.") from None
    if isinstance(raw, dict) and "preset" in raw:
        raw = raw["preset"]
    names = {f.name for f in fields(SymbolPreset)}
    missing = sorted(names - set(raw))
    if missing:
        raise UserError(f"The preset file '{p}' lacks {', '.join(missing)}.")
    template = next(iter(PRESETS.values()))
    try:
        return replace(template, **{k: type(getattr(template, k))(raw[k]) for k in names})
    except (TypeError, ValueError) as exc:
        raise UserError(f"The preset file '{p}' has a bad value: {exc}.") from None


def write_preset(preset: SymbolPreset, path: str | Path) -> Path:
    """Write a preset as TOML (.toml) or JSON (anything else)."""
    p = Path(path)
    data = preset.to_dict()
    if p.suffix == ".toml":
        lines = ["[preset]"]
        for k, v in data.items():
            lines.append(f"{k} = {json.dumps(v)}")
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        p.write_text(json.dumps({"preset": data}, indent=2) + "\n", encoding="utf-8")
    return p
