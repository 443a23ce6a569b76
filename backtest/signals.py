"""From predictions to decided round trips, and the comparison strategies.

A decision is a triple of arrays (entry signal ts, exit signal ts, side +1/-1), all in
signal time; `backtest.fills` turns decisions into priced trades under a latency. Every
strategy here (the model, random entries, the imbalance rule, the oracle) ends in the
same triple, so they are priced and reported by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from backtest.fills import passive_round_trips
from bookcast.errors import UserError
from features.labels import fee_aware_side, round_trips

if TYPE_CHECKING:
    from backtest.data import Book


@dataclass(frozen=True)
class Decisions:
    """Round trips decided in signal time, chronological and non-overlapping."""

    entry_ts: np.ndarray  # int64 ns
    exit_ts: np.ndarray  # int64 ns
    side: np.ndarray  # int8, +1 long, -1 short

    def __len__(self) -> int:
        return int(self.entry_ts.shape[0])


def parse_threshold(text: str | float) -> float | None:
    """'auto' (None): the run's own decision rule, tuned on validation (its `signal`
    column), else the model's argmax; a number is a minimum class probability."""
    if isinstance(text, str) and text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"The threshold '{text}' is neither 'auto' nor a probability.") from None
    if not 0.0 < value <= 1.0:
        raise UserError(f"The threshold {value} is not a probability in (0, 1].")
    return value


def prediction_sides(p_down: np.ndarray, p_flat: np.ndarray, p_up: np.ndarray,
                     threshold: float | None, run_signal: np.ndarray | None = None
                     ) -> np.ndarray:
    """+1 / -1 / 0 per prediction row.

    threshold None ('auto'): the run's own `signal` when it stored one (its decision rule
    was tuned on the validation split: trade only where the expected edge pays the
    round-trip cost), else trade when up or down is the most probable class. Nothing is
    fitted on these predictions: they are the test split, and fitting there is look-ahead.
    A number t: go long when p_up >= t and p_up > p_down, short symmetrically.
    """
    if threshold is None and run_signal is not None:
        return np.sign(run_signal).astype(np.int8)
    if threshold is None:
        up = (p_up > p_down) & (p_up > p_flat)
        down = (p_down > p_up) & (p_down > p_flat)
    else:
        up = (p_up >= threshold) & (p_up > p_down)
        down = (p_down >= threshold) & (p_down > p_up)
    return (up.astype(np.int8) - down.astype(np.int8)).astype(np.int8)


@njit(cache=True)
def _schedule_fixed_hold(ts: np.ndarray, side: np.ndarray, hold_ns: int):
    n = ts.shape[0]
    entry = np.empty(n, np.int64)
    exit_ = np.empty(n, np.int64)
    sides = np.empty(n, np.int8)
    k = 0
    busy_until = np.iinfo(np.int64).min
    for i in range(n):
        if side[i] != 0 and ts[i] > busy_until:
            entry[k] = ts[i]
            exit_[k] = ts[i] + hold_ns
            sides[k] = side[i]
            busy_until = ts[i] + hold_ns
            k += 1
    return entry[:k], exit_[:k], sides[:k]


@njit(cache=True)
def _schedule_until_signal_changes(ts: np.ndarray, side: np.ndarray):
    n = ts.shape[0]
    entry = np.empty(n, np.int64)
    exit_ = np.empty(n, np.int64)
    sides = np.empty(n, np.int8)
    k = 0
    held = 0
    opened = 0
    for i in range(n):
        if held != 0:
            if side[i] != held:
                entry[k] = opened
                exit_[k] = ts[i]
                sides[k] = held
                k += 1
                held = 0  # a reversal opens at the next prediction, never on the exit's row
        elif side[i] != 0:
            held = side[i]
            opened = ts[i]
    if held != 0 and ts[n - 1] > opened:
        entry[k] = opened
        exit_[k] = ts[n - 1]
        sides[k] = held
        k += 1
    return entry[:k], exit_[:k], sides[:k]


