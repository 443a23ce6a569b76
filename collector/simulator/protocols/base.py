"""What a simulated venue protocol turns the model's integer buffers into.

A protocol writes one capture *session* (one websocket connection and the REST calls
beside it) for one or more symbols. simulate.py runs the books and the network; the
protocol only spells messages: the records that open the session, the websocket texts
of each chunk of simulated time in the order the venue sends them, and REST snapshots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from collector.simulator.presets import SymbolPreset

if TYPE_CHECKING:
    from collector.simulator.simulate import SimulatedBook

E8 = 10**8


@dataclass
class ChunkOutput:
    """One book's output over one chunk of simulated time (the arrays model.py documents)."""

    preset: SymbolPreset
    diff_headers: np.ndarray  # int64[D, 8]: E ms, first id, last id, end row in levels,
    #                           then best bid ticks, its lots, best ask ticks, its lots
    diff_levels: np.ndarray   # int64[L, 3]: side, price ticks, size lots
    trades: np.ndarray        # int64[T, 5]: time ns, trade id, price ticks, lots, maker side


@dataclass(frozen=True)
class Record:
    """A capture record before the network adds its receive latency."""

    send_ns: int
    kind: str          # recv / send / http / connect
    conn: str
    text: str | None
    url: str | None = None


class Protocol:
    """One venue's session spelling; subclasses say which venue and how."""

    venue: str
    one_symbol_per_session: bool = True
    snapshot_after_ns: int | None = None  # when a REST depth snapshot is requested

    def __init__(self, presets: list[SymbolPreset], start_ns: int,
                 rng: np.random.Generator) -> None:
        self.presets = presets
        self.start_ns = start_ns
        self.rng = rng  # the wire's own stream (engine jitter), apart from the books'

    def opening(self, books: list[SimulatedBook]) -> list[Record]:
        """Records written before the first chunk (connects, subscriptions, snapshots)."""
        return []

    def chunk(self, outputs: list[ChunkOutput], t_from: int, t_to: int) -> list[Record]:
        """The websocket records of the simulated time (t_from, t_to], in send order."""
        raise NotImplementedError

    def rest_snapshots(self, books: list[SimulatedBook], sent_ns: int) -> list[Record]:
        """REST depth replies to requests sent at sent_ns (their send_ns is the request's)."""
        return []


def fixed_decimal(units_e8: int, decimals: int) -> str:
    """An integer of 1e-8 units with exactly `decimals` decimals: '61837.63000000'."""
    whole, frac = divmod(units_e8, E8)
    if decimals >= 8:
        return f"{whole}.{frac:08d}" + "0" * (decimals - 8)
    step = 10 ** (8 - decimals)
    if frac % step:
        raise ValueError(f"{units_e8} units do not fit {decimals} decimals")
    return f"{whole}.{frac // step:0{decimals}d}" if decimals else str(whole)


def trimmed_decimal(units_e8: int) -> str:
    """An integer of 1e-8 units with no trailing zeros: '65062.5', '0.12', '0'."""
    whole, frac = divmod(units_e8, E8)
    if not frac:
        return str(whole)
    return f"{whole}.{frac:08d}".rstrip("0")


class DecimalCache:
    """Price and size texts of one symbol: a book revisits the same prices all the time."""

    def __init__(self, unit_e8: int, spell: Callable[[int], str]) -> None:
        self.unit_e8 = unit_e8
        self.spell = spell
        self.cache: dict[int, str] = {}

    def __call__(self, units: int) -> str:
        text = self.cache.get(units)
        if text is None:
            if len(self.cache) > 200_000:
                self.cache.clear()
            text = self.spell(units * self.unit_e8)
            self.cache[units] = text
        return text
