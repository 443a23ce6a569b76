"""Evaluation: the fee-aware decision rule, per-class metrics, break-even precision and
the plots of a run (confusion matrix, precision-recall for up/down, calibration)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

CLASSES = np.array([-1, 0, 1])
CLASS_NAMES = ("down", "flat", "up")


@dataclass
class EdgeDecisionRule:
    """Trade only where the expected net edge exceeds a margin >= 0.

    The expected net return of a long is sum_c p_c * m_long[c], where m_long[c] is the
    mean net return (after spread and both fees, as the labels define it) of a long on
    training rows of true class c; likewise for a short. Costs are therefore inside the
    edge: a positive edge means the move is expected to pay the round trip. The margin
    (bps) is tuned on validation for macro-F1 and can only make the rule stricter.
    """

    mean_long: np.ndarray
    mean_short: np.ndarray
    margin: float = 0.0

    @classmethod
    def fit(cls, y_train: np.ndarray, long_net: np.ndarray,
            short_net: np.ndarray) -> EdgeDecisionRule:
        def by_class(ret: np.ndarray) -> np.ndarray:
            means = [np.nanmean(ret[y_train == c]) if np.any(y_train == c) else np.nan
                     for c in CLASSES]
            return np.nan_to_num(np.asarray(means, dtype=float), nan=-1.0)
        return cls(by_class(long_net), by_class(short_net))

    def edges(self, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return proba @ self.mean_long, proba @ self.mean_short

    def signals(self, proba: np.ndarray) -> np.ndarray:
        long_edge, short_edge = self.edges(proba)
        m = self.margin / 1e4
        go_long = (long_edge > m) & (long_edge >= short_edge)
        go_short = (short_edge > m) & ~go_long
        return np.where(go_long, 1, np.where(go_short, -1, 0)).astype(np.int8)

    def tune(self, proba_val: np.ndarray, y_val: np.ndarray) -> EdgeDecisionRule:
        long_edge, short_edge = self.edges(proba_val)
        best_edge = np.maximum(long_edge, short_edge)
        positive = best_edge[best_edge > 0] * 1e4
        grid = np.unique(np.concatenate([[0.0], np.quantile(positive, np.linspace(0, 0.99, 40))
                                         if len(positive) else []]))
        scores = []
        for margin in grid:
            self.margin = float(margin)
            scores.append(macro_f1(y_val, self.signals(proba_val)))
        # Ties go to the larger margin: fewer trades for the same score.
        best = max(range(len(grid)), key=lambda i: (round(scores[i], 12), grid[i]))
        self.margin = float(grid[best])
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"mean_long_net_bps_by_class": (self.mean_long * 1e4).round(4).tolist(),
                "mean_short_net_bps_by_class": (self.mean_short * 1e4).round(4).tolist(),
                "margin_bps": self.margin, "classes": CLASSES.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EdgeDecisionRule:
        return cls(np.asarray(data["mean_long_net_bps_by_class"]) / 1e4,
                   np.asarray(data["mean_short_net_bps_by_class"]) / 1e4,
                   float(data["margin_bps"]))


def macro_f1(y: np.ndarray, signal: np.ndarray) -> float:
    return float(f1_score(y, signal, labels=CLASSES, average="macro", zero_division=0))


def break_even(signal: np.ndarray, long_net: np.ndarray, short_net: np.ndarray,
               side: int) -> dict[str, float | int | None]:
    """Precision a signal on `side` needs to pay its costs, beside the precision it got.

    With W the mean net gain of the winning trades and L the mean net loss of the
    losing ones, a hit rate p breaks even when p*W = (1-p)*L, so p* = L / (W + L).
    Computed over the rows where the signal fired; where it never fired, over every
    row (what any trade on that side would need). Net returns include both fees.
    """
    ret = long_net if side == 1 else short_net
    fired = signal == side
    rows = fired if fired.any() else np.ones_like(fired)
    r = ret[rows]
    r = r[np.isfinite(r)]
    wins, losses = r[r > 0], -r[r <= 0]
    w = float(wins.mean()) if len(wins) else 0.0
    loss = float(losses.mean()) if len(losses) else 0.0
    needed = loss / (w + loss) if (w + loss) > 0 else None
    achieved = float((r > 0).mean()) if fired.any() and len(r) else None
    return {"n_signals": int(fired.sum()), "break_even_precision": needed,
            "achieved_precision": achieved, "mean_win_bps": w * 1e4, "mean_loss_bps": loss * 1e4,
            "mean_net_bps": float(r.mean() * 1e4) if fired.any() and len(r) else None,
            "sum_net_bps": float(r.sum() * 1e4) if fired.any() else 0.0}


def class_report(y: np.ndarray, signal: np.ndarray, long_net: np.ndarray,
                 short_net: np.ndarray) -> dict[str, Any]:
    """macro-F1, per-class precision/recall/F1, confusion matrix and break-even figures.

    `net_pnl_bps` sums the net return of every signal as if each were traded alone over
    the horizon; overlapping trades and latency are the backtester's job.
    """
    precision, recall, f1, support = precision_recall_fscore_support(
        y, signal, labels=CLASSES, zero_division=0)
    up = break_even(signal, long_net, short_net, 1)
    down = break_even(signal, long_net, short_net, -1)
    return {
        "macro_f1": macro_f1(y, signal),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f),
                             "support": int(s)}
                      for name, p, r, f, s in zip(CLASS_NAMES, precision, recall, f1, support,
                                                  strict=True)},
        "confusion": confusion_matrix(y, signal, labels=CLASSES).tolist(),
        "break_even": {"up": up, "down": down},
        "n_trades": up["n_signals"] + down["n_signals"],
        "net_pnl_bps": up["sum_net_bps"] + down["sum_net_bps"],
    }


def probability_skill(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Does the model rank moves at all, whatever its trading rule does with them?

    Average precision of p_up for up rows and p_down for down rows next to their
    prevalence (what a model without skill scores), and the macro-F1 of the plain argmax.
    Columns of `proba` are down, flat, up.
    """
    from sklearn.metrics import average_precision_score

    out: dict[str, Any] = {"argmax_macro_f1": macro_f1(y, CLASSES[np.argmax(proba, axis=1)])}
    for name, col, cls in (("up", 2, 1), ("down", 0, -1)):
        truth = y == cls
        out[f"prevalence_{name}"] = float(truth.mean()) if truth.size else None
        out[f"average_precision_{name}"] = (float(average_precision_score(truth, proba[:, col]))
                                            if truth.any() else None)
    return out


