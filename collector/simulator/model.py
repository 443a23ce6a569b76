"""The order-book model: Cont, Stoikov & Talreja (2010) queues on a tick grid, in Numba.

Every function here is a plain Numba function over NumPy arrays; nothing allocates
per event. One symbol's book is this set of arrays (N = GRID_TICKS, a power of 2):

  size    int64[2, N]    resting size in lots, side 0 bids / 1 asks, at grid index j;
                         the price is (ist[ORIGIN] + j) * tick. Bids live at j <= best
                         bid, asks at j >= best ask; the other entries are 0.
  orders  int64[2, N]    resting orders at each level (the queue length of CST)
  fw      int64[2, N+1]  Fenwick trees over `orders`, so a cancellation picks an order
                         uniformly over its side (each level's rate is proportional to
                         its queue) and the next best level is found in O(log N).
  dirty           uint8[2, N] levels changed since the last depth diff (0 bid, 1 ask)
  dirty_list      int64[2N]   their keys side * N + j, in first-touch order
  ist             int64[IST_LEN]  integer state (indices below)
  par             float64[PAR_LEN] rates and size law (indices below)
  arrival_cdf     float64[K]  cumulative limit-order rate at 1..K ticks from the
                              opposite best quote (orders / s, one side)

What one call of `run_until` writes (rows appended after counts[...]):

  diff_hdr  int64[D, 4]  E (ms), first update id U, last update id u, end row in diff_lvl
  diff_lvl  int64[L, 3]  side (0 bid, 1 ask), price in ticks, size in lots (0 = deleted)
  trades    int64[T, 5]  event time (ns), trade id, price in ticks, size in lots,
                         buyer is maker (1 when a market sell hit the bid)

Events (independent Poisson clocks, simulated exactly by Gillespie's method):
  limit buy / sell   rate sum(arrival_cdf) per side, placed i ticks from the opposite
                     best with probability lambda(i) / sum(lambda)
  cancel buy / sell  rate theta * (orders resting on the side): each order leaves at rate
                     theta, taking the average size of its level with it
  market buy / sell  rate mu per side; consumes the best queue, then the next level
  spread refill      rate rho per side, only while the spread is wider than one tick: a
                     limit order placed uniformly inside the spread (the queue-reactive
                     refinement of Huang, Lehalle & Rosenbaum 2015: the state sets rates)
Sizes follow scale * exp(sigma * Z) * U^(-1/beta): a lognormal body with a Pareto tail;
orders joining the best quote (i = 1) have their scale multiplied by BEST_SIZE, as the
touch of a liquid book holds far more than its deeper levels.
"""

from __future__ import annotations

import numpy as np
from numba import njit

GRID_TICKS = 1 << 15
DIFF_INTERVAL_NS = 100_000_000

# ist: integer state
ORIGIN = 0        # price in ticks of grid index 0
BEST_BID = 1      # grid index of the best bid
BEST_ASK = 2      # grid index of the best ask
NEXT_UPDATE = 3   # the update id the next book change gets
NEXT_TRADE = 4    # the id of the next trade
NOW_NS = 5        # simulation clock (ns since epoch)
NEXT_DIFF_NS = 6  # when the open depth diff is sent
DIFF_FIRST = 7    # first update id of the open diff (U)
N_DIRTY = 8       # entries used in dirty_list
N_DIFFS = 9       # rows written in diff_hdr
N_LEVELS = 10     # rows written in diff_lvl
N_TRADES = 11     # rows written in trades
IST_LEN = 12

# par: model parameters in the units the loop uses
LIMIT_RATE = 0       # total limit-order rate per side (orders / s)
CANCEL_RATE = 1      # theta: cancellations per resting order per second
MARKET_RATE = 2      # market orders per side (orders / s)
LIMIT_SCALE = 3      # limit-order size scale (lots)
MARKET_SCALE = 4     # market-order size scale (lots)
SIZE_SIGMA = 5       # lognormal body width
SIZE_TAIL = 6        # Pareto tail index beta
SIZE_CAP = 7         # largest order (lots), keeps one draw from emptying the grid
BEST_SIZE = 8        # size scale multiplier of orders placed at the best quote (i = 1)
REFILL_RATE = 9      # orders per second per side improving a spread wider than one tick
PAR_LEN = 10

