"""How sure a figure is: the interval of the mean net PnL per trade, and the verdict word.

The interval is a batch-means t interval. The trades, in time order, are cut into
k = max(5, round(n^(1/3))) consecutive batches of near-equal size; the interval is
mean +- t(k-1, 0.975) * sd(batch means) / sqrt(k). Serial dependence stays inside the
batches (a run of losses is one batch's bad mean, not many independent draws), and the
t quantile with k - 1 degrees of freedom pays for estimating the spread from few numbers.
Its coverage was measured by simulation (tests/backtest/test_coverage.py, the table in
docs/backtest.md): at MIN_TRADES trades it covers the true mean at least 93 % of the time
for independent, AR(0.5)-autocorrelated and heavy-tailed (Student t, 3 d.f.) PnL; the
moving-block bootstrap it replaces covered 84-88 % (independent) and 75-88 % (AR 0.5).

Below MIN_TRADES trades, or when the trades span less than MIN_SPAN_NS (a burst in one
minute says little about the hours around it), no interval is given and the word is
`inconclusive`, with the sample a verdict would need: at least the minimum, more when the
interval the trades would have (not shown) says the minimum would not decide it.

`pays` also needs the strategy to beat the market's drift: each trade's net minus what
the mid's mean move over the horizon (across the period judged) gave its side must have a
lower bound above zero too. A forecast that is short all through a falling market earns
the fall, not an edge; its row is `inconclusive`, flagged `drift_only` (on the no-signal
simulation one seed in five said `pays` for exactly that before this rule).

A verdict judges many rows at once (strategies x horizons x fees x executions), and at
95 % one row in forty clears zero by chance. So `bookcast verdict` keeps a `pays` only
where it survives Holm's step-down correction over every row of the symbol that has an
interval (`holm_keeps`, family-wise error 2.5 % one-sided, the interval's own side), each
row's p-value the batch-means t test behind its `pays` (`pays_p_value`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

MIN_TRADES = 50
MIN_SPAN_NS = 15 * 60 * 1_000_000_000
MIN_BATCHES = 5
LEVEL = 0.95
HOUR_NS = 3600 * 1_000_000_000

VERDICTS = ("pays", "loses", "inconclusive", "no trades")


def batch_count(n: int) -> int:
    return max(MIN_BATCHES, round(n ** (1.0 / 3.0)))


def batch_means_interval(values: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """The batch-means t interval of the mean of chronologically ordered values (module
    docstring); None with fewer values than batches."""
    from scipy import stats

    values = np.asarray(values, np.float64)
    means = _batch_means(values)
    if means is None:
        return None
    k = means.shape[0]
    half = stats.t.ppf(0.5 + level / 2.0, k - 1) * means.std(ddof=1) / math.sqrt(k)
    centre = float(values.mean())
    return [centre - float(half), centre + float(half)]


def _batch_means(values: np.ndarray) -> np.ndarray | None:
    """The means of the `batch_count` consecutive near-equal batches; None with fewer
    values than batches."""
    n = values.shape[0]
    k = batch_count(n)
    if n < k:
        return None
    edges = np.round(np.linspace(0, n, k + 1)).astype(np.int64)
    return np.add.reduceat(values, edges[:-1]) / np.diff(edges)


def pays_p_value(values: np.ndarray) -> float | None:
    """One-sided p-value of "the mean is not above zero" from the batch-means t statistic
    the interval is built on (module docstring); None with fewer values than batches."""
    from scipy import stats

    values = np.asarray(values, np.float64)
    means = _batch_means(values)
    if means is None:
        return None
    k = means.shape[0]
    se = means.std(ddof=1) / math.sqrt(k)
    mean = float(values.mean())
    if not se > 0:
        return 0.0 if mean > 0 else 1.0
    return float(stats.t.sf(mean / se, k - 1))


def holm_keeps(p_values: list[float], alpha: float = (1.0 - LEVEL) / 2.0) -> list[bool]:
    """Holm's step-down: which hypotheses stay rejected with family-wise error `alpha`."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    keep = [False] * len(p_values)
    m = len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (m - rank):
            break
        keep[i] = True
    return keep


def enough_sample(n_trades: int, span_ns: int) -> bool:
    """The smallest sample for which the interval's coverage was measured."""
    return n_trades >= MIN_TRADES and span_ns >= MIN_SPAN_NS


