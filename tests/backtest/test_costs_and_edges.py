"""What the backtest must say about costs, latency and edges that are (or are not) real."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest import BacktestConfig, book_from_levels, run_backtest
from backtest.significance import batch_means_interval

SECOND = 1_000_000_000
T0 = 1_723_161_600_000_000_000


def predictions(ts: np.ndarray, p_up: np.ndarray, p_down: np.ndarray,
                y: np.ndarray | None = None) -> pl.DataFrame:
    n = ts.shape[0]
    return pl.DataFrame({
        "ts": ts, "venue": ["binance-spot"] * n, "symbol": ["BTCUSDT"] * n,
        "p_down": p_down, "p_flat": 1.0 - p_up - p_down, "p_up": p_up,
        "y": np.zeros(n, np.int8) if y is None else y.astype(np.int8),
    })


def walk(n: int, seed: int, step: float, spread: float, depth: float = 1e6):
    """A Book whose mid is a Gaussian random walk with a constant spread and a deep touch."""
    rng = np.random.default_rng(seed)
    mid = 30_000.0 + np.cumsum(rng.normal(0.0, step, n))
    ts = T0 + np.arange(n, dtype=np.int64) * SECOND
    # Touch sizes vary (the imbalance rule needs something to read) but always fill.
    bid_sz, ask_sz = rng.uniform(depth, 2 * depth, (2, n))
    book = book_from_levels("binance-spot", "BTCUSDT", ts,
                            [[(m - spread / 2, s)] for m, s in zip(mid, bid_sz, strict=True)],
                            [[(m + spread / 2, s)] for m, s in zip(mid, ask_sz, strict=True)])
    return book, mid, ts, rng


def sides_to_probs(side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p_up = np.where(side > 0, 0.9, 0.05)
    p_down = np.where(side < 0, 0.9, 0.05)
    return p_up, p_down


def test_without_fees_spread_or_latency_net_pnl_is_the_mid_pnl() -> None:
    book, mid, ts, rng = walk(400, seed=1, step=5.0, spread=0.0)
    hold = 4
    side = np.zeros(400, np.int8)
    entries = np.arange(0, 390, 7)  # spaced wider than the hold: every signal trades
    side[entries] = rng.choice([-1, 1], entries.shape[0])
    p_up, p_down = sides_to_probs(side)
    config = BacktestConfig(fee_bps=0.0, hold_ns=hold * SECOND, horizon_ns=hold * SECOND,
                            latency_ns=0, allow_latency_below_snapshot=True, baselines=False)
    result = run_backtest(predictions(ts, p_up, p_down), book, config)
    qty = 1000.0 / mid[entries]
    expected = float(np.sum(side[entries] * qty * (mid[entries + hold] - mid[entries])))
    assert result.stats["n_trades"] == entries.shape[0]
    assert result.stats["spread_cost"] == pytest.approx(0.0, abs=1e-9)
    assert result.stats["net_pnl"] == pytest.approx(expected, abs=1e-6)
    assert result.equity["equity"][-1] - result.equity["equity"][0] == pytest.approx(expected)


@pytest.fixture(scope="module")
def noisy_market():
    book, _mid, ts, rng = walk(600, seed=2, step=3.0, spread=1.0)
    p_up = rng.uniform(0, 0.6, 600)
    p_down = rng.uniform(0, 1 - p_up)
    return book, ts, predictions(ts, p_up, p_down)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(low=st.floats(0, 60), extra=st.floats(0, 60))
def test_net_pnl_never_rises_with_the_fee(noisy_market, low: float, extra: float) -> None:
    book, _, preds = noisy_market
    nets = [run_backtest(preds, book, BacktestConfig(
        fee_bps=fee, hold_ns=3 * SECOND, horizon_ns=3 * SECOND, baselines=False,
        curves=False)).stats["net_pnl"] for fee in (low, low + extra)]
    assert nets[1] <= nets[0] + 1e-9


@pytest.mark.parametrize("shorter,longer", [(1, 2), (2, 3), (1, 5), (3, 8)])
def test_net_pnl_never_rises_with_latency_while_the_edge_decays(shorter: int, longer: int) -> None:
    # A mid that rises ever more slowly: a long bought later earns strictly less.
    n = 200
    mid = 100.0 + 10.0 * np.sqrt(np.arange(n))
    ts = T0 + np.arange(n, dtype=np.int64) * SECOND
    book = book_from_levels("binance-spot", "BTCUSDT", ts, [[(m - 0.01, 1e6)] for m in mid],
                            [[(m + 0.01, 1e6)] for m in mid])
    side = np.zeros(n, np.int8)
    side[[5, 30, 60, 90]] = 1
    nets = []
    for lat in (shorter, longer):
        config = BacktestConfig(fee_bps=5.0, hold_ns=5 * SECOND, horizon_ns=5 * SECOND,
                                latency_ns=lat * SECOND, size=1.0, baselines=False)
        result = run_backtest(predictions(ts, *sides_to_probs(side)), book, config)
        assert result.stats["n_trades"] == 4
        nets.append(result.stats["net_pnl"])
    assert nets[1] < nets[0]


def test_random_predictions_lose_the_spread_and_fees_per_trade() -> None:
    spread, fee_bps, notional = 2.0, 5.0, 1000.0
    book, _mid, ts, rng = walk(3000, seed=3, step=1.0, spread=spread)
    side = rng.choice([-1, 0, 0, 1], 3000).astype(np.int8)
    config = BacktestConfig(fee_bps=fee_bps, hold_ns=3 * SECOND, horizon_ns=3 * SECOND,
                            notional=notional, baselines=False, curves=False)
    stats = run_backtest(predictions(ts, *sides_to_probs(side)), book, config).stats
    n = stats["n_trades"]
    assert n > 300
    # The spread is paid exactly (half on each side of each round trip, a deep touch)...
    qty_mean = stats["traded_value"] / n / 2 / 30_000.0
    assert stats["spread_cost"] / n == pytest.approx(spread * qty_mean, rel=0.01)
    # ...and the mean net per trade is the spread plus both fees, give or take noise.
    cost = spread * qty_mean + 2 * fee_bps * 1e-4 * notional
    low, high = stats["net_pnl_per_trade_ci95"]
    assert low < -cost < high
    assert high < 0


def test_the_oracle_wins_and_beats_the_other_rows() -> None:
    fee_bps, horizon = 2.0, 5
    book, mid, ts, rng = walk(2000, seed=4, step=8.0, spread=0.5)
    bid, ask = mid - 0.25, mid + 0.25
    y = np.zeros(2000, np.int8)
    f = fee_bps * 1e-4
    later = np.arange(2000) + horizon
    ok = later < 2000
    y[ok & (bid[np.minimum(later, 1999)] / ask - 1 > 2 * f)] = 1
    y[ok & (1 - ask[np.minimum(later, 1999)] / bid > 2 * f)] = -1
    p_up = rng.uniform(0, 0.6, 2000)
    preds = predictions(ts, p_up, rng.uniform(0, 1 - p_up), y)
    config = BacktestConfig(fee_bps=fee_bps, hold_ns=horizon * SECOND, threshold=0.57,
                            horizon_ns=horizon * SECOND, curves=False)
    stats = run_backtest(preds, book, config).stats
    oracle = stats["baselines"]["oracle"]
    assert oracle["net_pnl"] > 0
    assert oracle["net_pnl_per_trade_ci95"][0] > 0
    for name in ("random", "imbalance_l1"):
        assert oracle["net_pnl"] > stats["baselines"][name]["net_pnl"]
    assert oracle["net_pnl"] > stats["net_pnl"]
    for name in ("random", "imbalance_l1"):
        assert stats["baselines"][name]["n_decisions"] == stats["n_decisions"]


def test_predictions_peeking_one_snapshot_ahead_lose_their_edge_to_latency() -> None:
    book, mid, ts, _ = walk(1500, seed=5, step=2.0, spread=0.2)
    # The cheat: at row t, know whether the mid rises from t to t + 1.
    rises = np.sign(np.diff(mid, append=mid[-1])).astype(np.int8)
    preds = predictions(ts, *sides_to_probs(rises))

    def net_at(latency_ns: int) -> dict:
        config = BacktestConfig(fee_bps=0.0, hold_ns=SECOND, horizon_ns=SECOND,
                                latency_ns=latency_ns, allow_latency_below_snapshot=True,
                                baselines=False, curves=False)
        return run_backtest(preds, book, config).stats

    instant, honest = net_at(0), net_at(SECOND)
    assert instant["net_pnl"] > 0 and instant["net_pnl_per_trade_ci95"][0] > 0
    assert abs(honest["gross_pnl_mid"]) < 0.25 * instant["gross_pnl_mid"]
    assert honest["net_pnl_per_trade_ci95"][1] < instant["net_pnl_per_trade_ci95"][0]


def test_fee_curve_agrees_with_rerunning_at_each_fee(noisy_market) -> None:
    book, _, preds = noisy_market
    config = BacktestConfig(fee_bps=10.0, hold_ns=3 * SECOND, horizon_ns=3 * SECOND,
                            baselines=False)
    stats = run_backtest(preds, book, config).stats
    for point in stats["fee_curve"][::3]:
        rerun = run_backtest(preds, book, BacktestConfig(
            fee_bps=point["fee_bps"], hold_ns=3 * SECOND, horizon_ns=3 * SECOND,
            baselines=False, curves=False)).stats
        assert rerun["net_pnl"] == pytest.approx(point["net_pnl"], abs=1e-6)
    at_break_even = run_backtest(preds, book, BacktestConfig(
        fee_bps=max(stats["break_even_fee_bps"], 0.0), hold_ns=3 * SECOND,
        horizon_ns=3 * SECOND, baselines=False, curves=False)).stats
    if stats["break_even_fee_bps"] >= 0:
        assert at_break_even["net_pnl"] == pytest.approx(0.0, abs=1e-6)
    [own] = [p for p in stats["latency_curve"] if p["latency_ns"] == SECOND]
    assert own["net_pnl"] == pytest.approx(stats["net_pnl"], abs=1e-6)


def test_maker_entries_fill_only_when_the_price_trades_through() -> None:
    # bid 99.9 / ask 100.1 until row 4, then the ask drops to 99.8 (< our resting bid).
    ts = T0 + np.arange(12, dtype=np.int64) * SECOND
    bids = [[(99.9, 5.0)]] * 4 + [[(99.7, 5.0)]] * 8
    asks = [[(100.1, 5.0)]] * 4 + [[(99.8, 5.0)]] * 8
    book = book_from_levels("binance-spot", "BTCUSDT", ts, bids, asks)
    side = np.zeros(12, np.int8)
    side[1] = 1
    config = BacktestConfig(fee_bps=5.0, maker=True, maker_fee_bps=1.0, hold_ns=6 * SECOND,
                            horizon_ns=6 * SECOND, size=1.0, baselines=False, curves=False)
    result = run_backtest(predictions(ts, *sides_to_probs(side)), book, config)
    trade = result.trades.row(0, named=True)
    assert trade["entry_px"] == 99.9 and trade["entry_ts"].second == 4
    assert trade["exit_px"] == 99.7  # the exit is a taker sell at the bid
    assert trade["fees"] == pytest.approx(99.9 * 1e-4 + 99.7 * 5e-4)
    # Only touching the price (ask down to our bid, never below) leaves the order unfilled.
    asks_touch = [[(100.1, 5.0)]] * 4 + [[(99.8, 5.0)]] * 8
    book = book_from_levels("binance-spot", "BTCUSDT", ts, [[(99.8, 5.0)]] * 12, asks_touch)
    result = run_backtest(predictions(ts, *sides_to_probs(side)), book, config)
    assert result.trades.height == 0
    assert result.stats["skipped"] == {"maker_unfilled": 1}


def test_batch_means_interval_covers_the_mean_and_narrows_with_data() -> None:
    rng = np.random.default_rng(0)
    small = batch_means_interval(rng.normal(1.0, 1.0, 50))
    large = batch_means_interval(rng.normal(1.0, 1.0, 5000))
    assert small[0] < 1.0 < small[1] and large[0] < 1.0 < large[1]
    assert large[1] - large[0] < (small[1] - small[0]) / 4
