"""Baselines reported beside every model: always-flat, the L1-imbalance threshold rule,
and logistic regression. Each has the scikit-learn surface (fit, predict_proba).

The imbalance baselines read the raw book matrix (features.dataset layout) and compute
imbalances from sizes only, so scaling every size by a constant changes nothing.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from features.dataset import ASK_SZ, BID_SZ

CLASSES = np.array([-1, 0, 1])


def cumulative_imbalance(book: np.ndarray, depth: int) -> np.ndarray:
    """(bid size - ask size) / (bid size + ask size) over levels 1..depth, in [-1, 1]."""
    bid = np.nansum(book[:, BID_SZ:4 * depth:4], axis=1)
    ask = np.nansum(book[:, ASK_SZ:4 * depth:4], axis=1)
    total = bid + ask
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (bid - ask) / total, 0.0)


def book_imbalances(book: np.ndarray, depths: tuple[int, ...] = (1, 2, 3, 5, 10)) -> np.ndarray:
    levels = book.shape[1] // 4
    return np.column_stack([cumulative_imbalance(book, min(d, levels)) for d in depths])


def to_index(y: np.ndarray) -> np.ndarray:
    """Labels -1/0/+1 to class indices 0/1/2 (down, flat, up)."""
    return np.asarray(y, dtype=np.int64) + 1


class AlwaysFlat:
    """Never trades; its probabilities are the training class frequencies."""

    input_kind = "book"
    own_decision_rule = True

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> AlwaysFlat:
        counts = np.bincount(to_index(y), minlength=3) + 1.0
        self.prior_ = counts / counts.sum()
        self.classes_ = CLASSES
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.tile(self.prior_, (len(X), 1))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.zeros(len(X), dtype=np.int8)


class ImbalanceRule:
    """Up if the level-1 imbalance >= theta_up, down if <= theta_down, else flat.

    Thresholds maximise macro-F1 on the validation split. Probabilities come from
    isotonic fits on training rows (p_up rising, p_down falling with imbalance), so
    more size at the best bid can never lower p_up.
    """

    input_kind = "book"
    own_decision_rule = True

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> ImbalanceRule:
        imb = cumulative_imbalance(X, 1)
        y = np.asarray(y)
        self.up_ = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=0, y_max=1)
        self.down_ = IsotonicRegression(increasing=False, out_of_bounds="clip", y_min=0, y_max=1)
        self.up_.fit(imb, (y == 1).astype(float))
        self.down_.fit(imb, (y == -1).astype(float))
        if X_val is None or y_val is None:
            X_val, y_val = X, y
        self.theta_down_, self.theta_up_ = self._tune(cumulative_imbalance(X_val, 1),
                                                      np.asarray(y_val))
        self.classes_ = CLASSES
        return self

    @staticmethod
    def _tune(imb: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        grid = np.unique(np.quantile(np.abs(imb), np.linspace(0.5, 1.0, 26)))
        # The up and down thresholds act on disjoint rows (imb >= up > 0 > down >= imb), so
        # each side's F1 is tuned alone; flat's F1 depends on both and is scored jointly.
        best = (-np.inf, -1.0, 1.0)
        for up in grid:
            for down in -grid:
                signal = np.where(imb >= up, 1, np.where(imb <= down, -1, 0))
                score = _macro_f1(y, signal)
                if score > best[0] + 1e-12:
                    best = (score, float(down), float(up))
        return best[1], best[2]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        imb = cumulative_imbalance(X, 1)
        up, down = self.up_.predict(imb), self.down_.predict(imb)
        total = np.maximum(up + down, 1.0)  # only rescale when the two exceed 1
        up, down = up / total, down / total
        return np.column_stack([down, 1.0 - up - down, up])

    def predict(self, X: np.ndarray) -> np.ndarray:
        imb = cumulative_imbalance(X, 1)
        return np.where(imb >= self.theta_up_, 1,
                        np.where(imb <= self.theta_down_, -1, 0)).astype(np.int8)


class LogisticForecaster:
    """Multinomial logistic regression with balanced class weights.

    `input_kind='book'` is the baseline on book imbalances (levels 1, 2, 3, 5, 10);
    `input_kind='features'` is `--model logistic` on all engineered features.
    """

    own_decision_rule = False

    def __init__(self, input_kind: str = "book", seed: int = 0) -> None:
        self.input_kind = input_kind
        self.seed = seed

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        return book_imbalances(X) if self.input_kind == "book" else X

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> LogisticForecaster:
        self.pipeline_ = make_pipeline(
            StandardScaler(),
            LogisticRegression(class_weight="balanced", max_iter=500, random_state=self.seed))
        self.pipeline_.fit(self._inputs(X), np.asarray(y))
        # Undo the balanced weighting so the probabilities estimate the true frequencies.
        counts = np.bincount(to_index(y), minlength=3).astype(float)
        self.prior_ratio_ = counts / max(counts.sum(), 1.0) * 3.0
        self.classes_ = CLASSES
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        raw = self.pipeline_.predict_proba(self._inputs(X))
        full = np.zeros((len(raw), 3))
        full[:, to_index(self.pipeline_.classes_)] = raw
        return correct_priors(full, self.prior_ratio_)


def _macro_f1(y: np.ndarray, signal: np.ndarray) -> float:
    """Macro-F1 over the three classes (fast path of sklearn's, same zero_division=0)."""
    scores = []
    for c in CLASSES:
        tp = np.count_nonzero((signal == c) & (y == c))
        denom = np.count_nonzero(signal == c) + np.count_nonzero(y == c)
        scores.append(2.0 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def correct_priors(proba: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Multiply class probabilities by (true prior / training-time prior) and renormalise:
    the standard correction after class weights or a balanced sampler."""
    adjusted = proba * ratio
    total = adjusted.sum(axis=1, keepdims=True)
    return np.where(total > 0, adjusted / np.where(total > 0, total, 1.0), 1.0 / 3.0)
