"""The order-book model: a queue-reactive book on a tick grid, in Numba.

Every function here is a plain Numba function over NumPy arrays; nothing allocates
per event. One symbol's book is this set of arrays (N = grid ticks, a power of 2):

  size    int64[2, N]    resting size in lots, side 0 bids / 1 asks, at grid index j;
                         the price is (ist[ORIGIN] + j) * tick. Bids live at j <= best
                         bid, asks at j >= best ask; the other entries are 0.
  orders  int64[2, N]    resting orders at each level (the queue length)
  fw      int64[2, N+1]  Fenwick trees over `orders`, so a cancellation picks an order
                         uniformly over its side (each level's rate is proportional to
                         its queue) and the next best level is found in O(log N).
  dirty           uint8[2, N] levels changed since the last depth diff (0 bid, 1 ask)
  dirty_list      int64[2N]   their keys side * N + j, in first-touch order
  ist             int64[IST_LEN]  integer state (indices below)
  par             float64[PAR_LEN] rates and size laws (indices below)
  arrival_cdf     float64[K]  cumulative limit-order rate at 1..K ticks from the
                              opposite best quote (orders / s, one side)

What one call of `run_until` writes (rows appended after counts[...]):

  diff_hdr  int64[D, 8]  E (ms), first update id U, last update id u, end row in diff_lvl,
                         then the top after it: best bid (ticks), its lots, best ask, lots
  diff_lvl  int64[L, 3]  side (0 bid, 1 ask), price in ticks, size in lots (0 = deleted)
  trades    int64[T, 5]  event time (ns), trade id, price in ticks, size in lots,
                         buyer is maker (1 when a market sell hit the bid)

Events (independent Poisson clocks, simulated exactly by Gillespie's method):
  limit buy / sell   rate sum(arrival_cdf) per side, placed i ticks from the opposite
                     best with probability lambda(i) / sum(lambda); i = 1 joins (or,
                     in a wide spread, improves) the best quote with a touch-sized order
  cancel buy / sell  rate theta * (orders resting on the side): each order leaves at rate
                     theta, taking the average size of its level with it
  market buy / sell  rate mu (1 +- kappa I) with I the L1 imbalance of sizes (queue-
                     reactive, after Huang, Lehalle & Rosenbaum 2015: traders hit the
                     thinner queue); consumes the best queue, then the next level
  spread refill      rate rho per side, only while the spread is wider than one tick
  requote            rate nu (the null control only): both best queues move J ticks
                     up or down on a fair coin, whatever the book looks like
When a best queue empties, the price moves to the next level on its side and, with
probability CHASE_PROB, the opposite best queue re-quotes one tick from it (the race
between the two best queues decides the direction; the chase keeps the spread at one
tick). With TOUCH_REFILL set (the null control) a best queue never empties: a fresh
order joins it before its last one is taken, so prices move only by requotes.

Sizes: deep limit and market orders are scale * exp(sigma Z) * U^(-1/beta) (lognormal
body, Pareto tail); orders at the touch are touch_scale * exp(touch_sigma Z).
"""

from __future__ import annotations

import numpy as np
from numba import njit

GRID_TICKS = 1 << 16
DIFF_INTERVAL_NS = 100_000_000

# ist: integer state
ORIGIN = 0        # price in ticks of grid index 0
BEST_BID = 1      # grid index of the best bid
BEST_ASK = 2      # grid index of the best ask (BEST_BID + side is a side's best)
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
MARKET_RATE = 2      # mu: market orders per side (orders / s) at zero imbalance
LIMIT_SCALE = 3      # deep limit-order size scale (lots)
MARKET_SCALE = 4     # market-order size scale (lots)
SIZE_SIGMA = 5       # lognormal body width of deep and market sizes
SIZE_TAIL = 6        # Pareto tail index beta of deep and market sizes
SIZE_CAP = 7         # largest order (lots), keeps one draw from emptying the grid
TOUCH_SCALE = 8      # median size of an order placed at the best quote (lots)
TOUCH_SIGMA = 9      # lognormal width of touch order sizes
REFILL_RATE = 10     # orders per second per side improving a spread wider than one tick
CHASE_PROB = 11      # probability that the opposite best queue follows a depleted one
MARKET_REACT = 12    # kappa in [0, 1]: how much the imbalance steers market orders
FILL_SCALE = 13      # c: extra trades a fill of MARKET_SCALE lots prints (orders it meets)
REQUOTE_RATE = 14    # nu: requotes per second (null control)
JUMP_MEDIAN = 15     # median requote jump (ticks)
JUMP_SIGMA = 16      # lognormal width of requote jumps
TOUCH_REFILL = 17    # 1: best queues never empty (null control), 0: they race
LIMIT_SIGMA = 18     # lognormal width of deep limit-order sizes
FILL_POWER = 19      # gamma: extra trades grow as (fill size / MARKET_SCALE) ** gamma
PAR_LEN = 20

