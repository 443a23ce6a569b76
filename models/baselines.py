"""Baselines reported beside every model: always-flat, the L1-imbalance rule, and logistic
regression. Each is a `Forecaster` (fit, predict_proba) and is scored under the same two
policies as the models (`models.policy`), so none is judged by rules the others escape.

The imbalance baselines read the raw book matrix (models.dataset layout) and compute
imbalances from sizes only, so scaling every size by a constant changes nothing.
"""

from __future__ import annotations

import numpy as np

from models.dataset import ASK_SZ, BID_SZ
from models.forecaster import CLASSES, class_frequencies, to_index


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


class AlwaysFlat:
    """Never trades: its probabilities are the training class frequencies, which no
    threshold tuned for macro-F1 or net PnL turns into a signal."""

    input_kind = "book"

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> AlwaysFlat:
        self.prior_ = class_frequencies(y)
        self.classes_ = CLASSES
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.tile(self.prior_, (len(X), 1))


class ImbalanceRule:
    """The L1-imbalance rule: p_up rises and p_down falls with the level-1 imbalance.

    Probabilities come from isotonic fits on training rows (so more size at the best bid
    can never lower p_up); thresholding them, as both policies do, is thresholding the
    imbalance itself.
    """

    input_kind = "book"

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> ImbalanceRule:
        from sklearn.isotonic import IsotonicRegression  # scikit-learn loads in seconds

        imb = cumulative_imbalance(X, 1)
        y = np.asarray(y)
        self.up_ = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=0, y_max=1)
        self.down_ = IsotonicRegression(increasing=False, out_of_bounds="clip", y_min=0, y_max=1)
        self.up_.fit(imb, (y == 1).astype(float))
        self.down_.fit(imb, (y == -1).astype(float))
        self.classes_ = CLASSES
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        imb = cumulative_imbalance(X, 1)
        up, down = self.up_.predict(imb), self.down_.predict(imb)
        total = np.maximum(up + down, 1.0)  # only rescale when the two exceed 1
        up, down = up / total, down / total
        return np.column_stack([down, 1.0 - up - down, up])


class LogisticForecaster:
    """Multinomial logistic regression on log-loss, unweighted: its probabilities estimate
    the class frequencies directly, so nothing has to be undone before calibration.

    `input_kind='book'` is the baseline on book imbalances (levels 1, 2, 3, 5, 10);
    `input_kind='features'` is `--model logistic` on all engineered features.
    """

    def __init__(self, input_kind: str = "book", seed: int = 0) -> None:
        self.input_kind = input_kind
        self.seed = seed

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        return book_imbalances(X) if self.input_kind == "book" else X

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> LogisticForecaster:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.pipeline_ = make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=500, random_state=self.seed))
        self.pipeline_.fit(self._inputs(X), np.asarray(y))
        self.classes_ = CLASSES
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        raw = self.pipeline_.predict_proba(self._inputs(X))
        full = np.zeros((len(raw), 3))
        full[:, to_index(self.pipeline_.classes_)] = raw
        return full
