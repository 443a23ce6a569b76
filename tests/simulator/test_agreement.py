"""Simulated output replays like a real capture, and its statistics agree in kind with the
real Binance BTCUSDT capture (one function, `book_statistics`, measures both)."""

from __future__ import annotations

import math

import pytest

from collector.simulator.stats import BookStatistics, book_statistics


@pytest.fixture(scope="module")
def both(simulated_btc, real_btc) -> tuple[BookStatistics, BookStatistics]:
    return (book_statistics(simulated_btc.snapshots, simulated_btc.trades),
            book_statistics(real_btc.snapshots, real_btc.trades))


def test_simulated_capture_replays_with_zero_gaps(simulated_btc):
    states = [s for p in simulated_btc.summary.pipelines.values() for s in p.states()]
    assert [s.symbol for s in states] == ["BTCUSDT"]
    state = states[0]
    assert state.gaps == 0 and state.crossed == 0 and state.checksum_failures == 0
    assert state.resyncs <= 1  # the initial snapshot join only
    snaps = simulated_btc.snapshots
    assert snaps["gap"].sum() == 1 and snaps["gap"][0]
    assert snaps.height >= 590
    # 100-level snapshots are full on both sides
    assert snaps["bid_px"].list.len().min() == 100
    assert snaps["ask_px"].list.len().min() == 100
    assert simulated_btc.trades.height > 1000
    assert set(simulated_btc.trades["side"].unique().to_list()) == {-1, 1}


def test_spread_is_mostly_one_tick(both):
    sim, real = both
    assert sim.tick_size == real.tick_size == 0.01
    assert real.spread_one_tick > 0.9
    assert sim.spread_one_tick > 0.85


def test_best_level_holds_more_than_the_flat_levels_behind_it(both):
    for stats in both:
        assert stats.best_over_deeper > 2.0
        assert all(0.4 < x < 2.5 for x in stats.depth_profile[1:])


def test_trade_sizes_are_heavy_tailed(both):
    for stats in both:
        assert stats.trade_size_tail_index < 2.5  # a Pareto tail: infinite variance or close
        assert stats.trade_size_p99_over_median > 30
        assert stats.mean_trade_size > 3 * stats.median_trade_size


def test_mid_changes_per_minute_have_the_same_order_of_magnitude(both):
    sim, real = both
    assert real.mid_changes_per_minute > 5
    ratio = sim.mid_changes_per_minute / real.mid_changes_per_minute
    assert 0.33 < ratio < 3.0
    assert 0.2 < sim.trades_per_second / real.trades_per_second < 5.0


def test_l1_imbalance_predicts_the_next_mid_move_weakly(both):
    for stats in both:
        assert not math.isnan(stats.imbalance_next_move_corr)
        assert 0.05 < stats.imbalance_next_move_corr < 0.6
