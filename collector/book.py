"""An L2 order book with exact integer keys.

Prices and sizes arrive as decimal strings. They are parsed into integers of
`UNIT_DECIMALS` fixed decimals (so "61737.63000000" -> 617376300000000000), which
keeps every key exact: no float drift, no two spellings of one price. Floats are
made only when a snapshot row is written, by one correctly rounded division.

Asks are stored under negated keys so that both sides sort with the best level last.

Reading levels is on the sampler's hot path (every grid row, up to every level at
full depth): `levels(n)` slices the sorted keys and looks their sizes up, both in C,
rather than walking a generic items view level by level in Python.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import NamedTuple

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


class BookLevels(NamedTuple):
    """The best levels of a book in integer units, best first, as the book holds them.

    Ask prices stay negated (the book's own keys), so taking them copies nothing but the
    list: ask price i is `-ask_keys[i]`.
    """

    bid_prices: list[int]
    bid_sizes: list[int]
    ask_keys: list[int]
    ask_sizes: list[int]


class OrderBook:
    """One symbol's book: price units -> size units, per side, best-first.

    Each side is a dict of sizes plus a plain sorted list of its keys with the best level
    last: bid prices ascending, ask prices negated. Level updates land mostly near the
    touch (on the real BTCUSDT capture, half of all inserts and deletes within 105 levels
    of it, in books of ~1,800), so `bisect.insort` and `del` move few elements, in C,
    where a SortedList spent a microsecond of Python per update.
    """

    __slots__ = ("_ask_keys", "_ask_sizes", "_bid_prices", "_bid_sizes")

    def __init__(self) -> None:
        self._bid_sizes: dict[int, int] = {}  # key: price units
        self._bid_prices: list[int] = []
        self._ask_sizes: dict[int, int] = {}  # key: -price units
        self._ask_keys: list[int] = []

    def clear(self) -> None:
        self._bid_sizes.clear()
        self._bid_prices.clear()
        self._ask_sizes.clear()
        self._ask_keys.clear()

    def set_bid(self, price: int, size: int) -> None:
        """Set the resting size at a bid price; size 0 deletes the level."""
        _set_level(self._bid_sizes, self._bid_prices, price, size)

    def set_ask(self, price: int, size: int) -> None:
        _set_level(self._ask_sizes, self._ask_keys, -price, size)

    def load(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        """Replace the whole book (a snapshot); zero sizes are ignored."""
        self._bid_sizes = {p: s for p, s in bids if s}
        self._bid_prices = sorted(self._bid_sizes)
        self._ask_sizes = {-p: s for p, s in asks if s}
        self._ask_keys = sorted(self._ask_sizes)

    @property
    def n_bids(self) -> int:
        return len(self._bid_sizes)

    @property
    def n_asks(self) -> int:
        return len(self._ask_sizes)

    def best_bid(self) -> tuple[int, int] | None:
        if not self._bid_prices:
            return None
        price = self._bid_prices[-1]
        return price, self._bid_sizes[price]

    def best_ask(self) -> tuple[int, int] | None:
        if not self._ask_keys:
            return None
        key = self._ask_keys[-1]
        return -key, self._ask_sizes[key]

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask (a broken book)."""
        if not self._bid_prices or not self._ask_keys:
            return False
        return self._bid_prices[-1] >= -self._ask_keys[-1]

    def levels(self, n: int | None) -> BookLevels:
        """The best n levels of each side (all when n is None), in units."""
        bid_prices = _best_first(self._bid_prices, n)
        ask_keys = _best_first(self._ask_keys, n)
        return BookLevels(bid_prices, list(map(self._bid_sizes.__getitem__, bid_prices)),
                          ask_keys, list(map(self._ask_sizes.__getitem__, ask_keys)))

    def bids(self, n: int | None = None) -> list[tuple[int, int]]:
        """Best-first (price, size) bid levels in units, the first n or all."""
        prices = _best_first(self._bid_prices, n)
        return list(zip(prices, map(self._bid_sizes.__getitem__, prices), strict=True))

    def asks(self, n: int | None = None) -> list[tuple[int, int]]:
        return [(-k, self._ask_sizes[k]) for k in _best_first(self._ask_keys, n)]

    def truncate(self, depth: int) -> None:
        """Keep only the best `depth` levels per side (Kraken's subscribed depth)."""
        for keys, sizes in ((self._bid_prices, self._bid_sizes),
                            (self._ask_keys, self._ask_sizes)):
            cut = len(keys) - depth
            if cut > 0:
                for key in keys[:cut]:
                    del sizes[key]
                del keys[:cut]

    def top(self, n: int | None) -> tuple[list[float], list[float], list[float], list[float]]:
        """bid_px, bid_sz, ask_px, ask_sz as floats, best first, n levels or all.

        Each float is one correctly rounded division of the exact units (int / int).
        """
        bid_prices, bid_sizes, ask_keys, ask_sizes = self.levels(n)
        return ([k / UNIT for k in bid_prices], [v / UNIT for v in bid_sizes],
                [k / -UNIT for k in ask_keys], [v / UNIT for v in ask_sizes])


def _set_level(sizes: dict[int, int], keys: list[int], key: int, size: int) -> None:
    """Set or (size 0) delete one level of a side kept as `sizes` plus sorted `keys`."""
    if size:
        if key not in sizes:
            insort(keys, key)
        sizes[key] = size
    elif key in sizes:
        del sizes[key]
        del keys[bisect_left(keys, key)]


def _best_first(keys: list[int], n: int | None) -> list[int]:
    """The last n keys (the best levels), best first."""
    if n is None:
        return keys[::-1]
    return keys[:-n - 1:-1] if n else []