# run_until return codes
REACHED_END = 0
BUFFER_FULL = 1

# room a market order needs in the trade buffer before it runs
_TRADE_ROOM = 4096


@njit(cache=True)
def fenwick_add(fw: np.ndarray, j: int, delta: int) -> None:
    i = j + 1
    n = fw.shape[0]
    while i < n:
        fw[i] += delta
        i += i & (-i)


@njit(cache=True)
def fenwick_prefix(fw: np.ndarray, j: int) -> int:
    """Sum of the counts at grid indices 0..j."""
    s = 0
    i = j + 1
    while i > 0:
        s += fw[i]
        i -= i & (-i)
    return s


@njit(cache=True)
def fenwick_find(fw: np.ndarray, target: int) -> int:
    """The smallest grid index j whose prefix sum exceeds target (0 <= target < total)."""
    n = fw.shape[0] - 1
    pos = 0
    step = 1
    while step * 2 <= n:
        step *= 2
    while step > 0:
        nxt = pos + step
        if nxt <= n and fw[nxt] <= target:
            pos = nxt
            target -= fw[nxt]
        step //= 2
    return pos  # 1-based position of the last prefix <= target is the 0-based answer


@njit(cache=True)
def fenwick_build(counts: np.ndarray, fw: np.ndarray) -> None:
    fw[:] = 0
    n = counts.shape[0]
    for j in range(n):
        fw[j + 1] += counts[j]
        parent = (j + 1) + ((j + 1) & (-(j + 1)))
        if parent <= n:
            fw[parent] += fw[j + 1]


@njit(cache=True)
def draw_size(rng: np.random.Generator, scale: float, sigma: float, tail: float,
              cap: float) -> int:
    """Heavy-tailed order size in lots: lognormal body times a Pareto(beta) factor."""
    u = 1.0 - rng.random()  # in (0, 1]
    x = scale * np.exp(sigma * rng.standard_normal()) * u ** (-1.0 / tail)
    if x > cap:
        x = cap
    lots = int(x + 0.5)
    return lots if lots >= 1 else 1


@njit(cache=True)
def _touch(side: int, j: int, ist: np.ndarray, dirty: np.ndarray,
           dirty_list: np.ndarray) -> None:
    """Record a book change: one update id, and the level joins the open diff."""
    ist[NEXT_UPDATE] += 1
    if dirty[side, j] == 0:
        dirty[side, j] = 1
        dirty_list[ist[N_DIRTY]] = side * dirty.shape[1] + j
        ist[N_DIRTY] += 1


@njit(cache=True)
def _best_after_depletion(side: int, j: int, fw: np.ndarray) -> int:
    """The new best level once level j (the best) emptied: next bid below, next ask above."""
    f = fw[side]
    if side == 0:
        c = fenwick_prefix(f, j)
        return fenwick_find(f, c - 1) if c > 0 else -1
    c = fenwick_prefix(f, j)
    total = fenwick_prefix(f, f.shape[0] - 2)
    return fenwick_find(f, c) if c < total else -1


@njit(cache=True)
def _set_level(side: int, j: int, lots: int, n_orders: int, ist: np.ndarray,
               size: np.ndarray, orders: np.ndarray, fw: np.ndarray, dirty: np.ndarray,
               dirty_list: np.ndarray) -> None:
    """Change one level (size, order count) and keep the best quotes right."""
    if lots <= 0 or n_orders <= 0:
        lots = 0
        n_orders = 0
    fenwick_add(fw[side], j, n_orders - orders[side, j])
    size[side, j] = lots
    orders[side, j] = n_orders
    _touch(side, j, ist, dirty, dirty_list)
    best = BEST_BID if side == 0 else BEST_ASK
    if lots > 0:
        if (side == 0 and j > ist[BEST_BID]) or (side == 1 and j < ist[BEST_ASK]):
            ist[best] = j
    elif j == ist[best]:
        ist[best] = _best_after_depletion(side, j, fw)


