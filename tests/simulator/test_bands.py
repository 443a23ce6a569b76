"""The default preset reproduces the real capture's statistics within the band table; the
null control carries no signal; the regime switch changes volatility where it should.

Every band's centre is measured here, on the shared real capture, by the same function
(stats.market_statistics) and the same path (capture -> replay, 1 s grid, 10 levels) as
the simulated side.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from collector.simulator.compare import band_table
from collector.simulator.presets import QUIET_SCALE, VOLATILE_SCALE
from collector.simulator.stats import (
    BAND_BY_NAME,
    BANDS,
    NULL_MAX_ABS_CORR,
    Market,
    compare,
    market_statistics,
)

from .conftest import replay, simulate

DOCS = Path(__file__).resolve().parents[2] / "docs" / "simulator.md"


@pytest.fixture(scope="module")
def real_stats(real_btc):
    return market_statistics(real_btc.markets["BTCUSDT"])


def test_default_preset_reproduces_the_real_statistics_within_every_band(real_stats,
                                                                        default_btc_hour):
    sim = market_statistics(default_btc_hour.markets["BTCUSDT"])
    assert sim.rows >= 3590 and real_stats.rows >= 640
    rows = compare(real_stats, sim)
    assert [r.statistic for r in rows] == [b.statistic for b in BANDS]
    failed = [f"{r.statistic}: real {r.real:.3f}, simulated {r.simulated:.3f}, band "
              f"[{r.low:.3f}, {r.high:.3f}]" for r in rows if not r.holds]
    assert not failed, "; ".join(failed)
    # the product's question needs a signal at all: the band's floor is well above zero
    assert sim.imbalance_corr_1s > 0.2 and sim.imbalance_hit_1s > 0.65


def test_the_signal_is_the_books_own_race_not_a_planted_drift(default_btc_hour):
    """Independent recomputation from the raw snapshot rows: the imbalance of the row
    before each mid move points the way of the move; after a move the new best on the
    side it moved towards is the thinner queue (the depleted side re-quoted), which is
    why the next move tends to follow."""
    snaps = default_btc_hour.markets["BTCUSDT"].snapshots
    bid = np.array(snaps["bid_px"].list.first().to_list())
    ask = np.array(snaps["ask_px"].list.first().to_list())
    qb = np.array(snaps["bid_sz"].list.first().to_list())
    qa = np.array(snaps["ask_sz"].list.first().to_list())
    move = np.diff((bid + ask) / 2.0)
    before = ((qb - qa) / (qb + qa))[:-1]
    up, down = move > 0, move < 0
    assert before[up].mean() > 0.25 and before[down].mean() < -0.25
    after = ((qb - qa) / (qb + qa))[1:]
    assert after[up].mean() > 0.1 and after[down].mean() < -0.1


def test_null_control_says_nothing_with_the_same_spread_volatility_and_trades(
        tmp_path_factory, real_stats):
    root = tmp_path_factory.mktemp("null")
    null = market_statistics(replay(simulate(root, "binance-spot", ["BTCUSDT"], "null", 0.5),
                                    root / "data").markets["BTCUSDT"])
    assert abs(null.imbalance_corr_1s) < NULL_MAX_ABS_CORR
    assert abs(null.imbalance_corr_10s) < 2 * NULL_MAX_ABS_CORR
    assert abs(null.imbalance_hit_1s - 0.5) < 0.05
    for name in ("volatility_10s_bps", "one_tick_spread_share", "mid_move_share",
                 "trades_per_second", "trade_size_tail_index", "touch_depth_ratio"):
        band = BAND_BY_NAME[name]
        value, real = getattr(null, name), getattr(real_stats, name)
        assert band.holds(real, value), f"null {name} {value:.3f} outside {band.bounds(real)}"


def test_regime_switch_changes_volatility_where_it_should(tmp_path_factory, real_stats):
    """Quiet and volatile alternate every 5 minutes; the 10 s volatility, measured on each
    regime's own rows, is about QUIET_SCALE and VOLATILE_SCALE times the real one."""
    root = tmp_path_factory.mktemp("regimes")
    switch_s = 300.0
    market = replay(simulate(root, "binance-spot", ["BTCUSDT"], "regime-switch", 20 / 60,
                             switch_every_s=switch_s), root / "data").markets["BTCUSDT"]
    ts = market.snapshots["ts"].dt.epoch("ns").to_numpy()
    regime = ((ts - ts[0]) // int(switch_s * 1e9)) % 2  # 0 quiet, 1 volatile
    vols = {}
    for k, name in ((0, "quiet"), (1, "volatile")):
        part = Market(market.venue, market.symbol, market.snapshots.filter(regime == k),
                      market.trades, market.tick_size, market.interval_ns)
        vols[name] = market_statistics(part).volatility_10s_bps
    ratio = vols["volatile"] / vols["quiet"]
    assert 2.2 < ratio < 4.2, vols
    real = real_stats.volatility_10s_bps
    assert 0.6 * QUIET_SCALE * real < vols["quiet"] < 1.5 * QUIET_SCALE * real, vols
    assert 0.6 * VOLATILE_SCALE * real < vols["volatile"] < 1.5 * VOLATILE_SCALE * real, vols
    # every regime, one by one, sits on its side: the switches happen where they are due
    mid = (np.array(market.snapshots["bid_px"].list.first().to_list())
           + np.array(market.snapshots["ask_px"].list.first().to_list())) / 2
    step = np.abs(mid[10:] - mid[:-10])
    block = ((ts[10:] - ts[0]) // int(switch_s * 1e9))
    per_block = [float(np.mean(step[block == b])) for b in range(int(block.max()) + 1)]
    threshold = np.sqrt(per_block[0] * per_block[1])
    assert [x > threshold for x in per_block] == [k % 2 == 1 for k in range(len(per_block))]


def test_the_docs_print_the_band_table_the_tests_read():
    text = DOCS.read_text(encoding="utf-8")
    assert band_table() in text, "regenerate the band table in docs/simulator.md"
    for band in BANDS:
        assert re.search(re.escape(band.statistic), text)