def trade_interval(values: np.ndarray, span_ns: int) -> list[float] | None:
    """The interval of the mean per trade, or None below the minimum sample."""
    values = np.asarray(values, np.float64)
    if not enough_sample(values.shape[0], span_ns):
        return None
    return batch_means_interval(values)


@dataclass(frozen=True)
class Judgement:
    """The verdict word and, when the sample cannot decide, what would: the number of
    trades and the hours of trading (at the observed trade rate) a verdict would need."""

    word: str
    trades_needed: int | None = None
    hours_needed: float | None = None
    # True when the need is only the minimum sample: too few trades to say whether the
    # minimum would settle it, so it is a lower bound, not an estimate.
    at_least: bool = False
    # True when the trades paid, but no more than the market's drift paid their sides.
    drift_only: bool = False
    # One-sided p-value of "the mean is not above zero" behind the word (the larger of the
    # net's and the excess over the drift's), None below the minimum sample.
    p_value: float | None = None

    def need_text(self) -> str:
        if self.trades_needed is None:
            return ""
        hours = "" if self.hours_needed is None else f" (about {self.hours_needed:,.1f} h)"
        amount = "at least " if self.at_least else "~"
        return f"needs {amount}{self.trades_needed:,} trades{hours}"


def judge(n_trades: int, span_ns: int, mean: float | None, ci: list[float] | None,
          provisional: list[float] | None = None) -> Judgement:
    """`pays` needs the minimum sample and a lower bound above zero, `loses` an upper
    bound below zero; otherwise `inconclusive` (or `no trades`). Below the minimum
    sample, `provisional` (the interval the trades would have, not shown) says whether
    the minimum would be enough, if the mean and the spread held."""
    if n_trades == 0:
        return Judgement("no trades")
    rate = n_trades / span_ns if span_ns > 0 else None  # trades per ns

    def hours_for(trades: int) -> float | None:
        if rate is None:
            return None
        return max(trades / rate, MIN_SPAN_NS) / HOUR_NS

    if ci is None or not enough_sample(n_trades, span_ns):
        estimate = _trades_to_decide(n_trades, mean, provisional)
        trades = max(MIN_TRADES, n_trades, estimate)
        return Judgement("inconclusive", trades, hours_for(trades), at_least=estimate == 0)
    if ci[0] > 0:
        return Judgement("pays")
    if ci[1] < 0:
        return Judgement("loses")
    trades = _trades_to_decide(n_trades, mean, ci)
    if trades == 0:
        return Judgement("inconclusive")
    return Judgement("inconclusive", trades, hours_for(trades))


def _trades_to_decide(n_trades: int, mean: float | None, ci: list[float] | None) -> int:
    """If the mean and the spread held, the interval narrows as 1/sqrt(n): the trades at
    which its half-width equals |mean| (0 when that cannot be said)."""
    if ci is None or mean is None or mean == 0:
        return 0
    half = (ci[1] - ci[0]) / 2.0
    if not half > 0:
        return 0
    return math.ceil(n_trades * (half / abs(mean)) ** 2)


def judge_trades(values: np.ndarray, span_ns: int, drift: np.ndarray | None = None,
                 ) -> tuple[list[float] | None, Judgement]:
    """The interval of the mean of chronologically ordered per-trade values (None below
    the minimum sample) and the verdict it gives. `drift`, per trade in the units of
    `values`, is what the market's mean move gave that trade's side: a `pays` that does
    not survive subtracting it is `inconclusive` (`drift_only`), with the trades a verdict
    on the edge beyond the drift would need."""
    values = np.asarray(values, np.float64)
    n = int(values.shape[0])
    if n == 0:
        return None, judge(0, span_ns, None, None)
    ci = trade_interval(values, span_ns)
    provisional = batch_means_interval(values) if ci is None else None
    judgement = judge(n, span_ns, float(values.mean()), ci, provisional)
    p_value = None if ci is None else pays_p_value(values)
    if judgement.word == "pays" and drift is not None:
        excess = values - np.asarray(drift, np.float64)
        beyond = judge(n, span_ns, float(excess.mean()), trade_interval(excess, span_ns))
        if beyond.word != "pays":
            judgement = replace(beyond, word="inconclusive", drift_only=True)
        p_value = max(p_value, pays_p_value(excess))
    return ci, replace(judgement, p_value=p_value)
