"""Two guards against a false `pays`: it must beat the market's drift (a side held through
a trending market earns the trend, not an edge: on the no-signal simulation a policy short
all through a falling test split said `pays` before this rule), and in a verdict it must
survive Holm's correction over every row judged with it."""

from __future__ import annotations

import numpy as np
import pytest

from backtest.data import book_from_levels
from backtest.significance import (
    LEVEL,
    MIN_SPAN_NS,
    batch_means_interval,
    holm_keeps,
    judge_trades,
    pays_p_value,
)
from backtest.stats import summarize
from backtest.verdict import correct_for_many

SECOND = 1_000_000_000
HOUR = 3600 * SECOND


def trending_book(n: int, bps_per_row: float):
    """A one-level book whose mid moves by `bps_per_row` every row (1 s apart)."""
    mid = 60_000.0 * (1.0 + bps_per_row * 1e-4) ** np.arange(n)
    ts = np.arange(n, dtype=np.int64) * SECOND
    bids = [[(m - 0.005, 1.0)] for m in mid]
    asks = [[(m + 0.005, 1.0)] for m in mid]
    return book_from_levels("binance-spot", "BTCUSDT", ts, bids, asks), mid


@pytest.mark.parametrize("bps", [0.3, -0.3])
def test_the_mean_move_is_the_mids_own_with_its_sign(bps):
    book, mid = trending_book(2000, bps)
    ts = book.ts[:1500]
    # an independent count: the mid 10 rows on, over the mid now
    expected = float(np.mean(mid[10:1510] / mid[:1500] - 1.0) * 1e4)
    assert book.mean_move_bps(ts, 10 * SECOND) == pytest.approx(expected, rel=1e-12)
    assert np.sign(book.mean_move_bps(ts, 10 * SECOND)) == np.sign(bps)
    # times whose horizon ends past the book are left out, not read as the last row
    assert book.mean_move_bps(book.ts[-5:], 10 * SECOND) == 0.0


def test_a_short_through_a_fall_pays_only_the_fall():
    rng = np.random.default_rng(3)
    n, drift = 400, -0.6  # bps per horizon
    side = -np.ones(n)
    net = side * drift + rng.normal(0.0, 1.0, n)  # the fall, and noise: no edge
    _, raw = judge_trades(net, HOUR)
    assert raw.word == "pays"
    ci, judged = judge_trades(net, HOUR, drift=side * drift)
    assert judged.word == "inconclusive" and judged.drift_only
    assert ci[0] > 0  # the interval shown is still the net's: it did pay
    # the same trades with a real edge on top of the fall still pay
    _, edge = judge_trades(net + 0.5, HOUR, drift=side * drift)
    assert edge.word == "pays" and not edge.drift_only
    # longs through the same fall lose, and the drift does not make them anything else
    _, longs = judge_trades(-net, HOUR, drift=-side * drift)
    assert longs.word == "loses" and not longs.drift_only


def test_the_backtests_own_verdict_applies_the_same_rule():
    rng = np.random.default_rng(5)
    n = 300
    side = -np.ones(n)
    qty = np.full(n, 0.02)
    entry_mid = 60_000.0 + rng.normal(0, 1, n)
    move = -0.6e-4 * entry_mid + rng.normal(0, 6.0, n)  # a 0.6 bps fall per trade, noise
    exit_mid = entry_mid + move
    entry_px, exit_px = entry_mid, exit_mid  # at the mid: no spread, no fees
    fees = np.zeros(n)
    entry_ts = np.arange(n, dtype=np.int64) * 10 * SECOND
    exit_ts = entry_ts + 10 * SECOND
    assert exit_ts[-1] - entry_ts[0] >= MIN_SPAN_NS
    equity = np.cumsum(side * qty * move) + 1000.0
    args = (side, qty, entry_px, exit_px, entry_mid, exit_mid, fees, equity, 1000.0,
            10 * SECOND, entry_ts, exit_ts)
    assert summarize(*args)["verdict"] == "pays"
    judged = summarize(*args, drift_bps=-0.6)
    assert judged["verdict"] == "inconclusive" and judged["verdict_drift_only"]
    assert judged["drift_bps_per_horizon"] == -0.6


def test_the_p_value_and_the_interval_agree_on_which_side_of_zero():
    """The p-value is the interval's own t test: p < 2.5 % exactly when the 95 % interval's
    lower bound is above zero."""
    rng = np.random.default_rng(11)
    for _ in range(300):
        values = rng.normal(rng.uniform(-0.3, 0.5), 1.0, int(rng.integers(60, 400)))
        lo, _ = batch_means_interval(values)
        assert (pays_p_value(values) < (1 - LEVEL) / 2) == (lo > 0)


def test_holm_steps_down_and_stops_at_the_first_failure():
    # thresholds 0.025/4, 0.025/3, 0.025/2, 0.025
    assert holm_keeps([0.001, 0.01, 0.02, 0.5]) == [True, False, False, False]
    assert holm_keeps([0.004, 0.006, 0.012, 0.02]) == [True, True, True, True]
    # order does not matter, and a tiny p far down the list cannot rescue a stop
    assert holm_keeps([0.5, 0.02, 0.001, 0.007]) == [False, False, True, True]
    assert holm_keeps([]) == []


def test_a_verdict_keeps_a_pays_only_if_it_survives_the_correction():
    def row(word, p):
        return {"verdict": word, "p_value": p}

    rows = [row("pays", 1e-6), row("pays", 0.01), row("inconclusive", 0.3),
            row("no trades", None), row("loses", 0.999)]
    correct_for_many(rows)
    # four rows with an interval: 1e-6 <= 0.025/4 is kept, 0.01 > 0.025/3 is not
    assert [r["verdict"] for r in rows] == ["pays", "inconclusive", "inconclusive",
                                            "no trades", "loses"]
    assert [r["not_after_correction"] for r in rows] == [False, True, False, False, False]
    assert {r["family_size"] for r in rows} == {4}
