"""Every model family fitted once beside the baselines (the `scored_families` fixture):
policy parity (the same classification and trading policies for every estimator), the
trading policy's cost gate, training past the first iterations, and each family leaning
the way the book leans."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.baselines import cumulative_imbalance
from models.pipeline import BASELINES, execution_trips
from models.policy import BPS, ClassificationPolicy, TradingPolicy, macro_f1

FAMILIES = ("logistic", "lightgbm", "mlp", "deeplob")
ESTIMATORS = ("model", *BASELINES)


def test_every_estimator_is_scored_under_both_policies_side_by_side(lightgbm_run):
    metrics = json.loads((lightgbm_run / "metrics.json").read_text())
    for name, report in [("model", metrics), *metrics["baselines"].items()]:
        for split in (report, report["validation"]):
            policies = split["policies"]
            assert set(policies) == {"classification", "trading"}, name
            assert split["macro_f1"] == policies["classification"]["macro_f1"]
            assert split["n_trades"] == policies["trading"]["n_trades"]
            assert split["net_pnl_bps"] == policies["trading"]["net_pnl_bps"]
    assert metrics["fee_bps"] == 0.0 and "at 0 bps per side" in metrics["verdict"]


@pytest.mark.parametrize("family", FAMILIES)
def test_the_trading_policy_trades_only_where_the_expected_net_edge_pays(scored_families,
                                                                        family):
    _, _, results = scored_families[family]
    for name in ESTIMATORS:
        scored = results[name]
        long_edge, short_edge = scored.trading.edges(scored.proba_test)
        s = scored.signal_test
        margin = scored.trading.margin_bps * BPS
        assert scored.trading.margin_bps >= 0
        assert (long_edge[s == 1] > margin).all() and (short_edge[s == -1] > margin).all()
        assert (np.maximum(long_edge, short_edge)[s == 0] <= margin + 1e-15).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_at_a_fee_no_move_pays_no_estimator_trades(scored_families, family):
    """The cost gate: 50 bps per side is far beyond any 10 s move of the fixture (a tick is
    1 bps), so re-deriving every estimator's policy there must leave nothing to trade."""
    data, splits, results = scored_families[family]
    trips = execution_trips(data, None)
    long_net, short_net = trips.net(50.0)
    for name in ESTIMATORS:
        scored = results[name]
        policy = scored.trading.at_fee(50.0)
        assert (policy.expected_net() < 0).all(), name
        policy.tune(scored.proba_val, long_net[splits.val], short_net[splits.val])
        assert not policy.signals(scored.proba_test).any(), name
        assert not policy.signals(scored.proba_val).any(), name


def test_a_policy_whose_expected_nets_are_all_negative_never_trades():
    gross = np.full((3, 2), -2e-4)
    policy = TradingPolicy(gross, np.ones((3, 2)), fee_bps=0.0)
    proba = np.random.default_rng(0).dirichlet([1, 1, 1], size=500)
    nets = np.random.default_rng(1).normal(0, 1e-3, (2, 500))
    policy.tune(proba, nets[0], nets[1])  # lucky validation returns cannot buy a trade
    assert policy.margin_bps >= 0 and not policy.signals(proba).any()


def test_models_with_a_signal_train_past_their_first_iterations(scored_families):
    _, _, results = scored_families["lightgbm"]
    assert results["model"].forecaster.best_iteration_ >= 10
    _, _, results = scored_families["mlp"]
    assert results["model"].forecaster.history_.best_epoch >= 1


def test_re_deriving_at_another_fee_is_arithmetic_on_the_same_means(scored_families):
    _, _, results = scored_families["lightgbm"]
    policy = results["model"].trading
    at_3 = policy.at_fee(3.0)
    np.testing.assert_allclose(at_3.expected_net(),
                               policy.gross - 2 * 3.0 * BPS * policy.fill, rtol=0, atol=1e-15)
    np.testing.assert_allclose(policy.at_fee(policy.fee_bps).expected_net(),
                               policy.expected_net(), rtol=0, atol=1e-15)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_classification_policy_is_tuned_for_validation_macro_f1(scored_families, family):
    data, splits, results = scored_families[family]
    y_val = data.y[splits.val]
    for name in ESTIMATORS:
        scored = results[name]
        tuned = macro_f1(y_val, scored.classification.signals(scored.proba_val))
        never = macro_f1(y_val, np.zeros_like(y_val))
        argmax = macro_f1(y_val, np.argmax(scored.proba_val, axis=1) - 1)
        assert tuned >= never - 1e-12 and tuned >= argmax - 0.02, name
        assert scored.validation["macro_f1"] == pytest.approx(tuned)


def test_classification_thresholds_pick_the_clearer_side():
    policy = ClassificationPolicy(theta_up=0.3, theta_down=0.3)
    proba = np.array([[0.1, 0.5, 0.4], [0.45, 0.2, 0.35], [0.2, 0.7, 0.1], [0.35, 0.3, 0.35]])
    assert policy.signals(proba).tolist() == [1, -1, 0, 1]


def test_a_constant_forecast_is_tuned_to_no_signal():
    """Validation labels where 'down' is the largest class: calling every row down scores a
    higher macro-F1 than flat, but a forecast that says the same for every row ranks
    nothing, so no threshold may turn it into a signal."""
    y_val = np.array([-1] * 60 + [0] * 10 + [1] * 30)
    constant = np.tile([0.4, 0.3, 0.3], (len(y_val), 1))
    assert macro_f1(y_val, np.full_like(y_val, -1)) > macro_f1(y_val, np.zeros_like(y_val))
    policy = ClassificationPolicy.tune(constant, y_val)
    assert (policy.signals(constant) == 0).all()
    # a forecast that does rank still gets its signals
    ranked = constant.copy()
    ranked[:60] = [0.6, 0.2, 0.2]
    assert (ClassificationPolicy.tune(ranked, y_val).signals(ranked)[:60] == -1).all()


@pytest.mark.parametrize("family", ["logistic", "lightgbm", "mlp"])
def test_every_trained_family_leans_with_the_book(scored_families, family):
    """On test rows, each estimator's calibrated p_up is higher where the best bid is most
    the heavier side (the top fifth of the L1 imbalance) than where the ask is (the bottom
    fifth), and p_down the other way round."""
    data, splits, results = scored_families[family]
    imb = cumulative_imbalance(data.book[splits.test], 1)
    low, high = np.quantile(imb, [0.2, 0.8])
    bid_heavy, ask_heavy = imb >= high, imb <= low
    assert high - low > 0.3
    for name in ("model", "imbalance_rule", "logistic_imbalance"):
        p = results[name].proba_test
        assert p[bid_heavy, 2].mean() > p[ask_heavy, 2].mean() * 1.5, name
        assert p[ask_heavy, 0].mean() > p[bid_heavy, 0].mean() * 1.5, name