# run_until return codes
REACHED_END = 0
BUFFER_FULL = 1

# room a market order needs in the trade buffer before it runs
_TRADE_ROOM = 4096
_NO_TAIL = 1e12  # a Pareto index this large makes U^(-1/beta) = 1: no tail


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
    """Order size in lots: lognormal body times a Pareto(beta) factor."""
    u = 1.0 - rng.random()  # in (0, 1]
    x = scale * np.exp(sigma * rng.standard_normal()) * u ** (-1.0 / tail)
    if x > cap:
        x = cap
    lots = int(x + 0.5)
    return lots if lots >= 1 else 1


@njit(cache=True)
def draw_touch_size(rng: np.random.Generator, par: np.ndarray) -> int:
    return draw_size(rng, par[TOUCH_SCALE], par[TOUCH_SIGMA], _NO_TAIL, par[SIZE_CAP])


@njit(cache=True)
def draw_deep_size(rng: np.random.Generator, par: np.ndarray) -> int:
    return draw_size(rng, par[LIMIT_SCALE], par[LIMIT_SIGMA], _NO_TAIL, par[SIZE_CAP])


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
    best = BEST_BID + side
    if lots > 0:
        if (side == 0 and j > ist[BEST_BID]) or (side == 1 and j < ist[BEST_ASK]):
            ist[best] = j
    elif j == ist[best]:
        ist[best] = _best_after_depletion(side, j, fw)


@njit(cache=True)
def _move_level(side: int, j_from: int, j_to: int, ist: np.ndarray, size: np.ndarray,
                orders: np.ndarray, fw: np.ndarray, dirty: np.ndarray,
                dirty_list: np.ndarray) -> None:
    """Every order of one level re-quotes at another price (joining what rests there)."""
    lots = size[side, j_from]
    count = orders[side, j_from]
    _set_level(side, j_to, size[side, j_to] + lots, orders[side, j_to] + count, ist, size,
               orders, fw, dirty, dirty_list)
    _set_level(side, j_from, 0, 0, ist, size, orders, fw, dirty, dirty_list)


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
            lots = 0
            for _ in range(count):
                if i == 1:
                    lots += draw_touch_size(rng, par)
                else:
                    lots += draw_deep_size(rng, par)
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
        diff_hdr[d, 4] = ist[ORIGIN] + ist[BEST_BID]
        diff_hdr[d, 5] = size[0, ist[BEST_BID]]
        diff_hdr[d, 6] = ist[ORIGIN] + ist[BEST_ASK]
        diff_hdr[d, 7] = size[1, ist[BEST_ASK]]
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
def _print_fills(rng: np.random.Generator, par: np.ndarray, ist: np.ndarray,
                 trades: np.ndarray, price: int, lots: int, side: int) -> None:
    """One fill at one level as the venue prints it: one trade per resting order met,
    1 + Poisson(c (lots / scale) ** gamma) of them (a bigger fill meets more orders),
    splitting `lots` at exponential spacings."""
    k = 1
    if par[FILL_SCALE] > 0.0:
        k = 1 + rng.poisson(par[FILL_SCALE] * (lots / par[MARKET_SCALE]) ** par[FILL_POWER])
    k = max(min(k, lots, trades.shape[0] - ist[N_TRADES]), 1)
    total_w = 0.0
    weights = np.empty(k)
    for m in range(k):
        weights[m] = rng.exponential()
        total_w += weights[m]
    done = 0
    acc = 0.0
    for m in range(k):
        acc += weights[m]
        upto = lots if m == k - 1 else int(lots * acc / total_w)
        piece = upto - done
        if piece <= 0:
            continue
        done = upto
        r = ist[N_TRADES]
        trades[r, 0] = ist[NOW_NS]
        trades[r, 1] = ist[NEXT_TRADE]
        trades[r, 2] = price
        trades[r, 3] = piece
        trades[r, 4] = side  # a market sell (side 1) means the buyer was the maker
        ist[N_TRADES] = r + 1
        ist[NEXT_TRADE] += 1


