"""An L2 order book with exact integer keys.

Prices and sizes arrive as decimal strings. They are parsed into integers of
`UNIT_DECIMALS` fixed decimals (so "61737.63000000" -> 617376300000000000), which
keeps every key exact: no float drift, no two spellings of one price. Floats are
made only when a snapshot row is written, by one correctly rounded division.

Bids are stored under negated keys so that both sides iterate best-first.
"""

from __future__ import annotations

from itertools import islice

from sortedcontainers import SortedDict

UNIT_DECIMALS = 10
UNIT = 10**UNIT_DECIMALS
_PAD = ["0" * n for n in range(UNIT_DECIMALS + 1)]


def parse_units(text: str) -> int:
    """Exact fixed-point parse of a decimal string into integer units of 1e-10.

    Raises ValueError for anything that is not a plain non-negative decimal, or that
    has non-zero digits beyond the tenth decimal (which would not be exact).
    """
    whole, _dot, frac = text.partition(".")
    n = len(frac)
    if n <= UNIT_DECIMALS:
        digits = whole + frac + _PAD[UNIT_DECIMALS - n]
    else:
        if frac[UNIT_DECIMALS:].strip("0"):
            raise ValueError(f"{text!r} has more than {UNIT_DECIMALS} decimals")
        digits = whole + frac[:UNIT_DECIMALS]
    if not digits.isdigit() or not (whole or frac):
        raise ValueError(f"{text!r} is not a plain decimal number")
    return int(digits)


def format_units(units: int, decimals: int) -> str:
    """The decimal string of `units` with exactly `decimals` fractional digits."""
    scale = 10 ** (UNIT_DECIMALS - decimals)
    value, rest = divmod(units, scale)
    if rest:
        raise ValueError(f"{units} units do not fit {decimals} decimals")
    if decimals == 0:
        return str(value)
    text = str(value).rjust(decimals + 1, "0")
    return f"{text[:-decimals]}.{text[-decimals:]}"


def units_to_float(units: int) -> float:
    return units / UNIT


class OrderBook:
    """One symbol's book: price units -> size units, per side, best-first."""

    __slots__ = ("_asks", "_bids")

    def __init__(self) -> None:
        self._bids: SortedDict = SortedDict()  # key: -price_units
        self._asks: SortedDict = SortedDict()  # key: price_units

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()

    def set_bid(self, price: int, size: int) -> None:
        """Set the resting size at a bid price; size 0 deletes the level."""
        if size:
            self._bids[-price] = size
        else:
            self._bids.pop(-price, None)

    def set_ask(self, price: int, size: int) -> None:
        if size:
            self._asks[price] = size
        else:
            self._asks.pop(price, None)

    def load(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        """Replace the whole book (a snapshot); zero sizes are ignored."""
        self._bids = SortedDict({-p: s for p, s in bids if s})
        self._asks = SortedDict({p: s for p, s in asks if s})

    @property
    def n_bids(self) -> int:
        return len(self._bids)

    @property
    def n_asks(self) -> int:
        return len(self._asks)

    def best_bid(self) -> tuple[int, int] | None:
        if not self._bids:
            return None
        key, size = self._bids.peekitem(0)
        return -key, size

    def best_ask(self) -> tuple[int, int] | None:
        if not self._asks:
            return None
        return self._asks.peekitem(0)

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask (a broken book)."""
        if not self._bids or not self._asks:
            return False
        return -self._bids.keys()[0] >= self._asks.keys()[0]

    def bids(self, n: int | None = None) -> list[tuple[int, int]]:
        """Best-first (price, size) bid levels in units, the first n or all."""
        items = self._bids.items() if n is None else islice(self._bids.items(), n)
        return [(-k, v) for k, v in items]

    def asks(self, n: int | None = None) -> list[tuple[int, int]]:
        items = self._asks.items() if n is None else islice(self._asks.items(), n)
        return list(items)

    def truncate(self, depth: int) -> None:
        """Keep only the best `depth` levels per side (Kraken's subscribed depth)."""
        while len(self._bids) > depth:
            self._bids.popitem(-1)
        while len(self._asks) > depth:
            self._asks.popitem(-1)

    def top(self, n: int | None) -> tuple[list[float], list[float], list[float], list[float]]:
        """bid_px, bid_sz, ask_px, ask_sz as floats, best first, n levels or all."""
        bids = self._bids.items() if n is None else islice(self._bids.items(), n)
        asks = self._asks.items() if n is None else islice(self._asks.items(), n)
        bid_px: list[float] = []
        bid_sz: list[float] = []
        for k, v in bids:
            bid_px.append(-k / UNIT)
            bid_sz.append(v / UNIT)
        ask_px: list[float] = []
        ask_sz: list[float] = []
        for k, v in asks:
            ask_px.append(k / UNIT)
            ask_sz.append(v / UNIT)
        return bid_px, bid_sz, ask_px, ask_sz