def write_plots(run_dir: Path, y: np.ndarray, proba: np.ndarray, signal: np.ndarray,
                title: str) -> list[str]:
    """confusion.png, pr_curves.png, calibration.png for the test split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import average_precision_score, precision_recall_curve

    written = []
    fig, ax = plt.subplots(figsize=(4.5, 4))
    cm = confusion_matrix(y, signal, labels=CLASSES)
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set_xticks(range(3), CLASS_NAMES)
    ax.set_yticks(range(3), CLASS_NAMES)
    ax.set_xlabel("signal")
    ax.set_ylabel("label")
    ax.set_title(f"{title}: confusion (test)")
    fig.tight_layout()
    fig.savefig(run_dir / "confusion.png", dpi=100)
    plt.close(fig)
    written.append("confusion.png")

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, cls, col in ((axes[0], 1, 2), (axes[1], -1, 0)):
        truth = (y == cls).astype(int)
        name = CLASS_NAMES[col]
        if truth.any():
            p, r, _ = precision_recall_curve(truth, proba[:, col])
            ax.plot(r, p, label=f"AP {average_precision_score(truth, proba[:, col]):.3f}")
        ax.axhline(truth.mean(), color="grey", ls="--", label=f"base rate {truth.mean():.3f}")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"{title}: {name} (test)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "pr_curves.png", dpi=100)
    plt.close(fig)
    written.append("pr_curves.png")

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], color="grey", ls="--")
    for cls, col in ((1, 2), (-1, 0)):
        truth = (y == cls).astype(int)
        if 0 < truth.sum() < len(truth):
            frac, mean_p = calibration_curve(truth, proba[:, col], n_bins=10,
                                             strategy="quantile")
            ax.plot(mean_p, frac, marker="o", label=CLASS_NAMES[col])
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title(f"{title}: calibration (test)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "calibration.png", dpi=100)
    plt.close(fig)
    written.append("calibration.png")
    return written
