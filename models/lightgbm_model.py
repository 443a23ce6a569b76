"""LightGBM forecaster: multiclass with class weights and early stopping on the
chronological validation split; scikit-learn surface.

`monotone=True` swaps the softmax for an ordinal pair of constrained binary boosters so
that p_up provably never falls when size is added at the best bid (see `_fit_ordinal`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from models.baselines import CLASSES, correct_priors, to_index
from models.config import TrainConfig
from models.losses import balanced_class_weights

# Features that can only rise when size is added at the best bid (imbalances, order-flow
# imbalance, bid depth and slope, the size-weighted mids).
BID_PRESSURE_FEATURES = ("imb", "ofi", "bid_sz", "depth_bid", "slope_bid", "wmid",
                         "microprice")


def bid_pressure_constraints(names: list[str]) -> list[int]:
    """LightGBM monotone_constraints: +1 on bid-pressure features, 0 elsewhere."""
    return [1 if any(p in n for p in BID_PRESSURE_FEATURES) else 0 for n in names]


class LightGBMForecaster:
    input_kind = "raw_features"  # trees need no scaling; NaN stays missing
    own_decision_rule = False

    def __init__(self, config: TrainConfig | None = None,
                 monotone_constraints: list[int] | None = None) -> None:
        self.config = config or TrainConfig(model="lightgbm")
        self.monotone_constraints = monotone_constraints

    def _booster(self, y_idx: np.ndarray, X_val: np.ndarray | None, y_val_idx: np.ndarray | None,
                 X: np.ndarray, n_classes: int) -> tuple[Any, np.ndarray]:
        import lightgbm as lgb

        cfg = self.config
        weights = balanced_class_weights(y_idx, n_classes)
        params: dict = dict(
            objective="multiclass" if n_classes > 2 else "binary",
            n_estimators=cfg.lgbm_rounds, learning_rate=cfg.lgbm_learning_rate,
            num_leaves=cfg.lgbm_leaves,
            # Order-book data is mostly noise: large leaves and L2 keep trees from
            # memorising the training period (early stopping came after 2-4 rounds without).
            min_child_samples=max(50, len(y_idx) // 500), reg_lambda=5.0, subsample=0.8,
            subsample_freq=1, colsample_bytree=0.8,
            class_weight={i: float(w) for i, w in enumerate(weights)},
            random_state=cfg.seed, deterministic=True, force_row_wise=True,
            n_jobs=min(os.cpu_count() or 1, 16), verbose=-1,
        )
        if self.monotone_constraints is not None:
            params.update(monotone_constraints=self.monotone_constraints,
                          monotone_constraints_method="advanced")
        booster = lgb.LGBMClassifier(**params)
        fit_args: dict = {}
        if X_val is not None and y_val_idx is not None and len(X_val):
            # Validation loss weighted like training, or early stopping would judge the
            # weighted model by the unweighted priors and stop after a few rounds.
            fit_args = dict(eval_X=(X_val,), eval_y=(y_val_idx,),
                            eval_sample_weight=[weights[y_val_idx]],
                            callbacks=[lgb.early_stopping(cfg.lgbm_early_stopping,
                                                          verbose=False)])
        booster.fit(X, y_idx, **fit_args)
        # Class weights inflate the rare classes; divide them back out for calibrated output.
        return booster, 1.0 / weights

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> LightGBMForecaster:
        self.classes_ = CLASSES
        if self.monotone_constraints is not None:
            return self._fit_ordinal(X, np.asarray(y), X_val, y_val)
        y_val_idx = None if y_val is None else to_index(y_val)
        self.booster_, self.prior_ratio_ = self._booster(to_index(y), X_val, y_val_idx, X, 3)
        self.best_iteration_ = int(self.booster_.best_iteration_ or self.config.lgbm_rounds)
        return self

    def _fit_ordinal(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None,
                     y_val: np.ndarray | None) -> LightGBMForecaster:
        """Two constrained binary boosters, P(y >= 0) and P(y = +1).

        LightGBM applies one constraint vector to every tree of a multiclass model, which
        cannot make a softmax p_up monotone. The cumulative (ordinal) pair can: both
        probabilities rise with bid pressure, p_up = P(y=+1), p_down = 1 - P(y>=0).
        """
        self.parts_ = []
        for threshold in (0, 1):
            target = (y >= threshold).astype(np.int64)
            target_val = None if y_val is None else (np.asarray(y_val) >= threshold).astype(
                np.int64)
            self.parts_.append(self._booster(target, X_val, target_val, X, 2))
        self.best_iteration_ = [int(b.best_iteration_ or 0) for b, _ in self.parts_]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if getattr(self, "parts_", None):
            at_least_flat, up = (correct_priors(b.predict_proba(X), r)[:, 1]
                                 for b, r in self.parts_)
            down = 1.0 - at_least_flat
            flat = np.maximum(at_least_flat - up, 0.0)
            # Renormalising where the boosters disagree (up > at_least_flat) keeps p_up
            # non-decreasing: up / (1 + up - at_least_flat) rises in both.
            total = down + flat + up
            return np.column_stack([down, flat, up]) / total[:, None]
        raw = self.booster_.predict_proba(X)
        full = np.zeros((len(raw), 3))
        full[:, self.booster_.classes_] = raw
        return correct_priors(full, self.prior_ratio_)
