"""Evaluation: per-class metrics, break-even precision, probability skill (ranking and
calibration) and the plots of a run (confusion matrix, precision-recall for up/down,
calibration of the probabilities the rules read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.forecaster import CLASS_NAMES, CLASSES, to_index
from models.policy import macro_f1

ECE_BINS = 10


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

    `net_pnl_bps` sums the net return (`long_net`/`short_net`, after both fees) of every
    signal as if each were traded alone over the horizon; overlapping trades, book
    walking and the order of fills are the backtester's job.
    """
    # scikit-learn takes seconds to import: only commands that score load it
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

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


def expected_calibration_error(truth: np.ndarray, p: np.ndarray, bins: int = ECE_BINS
                               ) -> float | None:
    """Mean |observed frequency - mean probability| over equal-count bins of p, weighted
    by bin size (one class against the rest)."""
    if len(p) == 0:
        return None
    order = np.argsort(p, kind="stable")
    error = 0.0
    for part in np.array_split(order, min(bins, len(p))):
        error += len(part) * abs(float(truth[part].mean()) - float(p[part].mean()))
    return error / len(p)


def probability_skill(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Does the model rank moves, and do its probabilities mean what they say?

    Average precision of p_up for up rows and p_down for down rows next to their
    prevalence (what a model without skill scores); the Brier score (mean squared error
    of the three probabilities, 0 is perfect) and log-loss of the whole distribution;
    the expected calibration error of p_up and p_down; the mean probability next to the
    frequency; and the macro-F1 of the plain argmax. Columns of `proba` are down, flat, up.
    """
    from sklearn.metrics import average_precision_score

    out: dict[str, Any] = {"argmax_macro_f1": macro_f1(y, CLASSES[np.argmax(proba, axis=1)])}
    if len(y):
        onehot = np.eye(3)[to_index(y)]
        out["brier"] = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
        p_true = np.clip(proba[np.arange(len(y)), to_index(y)], 1e-12, 1.0)
        out["log_loss"] = float(-np.mean(np.log(p_true)))
    else:
        out["brier"] = out["log_loss"] = None
    for name, col, cls in (("up", 2, 1), ("down", 0, -1)):
        truth = y == cls
        out[f"prevalence_{name}"] = float(truth.mean()) if truth.size else None
        out[f"mean_p_{name}"] = float(proba[:, col].mean()) if truth.size else None
        out[f"average_precision_{name}"] = (float(average_precision_score(truth, proba[:, col]))
                                            if truth.any() else None)
        out[f"ece_{name}"] = expected_calibration_error(truth, proba[:, col])
    return out


def write_plots(run_dir: Path, y: np.ndarray, proba: np.ndarray, signal: np.ndarray,
                title: str) -> list[str]:
    """confusion.png, pr_curves.png, calibration.png for the test split; `proba` are the
    calibrated probabilities the decision rules read, `signal` the trading policy's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_curve

    written = []
    fig, ax = plt.subplots(figsize=(4.5, 4))
    cm = confusion_matrix(y, signal, labels=CLASSES)
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set_xticks(range(3), CLASS_NAMES)
    ax.set_yticks(range(3), CLASS_NAMES)
    ax.set_xlabel("signal (trading policy)")
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
    top = 0.05
    for cls, col in ((1, 2), (-1, 0)):
        truth = (y == cls).astype(int)
        if 0 < truth.sum() < len(truth):
            frac, mean_p = calibration_curve(truth, proba[:, col], n_bins=10,
                                             strategy="quantile")
            ece = expected_calibration_error(truth.astype(bool), proba[:, col])
            ax.plot(mean_p, frac, marker="o", label=f"{CLASS_NAMES[col]} (ECE {ece:.3f})")
            top = max(top, float(np.max(mean_p)), float(np.max(frac)))
    # Moves are rare: zoom on the range the probabilities use, diagonal included.
    top = min(1.0, 1.1 * top)
    ax.plot([0, top], [0, top], color="grey", ls="--")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("calibrated probability")
    ax.set_ylabel("observed frequency")
    ax.set_title(f"{title}: calibration (test)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "calibration.png", dpi=100)
    plt.close(fig)
    written.append("calibration.png")
    return written
