"""From a features dataset to scored forecasts: inputs per model kind, fitting the model
and every baseline on the same split, tuning decision rules on validation, scoring test.

`train_run` (runs.py) and `walk_forward` (walkforward.py) both call `fit_and_score`, so a
walk-forward block is exactly a small training run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bookcast.timeutil import parse_duration_ns
from features.dataset import (
    ASK_PX,
    BID_PX,
    BookScaler,
    FeatureScaler,
    ModelData,
    SequenceView,
    Splits,
    valid_window_ends,
)
from models.baselines import AlwaysFlat, ImbalanceRule, LogisticForecaster
from models.config import TrainConfig
from models.evaluate import EdgeDecisionRule, class_report, probability_skill

BASELINES = ("always_flat", "imbalance_rule", "logistic_imbalance")


def make_forecaster(config: TrainConfig, checkpoint_path: Path | None = None,
                    progress: bool = False, feature_names: list[str] | None = None) -> Any:
    """The estimator for `config.model`, every one with fit / predict_proba."""
    if config.model == "lightgbm":
        from models.lightgbm_model import LightGBMForecaster, bid_pressure_constraints

        constraints = (bid_pressure_constraints(feature_names or [])
                       if config.monotone else None)
        return LightGBMForecaster(config, monotone_constraints=constraints)
    if config.model == "logistic":
        return LogisticForecaster("features", seed=config.seed)
    from models.train import TorchForecaster

    return TorchForecaster(config, checkpoint_path=checkpoint_path, progress=progress)


def make_baseline(name: str, config: TrainConfig) -> Any:
    return {"always_flat": AlwaysFlat, "imbalance_rule": ImbalanceRule,
            "logistic_imbalance": lambda: LogisticForecaster("book", seed=config.seed)}[name]()


def features_lookback_ns(config: dict[str, Any]) -> int:
    """Longest lookback the feature set declares (keys naming a window or lookback)."""
    longest = 0

    def visit(key: str, value: Any) -> None:
        nonlocal longest
        if isinstance(value, dict):
            for k, v in value.items():
                visit(k, v)
        elif isinstance(value, list | tuple):
            for v in value:
                visit(key, v)
        elif any(w in key.lower() for w in ("window", "lookback", "halflife", "span")):
            try:
                ns = (int(value) if key.endswith("_ns") and isinstance(value, int | float)
                      else parse_duration_ns(value) if isinstance(value, str) else 0)
            except Exception:  # a non-duration value under such a key is not a window
                ns = 0
            longest = max(longest, ns)

    visit("", config)
    return longest


def input_window_ns(data: ModelData, config: TrainConfig) -> int:
    """The input window the embargo must cover: the longest of DeepLOB's window and the
    feature set's lookbacks, the same for every model so their splits are identical."""
    return max(config.window * data.interval_ns, features_lookback_ns(data.config))


def usable_rows(data: ModelData) -> np.ndarray:
    """Labelled rows with a two-sided book at `ts` (every baseline needs it)."""
    book_ok = np.isfinite(data.book[:, ASK_PX]) & np.isfinite(data.book[:, BID_PX])
    return data.labelled & book_ok


@dataclass
class Scalers:
    features: FeatureScaler
    book: BookScaler

    @classmethod
    def fit(cls, data: ModelData, train_rows: np.ndarray) -> Scalers:
        return cls(FeatureScaler.fit(data.features[train_rows]),
                   BookScaler.fit(data.book[train_rows]))

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features.to_dict(), "book": self.book.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scalers:
        return cls(FeatureScaler.from_dict(data["features"]), BookScaler.from_dict(data["book"]))


@dataclass
class InputBuilder:
    """Model inputs for any row set; the scaled book is built once per dataset."""

    data: ModelData
    scalers: Scalers
    window: int
    _scaled_book: np.ndarray | None = field(default=None, repr=False)

    def __call__(self, kind: str, rows: np.ndarray) -> Any:
        if kind == "raw_features":
            return self.data.features[rows]
        if kind == "features":
            return self.scalers.features.transform(self.data.features[rows])
        if kind == "book":
            return self.data.book[rows]
        if kind == "sequence":
            if self._scaled_book is None:
                self._scaled_book = self.scalers.book.transform(self.data.book)
            return SequenceView(self._scaled_book, rows, self.window)
        raise ValueError(f"unknown input kind {kind}")

    def window_rows(self, rows: np.ndarray) -> np.ndarray:
        ok = valid_window_ends(self.data.ts, self.data.gap, self.window, self.data.interval_ns)
        return rows[ok[rows]]