def schedule(ts: np.ndarray, side: np.ndarray, hold_ns: int | None) -> Decisions:
    """One position at a time: enter on a signal when flat.

    hold_ns given: exit hold_ns after the entry signal; signals while holding are ignored.
    hold_ns None ('signal'): hold while the signal keeps its side, exit when it changes; a
    position still open at the last prediction exits there.
    """
    ts = np.ascontiguousarray(ts, np.int64)
    side = np.ascontiguousarray(side, np.int8)
    if ts.shape[0] == 0:
        return Decisions(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int8))
    if hold_ns is None:
        return Decisions(*_schedule_until_signal_changes(ts, side))
    return Decisions(*_schedule_fixed_hold(ts, side, np.int64(hold_ns)))


@njit(cache=True)
def _pick_non_overlapping(order: np.ndarray, ts: np.ndarray, hold_ns: int, n_max: int,
                          last_entry_ts: int):
    """Accept candidate rows in `order` whose [ts, ts + hold] overlaps no accepted one."""
    n = ts.shape[0]
    taken = np.zeros(n, np.bool_)
    # Accepted entry rows, counted in a Fenwick tree: how many lie in a range, in log n.
    entries = np.zeros(n + 1, np.int64)
    chosen = np.empty(min(n_max, n), np.int64)
    k = 0
    for c in range(order.shape[0]):
        if k >= n_max:
            break
        i = order[c]
        if ts[i] > last_entry_ts:
            continue
        # Accepted trades mark the rows from entry to exit ([a, b), disjoint, b > a). The
        # candidate's rows [i, stop) meet one exactly when row i is marked or an accepted
        # entry lies in (i, stop): two O(1)/O(log n) checks instead of a scan of the hold,
        # and marking costs n rows at most over the whole call.
        if taken[i]:
            continue
        stop = np.searchsorted(ts, ts[i] + hold_ns, side="right")
        inside = 0
        j = stop  # entries in [0, stop) minus entries in [0, i + 1)
        while j > 0:
            inside += entries[j]
            j -= j & -j
        j = i + 1
        while j > 0:
            inside -= entries[j]
            j -= j & -j
        if inside > 0:
            continue
        for r in range(i, stop):
            taken[r] = True
        j = i + 1
        while j <= n:
            entries[j] += 1
            j += j & -j
        chosen[k] = i
        k += 1
    return np.sort(chosen[:k])


def _fixed_hold_decisions(ts: np.ndarray, rows: np.ndarray, sides: np.ndarray,
                          hold_ns: int) -> Decisions:
    entry = ts[rows]
    return Decisions(entry, entry + np.int64(hold_ns), sides.astype(np.int8))


