"""The 95 % interval of the mean net PnL per trade covers the true mean as often as it says,
at the smallest sample for which the product gives a verdict.

Per-trade PnL is simulated with a known mean: independent normal, AR(0.5)-autocorrelated
(a run of wins, then of losses, as regimes give), and heavy-tailed (Student t, 3 degrees
of freedom: a finite variance, an infinite fourth moment), alone and combined. The short
version runs in `make test`; the `slow` one prints the coverage table of docs/backtest.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtest.significance import (
    MIN_SPAN_NS,
    MIN_TRADES,
    batch_means_interval,
    judge,
    judge_trades,
    trade_interval,
)

REQUIRED = 0.93


def pnl(kind: str, n: int, reps: int, rng: np.random.Generator) -> np.ndarray:
    """(reps, n) PnL series with true mean 0."""
    if kind == "independent":
        return rng.normal(0.0, 1.0, (reps, n))
    heavy = kind.endswith("heavy-tailed")
    shocks = (rng.standard_t(3, (reps, n + 50)) if heavy else rng.normal(0.0, 1.0, (reps, n + 50)))
    if kind == "heavy-tailed":
        return shocks[:, :n]
    out = np.empty_like(shocks)
    out[:, 0] = shocks[:, 0]
    for t in range(1, shocks.shape[1]):  # AR(0.5), 50 steps of burn-in
        out[:, t] = 0.5 * out[:, t - 1] + shocks[:, t]
    return out[:, 50:]


def coverage(kind: str, n: int, reps: int, seed: int) -> float:
    series = pnl(kind, n, reps, np.random.default_rng(seed))
    hits = 0
    for values in series:
        low, high = batch_means_interval(values)
        hits += low <= 0.0 <= high
    return hits / reps


@pytest.mark.parametrize("kind", ["independent", "AR(0.5)", "heavy-tailed"])
def test_the_interval_covers_at_least_93_percent_at_the_minimum_sample(kind):
    assert coverage(kind, MIN_TRADES, 2000, seed=11) >= REQUIRED


def test_below_the_minimum_sample_there_is_no_interval_and_the_word_is_inconclusive():
    values = np.random.default_rng(0).normal(5.0, 1.0, MIN_TRADES - 1)  # clearly positive
    span = 2 * MIN_SPAN_NS
    assert trade_interval(values, span) is None
    judged = judge(len(values), span, float(values.mean()), None)
    assert judged.word == "inconclusive" and judged.trades_needed == MIN_TRADES
    # ...and a burst of trades inside a few minutes is not a verdict either
    many = np.random.default_rng(1).normal(5.0, 1.0, 500)
    assert trade_interval(many, MIN_SPAN_NS // 3) is None
    judged = judge(500, MIN_SPAN_NS // 3, 5.0, None)
    assert judged.word == "inconclusive"
    assert judged.hours_needed == pytest.approx(MIN_SPAN_NS / 3.6e12)


def test_below_the_minimum_sample_the_need_is_what_the_trades_interval_says():
    """40 trades of a small edge: 50 would not decide it; the need says how many would,
    from the interval those 40 trades would have (not shown), as above the minimum."""
    values = np.random.default_rng(4).normal(0.1, 1.0, 40)
    span = 2 * MIN_SPAN_NS
    ci, judged = judge_trades(values, span)
    assert ci is None and judged.word == "inconclusive"
    low, high = batch_means_interval(values)
    expected = math.ceil(40 * ((high - low) / 2 / abs(values.mean())) ** 2)
    assert judged.trades_needed == expected > 10 * MIN_TRADES
    assert judged.hours_needed == pytest.approx(expected * span / 40 / 3.6e12)
    assert not judged.at_least and "needs ~" in judged.need_text()
    # a clear edge needs no more than the minimum
    clear = np.random.default_rng(5).normal(5.0, 1.0, 40)
    assert judge_trades(clear, span)[1].trades_needed == MIN_TRADES
    # three trades say nothing about the spread: the minimum is a lower bound
    few = judge_trades(np.array([1.0, -0.5, 2.0]), span)[1]
    assert few.at_least and few.trades_needed == MIN_TRADES
    assert f"needs at least {MIN_TRADES} trades" in few.need_text()


def test_the_verdict_word_follows_the_interval():
    span = 4 * MIN_SPAN_NS
    assert judge(MIN_TRADES, span, 1.0, [0.1, 2.0]).word == "pays"
    assert judge(MIN_TRADES, span, -1.0, [-2.0, -0.1]).word == "loses"
    undecided = judge(100, span, 0.5, [-0.5, 1.5])
    assert undecided.word == "inconclusive"
    assert undecided.trades_needed == math.ceil(100 * (1.0 / 0.5) ** 2)  # half-width / mean
    assert undecided.hours_needed == pytest.approx(400 * span / 100 / 3.6e12)
    assert judge(0, 0, None, None).word == "no trades"


@pytest.mark.slow
def test_coverage_table_for_the_docs():
    kinds = ["independent", "AR(0.5)", "heavy-tailed", "AR(0.5) heavy-tailed"]
    print("\n| trades | " + " | ".join(kinds) + " |")
    print("|---:|" + "---:|" * len(kinds))
    for n in (20, 30, MIN_TRADES, 100, 200):
        row = [coverage(kind, n, 4000, seed=n) for kind in kinds]
        print(f"| {n} | " + " | ".join(f"{c:.3f}" for c in row) + " |")
        if n >= MIN_TRADES:
            assert min(row) >= REQUIRED
