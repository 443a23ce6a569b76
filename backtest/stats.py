"""Figures of a backtest: cost decomposition, risk, break-even fee, significance.

Every function takes plain arrays, so the model and each comparison row are summarised by
the same code. Money is in the quote currency (USDT for BTCUSDT). The interval of the
mean net PnL per trade and the verdict word are `backtest.significance`'s.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from backtest.significance import judge_trades, trade_interval
from bookcast.schema import STATS_KEYS
from bookcast.timeutil import NS_PER_UNIT

DAY_NS = NS_PER_UNIT["d"]
# Crypto trades around the clock: a year is 365.25 days of snapshots, not 252 sessions.
YEAR_NS = int(365.25 * DAY_NS)


def sharpe_ratio(equity: np.ndarray, interval_ns: int, period_ns: int = DAY_NS
                 ) -> float | None:
    """Sharpe of per-snapshot simple returns of the equity curve, scaled to `period_ns`.

    Returns at the sampling interval scale by sqrt(period / interval); None when the
    curve never moves. Per day by default: an annual figure from minutes of returns
    multiplies their noise by sqrt(half a million), so `summarize` quotes one only with
    at least a day of data.
    """
    if equity.shape[0] < 3:
        return None
    returns = np.diff(equity)
    returns /= equity[:-1]  # in place: one curve-sized array, not two
    std = returns.std(ddof=1)
    if not np.isfinite(std) or std == 0.0:
        return None
    return float(returns.mean() / std * math.sqrt(period_ns / interval_ns))


def max_drawdown(equity: np.ndarray) -> float:
    """Largest fall from a running peak, as a fraction of that peak (0.05 = 5 %)."""
    if equity.shape[0] == 0:
        return 0.0
    fall = np.maximum.accumulate(equity)  # the running peak, then in place the fall
    np.divide(equity, fall, out=fall)
    np.subtract(1.0, fall, out=fall)
    return float(np.max(fall))


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
              entry_ts: np.ndarray, exit_ts: np.ndarray, drift_bps: float = 0.0,
              ) -> dict[str, Any]:
    """The STATS_KEYS figures (and a few more) of one strategy's round trips, in time
    order. The interval and the verdict word are null / `inconclusive` below the minimum
    sample (`backtest.significance`), and `pays` must beat `drift_bps` (the mid's mean move
    over the horizon in the period judged) given to each trade's side; Sharpe is per day,
    annualised only with a day."""
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
    span_ns = int(exit_ts.max() - entry_ts.min()) if n else 0
    curve_ns = int(max(equity.shape[0] - 1, 0) * interval_ns)
    ci, judgement = judge_trades(net, span_ns, drift=side * qty * entry_mid * drift_bps * 1e-4)
    mean = float(net.mean()) if n else None
    entry_value = qty * entry_px
    net_bps = net / entry_value * 1e4 if n else net
    stats: dict[str, Any] = {
        "n_trades": n,
        "gross_pnl_mid": gross_total,
        "spread_cost": spread_total,
        "fees": fees_total,
        "net_pnl": gross_total - spread_total - fees_total,
        "hit_rate": float(wins.shape[0] / n) if n else None,
        "sharpe": sharpe_ratio(equity, interval_ns, YEAR_NS) if curve_ns >= DAY_NS else None,
        "sharpe_per_day": sharpe_ratio(equity, interval_ns, DAY_NS),
        "sharpe_basis": (f"annualised ({curve_ns / DAY_NS:.1f} days of data)" if curve_ns >= DAY_NS
                         else f"per day, from {curve_ns / 3.6e12:.2f} h of data; no annual "
                              "figure under a day"),
        "max_drawdown": max_drawdown(equity),
        "break_even_fee_bps": break_even_fee_bps(gross_total - spread_total, traded_value),
        "net_pnl_per_trade_ci95": ci,
        "net_pnl_per_trade": mean,
        "net_bps_per_trade": float(net_bps.mean()) if n else None,
        "net_bps_per_trade_ci95": trade_interval(net_bps, span_ns),
        "span_ns": span_ns,
        "verdict": judgement.word,
        "verdict_drift_only": judgement.drift_only,
        "drift_bps_per_horizon": float(drift_bps),
        "verdict_needs": ({"trades": judgement.trades_needed, "hours": judgement.hours_needed,
                           "at_least": judgement.at_least}
                          if judgement.trades_needed is not None else None),
        "avg_win": float(wins.mean()) if wins.shape[0] else None,
        "avg_loss": float(losses.mean()) if losses.shape[0] else None,
        "traded_value": traded_value,
        "turnover": traded_value / capital if capital > 0 else None,
        "capital": capital,
    }
    assert set(STATS_KEYS) <= set(stats)
    return stats