def random_decisions(ts: np.ndarray, n_trades: int, hold_ns: int,
                     rng: np.random.Generator, sides: np.ndarray | None = None) -> Decisions:
    """`n_trades` non-overlapping round trips at uniformly random times.

    Sides are random, or `sides` (a multiset of +1/-1, one per trade) in random order.
    Fewer only when n_trades intervals of hold_ns cannot fit in the predictions' span.
    """
    ts = np.ascontiguousarray(ts, np.int64)
    if n_trades == 0 or ts.shape[0] == 0:
        return schedule(ts[:0], np.zeros(0, np.int8), hold_ns)
    # Uniform placement of n intervals of k rows among the m rows that can still exit:
    # sorted offsets c_i plus i * k never overlap (stars and bars). An irregular grid can
    # still make two collide; random rows after them then top the count up.
    k = int((np.searchsorted(ts, ts + hold_ns, side="right") - np.arange(ts.shape[0])).max())
    m = int(np.searchsorted(ts, ts[-1] - hold_ns, side="right"))
    n_fit = min(n_trades, (m + k - 1) // k) if m > 0 else 0
    offsets = np.sort(rng.integers(0, m - (n_fit - 1) * k, n_fit)) if n_fit else np.empty(0)
    placed = offsets.astype(np.int64) + np.arange(n_fit, dtype=np.int64) * k
    order = np.concatenate([placed, rng.permutation(ts.shape[0]).astype(np.int64)])
    rows = _pick_non_overlapping(order, ts, np.int64(hold_ns), n_trades, ts[-1] - hold_ns)
    if sides is None:
        chosen = rng.choice(np.array([-1, 1], np.int8), size=rows.shape[0])
    else:
        chosen = rng.permutation(np.asarray(sides, np.int8))[:rows.shape[0]]
    return _fixed_hold_decisions(ts, rows, chosen, hold_ns)


def imbalance_decisions(ts: np.ndarray, imbalance: np.ndarray, n_trades: int,
                        hold_ns: int) -> Decisions:
    """The L1 imbalance rule: trade toward the heavier side of the touch.

    Takes the `n_trades` non-overlapping rows with the largest |imbalance|; that equals a
    fixed threshold chosen to give the model's number of trades. Imbalance at a row is
    known at that row, so the rule itself sees no future.
    """
    ts = np.ascontiguousarray(ts, np.int64)
    # Strongest first: the stable order of -|imbalance| (NaN last), built in one array.
    weakness = np.abs(imbalance)
    np.nan_to_num(weakness, copy=False, nan=-1.0)
    np.negative(weakness, out=weakness)
    order = np.argsort(weakness, kind="stable").astype(np.int64, copy=False)
    order = order[weakness[order] < 0]
    del weakness
    if n_trades == 0 or order.shape[0] == 0:
        return schedule(ts[:0], np.zeros(0, np.int8), hold_ns)
    rows = _pick_non_overlapping(order, ts, np.int64(hold_ns), n_trades, ts[-1] - hold_ns)
    sides = np.sign(imbalance[rows]).astype(np.int8)
    return _fixed_hold_decisions(ts, rows, sides, hold_ns)


def oracle_sides(book: Book, ts: np.ndarray, hold_ns: int, latency_ns: int,
                 fee_bps: float, maker_fee_bps: float | None = None) -> np.ndarray:
    """Perfect foresight, executable: the side whose round trip pays at this fee.

    For a signal at t the entry is the first snapshot at or after t + latency; the round
    trip from there is DESIGN.md's fee-aware label (`features.labels.round_trips`: buy at
    the ask, sell at the bid one horizon later, never across a gap), at the fee this
    backtest charges. With `maker_fee_bps` the entry is passive (`passive_round_trips`):
    the oracle takes the side whose resting order fills and pays the maker fee in and the
    taker fee out. Rows without a round trip are 0.
    """
    bid, ask = book.touch_prices()
    entry = np.searchsorted(book.ts, ts + latency_ns, side="left")
    sides = np.empty(entry.shape[0], np.int8)
    # Each row's round trip is its own: in chunks of rows, the same sides with a chunk's
    # worth of temporaries instead of a dozen arrays the length of the predictions.
    for first in range(0, entry.shape[0], ORACLE_CHUNK_ROWS):
        rows = slice(first, first + ORACLE_CHUNK_ROWS)
        trips = round_trips(book.ts, book.gap, bid, ask, hold_ns, entry[rows])
        if maker_fee_bps is None:
            sides[rows] = fee_aware_side(*trips.net(fee_bps))
            continue
        long_gross, short_gross, _, _ = passive_round_trips(bid, ask, entry[rows], trips.exit)
        cost = (maker_fee_bps + fee_bps) * 1e-4
        sides[rows] = fee_aware_side(long_gross - cost, short_gross - cost)
    return sides


ORACLE_CHUNK_ROWS = 1 << 18


def oracle_decisions(ts: np.ndarray, sides: np.ndarray, hold_ns: int) -> Decisions:
    """Perfect foresight (`oracle_sides`): an upper bound on what any signal could make."""
    return schedule(ts, sides, hold_ns)
