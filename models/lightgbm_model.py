"""LightGBM forecaster: multiclass on log-loss, early-stopped on the validation split's
log-loss (a proper score: the iteration kept is the one whose probabilities were best,
not the one whose argmax happened to match); scikit-learn surface.

No class weights: the rare classes need no reweighting for probabilities (a proper loss
estimates their frequency), and the decision rules threshold calibrated probabilities
instead of an argmax that weights would have had to bend.

`monotone=True` swaps the softmax for an ordinal pair of constrained binary boosters so
that p_up provably never falls when size is added at the best bid (see `_fit_ordinal`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from models.config import TrainConfig
from models.forecaster import CLASSES, fit_platt, platt, to_index

# Features that can only rise when size is added at the best bid (imbalances, order-flow
# imbalance, bid depth and slope, the size-weighted mids).
BID_PRESSURE_FEATURES = ("imb", "ofi", "bid_sz", "depth_bid", "slope_bid", "wmid",
                         "microprice")


def bid_pressure_constraints(names: list[str]) -> list[int]:
    """LightGBM monotone_constraints: +1 on bid-pressure features, 0 elsewhere."""
    return [1 if any(p in n for p in BID_PRESSURE_FEATURES) else 0 for n in names]


class LightGBMForecaster:
    input_kind = "raw_features"  # trees need no scaling; NaN stays missing
    calibrates_itself = False  # True for the monotone pair (see _fit_ordinal)

    def __init__(self, config: TrainConfig | None = None,
                 monotone_constraints: list[int] | None = None) -> None:
        self.config = config or TrainConfig(model="lightgbm")
        self.monotone_constraints = monotone_constraints

    def _booster(self, y_idx: np.ndarray, X_val: np.ndarray | None, y_val_idx: np.ndarray | None,
                 X: np.ndarray, n_classes: int) -> Any:
        import lightgbm as lgb

        cfg = self.config
        params: dict = dict(
            objective="multiclass" if n_classes > 2 else "binary",
            n_estimators=cfg.lgbm_rounds, learning_rate=cfg.lgbm_learning_rate,
            num_leaves=cfg.lgbm_leaves,
            # Order-book data is mostly noise: large leaves and L2 keep trees from
            # memorising the training period.
            min_child_samples=max(50, len(y_idx) // 500), reg_lambda=5.0, subsample=0.8,
            subsample_freq=1, colsample_bytree=0.8,
            random_state=cfg.seed, deterministic=True, force_row_wise=True,
            n_jobs=min(os.cpu_count() or 1, 16), verbose=-1,
        )
        if self.monotone_constraints is not None:
            params.update(monotone_constraints=self.monotone_constraints,
                          monotone_constraints_method="advanced")
        booster = lgb.LGBMClassifier(**params)
        fit_args: dict = {}
        if X_val is not None and y_val_idx is not None and len(X_val):
            fit_args = dict(eval_X=(X_val,), eval_y=(y_val_idx,),
                            eval_metric="multi_logloss" if n_classes > 2 else "binary_logloss",
                            callbacks=[lgb.early_stopping(cfg.lgbm_early_stopping,
                                                          first_metric_only=True,
                                                          verbose=False)])
        booster.fit(X, y_idx, **fit_args)
        return booster

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> LightGBMForecaster:
        self.classes_ = CLASSES
        if self.monotone_constraints is not None:
            return self._fit_ordinal(X, np.asarray(y), X_val, y_val)
        y_val_idx = None if y_val is None else to_index(y_val)
        self.booster_ = self._booster(to_index(y), X_val, y_val_idx, X, 3)
        self.best_iteration_ = int(self.booster_.best_iteration_ or self.config.lgbm_rounds)
        return self

    def _fit_ordinal(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None,
                     y_val: np.ndarray | None) -> LightGBMForecaster:
        """Two constrained binary boosters, P(y >= 0) and P(y = +1).

        LightGBM applies one constraint vector to every tree of a multiclass model, which
        cannot make a softmax p_up monotone. The cumulative (ordinal) pair can: both
        probabilities rise with bid pressure, p_up = P(y=+1), p_down = 1 - P(y>=0).
        """
        self.parts_, self.part_calibration_ = [], []
        for threshold in (0, 1):
            target = (y >= threshold).astype(np.int64)
            target_val = None if y_val is None else (np.asarray(y_val) >= threshold).astype(
                np.int64)
            booster = self._booster(target, X_val, target_val, X, 2)
            self.parts_.append(booster)
            # Each part recalibrated by an increasing map on validation: a calibration of
            # the three-class output afterwards could undo the monotonicity.
            self.part_calibration_.append(
                fit_platt(booster.predict_proba(X_val)[:, 1], target_val.astype(bool))
                if target_val is not None and len(target_val) else (1.0, 0.0))
        self.calibrates_itself = True
        self.best_iteration_ = [int(b.best_iteration_ or self.config.lgbm_rounds)
                                for b in self.parts_]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if getattr(self, "parts_", None):
            at_least_flat, up = (platt(b.predict_proba(X)[:, 1], *ab) for b, ab in
                                 zip(self.parts_, self.part_calibration_, strict=True))
            down = 1.0 - at_least_flat
            flat = np.maximum(at_least_flat - up, 0.0)
            # Renormalising where the boosters disagree (up > at_least_flat) keeps p_up
            # non-decreasing: up / (1 + up - at_least_flat) rises in both.
            total = down + flat + up
            return np.column_stack([down, flat, up]) / total[:, None]
        raw = self.booster_.predict_proba(X)
        full = np.zeros((len(raw), 3))
        full[:, self.booster_.classes_] = raw
        return full