@njit(cache=True)
def init_book(rng: np.random.Generator, arrival_cdf: np.ndarray, par: np.ndarray,
              ist: np.ndarray, size: np.ndarray, orders: np.ndarray, fw: np.ndarray) -> None:
    """A one-tick book around the grid centre, each queue drawn from its stationary law.

    Without market orders a queue fed at rate lambda(i) whose orders each leave at rate
    theta holds Poisson(lambda(i) / theta) orders (an M/M/infinity queue).
    """
    n = size.shape[1]
    size[:] = 0
    orders[:] = 0
    centre = n // 2
    ist[BEST_BID] = centre - 1
    ist[BEST_ASK] = centre
    prev = 0.0
    for k in range(arrival_cdf.shape[0]):
        rate = arrival_cdf[k] - prev
        prev = arrival_cdf[k]
        i = k + 1
        for side in range(2):
            count = rng.poisson(rate / par[CANCEL_RATE])
            if i == 1 and count == 0:
                count = 1  # the book starts with both best quotes present
            scale = par[LIMIT_SCALE] * (par[BEST_SIZE] if i == 1 else 1.0)
            lots = 0
            for _ in range(count):
                lots += draw_size(rng, scale, par[SIZE_SIGMA], par[SIZE_TAIL], par[SIZE_CAP])
            j = centre - i if side == 0 else centre - 1 + i  # i ticks from the other best
            size[side, j] = lots
            orders[side, j] = count
    fenwick_build(orders[0], fw[0])
    fenwick_build(orders[1], fw[1])


