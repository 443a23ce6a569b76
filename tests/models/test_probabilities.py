"""Probabilities a rule may threshold: one reweighting undone exactly, selection on a proper
score, calibration on validation, and Brier / ECE reported for every estimator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models.config import TrainConfig
from models.dataset import SequenceView
from models.evaluate import expected_calibration_error
from models.forecaster import (
    Calibration,
    balanced_class_weights,
    class_frequencies,
    correct_priors,
    to_index,
    training_prior_ratio,
)
from models.train import TorchForecaster, train_network

RNG = np.random.default_rng(7)
REWEIGHTINGS = [("weighted-ce", "none"), ("ce", "balanced"), ("weighted-ce", "balanced")]


def rare_moves(n: int, features: int = 6, signal: float = 1.0, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """About 8 % up and 8 % down rows whose odds rise with the first feature."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features)).astype(np.float32)
    logit = signal * X[:, 0]
    u = rng.random(n)
    p_up = 0.08 * np.exp(logit) / (0.92 + 0.08 * np.exp(logit))
    p_down = 0.08 * np.exp(-logit) / (0.92 + 0.08 * np.exp(-logit))
    y = np.where(u < p_up, 1, np.where(u > 1 - p_down, -1, 0)).astype(np.int8)
    return X, y


@pytest.mark.parametrize("loss, sampler", [("ce", "none"), *REWEIGHTINGS])
def test_the_prior_correction_undoes_each_reweighting_exactly(loss, sampler):
    """A proper loss on rows drawn with frequency s_c and weighted w_c learns posteriors
    proportional to q_c * s_c * w_c / p_c; the correction must give back q exactly."""
    y = RNG.choice([-1, 0, 1], size=5000, p=[0.07, 0.85, 0.08])
    prior = class_frequencies(y)
    weights = None if loss == "ce" else balanced_class_weights(to_index(y))
    drawn = np.full(3, 1 / 3) if sampler == "balanced" else prior
    effective = drawn * (np.ones(3) if weights is None else weights)
    truth = RNG.dirichlet([1.0, 8.0, 1.0], size=200)
    learned = truth * effective / prior
    learned /= learned.sum(axis=1, keepdims=True)
    ratio = training_prior_ratio(y, weights, sampler == "balanced")
    np.testing.assert_allclose(correct_priors(learned, ratio), truth, atol=1e-12)


def toy_windows(n: int, seed: int = 0) -> tuple[SequenceView, np.ndarray]:
    """Windows of 20 rows x 2 levels whose last row's level-1 size imbalance drives y."""
    X, y = rare_moves(n, features=8, signal=1.5, seed=seed)
    values = np.repeat(X[:, None, :], 20, axis=1).reshape(-1, 8)
    ends = np.arange(n) * 20 + 19
    return SequenceView(values, ends, 20), y


@pytest.mark.parametrize("model, loss, sampler", [
    *[("mlp", loss, sampler) for loss, sampler in REWEIGHTINGS],
    # One epoch of DeepLOB on a CPU is far from converged, which only the single
    # reweightings tolerate (their correction is exact for any output near 1/3 each).
    ("deeplob", "weighted-ce", "none"), ("deeplob", "ce", "balanced")])
def test_pytorch_models_predict_the_true_class_frequencies_after_reweighting(model, loss,
                                                                             sampler):
    # Before any calibration: the prior correction alone must bring the mean probability
    # of each rare class back to its frequency (reweighting lifts it to about 1/3).
    if model == "mlp":
        X, y = rare_moves(1500)
        config = TrainConfig(model="mlp", epochs=3, batch_size=128, loss=loss, sampler=sampler,
                             seed=1)
    else:
        X, y = toy_windows(192)
        config = TrainConfig(model="deeplob", epochs=1, batch_size=64, loss=loss,
                             sampler=sampler, window=20, seed=1)
    forecaster = TorchForecaster(config).fit(X, y, X, y)
    proba = forecaster.predict_proba(X)
    freq = class_frequencies(y)
    for c in (0, 2):
        assert abs(proba[:, c].mean() - freq[c]) < 0.5 * freq[c], (c, proba[:, c].mean(), freq)


def test_selection_keeps_a_trained_epoch_when_the_argmax_stays_flat():
    # Moves are rare enough that every argmax is 'flat' at every epoch: macro-F1 of the
    # argmax never changes, so selecting on it kept the first epoch. Log-loss keeps improving.
    X, y = rare_moves(2500, signal=1.2, seed=3)
    Xv, yv = rare_moves(1500, signal=1.2, seed=4)
    config = TrainConfig(model="mlp", epochs=4, batch_size=256, loss="ce", patience=4,
                         learning_rate=3e-3)
    torch.manual_seed(0)
    from models.nets import MLP

    net = MLP(6)
    history = train_network(net, X, y, Xv, yv, config)
    losses = [e["val_log_loss"] for e in history.epochs]
    assert history.best_epoch == int(np.argmin(losses)) > 0
    assert losses[history.best_epoch] < losses[0]


def test_lightgbm_with_a_signal_trains_past_its_first_iterations(lightgbm_run):
    training = json.loads((lightgbm_run / "metrics.json").read_text())["training"]
    assert training["selected_on"] == "validation log-loss"
    assert min(training["best_iteration"]) >= 10  # the monotone pair: both boosters


def test_calibration_on_validation_repairs_over_confident_probabilities():
    truth = RNG.dirichlet([1.0, 6.0, 1.0], size=6000)
    y = np.array([RNG.choice([-1, 0, 1], p=p) for p in truth])
    sharp = truth ** 2.5
    sharp /= sharp.sum(axis=1, keepdims=True)
    fit, held = slice(0, 3000), slice(3000, None)
    calibration = Calibration.fit(sharp[fit], y[fit])
    fixed = calibration(sharp[held])

    def loss(p: np.ndarray) -> float:
        return float(-np.mean(np.log(p[np.arange(len(p)), to_index(y[held])])))

    assert calibration.temperature > 1.5  # it softens, as the truth requires (about 2.5)
    assert loss(fixed) < loss(sharp[held])
    for col, cls in ((2, 1), (0, -1)):
        before = expected_calibration_error(y[held] == cls, sharp[held][:, col])
        after = expected_calibration_error(y[held] == cls, fixed[:, col])
        assert after < before / 2
    identity = Calibration.fit(truth[fit], y[fit])
    assert identity.temperature == pytest.approx(1.0, abs=0.15)


def test_every_estimator_reports_brier_ece_and_log_loss(lightgbm_run):
    metrics = json.loads((lightgbm_run / "metrics.json").read_text())
    run = json.loads((lightgbm_run / "run.json").read_text())
    for name, report in [("model", metrics), *metrics["baselines"].items()]:
        skill = report["probability_skill"]
        for key in ("brier", "log_loss", "ece_up", "ece_down", "mean_p_up", "mean_p_down"):
            assert skill[key] is not None and np.isfinite(skill[key]), (name, key)
        assert 0 <= skill["brier"] <= 2 and 0 <= skill["ece_up"] <= 1
        # the calibrated probabilities mean what they say: mean p near the frequency
        assert abs(skill["mean_p_up"] - skill["prevalence_up"]) < 0.05, name
        rules = run["rules"] if name == "model" else run["baseline_rules"][name]
        assert {"calibration", "classification_policy", "trading_policy"} <= set(rules)
