"""The estimator surface every model and baseline implements, and what turns its output
into probabilities a decision rule may threshold.

- `Forecaster`: scikit-learn's surface, `fit(X, y, X_val, y_val)` and `predict_proba(X)`
  with plain arrays (X may be a `SequenceView` of book windows, which indexes like one)
  and columns down, flat, up; `input_kind` names the inputs it reads.
- `training_prior_ratio`: the exact undo of the one reweighting a run may use (class
  weights in the loss, a class-balanced sampler, or the product of both).
- `Calibration`: temperature and class-bias scaling fitted on validation log-loss, so
  p_up means what it says before any rule thresholds it. An estimator whose
  probabilities carry a shape constraint (monotone LightGBM) calibrates its own parts
  monotonically and says so with `calibrates_itself`.
- `check_training_labels`: a class missing or too few rows is one sentence, not a
  traceback from deep inside an estimator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bookcast.errors import UserError

CLASSES = np.array([-1, 0, 1])
CLASS_NAMES = ("down", "flat", "up")
MIN_TRAINING_ROWS = 30
MIN_CLASS_ROWS = 2


@runtime_checkable
class Forecaster(Protocol):
    """What the pipeline, the runs and the backtest know of an estimator."""

    input_kind: str  # "book", "features", "raw_features" or "sequence" (models.pipeline)

    def fit(self, X: Any, y: np.ndarray, X_val: Any = None,
            y_val: np.ndarray | None = None) -> Forecaster: ...

    def predict_proba(self, X: Any) -> np.ndarray: ...


def to_index(y: np.ndarray) -> np.ndarray:
    """Labels -1/0/+1 to class indices 0/1/2 (down, flat, up)."""
    return np.asarray(y, dtype=np.int64) + 1


def class_frequencies(y: np.ndarray) -> np.ndarray:
    counts = np.bincount(to_index(y), minlength=3).astype(float)
    return counts / max(counts.sum(), 1.0)


def balanced_class_weights(y_index: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """n / (k * count_c), as scikit-learn's 'balanced'; absent classes get weight 1."""
    counts = np.bincount(y_index, minlength=n_classes).astype(float)
    return np.where(counts > 0, len(y_index) / (n_classes * np.maximum(counts, 1)), 1.0)


def training_prior_ratio(y: np.ndarray, loss_weights: np.ndarray | None,
                         balanced_sampler: bool) -> np.ndarray:
    """Factor per class that maps a model's probabilities back to the true frequencies.

    A proper loss trained on rows of class c drawn with frequency s_c and weighted w_c
    estimates probabilities proportional to p_c * r_c with r_c = s_c * w_c / p_c (p_c the
    true training frequency). Multiplying by p_c / (s_c * w_c) and renormalising undoes
    it exactly, whichever of the two reweightings (or both) a run used.
    """
    prior = class_frequencies(y)
    drawn = np.full(3, 1.0 / 3.0) if balanced_sampler else prior
    weights = np.ones(3) if loss_weights is None else np.asarray(loss_weights, float)
    effective = drawn * weights
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(effective > 0, prior / effective, 1.0)
    return ratio / ratio.max()


def correct_priors(proba: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Multiply class probabilities by `ratio` (`training_prior_ratio`) and renormalise."""
    adjusted = proba * ratio
    total = adjusted.sum(axis=1, keepdims=True)
    return np.where(total > 0, adjusted / np.where(total > 0, total, 1.0), 1.0 / 3.0)


def check_training_labels(y_train: np.ndarray, y_val: np.ndarray, what: str) -> None:
    """One sentence naming the cause and the fix when the labels cannot train a model.

    `what` describes the labels ("at 5 bps over 10s") so the sentence can say which
    fee and horizon left a class empty.
    """
    if len(y_train) < MIN_TRAINING_ROWS:
        raise UserError(f"The training split has only {len(y_train)} labelled rows {what}; "
                        f"a model needs at least {MIN_TRAINING_ROWS}: record or simulate more "
                        "data.")
    if len(y_val) == 0:
        raise UserError(f"The validation split has no labelled rows {what}; record or "
                        "simulate more data, or shorten --horizon.")
    counts = np.bincount(to_index(y_train), minlength=3)
    for c in (0, 2):
        if counts[c] < MIN_CLASS_ROWS:
            raise UserError(
                f"The training split has {counts[c]} '{CLASS_NAMES[c]}' rows {what} (of "
                f"{len(y_train):,}): no move in it pays the round trip, so no model can learn "
                "one. Lower --fee-bps, lengthen --horizon, or give more data.")


def fit_platt(p: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(a, b) of sigmoid(a * logit(p) + b) with a > 0 minimising the log-loss on `truth`:
    a monotone recalibration of one binary probability (Platt scaling on its logit)."""
    from scipy.optimize import minimize

    if len(p) == 0 or truth.all() or not truth.any():
        return 1.0, 0.0
    z = np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1.0))
    t = truth.astype(float)

    def loss(params: np.ndarray) -> float:
        u = params[0] * z + params[1]
        return float(np.mean(np.logaddexp(0.0, u) - t * u))

    best = minimize(loss, np.array([1.0, 0.0]), method="L-BFGS-B",
                    bounds=[(0.05, 20.0), (-20.0, 20.0)])
    return (float(best.x[0]), float(best.x[1])) if best.success else (1.0, 0.0)


def platt(p: np.ndarray, a: float, b: float) -> np.ndarray:
    z = np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1.0))
    return 1.0 / (1.0 + np.exp(-(a * z + b)))


@dataclass
class Calibration:
    """q = softmax(log(p) / temperature + bias), fitted on validation log-loss.

    Temperature scaling (Guo et al. 2017) with a bias per class: the temperature fixes
    over- or under-confidence, the biases a shifted base rate (a focal loss, or a
    validation period whose move frequencies differ from training). Identity at
    temperature 1 and bias 0.
    """

    temperature: float = 1.0
    bias: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @staticmethod
    def _logits(proba: np.ndarray) -> np.ndarray:
        return np.log(np.clip(proba, 1e-6, 1.0))

    @classmethod
    def fit(cls, proba_val: np.ndarray, y_val: np.ndarray) -> Calibration:
        from scipy.optimize import minimize

        if len(y_val) == 0:
            return cls()
        logits = cls._logits(proba_val)
        idx = to_index(y_val)

        def loss(params: np.ndarray) -> float:
            z = logits * params[0] + np.array([params[1], 0.0, params[2]])
            z -= z.max(axis=1, keepdims=True)
            log_q = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            return float(-log_q[np.arange(len(idx)), idx].mean())

        # params: inverse temperature, bias of down and up (flat's is the reference 0)
        best = minimize(loss, np.array([1.0, 0.0, 0.0]), method="L-BFGS-B",
                        bounds=[(0.05, 20.0), (-10.0, 10.0), (-10.0, 10.0)])
        inv_t, b_down, b_up = (best.x if best.success or best.fun < loss(np.array([1.0, 0, 0]))
                               else (1.0, 0.0, 0.0))
        return cls(float(1.0 / inv_t), (float(b_down), 0.0, float(b_up)))

    def __call__(self, proba: np.ndarray) -> np.ndarray:
        z = self._logits(proba) / self.temperature + np.asarray(self.bias)
        z -= z.max(axis=1, keepdims=True)
        q = np.exp(z)
        return q / q.sum(axis=1, keepdims=True)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "temperature and class bias on validation log-loss",
                "temperature": self.temperature, "bias": list(self.bias)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(float(data["temperature"]), tuple(float(b) for b in data["bias"]))
