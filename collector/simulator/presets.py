"""The one table of per-symbol simulator parameters, the scenarios built on it, and how a
preset becomes model arrays.

`PRESETS` holds, per (venue, symbol), the parameters `bookcast simulate --calibrate-from`
estimated from the real captures in ../shared/data/captures/ (rounded to four digits).
A scenario (`--preset default|null|quiet|volatile|regime-switch`) is one documented
transform of them; tick and lot sizes come from the venue modules (one source of truth).
docs/simulator.md explains every parameter.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from decimal import Decimal
from pathlib import Path

import numpy as np

from bookcast.errors import UserError
from collector.venues import venue_class

SUPPORTED_VENUES = ("binance-spot", "binance-usdm", "coinbase-advanced")
E8 = 10**8  # the model counts prices and sizes in 1e-8 units


@dataclass(frozen=True)
class SymbolPreset:
    """What the queue model needs to imitate one symbol.

    Rates are per side and per second. lambda(i), the rate of limit orders placed i ticks
    from the opposite best quote, is best_rate at i = 1 and, deeper,
    (near_rate * max((i - 1) / s, 1) ** -near_decay + far_rate) / s for
    2 <= i <= 1 + (depth_ticks - 1) * s, with s = price_scale. s stretches every distance
    but the spread (the deep book and the requote jumps), so price moves, and with them
    the volatility, scale by s while the race at the touch stays as it was.
    """

    venue: str
    symbol: str
    tick_size: str          # price step, as a decimal string
    lot_size: str           # size step, as a decimal string
    start_price: float      # first mid price
    # the deep book: Cont, Stoikov & Talreja queues
    near_rate: float        # lambda(2) - far_rate (orders / s)
    near_decay: float       # power-law decay of lambda beyond the best
    far_rate: float         # background rate per tick out to depth_ticks
    depth_ticks: int        # farthest placement from the opposite best (ticks), before s
    price_scale: float      # s: stretch of every distance but the spread (1 = as calibrated)
    cancel_rate: float      # theta: each resting order is cancelled at this rate (1/s)
    limit_size: float       # median deep limit-order size (base asset)
    limit_sigma: float      # lognormal width of deep limit-order sizes
    # the touch: the race between the two best queues
    best_rate: float        # lambda(1): orders per second joining the best quote
    touch_size: float       # median size of an order at the best quote (base asset)
    touch_sigma: float      # lognormal width of touch order sizes
    chase_prob: float       # the opposite best queue follows a depleted one this often
    refill_rate: float      # rho: orders per second per side into a spread wider than a tick
    # market orders
    market_rate: float      # mu: market orders per second per side at zero imbalance
    market_react: float     # kappa: buys arrive at mu (1 + kappa I), sells at mu (1 - kappa I)
    market_size: float      # scale of market-order sizes (base asset)
    size_sigma: float       # width of the lognormal body of market-order sizes
    size_tail: float        # Pareto tail index beta of market-order sizes (heavier: smaller)
    max_order: float        # no order is larger: the capture's largest market order
    fill_scale: float       # c: extra trades a market_size fill prints (resting orders met)
    fill_power: float       # gamma: extra trades grow as (fill / market_size) ** gamma
    # requotes: how far a side that lost its best queue re-quotes
    jump_ticks: float       # median requote jump (ticks), before s
    jump_sigma: float       # lognormal width of requote jumps
    # the null control: moves on a fair coin that ignore the book
    requote_rate: float     # nu: requotes per second (0 in every preset but null)
    null_requote_rate: float  # nu of the null control: the real capture's moves per second
    null_jump_ticks: float  # its median jump, so that its volatility is the real one
    touch_refill: bool      # best queues never empty (the null control)

    def arrival_rates(self) -> np.ndarray:
        """lambda(i) for i = 1..K (orders / s, one side), K = depth_ticks stretched by s."""
        s = self.price_scale
        i = np.arange(1, self.deep_ticks + 1, dtype=np.float64)
        rates = self.near_rate * np.power(np.maximum((i - 1.0) / s, 1.0), -self.near_decay)
        rates = (rates + self.far_rate) / s
        rates[0] = self.best_rate
        return rates

    @property
    def deep_ticks(self) -> int:
        """The farthest placement in ticks once the spacing is applied."""
        return 1 + round((self.depth_ticks - 1) * self.price_scale)

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


def exact_decimal(x: float) -> str:
    """A float tick or lot size as the exact decimal it stands for: 1e-05 -> '0.00001'."""
    return format(Decimal(repr(x)).normalize(), "f")


def venue_steps(venue: str, symbol: str) -> tuple[str, str]:
    """(tick size, lot size) as the venue module knows them, as exact decimal strings."""
    cls = venue_class(venue)
    try:
        return exact_decimal(cls.tick_sizes[symbol]), exact_decimal(cls.lot_sizes[symbol])
    except KeyError:
        raise UserError(f"The venue module {venue} knows no tick and lot size for "
                        f"'{symbol}'.") from None


def _calibrated(venue: str, symbol: str, **values: float) -> SymbolPreset:
    tick, lot = venue_steps(venue, symbol)
    return SymbolPreset(venue=venue, symbol=symbol, tick_size=tick, lot_size=lot,
                        price_scale=1.0, requote_rate=0.0, touch_refill=False, **values)


def _builtin_presets() -> dict[tuple[str, str], SymbolPreset]:
    table = [
        # --calibrate-from binance-spot/btcusdt_20240808-09.jsonl.gz (11 min, 2024-08-08 23:54 UTC)
        _calibrated("binance-spot", "BTCUSDT", start_price=61837.635, near_rate=0.2319,
                    near_decay=1.08, far_rate=0.02634, depth_ticks=5876, cancel_rate=0.9396,
                    limit_size=0.06481, limit_sigma=1.307, best_rate=1.891, touch_size=1.222,
                    touch_sigma=0.5, chase_prob=0.9923, refill_rate=39.58, market_rate=5.485,
                    market_react=0.255, market_size=0.001773, size_sigma=2.362, size_tail=1.2,
                    max_order=4.334, fill_scale=1.093, fill_power=0.144, jump_ticks=403.2,
                    jump_sigma=0.3, null_requote_rate=0.6794, null_jump_ticks=869.3),
        # --calibrate-from binance-spot/ethusdt_20240808-09.jsonl.gz (11 min)
        _calibrated("binance-spot", "ETHUSDT", start_price=2683.805, near_rate=0.0,
                    near_decay=1.0, far_rate=0.3633, depth_ticks=413, cancel_rate=0.7169,
                    limit_size=1.359, limit_sigma=0.977, best_rate=0.7582, touch_size=11.86,
                    touch_sigma=0.5, chase_prob=0.9954, refill_rate=56.88, market_rate=3.81,
                    market_react=1.0, market_size=0.01459, size_sigma=2.281, size_tail=1.2,
                    max_order=41.43, fill_scale=0.5807, fill_power=0.4063, jump_ticks=22.02,
                    jump_sigma=0.3, null_requote_rate=0.9303, null_jump_ticks=36.8),
        # --calibrate-from binance-usdm/btcusdt_20240808.jsonl.gz (5.7 min)
        _calibrated("binance-usdm", "BTCUSDT", start_price=61800.15, near_rate=0.0,
                    near_decay=1.0, far_rate=0.7044, depth_ticks=372, cancel_rate=1.36,
                    limit_size=0.049, limit_sigma=2.171, best_rate=4.028, touch_size=1.797,
                    touch_sigma=0.5, chase_prob=0.9971, refill_rate=36.16, market_rate=7.804,
                    market_react=0.2102, market_size=0.01684, size_sigma=1.898, size_tail=1.2,
                    max_order=50.23, fill_scale=0.8572, fill_power=0.3841, jump_ticks=24.15,
                    jump_sigma=0.3, null_requote_rate=0.7318, null_jump_ticks=75.47),
        # --calibrate-from binance-usdm/ethusdt_20240808.jsonl.gz (5.7 min)
        _calibrated("binance-usdm", "ETHUSDT", start_price=2681.625, near_rate=0.0,
                    near_decay=1.0, far_rate=1.198, depth_ticks=219, cancel_rate=0.8454,
                    limit_size=0.512, limit_sigma=1.767, best_rate=1.449, touch_size=23.29,
                    touch_sigma=0.5, chase_prob=0.9942, refill_rate=52.17, market_rate=5.091,
                    market_react=0.1371, market_size=0.1173, size_sigma=2.248, size_tail=1.2,
                    max_order=233.4, fill_scale=0.4387, fill_power=0.3521, jump_ticks=11.71,
                    jump_sigma=0.3, null_requote_rate=1.009, null_jump_ticks=27.11),
    ]
    # the 25 s Coinbase capture is too short to calibrate from: Coinbase Advanced books get
    # the Binance spot dynamics of the same asset, spelled with Coinbase's symbols and steps
    spot = {p.symbol: p for p in table if p.venue == "binance-spot"}
    table += [respelled(spot["BTCUSDT"], "coinbase-advanced", "BTC-USD"),
              respelled(spot["ETHUSDT"], "coinbase-advanced", "ETH-USD")]
    return {(p.venue, p.symbol): p for p in table}


def respelled(preset: SymbolPreset, venue: str, symbol: str) -> SymbolPreset:
    """The same dynamics on another venue: its symbol, and its tick and lot sizes (the
    tick must be the same, as every rate and distance of the preset is counted in ticks)."""
    tick, lot = venue_steps(venue, symbol)
    if Decimal(tick) != Decimal(preset.tick_size):
        raise ValueError(f"{venue} {symbol} ticks by {tick}, {preset.symbol} by "
                         f"{preset.tick_size}: the preset cannot be respelled")
    return replace(preset, venue=venue, symbol=symbol, tick_size=tick, lot_size=lot)


PRESETS: dict[tuple[str, str], SymbolPreset] = _builtin_presets()


# -- scenarios -----------------------------------------------------------------------------

QUIET_SCALE = 0.6     # quiet: 0.6 x the calibrated volatility
VOLATILE_SCALE = 1.8  # volatile: 1.8 x, so 3 x quiet
DEFAULT_SWITCH_EVERY_S = 1800.0


def null_control(preset: SymbolPreset) -> SymbolPreset:
    """Same spread, trade sizes, moves per second and volatility; moves that ignore the book.

    Market orders no longer look at the imbalance, best queues never empty, and the price
    moves only by requotes on a fair coin, at the real capture's rate of moves and with a
    jump law whose variance gives its 10 s volatility (calibrated).
    """
    return replace(preset, market_react=0.0, touch_refill=True,
                   requote_rate=preset.null_requote_rate, jump_ticks=preset.null_jump_ticks)


def rescaled(factor: float) -> Callable[[SymbolPreset], SymbolPreset]:
    """Every distance but the spread times `factor`: the volatility times `factor`."""
    def transform(preset: SymbolPreset) -> SymbolPreset:
        return replace(preset, price_scale=preset.price_scale * factor)
    return transform


SCENARIOS: dict[str, Callable[[SymbolPreset], SymbolPreset]] = {
    "default": lambda preset: preset,
    "null": null_control,
    "quiet": rescaled(QUIET_SCALE),
    "volatile": rescaled(VOLATILE_SCALE),
}
REGIME_SWITCH = "regime-switch"  # quiet, volatile, quiet, ... every --switch-every
SCENARIO_NAMES = (*SCENARIOS, REGIME_SWITCH)


@dataclass(frozen=True)
class Regime:
    """One stretch of simulated time and the preset that drives it."""

    start_s: float  # seconds after the capture's start
    name: str
    preset: SymbolPreset


def regime_schedule(base: SymbolPreset, scenario: str, hours: float,
                    switch_every_s: float = DEFAULT_SWITCH_EVERY_S) -> list[Regime]:
    """The regimes one symbol goes through: one, or quiet/volatile alternating."""
    if scenario == REGIME_SWITCH:
        if not switch_every_s > 0:
            raise UserError(f"--switch-every must be positive, not {switch_every_s} s.")
        names = ("quiet", "volatile")
        count = max(1, math.ceil(hours * 3600 / switch_every_s))
        return [Regime(k * switch_every_s, names[k % 2], SCENARIOS[names[k % 2]](base))
                for k in range(count)]
    if scenario not in SCENARIOS:
        raise UserError(f"The preset '{scenario}' is neither a preset file nor one of "
                        f"{', '.join(SCENARIO_NAMES)}.")
    return [Regime(0.0, scenario, SCENARIOS[scenario](base))]


def check_venue(venue: str) -> None:
    if venue not in SUPPORTED_VENUES:
        raise UserError(f"The venue '{venue}' cannot be simulated; the simulator writes "
                        f"{', '.join(SUPPORTED_VENUES)}.")


def preset_for(venue: str, symbol: str) -> SymbolPreset:
    """The calibrated preset of a symbol, or a UserError naming the symbols that have one."""
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

    cdf = np.cumsum(preset.arrival_rates())
    limit_scale = preset.lots(preset.limit_size)
    par = np.zeros(model.PAR_LEN)
    par[model.LIMIT_RATE] = cdf[-1]
    par[model.CANCEL_RATE] = preset.cancel_rate
    par[model.MARKET_RATE] = preset.market_rate
    par[model.LIMIT_SCALE] = limit_scale
    par[model.MARKET_SCALE] = preset.lots(preset.market_size)
    par[model.SIZE_SIGMA] = preset.size_sigma
    par[model.SIZE_TAIL] = preset.size_tail
    par[model.TOUCH_SCALE] = preset.lots(preset.touch_size)
    par[model.SIZE_CAP] = preset.lots(preset.max_order)
    par[model.TOUCH_SIGMA] = preset.touch_sigma
    par[model.REFILL_RATE] = preset.refill_rate
    par[model.CHASE_PROB] = preset.chase_prob
    par[model.MARKET_REACT] = preset.market_react
    par[model.FILL_SCALE] = preset.fill_scale
    par[model.FILL_POWER] = preset.fill_power
    par[model.REQUOTE_RATE] = preset.requote_rate
    par[model.JUMP_MEDIAN] = preset.jump_ticks * preset.price_scale
    par[model.JUMP_SIGMA] = preset.jump_sigma
    par[model.TOUCH_REFILL] = 1.0 if preset.touch_refill else 0.0
    par[model.LIMIT_SIGMA] = preset.limit_sigma
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
    if not isinstance(raw, dict):
        raise UserError(f"The preset file '{p}' holds no [preset] table.")
    kinds = {f.name: f.type for f in fields(SymbolPreset)}
    missing = sorted(set(kinds) - set(raw))
    if missing:
        raise UserError(f"The preset file '{p}' lacks {', '.join(missing)}.")
    casts: dict[str, Callable[[object], object]] = {"str": str, "int": int, "float": float,
                                                    "bool": bool}
    try:
        preset = SymbolPreset(**{k: casts[str(t)](raw[k]) for k, t in kinds.items()})
    except (TypeError, ValueError) as exc:
        raise UserError(f"The preset file '{p}' has a bad value: {exc}.") from None
    check_venue(preset.venue)
    return preset


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