@dataclass
class Scored:
    """One estimator fitted on a split: its test probabilities, signals and reports."""

    name: str
    forecaster: Any
    rule: EdgeDecisionRule | None
    proba_test: np.ndarray
    signal_test: np.ndarray
    validation: dict[str, Any]
    test: dict[str, Any]


def restrict_to_windows(splits: Splits, inputs: InputBuilder) -> Splits:
    return Splits(train=inputs.window_rows(splits.train), val=inputs.window_rows(splits.val),
                  test=inputs.window_rows(splits.test), embargo_ns=splits.embargo_ns)


def fit_and_score(data: ModelData, splits: Splits, config: TrainConfig,
                  checkpoint_path: Path | None = None, progress: bool = False,
                  ) -> tuple[Splits, Scalers, dict[str, Scored]]:
    """Fit the model and every baseline on `splits`, tune decision rules on validation,
    report validation and test. Returns the rows actually used (DeepLOB drops rows
    without a complete window) and the training-only scalers."""
    scalers = Scalers.fit(data, splits.train)
    inputs = InputBuilder(data, scalers, config.window)
    if config.model == "deeplob":
        splits = restrict_to_windows(splits, inputs)
        if min(len(splits.train), len(splits.val), len(splits.test)) == 0:
            from bookcast.errors import UserError

            raise UserError(f"Too few rows with a complete {config.window}-snapshot window "
                            "in some split for DeepLOB; use more data or a shorter --window.")
    if config.max_train_rows is not None and len(splits.train) > config.max_train_rows:
        splits = Splits(splits.train[-config.max_train_rows:], splits.val, splits.test,
                        splits.embargo_ns)
    tr, va, te = splits.train, splits.val, splits.test
    results: dict[str, Scored] = {}
    estimators = [("model", make_forecaster(config, checkpoint_path, progress,
                                            data.feature_names))]
    estimators += [(name, make_baseline(name, config)) for name in BASELINES]
    for name, est in estimators:
        kind = est.input_kind
        est.fit(inputs(kind, tr), data.y[tr], inputs(kind, va), data.y[va])
        x_va, x_te = inputs(kind, va), inputs(kind, te)
        p_va, p_te = est.predict_proba(x_va), est.predict_proba(x_te)
        if est.own_decision_rule:
            rule, s_va, s_te = None, est.predict(x_va), est.predict(x_te)
        else:
            rule = EdgeDecisionRule.fit(data.y[tr], data.long_net[tr], data.short_net[tr])
            rule.tune(p_va, data.y[va])
            s_va, s_te = rule.signals(p_va), rule.signals(p_te)
        results[name] = Scored(
            name=name, forecaster=est, rule=rule, proba_test=p_te, signal_test=s_te,
            validation=class_report(data.y[va], s_va, data.long_net[va], data.short_net[va]),
            test={**class_report(data.y[te], s_te, data.long_net[te], data.short_net[te]),
                  "probability_skill": probability_skill(data.y[te], p_te)},
        )
    return splits, scalers, results


def verdict(model: str, results: dict[str, Scored]) -> dict[str, Any]:
    """Does the model beat every baseline? Stated plainly, on validation and test."""
    m = results["model"]
    best_val = max(results[b].validation["macro_f1"] for b in BASELINES)
    best_test = max(results[b].test["macro_f1"] for b in BASELINES)
    best_pnl = max(results[b].test["net_pnl_bps"] for b in BASELINES)
    beats = {"validation_macro_f1": m.validation["macro_f1"] > best_val,
             "test_macro_f1": m.test["macro_f1"] > best_test,
             "test_net_pnl": m.test["net_pnl_bps"] > best_pnl}
    if all(beats.values()):
        text = f"{model} beats every baseline on validation and test macro-F1 and on net PnL."
    elif not any(beats.values()):
        text = (f"{model} does NOT beat the baselines: not on validation macro-F1, not on test "
                "macro-F1, not on net PnL after fees.")
    else:
        won = ", ".join(k for k, v in beats.items() if v)
        lost = ", ".join(k for k, v in beats.items() if not v)
        text = f"{model} beats every baseline on {won} but NOT on {lost}."
    return {"beats_baselines": beats, "verdict": text}
