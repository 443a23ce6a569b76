"""The two policies every estimator is scored under, side by side.

- `ClassificationPolicy`: the forecasting view. Up where p_up clears a threshold, down
  where p_down does, both thresholds tuned for macro-F1 on the validation split.
- `TradingPolicy`: the trader's view. Trade only where the expected net return of the
  round trip, fees included, is above a margin >= 0 tuned for net PnL on validation. The
  cost gate is inside the edge: at a fee no move pays, nothing trades.

The expected net return of a long is sum_c p_c * (G[c] - 2f * F[c]), with G[c] the mean
gross return of a long (times its fill, for passive orders) on training rows of true
class c, F[c] the share of those rows whose order filled (1 for taker orders) and f the
fee per side. Fees enter arithmetically, so `at_fee` re-derives the decision at any
other fee exactly from the same fitted means; the margin is then tuned again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bookcast.errors import UserError
from models.forecaster import CLASSES

BPS = 1e-4
EXECUTIONS = ("taker", "maker")


def macro_f1(y: np.ndarray, signal: np.ndarray) -> float:
    """Macro-F1 over the three classes (scikit-learn's, zero_division=0, without its cost)."""
    scores = []
    for c in CLASSES:
        tp = np.count_nonzero((signal == c) & (y == c))
        denom = np.count_nonzero(signal == c) + np.count_nonzero(y == c)
        scores.append(2.0 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


@dataclass
class ClassificationPolicy:
    """Up if p_up >= theta_up, down if p_down >= theta_down (the larger excess wins when
    both clear), else flat; thresholds maximise validation macro-F1."""

    theta_up: float = 1.0
    theta_down: float = 1.0

    def signals(self, proba: np.ndarray) -> np.ndarray:
        up_by = proba[:, 2] - self.theta_up
        down_by = proba[:, 0] - self.theta_down
        up = (up_by >= 0) & ((down_by < 0) | (up_by >= down_by))
        down = (down_by >= 0) & ~up
        return np.where(up, 1, np.where(down, -1, 0)).astype(np.int8)

    @classmethod
    def tune(cls, proba_val: np.ndarray, y_val: np.ndarray) -> ClassificationPolicy:
        def grid(p: np.ndarray) -> np.ndarray:
            # Thresholds at the upper quantiles of the validation probabilities, plus one
            # above them all ("never"), so flat-only is always a candidate. A threshold at
            # or below the smallest probability fires on every row whatever the model says
            # (a constant forecast would become "always down"): not a candidate.
            never = np.array([1.0 + 1e-9])
            if not len(p):
                return never
            qs = np.quantile(p, np.linspace(0.5, 1.0, 26))
            return np.unique(np.concatenate([qs[qs > p.min()], never]))

        best = (-np.inf, 1.0 + 1e-9, 1.0 + 1e-9)
        for up in grid(proba_val[:, 2]):
            for down in grid(proba_val[:, 0]):
                score = macro_f1(y_val, cls(float(up), float(down)).signals(proba_val))
                if score > best[0] + 1e-12:
                    best = (score, float(up), float(down))
        return cls(best[1], best[2])

    def to_dict(self) -> dict[str, Any]:
        return {"theta_up": self.theta_up, "theta_down": self.theta_down,
                "tuned_for": "validation macro-F1"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassificationPolicy:
        return cls(float(data["theta_up"]), float(data["theta_down"]))


@dataclass
class TradingPolicy:
    """Trade where the expected net return beats zero by `margin_bps` (module docstring).

    `gross` and `fill` are (3 classes down/flat/up, 2 sides long/short).
    """

    gross: np.ndarray
    fill: np.ndarray
    fee_bps: float
    execution: str = "taker"
    margin_bps: float = 0.0
    validation: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, y_train: np.ndarray, long_gross: np.ndarray, short_gross: np.ndarray,
            fee_bps: float, execution: str = "taker", long_filled: np.ndarray | None = None,
            short_filled: np.ndarray | None = None) -> TradingPolicy:
        """Class-conditional means on training rows. For passive orders `*_gross` are the
        round trips of the rows whose order filled (NaN elsewhere) and `*_filled` say
        which; a taker order always fills."""
        if execution not in EXECUTIONS:
            raise UserError(f"Unknown execution '{execution}'; choose taker or maker.")
        gross = np.zeros((3, 2))
        fill = np.ones((3, 2))
        for side, (ret, filled) in enumerate(((long_gross, long_filled),
                                              (short_gross, short_filled))):
            filled = np.isfinite(ret) if filled is None else np.asarray(filled, bool)
            for k, c in enumerate(CLASSES):
                rows = y_train == c
                if not rows.any():
                    raise UserError("The training split has no row of a class; the trading "
                                    "policy cannot be fitted (see check_training_labels).")
                fill[k, side] = float(filled[rows].mean())
                gross[k, side] = float(np.where(filled[rows], np.nan_to_num(ret[rows]), 0.0)
                                       .mean())
        return cls(gross, fill, float(fee_bps), execution)

    def at_fee(self, fee_bps: float) -> TradingPolicy:
        """The same fitted means at another fee per side; the margin must be tuned again."""
        if fee_bps < 0:
            raise UserError(f"The fee {fee_bps} bps is negative; fees are zero or more.")
        return TradingPolicy(self.gross, self.fill, float(fee_bps), self.execution)

    def expected_net(self) -> np.ndarray:
        """(3, 2) expected net return per class and side at this fee."""
        return self.gross - 2.0 * self.fee_bps * BPS * self.fill

    def edges(self, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        net = proba @ self.expected_net()
        return net[:, 0], net[:, 1]

    def signals(self, proba: np.ndarray) -> np.ndarray:
        long_edge, short_edge = self.edges(proba)
        m = max(self.margin_bps, 0.0) * BPS  # the cost gate: never below zero
        go_long = (long_edge > m) & (long_edge >= short_edge)
        go_short = (short_edge > m) & ~go_long
        return np.where(go_long, 1, np.where(go_short, -1, 0)).astype(np.int8)

    def tune(self, proba_val: np.ndarray, long_net_val: np.ndarray,
             short_net_val: np.ndarray) -> TradingPolicy:
        """The margin that maximises validation net PnL (each signal traded alone, the
        net returns at this policy's fee and execution; an order that did not fill is 0).
        Ties go to the larger margin: fewer trades for the same money."""
        long_edge, short_edge = self.edges(proba_val)
        best_edge = np.maximum(long_edge, short_edge)
        positive = best_edge[best_edge > 0] / BPS
        grid = np.unique(np.concatenate([
            [0.0], np.quantile(positive, np.linspace(0, 1, 41)) if len(positive) else []]))
        grid = np.append(grid, grid[-1] + 1.0)  # above every edge: no trade at all
        long_net, short_net = np.nan_to_num(long_net_val), np.nan_to_num(short_net_val)
        results = []
        for margin in grid:
            self.margin_bps = float(margin)
            s = self.signals(proba_val)
            pnl = float(np.sum(np.where(s == 1, long_net, 0.0) + np.where(s == -1, short_net,
                                                                              0.0)))
            results.append((round(pnl / BPS, 9), float(margin), int(np.count_nonzero(s))))
        pnl_bps, margin, n = max(results, key=lambda r: (r[0], r[1]))
        self.margin_bps = margin
        self.validation = {"net_pnl_bps": pnl_bps, "n_trades": n}
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"execution": self.execution, "fee_bps": self.fee_bps,
                "margin_bps": self.margin_bps,
                "gross_bps_by_class": (self.gross / BPS).round(6).tolist(),
                "fill_share_by_class": self.fill.round(6).tolist(),
                "classes": CLASSES.tolist(), "sides": ["long", "short"],
                "tuned_for": "validation net PnL", "validation": self.validation}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TradingPolicy:
        return cls(np.asarray(data["gross_bps_by_class"], float) * BPS,
                   np.asarray(data["fill_share_by_class"], float), float(data["fee_bps"]),
                   data.get("execution", "taker"), float(data["margin_bps"]),
                   dict(data.get("validation", {})))
