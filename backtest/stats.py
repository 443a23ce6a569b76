"""Figures of a backtest: cost decomposition, risk, break-even fee, significance.

Every function takes plain arrays, so the model and each comparison row are summarised by
the same code. Money is in the quote currency (USDT for BTCUSDT).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bookcast.schema import STATS_KEYS
from bookcast.timeutil import NS_PER_UNIT

# Crypto trades around the clock: a year is 365.25 days of snapshots, not 252 sessions.
YEAR_NS = int(365.25 * NS_PER_UNIT["d"])


def sharpe_ratio(equity: np.ndarray, interval_ns: int) -> float | None:
    """Annualised Sharpe of per-snapshot simple returns of the equity curve.

    Returns at the sampling interval scale by sqrt(periods per year), with periods per year
    = YEAR_NS / interval_ns; None when the curve never moves.
    """
    if equity.shape[0] < 3:
        return None
    returns = np.diff(equity) / equity[:-1]
    std = returns.std(ddof=1)
    if not np.isfinite(std) or std == 0.0:
        return None
    return float(returns.mean() / std * math.sqrt(YEAR_NS / interval_ns))


def max_drawdown(equity: np.ndarray) -> float:
    """Largest fall from a running peak, as a fraction of that peak (0.05 = 5 %)."""
    if equity.shape[0] == 0:
        return 0.0
    peak = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peak))


def block_bootstrap_ci(values: np.ndarray, rng: np.random.Generator, n_resamples: int = 2000,
                       level: float = 0.95, block: int | None = None) -> list[float] | None:
    """Moving-block bootstrap interval of the mean of chronologically ordered values.

    Blocks of consecutive trades keep their serial dependence (a regime of losses stays
    together); the block length defaults to n ** (1/3), the usual rate for the mean.
    """
    n = values.shape[0]
    if n < 2:
        return None
    block = block or max(1, round(n ** (1.0 / 3.0)))
    n_blocks = math.ceil(n / block)
    last = n - (n_blocks - 1) * block  # the final block is cut to make n values
    # Sums of every block (and of every cut final block) from one prefix sum, so each
    # resample costs n_blocks lookups instead of n copies.
    prefix = np.concatenate([[0.0], np.cumsum(values)])
    n_starts = n - block + 1
    full = prefix[block:block + n_starts] - prefix[:n_starts]
    cut = prefix[last:last + n_starts] - prefix[:n_starts]
    starts = rng.integers(0, n_starts, size=(n_resamples, n_blocks))
    means = (full[starts[:, :-1]].sum(axis=1) + cut[starts[:, -1]]) / n
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return [float(low), float(high)]


def break_even_fee_bps(edge_after_spread: float, traded_value: float) -> float | None:
    """The fee per side (bps) at which net PnL is zero; negative when no fee level pays."""
    if traded_value <= 0.0:
        return None
    return float(edge_after_spread / traded_value * 1e4)


def fee_curve(edge_after_spread: float, traded_value: float,
              levels_bps: list[float]) -> list[dict[str, float]]:
    """Net PnL at each per-side fee level, fills held fixed (fills do not depend on fees)."""
    return [{"fee_bps": float(f), "net_pnl": float(edge_after_spread - f * 1e-4 * traded_value)}
            for f in levels_bps]


def summarize(side: np.ndarray, qty: np.ndarray, entry_px: np.ndarray, exit_px: np.ndarray,
              entry_mid: np.ndarray, exit_mid: np.ndarray, fees: np.ndarray,
              equity: np.ndarray, capital: float, interval_ns: int,
              rng: np.random.Generator, n_resamples: int = 2000) -> dict[str, Any]:
    """The STATS_KEYS figures (and a few more) of one strategy's round trips."""
    gross = side * qty * (exit_mid - entry_mid)
    at_fill = side * qty * (exit_px - entry_px)
    net = at_fill - fees
    traded_value = float(np.sum(qty * (entry_px + exit_px)))
    gross_total = float(gross.sum())
    spread_total = float(gross_total - at_fill.sum())
    fees_total = float(fees.sum())
    wins = net[net > 0]
    losses = net[net <= 0]
    n = int(side.shape[0])
    stats: dict[str, Any] = {
        "n_trades": n,
        "gross_pnl_mid": gross_total,
        "spread_cost": spread_total,
        "fees": fees_total,
        "net_pnl": gross_total - spread_total - fees_total,
        "hit_rate": float(wins.shape[0] / n) if n else None,
        "sharpe": sharpe_ratio(equity, interval_ns),
        "max_drawdown": max_drawdown(equity),
        "break_even_fee_bps": break_even_fee_bps(gross_total - spread_total, traded_value),
        "net_pnl_per_trade_ci95": block_bootstrap_ci(net, rng, n_resamples),
        "net_pnl_per_trade": float(net.mean()) if n else None,
        "avg_win": float(wins.mean()) if wins.shape[0] else None,
        "avg_loss": float(losses.mean()) if losses.shape[0] else None,
        "traded_value": traded_value,
        "turnover": traded_value / capital if capital > 0 else None,
        "capital": capital,
    }
    assert set(STATS_KEYS) <= set(stats)
    return stats
