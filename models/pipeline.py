"""From a features dataset to scored forecasts: inputs per model kind, fitting the model
and every baseline on the same split, calibrating each on validation, tuning both
policies (`models.policy`) on validation, scoring test.

`train_run` (runs.py) and `walk_forward` (walkforward.py) both call `fit_and_score`, so a
walk-forward block is exactly a small training run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bookcast.errors import UserError
from bookcast.timeutil import parse_duration_ns
from features.labels import RoundTrips
from models.baselines import AlwaysFlat, ImbalanceRule, LogisticForecaster
from models.config import TrainConfig
from models.dataset import (
    ASK_PX,
    BID_PX,
    BookScaler,
    FeatureScaler,
    ModelData,
    SequenceView,
    Splits,
    price_column_mask,
    valid_window_ends,
)
from models.evaluate import class_report, probability_skill
from models.forecaster import Calibration, Forecaster, check_training_labels
from models.policy import ClassificationPolicy, TradingPolicy

BASELINES = ("always_flat", "imbalance_rule", "logistic_imbalance")


def make_forecaster(config: TrainConfig, checkpoint_path: Path | None = None,
                    progress: bool = False, feature_names: list[str] | None = None
                    ) -> Forecaster:
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


def make_baseline(name: str, config: TrainConfig) -> Forecaster:
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


CLOCK_FEATURES = ("tod_sin", "tod_cos")
DAY_NS = 86_400 * 1_000_000_000


def without_short_clock(data: ModelData, train_span_ns: int) -> ModelData:
    """Drop the time-of-day features when training covers less than a day: over a few
    hours they only count the time since the start, and a model fitted on them
    extrapolates that trend into the test hours instead of learning the clock."""
    if train_span_ns >= DAY_NS:
        return data
    keep = [j for j, n in enumerate(data.feature_names) if n not in CLOCK_FEATURES]
    if len(keep) == len(data.feature_names):
        return data
    from dataclasses import replace

    return replace(data, features=data.features[:, keep],
                   feature_names=[data.feature_names[j] for j in keep])


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
    _mid_offset: np.ndarray | None = field(default=None, repr=False)

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
                self._mid_offset = self.scalers.book.mid_offset(self.data.book)
            return SequenceView(self._scaled_book, rows, self.window, self._mid_offset,
                                price_column_mask(self._scaled_book.shape[1]))
        raise ValueError(f"unknown input kind {kind}")

    def window_rows(self, rows: np.ndarray) -> np.ndarray:
        ok = valid_window_ends(self.data.ts, self.data.gap, self.window, self.data.interval_ns)
        return rows[ok[rows]]


def execution_trips(data: ModelData, latency_ns: int | None) -> RoundTrips:
    """The taker round trip an order sent at each row's time would make: entered at the
    first snapshot at or after ts + latency (one snapshot by default), closed one horizon
    later. What the trading policy expects to earn; the label is the same at latency 0."""
    latency = data.interval_ns if latency_ns is None else int(latency_ns)
    return data.touch.round_trips(data.horizon_ns, data.touch.rows_at_or_after(data.ts + latency))


@dataclass
class Scored:
    """One estimator fitted on a split: calibrated probabilities, both policies, reports."""

    name: str
    forecaster: Forecaster
    calibration: Calibration
    classification: ClassificationPolicy
    trading: TradingPolicy
    proba_val: np.ndarray
    proba_test: np.ndarray
    signal_test: np.ndarray  # the trading policy's
    classification_test: np.ndarray
    validation: dict[str, Any]
    test: dict[str, Any]

    def rules(self) -> dict[str, Any]:
        """What predicting with this estimator again needs besides the model itself."""
        return {"calibration": self.calibration.to_dict(),
                "classification_policy": self.classification.to_dict(),
                "trading_policy": self.trading.to_dict()}


def used_splits(data: ModelData, splits: Splits, config: TrainConfig) -> Splits:
    """The rows a run fits and scores: DeepLOB keeps rows with a complete input window, and
    `max_train_rows` keeps the latest training rows."""
    if config.model == "deeplob":
        ok = valid_window_ends(data.ts, data.gap, config.window, data.interval_ns)
        splits = Splits(train=splits.train[ok[splits.train]], val=splits.val[ok[splits.val]],
                        test=splits.test[ok[splits.test]], embargo_ns=splits.embargo_ns)
        if min(len(splits.train), len(splits.val), len(splits.test)) == 0:
            raise UserError(f"Too few rows with a complete {config.window}-snapshot window "
                            "in some split for DeepLOB; use more data or a shorter --window.")
    if config.max_train_rows is not None and len(splits.train) > config.max_train_rows:
        splits = Splits(splits.train[-config.max_train_rows:], splits.val, splits.test,
                        splits.embargo_ns)
    return splits


def policy_report(y: np.ndarray, classification: np.ndarray, trading: np.ndarray,
                  long_net: np.ndarray, short_net: np.ndarray) -> dict[str, Any]:
    """Both policies side by side. Top level (what `bookcast runs` and the dashboard read):
    macro-F1 and per-class figures of the classification policy, trades, net PnL and
    break-even of the trading policy. Net returns are the execution's, at the run's fee."""
    by_class = class_report(y, classification, long_net, short_net)
    by_trade = class_report(y, trading, long_net, short_net)
    return {"macro_f1": by_class["macro_f1"], "per_class": by_class["per_class"],
            "confusion": by_class["confusion"], "n_trades": by_trade["n_trades"],
            "net_pnl_bps": by_trade["net_pnl_bps"], "break_even": by_trade["break_even"],
            "policies": {"classification": by_class, "trading": by_trade}}


def score(name: str, est: Forecaster, inputs: InputBuilder, data: ModelData, splits: Splits,
          exec_trips: RoundTrips) -> Scored:
    """Fit one estimator, calibrate it on validation, tune both policies there, score test."""
    tr, va, te = splits.train, splits.val, splits.test
    kind = est.input_kind
    est.fit(inputs(kind, tr), data.y[tr], inputs(kind, va), data.y[va])
    # a network's probabilities of the validation rows fit() was given, from the weights it
    # kept (`validation_proba_`), else predicted now
    raw_va = getattr(est, "validation_proba_", None)
    if raw_va is None:
        raw_va = est.predict_proba(inputs(kind, va))
    raw_te = est.predict_proba(inputs(kind, te))
    calibration = (Calibration() if getattr(est, "calibrates_itself", False)
                   else Calibration.fit(raw_va, data.y[va]))
    p_va, p_te = calibration(raw_va), calibration(raw_te)
    classification = ClassificationPolicy.tune(p_va, data.y[va])
    long_net, short_net = exec_trips.net(data.fee_bps)
    trading = TradingPolicy.fit(data.y[tr], exec_trips.long_gross[tr],
                                exec_trips.short_gross[tr], data.fee_bps)
    trading.tune(p_va, long_net[va], short_net[va])
    s_va, s_te = trading.signals(p_va), trading.signals(p_te)
    c_va, c_te = classification.signals(p_va), classification.signals(p_te)
    before = probability_skill(data.y[te], raw_te)
    return Scored(
        name=name, forecaster=est, calibration=calibration, classification=classification,
        trading=trading, proba_val=p_va, proba_test=p_te, signal_test=s_te,
        classification_test=c_te,
        validation=policy_report(data.y[va], c_va, s_va, long_net[va], short_net[va]),
        test={**policy_report(data.y[te], c_te, s_te, long_net[te], short_net[te]),
              "probability_skill": probability_skill(data.y[te], p_te),
              "before_calibration": {k: before[k] for k in
                                     ("brier", "log_loss", "ece_up", "ece_down")}},
    )


def fit_and_score(data: ModelData, splits: Splits, config: TrainConfig,
                  checkpoint_path: Path | None = None, progress: bool = False,
                  ) -> tuple[Splits, Scalers, dict[str, Scored]]:
    """Fit the model and every baseline on `splits`, calibrate and tune on validation,
    report validation and test. Returns the rows actually used (DeepLOB drops rows
    without a complete window) and the training-only scalers."""
    scalers = Scalers.fit(data, splits.train)
    inputs = InputBuilder(data, scalers, config.window)
    splits = used_splits(data, splits, config)
    check_training_labels(data.y[splits.train], data.y[splits.val],
                          f"at {data.fee_bps:g} bps per side over {data.horizon}")
    exec_trips = execution_trips(data, config.latency_ns)
    estimators = [("model", make_forecaster(config, checkpoint_path, progress,
                                            data.feature_names))]
    estimators += [(name, make_baseline(name, config)) for name in BASELINES]
    results = {name: score(name, est, inputs, data, splits, exec_trips)
               for name, est in estimators}
    return splits, scalers, results


def verdict(model: str, results: dict[str, Scored], fee_bps: float) -> dict[str, Any]:
    """Does the model beat every baseline? Stated plainly, with the fee it was judged at."""
    m = results["model"]
    best_val = max(results[b].validation["macro_f1"] for b in BASELINES)
    best_test = max(results[b].test["macro_f1"] for b in BASELINES)
    best_pnl = max(results[b].test["net_pnl_bps"] for b in BASELINES)
    beats = {"validation_macro_f1": m.validation["macro_f1"] > best_val,
             "test_macro_f1": m.test["macro_f1"] > best_test,
             "test_net_pnl": m.test["net_pnl_bps"] > best_pnl}
    fee = f"at {fee_bps:g} bps per side"
    if all(beats.values()):
        text = (f"{model} beats every baseline on validation and test macro-F1 and on net PnL "
                f"{fee}.")
    elif not any(beats.values()):
        text = (f"{model} does NOT beat the baselines: not on validation macro-F1, not on test "
                f"macro-F1, not on net PnL {fee}.")
    else:
        won = ", ".join(k for k, v in beats.items() if v)
        lost = ", ".join(k for k, v in beats.items() if not v)
        text = f"{model} beats every baseline on {won} but NOT on {lost} ({fee})."
    return {"beats_baselines": beats, "verdict": text}