@njit(cache=True)
def _emit_diff(ist: np.ndarray, size: np.ndarray, dirty: np.ndarray, dirty_list: np.ndarray,
               diff_hdr: np.ndarray, diff_lvl: np.ndarray) -> None:
    """Close the open 100 ms diff: changed levels with their absolute sizes, bids best-first."""
    nd = ist[N_DIRTY]
    n = size.shape[1]
    if ist[NEXT_UPDATE] > ist[DIFF_FIRST]:
        keys = np.sort(dirty_list[:nd])
        row = ist[N_LEVELS]
        n_bid = 0
        while n_bid < nd and keys[n_bid] < n:
            n_bid += 1
        for k in range(n_bid - 1, -1, -1):  # bids from the highest price down
            j = keys[k]
            diff_lvl[row, 0] = 0
            diff_lvl[row, 1] = ist[ORIGIN] + j
            diff_lvl[row, 2] = size[0, j]
            row += 1
        for k in range(n_bid, nd):
            j = keys[k] - n
            diff_lvl[row, 0] = 1
            diff_lvl[row, 1] = ist[ORIGIN] + j
            diff_lvl[row, 2] = size[1, j]
            row += 1
        d = ist[N_DIFFS]
        diff_hdr[d, 0] = ist[NEXT_DIFF_NS] // 1_000_000
        diff_hdr[d, 1] = ist[DIFF_FIRST]
        diff_hdr[d, 2] = ist[NEXT_UPDATE] - 1
        diff_hdr[d, 3] = row
        ist[N_DIFFS] = d + 1
        ist[N_LEVELS] = row
    for k in range(nd):
        key = dirty_list[k]
        dirty[key // n, key % n] = 0
    ist[N_DIRTY] = 0
    ist[DIFF_FIRST] = ist[NEXT_UPDATE]


@njit(cache=True)
def _recentre(ist: np.ndarray, size: np.ndarray, orders: np.ndarray, fw: np.ndarray,
              dirty: np.ndarray, dirty_list: np.ndarray) -> int:
    """When the quotes near a grid edge, plan a shift that puts the mid back in the centre.

    Levels that would fall off the grid are cancelled first (stale orders far beyond the
    arrival range), so the replayed book keeps matching the model's book. Returns the
    shift in ticks (0: none needed); the caller applies it once the diff is sent.
    """
    n = size.shape[1]
    margin = n // 4
    if ist[BEST_BID] >= margin and ist[BEST_ASK] < n - margin:
        return 0
    shift = (ist[BEST_BID] + ist[BEST_ASK]) // 2 - n // 2
    lo, hi = (0, shift) if shift > 0 else (n + shift, n)
    for side in range(2):
        for j in range(lo, hi):
            if orders[side, j] > 0:
                _set_level(side, j, 0, 0, ist, size, orders, fw, dirty, dirty_list)
    return shift


@njit(cache=True)
def _apply_shift(shift: int, ist: np.ndarray, size: np.ndarray, orders: np.ndarray,
                 fw: np.ndarray) -> None:
    n = size.shape[1]
    for a in (size, orders):
        for side in range(2):
            row = a[side]
            if shift > 0:
                row[: n - shift] = row[shift:].copy()
                row[n - shift:] = 0
            else:
                row[-shift:] = row[: n + shift].copy()
                row[:-shift] = 0
    ist[ORIGIN] += shift
    ist[BEST_BID] -= shift
    ist[BEST_ASK] -= shift
    fenwick_build(orders[0], fw[0])
    fenwick_build(orders[1], fw[1])


@njit(cache=True)
def _market_order(side: int, rng: np.random.Generator, par: np.ndarray, ist: np.ndarray,
                  size: np.ndarray, orders: np.ndarray, fw: np.ndarray, dirty: np.ndarray,
                  dirty_list: np.ndarray, trades: np.ndarray) -> None:
    """A market order (side 0 buy, 1 sell) walks the opposite queues best-first.

    Each resting order it meets is one trade (the exchange reports one per maker order),
    sized as its level's average order; the last order of a side is never taken.
    """
    remaining = draw_size(rng, par[MARKET_SCALE], par[SIZE_SIGMA], par[SIZE_TAIL],
                          par[SIZE_CAP])
    book = 1 - side
    best = BEST_ASK if side == 0 else BEST_BID
    cap = trades.shape[0] - 1
    total_orders = fenwick_prefix(fw[book], size.shape[1] - 1)
    while remaining > 0 and total_orders > 1:
        j = ist[best]
        lots = size[book, j]
        count = orders[book, j]
        while remaining > 0 and count > 0 and total_orders > 1:
            maker = -(-lots // count)  # this level's average order, rounded up
            piece = min(maker, remaining)
            if ist[N_TRADES] >= cap:
                piece = min(remaining, lots)  # out of room: report the rest as one trade
            r = ist[N_TRADES]
            trades[r, 0] = ist[NOW_NS]
            trades[r, 1] = ist[NEXT_TRADE]
            trades[r, 2] = ist[ORIGIN] + j
            trades[r, 3] = piece
            trades[r, 4] = side  # a market sell (side 1) means the buyer was the maker
            ist[N_TRADES] = r + 1
            ist[NEXT_TRADE] += 1
            remaining -= piece
            lots -= piece
            if piece == maker or lots == 0:
                count -= 1
                total_orders -= 1
            if lots == 0:
                count = 0
        _set_level(book, j, lots, count, ist, size, orders, fw, dirty, dirty_list)


@njit(cache=True)
def run_until(t_end_ns: int, rng: np.random.Generator, ist: np.ndarray, par: np.ndarray,
              arrival_cdf: np.ndarray, size: np.ndarray, orders: np.ndarray, fw: np.ndarray,
              dirty: np.ndarray, dirty_list: np.ndarray, diff_hdr: np.ndarray,
              diff_lvl: np.ndarray, trades: np.ndarray) -> int:
    """Advance the book to t_end_ns, appending diffs and trades to the buffers.

    Returns BUFFER_FULL (with the state consistent) when a buffer needs flushing first.
    Waiting times are exponential, so a draw cut short by t_end or a diff boundary is
    simply drawn again: the process is the same (memorylessness).
    """
    n = size.shape[1]
    k_max = arrival_cdf.shape[0]
    limit_rate = par[LIMIT_RATE]
    cancel_rate = par[CANCEL_RATE]
    market_rate = par[MARKET_RATE]
    refill_rate = par[REFILL_RATE]
    while True:
        if ist[N_TRADES] + _TRADE_ROOM > trades.shape[0]:
            return BUFFER_FULL
        bid_orders = fenwick_prefix(fw[0], n - 1)
        ask_orders = fenwick_prefix(fw[1], n - 1)
        r_cancel_bid = cancel_rate * bid_orders
        r_cancel_ask = cancel_rate * ask_orders
        gap = ist[BEST_ASK] - ist[BEST_BID] - 1  # empty ticks inside the spread
        r_refill = refill_rate if gap > 0 else 0.0
        total_rate = (2.0 * limit_rate + r_cancel_bid + r_cancel_ask + 2.0 * market_rate
                      + 2.0 * r_refill)
        t_next = ist[NOW_NS] + int(rng.exponential() / total_rate * 1e9)
        boundary = ist[NEXT_DIFF_NS]
        if boundary <= t_end_ns and t_next >= boundary:
            # the diff is sent before the next event happens
            if ist[N_DIFFS] >= diff_hdr.shape[0] or ist[N_LEVELS] + 2 * n > diff_lvl.shape[0]:
                return BUFFER_FULL
            shift = _recentre(ist, size, orders, fw, dirty, dirty_list)
            _emit_diff(ist, size, dirty, dirty_list, diff_hdr, diff_lvl)
            if shift != 0:
                _apply_shift(shift, ist, size, orders, fw)
            ist[NOW_NS] = boundary
            ist[NEXT_DIFF_NS] = boundary + DIFF_INTERVAL_NS
            continue
        if t_next > t_end_ns:
            ist[NOW_NS] = t_end_ns
            return REACHED_END
        ist[NOW_NS] = t_next
        x = rng.random() * total_rate
        if x < 2.0 * limit_rate:
            side = 0 if x < limit_rate else 1
            i = np.searchsorted(arrival_cdf, rng.random() * limit_rate, side="right") + 1
            i = min(i, k_max)
            j = ist[BEST_ASK] - i if side == 0 else ist[BEST_BID] + i
            if j < 0 or j >= n:
                continue
            scale = par[LIMIT_SCALE] * (par[BEST_SIZE] if i == 1 else 1.0)
            lots = draw_size(rng, scale, par[SIZE_SIGMA], par[SIZE_TAIL], par[SIZE_CAP])
            _set_level(side, j, size[side, j] + lots, orders[side, j] + 1, ist, size, orders,
                       fw, dirty, dirty_list)
            continue
        x -= 2.0 * limit_rate
        if x < r_cancel_bid + r_cancel_ask:
            side = 0 if x < r_cancel_bid else 1
            total = bid_orders if side == 0 else ask_orders
            if total <= 1:
                continue  # a side never empties completely
            j = fenwick_find(fw[side], int(rng.random() * total))
            count = orders[side, j]
            lots = size[side, j]
            leaving = lots if count == 1 else max(1, lots // count)  # an average order
            _set_level(side, j, lots - leaving, count - 1, ist, size, orders, fw, dirty,
                       dirty_list)
            continue
        x -= r_cancel_bid + r_cancel_ask
        if x < 2.0 * r_refill:
            side = 0 if x < r_refill else 1
            j = ist[BEST_BID] + 1 + int(rng.random() * gap)
            lots = draw_size(rng, par[LIMIT_SCALE] * par[BEST_SIZE], par[SIZE_SIGMA],
                             par[SIZE_TAIL], par[SIZE_CAP])
            _set_level(side, j, size[side, j] + lots, orders[side, j] + 1, ist, size, orders,
                       fw, dirty, dirty_list)
            continue
        side = 0 if x - 2.0 * r_refill < market_rate else 1
        _market_order(side, rng, par, ist, size, orders, fw, dirty, dirty_list, trades)
