"""Where orders fill: walking the snapshot book after a latency (DESIGN.md "Execution model").

Data layout (the arrays every function here reads; `backtest.data.load_book` builds them
from the snapshots' Arrow list columns, keeping per row the levels `levels_reached` says an
order of the run's size can walk):

    ts          int64[n]        grid time of snapshot row i, ns since epoch, ascending
    gap         bool[n]         row i follows a resynchronisation: nothing spans rows i-1 -> i
    mid         float64[n]      (best bid + best ask) / 2, NaN when a side is empty
    bid_px      float64[m_b]    every row's bid levels back to back, best (highest) first
    bid_sz      float64[m_b]    sizes of those levels
    bid_off     int64[n + 1]    row i's bid levels are bid_px[bid_off[i]:bid_off[i + 1]]
    ask_px, ask_sz, ask_off     the same for asks, best (lowest) first

A round trip is decided in signal time (entry signal ts, exit signal ts, side) and each
order executes at the first snapshot at or after its signal time plus the latency, so the
same decisions can be priced under any latency. Buys take the asks, sells take the bids.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Why a decided round trip did not become a trade (FILL_* codes in `fill_round_trips`).
FILLED = 0
PAST_DATA = 1  # an execution would fall after the last snapshot
ACROSS_GAP = 2  # the book was resynchronised between signal and exit
OVERLAP = 3  # the entry would execute at or before the previous exit
THIN_BOOK = 4  # the visible book cannot fill the entry (or a side is empty)
MAKER_UNFILLED = 5  # a passive entry was never traded through before the exit time
FILL_STATUS_NAMES = ("filled", "past_data", "across_gap", "overlap", "thin_book",
                     "maker_unfilled")


@njit(cache=True)
def walk_book(level_px: np.ndarray, level_sz: np.ndarray, start: int, stop: int,
              size: float) -> tuple[float, float]:
    """Average price of taking `size` from levels [start, stop), best first.

    Returns (average price, quantity beyond the visible levels). The quantity beyond the
    book is priced at the deepest visible level, which understates impact; callers refuse
    entries that need it and count exits that did.
    """
    if stop <= start or size <= 0.0:
        return np.nan, size
    remaining = size
    cost = 0.0
    for k in range(start, stop):
        take = min(remaining, level_sz[k])
        cost += take * level_px[k]
        remaining -= take
        if remaining <= 0.0:
            return cost / size, 0.0
    cost += remaining * level_px[stop - 1]
    return cost / size, remaining


# How far past the largest order a kept side must reach: the walk subtracts sizes one by one
# while `levels_reached` adds them, and the two roundings may differ in the last bits.
REACH_MARGIN = 1e-6


@njit(cache=True)
def levels_reached(level_sz: np.ndarray, offsets: np.ndarray, max_qty: float) -> np.ndarray:
    """Per row, how many levels (best first) a walk of up to `max_qty` can read.

    `walk_book` stops at the first level where the sizes taken so far cover the order, so
    levels past the first whose cumulative size reaches `max_qty` (with `REACH_MARGIN`)
    are never read; a row that never reaches it is kept whole, so a walk that runs out of
    book sees the same deepest level as on the full row.
    """
    n = offsets.shape[0] - 1
    counts = np.empty(n, np.int64)
    bound = max_qty * (1.0 + REACH_MARGIN)
    for i in range(n):
        k = offsets[i]
        stop = offsets[i + 1]
        cumulative = 0.0
        while k < stop:
            cumulative += level_sz[k]
            k += 1
            if cumulative >= bound:
                break
        counts[i] = k - offsets[i]
    return counts


@njit(cache=True)
def _first_row_at_or_after(ts: np.ndarray, t: int) -> int:
    return np.searchsorted(ts, t, side="left")


@njit(cache=True)
def _take(side: int, qty: float, row: int, bid_px: np.ndarray, bid_sz: np.ndarray,
          bid_off: np.ndarray, ask_px: np.ndarray, ask_sz: np.ndarray,
          ask_off: np.ndarray) -> tuple[float, float]:
    """A market order of `side` (+1 buy, -1 sell) for `qty` at snapshot `row`."""
    if side > 0:
        return walk_book(ask_px, ask_sz, ask_off[row], ask_off[row + 1], qty)
    return walk_book(bid_px, bid_sz, bid_off[row], bid_off[row + 1], qty)


@njit(cache=True)
def fill_round_trips(ts: np.ndarray, gap: np.ndarray, mid: np.ndarray,
                     bid_px: np.ndarray, bid_sz: np.ndarray, bid_off: np.ndarray,
                     ask_px: np.ndarray, ask_sz: np.ndarray, ask_off: np.ndarray,
                     entry_sig_ts: np.ndarray, exit_sig_ts: np.ndarray, side: np.ndarray,
                     latency_ns: int, notional: float, size: float, maker: bool):
    """Price decided round trips against the book.

    Sizes: `size` units of the base asset when > 0, else `notional` / mid at entry.
    With `maker`, the entry rests at the touch (bid for a buy, ask for a sell) from its
    execution snapshot and fills at that price only when a later snapshot's opposite best
    crosses strictly through it before the exit time; exits are always taker orders.

    Returns arrays per decision: status (FILL_* code), entry_row, exit_row, qty, entry_px,
    exit_px, n_exit_beyond_depth (0/1).
    """
    n = entry_sig_ts.shape[0]
    n_rows = ts.shape[0]
    status = np.zeros(n, np.int8)
    entry_row = np.full(n, -1, np.int64)
    exit_row = np.full(n, -1, np.int64)
    qty = np.zeros(n)
    entry_px = np.full(n, np.nan)
    exit_px = np.full(n, np.nan)
    exit_beyond = np.zeros(n, np.int8)
    last_exit = -1
    for i in range(n):
        s = side[i]
        e_row = _first_row_at_or_after(ts, entry_sig_ts[i] + latency_ns)
        x_row = _first_row_at_or_after(ts, exit_sig_ts[i] + latency_ns)
        if x_row >= n_rows or e_row >= n_rows:
            status[i] = PAST_DATA
            continue
        if e_row <= last_exit or x_row <= e_row:
            status[i] = OVERLAP
            continue
        # The signal row is the book the decision saw; no resync may lie between it and the exit.
        sig_row = max(np.searchsorted(ts, entry_sig_ts[i], side="right") - 1, 0)
        crossed_gap = False
        for r in range(sig_row + 1, x_row + 1):
            if gap[r]:
                crossed_gap = True
                break
        if crossed_gap:
            status[i] = ACROSS_GAP
            continue
        if np.isnan(mid[e_row]) or np.isnan(mid[x_row]):
            status[i] = THIN_BOOK
            continue
        q = size if size > 0.0 else notional / mid[e_row]
        if maker:
            # Rest at the touch; fill only when the opposite side trades through the price.
            limit = bid_px[bid_off[e_row]] if s > 0 else ask_px[ask_off[e_row]]
            fill_row = -1
            for r in range(e_row + 1, x_row):
                if s > 0:
                    through = ask_off[r + 1] > ask_off[r] and ask_px[ask_off[r]] < limit
                else:
                    through = bid_off[r + 1] > bid_off[r] and bid_px[bid_off[r]] > limit
                if through:
                    fill_row = r
                    break
            if fill_row < 0:
                status[i] = MAKER_UNFILLED
                continue
            e_row = fill_row
            e_px = limit
        else:
            e_px, short = _take(s, q, e_row, bid_px, bid_sz, bid_off, ask_px, ask_sz, ask_off)
            if short > 0.0 or np.isnan(e_px):
                status[i] = THIN_BOOK
                continue
        x_px, x_short = _take(-s, q, x_row, bid_px, bid_sz, bid_off, ask_px, ask_sz, ask_off)
        if np.isnan(x_px):
            status[i] = THIN_BOOK
            continue
        entry_row[i] = e_row
        exit_row[i] = x_row
        qty[i] = q
        entry_px[i] = e_px
        exit_px[i] = x_px
        exit_beyond[i] = 1 if x_short > 0.0 else 0
        last_exit = x_row
    return status, entry_row, exit_row, qty, entry_px, exit_px, exit_beyond


@njit(cache=True)
def _passive_legs(bid: np.ndarray, ask: np.ndarray, entry: np.ndarray, exit_: np.ndarray):
    n = entry.shape[0]
    long_gross = np.full(n, np.nan)
    short_gross = np.full(n, np.nan)
    long_filled = np.zeros(n, np.bool_)
    short_filled = np.zeros(n, np.bool_)
    for i in range(n):
        e, x = entry[i], exit_[i]
        if x < 0:
            continue
        buy_at, sell_at = bid[e], ask[e]
        for r in range(e + 1, x):
            if not long_filled[i] and ask[r] < buy_at:
                long_filled[i] = True
            if not short_filled[i] and bid[r] > sell_at:
                short_filled[i] = True
        if long_filled[i]:
            long_gross[i] = bid[x] / buy_at - 1.0
        if short_filled[i]:
            short_gross[i] = 1.0 - ask[x] / sell_at
    return long_gross, short_gross, long_filled, short_filled


def passive_round_trips(bid: np.ndarray, ask: np.ndarray, entry: np.ndarray,
                        exit_rows: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each row's round trip with a passive entry, alone, at the touch (the `--maker` rule
    of `fill_round_trips` without sizes or overlap): a buy rests at bid[e] from the entry
    row and fills when a later row's best ask is strictly below it, before the exit row;
    the exit is a taker order at the exit row's touch. `exit_rows` come from the round
    trip (`features.labels.round_trips`, -1 where there is none). Returns the long and
    short gross returns (NaN where the order did not fill) and whether each filled."""
    return _passive_legs(np.ascontiguousarray(bid, np.float64),
                         np.ascontiguousarray(ask, np.float64),
                         np.ascontiguousarray(entry, np.int64),
                         np.ascontiguousarray(exit_rows, np.int64))