@njit(cache=True)
def _market_order(side: int, rng: np.random.Generator, par: np.ndarray, ist: np.ndarray,
                  size: np.ndarray, orders: np.ndarray, fw: np.ndarray, dirty: np.ndarray,
                  dirty_list: np.ndarray, trades: np.ndarray) -> None:
    """A market order (side 0 buy, 1 sell) walks the opposite queues best-first.

    It meets resting orders of its level's average size; the last order of a side is
    never taken. With TOUCH_REFILL the best queue is refilled before it would empty.
    """
    remaining = draw_size(rng, par[MARKET_SCALE], par[SIZE_SIGMA], par[SIZE_TAIL],
                          par[SIZE_CAP])
    book = 1 - side
    best = BEST_BID + book
    refill = par[TOUCH_REFILL] > 0.0
    total_orders = fenwick_prefix(fw[book], size.shape[1] - 1)
    room = trades.shape[0] - 1  # a market order that would overflow the buffer stops (IOC)
    while remaining > 0 and total_orders > 1 and ist[N_TRADES] < room:
        j = ist[best]
        lots = size[book, j]
        count = orders[book, j]
        while remaining > 0 and count > 0 and total_orders > 1 and ist[N_TRADES] < room:
            if refill and count == 1 and remaining >= lots:
                lots += draw_touch_size(rng, par)  # a fresh order joins the touch first
                count += 1
                total_orders += 1
            maker = -(-lots // count)  # this level's average order, rounded up
            piece = min(maker, remaining)
            _print_fills(rng, par, ist, trades, ist[ORIGIN] + j, piece, side)
            remaining -= piece
            lots -= piece
            if piece == maker or lots == 0:
                count -= 1
                total_orders -= 1
            if lots == 0:
                count = 0
        _set_level(book, j, lots, count, ist, size, orders, fw, dirty, dirty_list)


@njit(cache=True)
def _draw_jump(rng: np.random.Generator, par: np.ndarray, n: int) -> int:
    """A requote distance in ticks: lognormal around JUMP_MEDIAN (0: no requote)."""
    if par[JUMP_MEDIAN] <= 0.0:
        return 0
    jump = int(par[JUMP_MEDIAN] * np.exp(par[JUMP_SIGMA] * rng.standard_normal()) + 0.5)
    return min(max(jump, 1), n // 8)


@njit(cache=True)
def _clear_run(side: int, j_from: int, j_to: int, ist: np.ndarray, size: np.ndarray,
               orders: np.ndarray, fw: np.ndarray, dirty: np.ndarray,
               dirty_list: np.ndarray) -> None:
    """Cancel every order of `side` from j_from up to, not including, j_to (either way):
    the liquidity a running price jumps over is pulled by its makers."""
    step = 1 if j_to > j_from else -1
    j = j_from
    while j != j_to:
        if orders[side, j] > 0:
            _set_level(side, j, 0, 0, ist, size, orders, fw, dirty, dirty_list)
        j += step


@njit(cache=True)
def _after_depletion(depleted: int, j_empty: int, rng: np.random.Generator, par: np.ndarray,
                     ist: np.ndarray, size: np.ndarray, orders: np.ndarray, fw: np.ndarray,
                     dirty: np.ndarray, dirty_list: np.ndarray) -> None:
    """A best queue emptied at j_empty: its side requotes J ticks away, then the opposite
    best queue chases to one tick from the new best (the price moves by the race)."""
    n = size.shape[1]
    best = BEST_BID + depleted
    if ist[best] < 0:
        return
    jump = _draw_jump(rng, par, n)
    target = j_empty + jump if depleted == 1 else j_empty - jump
    f = fw[depleted]
    if 0 < target < n - 1:
        if depleted == 1:
            beyond = fenwick_prefix(f, n - 1) - fenwick_prefix(f, target - 1)
            jumped = ist[best] < target
        else:
            beyond = fenwick_prefix(f, target)
            jumped = ist[best] > target
        if jumped and beyond > 0:  # a side keeps at least one level
            _clear_run(depleted, ist[best], target, ist, size, orders, fw, dirty,
                       dirty_list)
    if rng.random() >= par[CHASE_PROB]:
        return
    other = 1 - depleted
    j_old = ist[BEST_BID + other]
    j_new = ist[best] - 1 if depleted == 1 else ist[best] + 1
    if (depleted == 1 and j_new > j_old) or (depleted == 0 and j_new < j_old):
        _move_level(other, j_old, j_new, ist, size, orders, fw, dirty, dirty_list)


@njit(cache=True)
def _requote(rng: np.random.Generator, par: np.ndarray, ist: np.ndarray, size: np.ndarray,
             orders: np.ndarray, fw: np.ndarray, dirty: np.ndarray,
             dirty_list: np.ndarray) -> None:
    """Both best queues move J ticks on a fair coin, whatever the book looks like."""
    n = size.shape[1]
    jump = max(_draw_jump(rng, par, n), 1)
    lead = 1 if rng.random() < 0.5 else 0  # up: the asks lead; down: the bids lead
    step = jump if lead == 1 else -jump
    j_lead = ist[BEST_BID + lead]
    follow = 1 - lead
    j_follow = ist[BEST_BID + follow]
    if not (0 < j_lead + step < n - 1 and 0 < j_follow + step < n - 1):
        return
    _move_level(lead, j_lead, j_lead + step, ist, size, orders, fw, dirty, dirty_list)
    _clear_run(lead, j_lead + (1 if lead == 1 else -1), j_lead + step, ist, size, orders, fw,
               dirty, dirty_list)
    _move_level(follow, j_follow, j_follow + step, ist, size, orders, fw, dirty, dirty_list)


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
    requote_rate = par[REQUOTE_RATE]
    react = par[MARKET_REACT]
    refill_touch = par[TOUCH_REFILL] > 0.0
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
                      + 2.0 * r_refill + requote_rate)
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
            lots = draw_touch_size(rng, par) if i == 1 else draw_deep_size(rng, par)
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
            best_before = ist[BEST_BID + side]
            if refill_touch and count == 1 and j == best_before:
                # null control: the last order at the touch is replaced, never just removed
                _set_level(side, j, draw_touch_size(rng, par), 1, ist, size, orders, fw,
                           dirty, dirty_list)
                continue
            leaving = lots if count == 1 else max(1, lots // count)  # an average order
            _set_level(side, j, lots - leaving, count - 1, ist, size, orders, fw, dirty,
                       dirty_list)
            if ist[BEST_BID + side] != best_before:
                _after_depletion(side, best_before, rng, par, ist, size, orders, fw, dirty,
                                 dirty_list)
            continue
        x -= r_cancel_bid + r_cancel_ask
        if x < 2.0 * r_refill:
            side = 0 if x < r_refill else 1
            j = ist[BEST_BID] + 1 + int(rng.random() * gap)
            _set_level(side, j, size[side, j] + draw_touch_size(rng, par), orders[side, j] + 1,
                       ist, size, orders, fw, dirty, dirty_list)
            continue
        x -= 2.0 * r_refill
        if x < 2.0 * market_rate:
            qb = size[0, ist[BEST_BID]]
            qa = size[1, ist[BEST_ASK]]
            imbalance = (qb - qa) / (qb + qa) if qb + qa > 0 else 0.0
            side = 0 if x < market_rate * (1.0 + react * imbalance) else 1
            book = 1 - side
            best_before = ist[BEST_BID + book]
            _market_order(side, rng, par, ist, size, orders, fw, dirty, dirty_list, trades)
            if ist[BEST_BID + book] != best_before:
                _after_depletion(book, best_before, rng, par, ist, size, orders, fw, dirty,
                                 dirty_list)
            continue
        _requote(rng, par, ist, size, orders, fw, dirty, dirty_list)
