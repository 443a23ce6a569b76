"""Each feature formula against values worked out by hand on tiny books written as Parquet."""

from __future__ import annotations

import math

import polars as pl
import pytest

from features.build import partition_features
from features.definitions import FeatureConfig
from features.partitions import scan_snapshots, scan_trades, snapshot_partitions

S = 1_000_000_000
HAND_CONFIG = FeatureConfig(levels=2, cumulative_imbalance_levels=(2,), ew_imbalance_decay=0.5,
                            depth_bps=(150.0,), ofi_levels=2, lookbacks_ns=(S, 2 * S),
                            microprice=False)


def hand_book(t0: int) -> list:
    return [
        (t0, [(99.0, 2.0), (98.0, 3.0)], [(101.0, 1.0), (102.0, 4.0)], True),
        (t0 + S, [(100.0, 1.0), (99.0, 2.0)], [(101.0, 3.0), (102.0, 4.0)], False),
        (t0 + 2 * S, [(100.0, 1.0), (99.0, 2.0)], [(100.5, 2.0), (101.0, 3.0)], False),
        (t0 + 3 * S, [(103.0, 1.0), (102.0, 2.0)], [(104.0, 2.0), (105.0, 3.0)], False),
    ]


@pytest.fixture()
def hand_features(tmp_path, books):
    t0 = books.T0 + 10 * S  # 00:00:10 UTC, so the trade before it is on the same date
    books.write_snapshots(tmp_path, hand_book(t0))
    books.write_trades(tmp_path, [
        (t0 - S, 99.0, 9.0, 1),              # before the first window: never counted
        (t0 + S // 2, 100.0, 0.5, 1),        # row 1's bucket
        (t0 + S, 100.0, 0.2, -1),            # received exactly at row 1: row 1 may use it
        (t0 + S + 1, 100.0, 1.0, 1),         # one ns later: only row 2 may use it
    ])
    (partition,) = snapshot_partitions(tmp_path)
    return partition_features(
        scan_snapshots(partition), scan_trades(tmp_path, partition), interval_ns=S,
        config=HAND_CONFIG, horizons_ns=[S], fee_bps=100.0,
    ).collect()


def test_book_shape_features_match_hand_values(hand_features):
    row = hand_features.row(0, named=True)
    assert row["mid"] == 100.0
    assert row["spread"] == 2.0
    assert row["spread_bps"] == pytest.approx(200.0)
    assert (row["best_bid"], row["best_ask"], row["best_bid_sz"], row["best_ask_sz"]) == (
        99.0, 101.0, 2.0, 1.0)
    # within 150 bps of 100: bids >= 98.5 and asks <= 101.5
    assert row["depth_bid_150bps"] == 2.0
    assert row["depth_ask_150bps"] == 1.0
    # 5 lots over the 200 bps out to level 2, each side
    assert row["slope_bid"] == pytest.approx(5 / 200)
    assert row["slope_ask"] == pytest.approx(5 / 200)


def test_imbalances_and_weighted_mid_match_hand_values(hand_features):
    row = hand_features.row(0, named=True)
    assert row["imb_1"] == pytest.approx(1 / 3)
    assert row["imb_cum_2"] == pytest.approx(0.0)
    w = math.exp(-0.5)
    assert row["imb_ew"] == pytest.approx(((2 + 3 * w) - (1 + 4 * w)) / ((2 + 3 * w) + (1 + 4 * w)))
    assert row["wmid"] == pytest.approx((99 * 1 + 101 * 2) / 3)


def test_order_flow_imbalance_matches_cont_kukanov_stoikov_by_hand(hand_features):
    ofi1 = hand_features["ofi_1_1s"].to_list()
    ofi2 = hand_features["ofi_2_1s"].to_list()
    # row 1: bid up 99->100 (+1), ask unchanged 1->3 (-3 + 1)
    # row 2: bid unchanged (+1 - 1), ask down 101->100.5 (-2)
    assert ofi1[:3] == [None, pytest.approx(-1.0), pytest.approx(-2.0)]
    # level 2, row 1: bid up 98->99 (+2), ask unchanged at 102 (-4 + 4)
    assert ofi2[1] == pytest.approx(2.0)
    assert hand_features["ofi_1_2s"].to_list()[:3] == [None, None, pytest.approx(-3.0)]


def test_returns_and_realised_volatility_match_hand_values(hand_features):
    r1, r2 = math.log(100.5 / 100), math.log(100.25 / 100.5)
    assert hand_features["ret_1s"].to_list()[:3] == [None, pytest.approx(r1), pytest.approx(r2)]
    assert hand_features["ret_2s"][2] == pytest.approx(math.log(100.25 / 100))
    assert hand_features["rvol_2s"][2] == pytest.approx(math.sqrt(r1**2 + r2**2))
    assert hand_features["rvol_2s"][1] is None


def test_trade_flow_counts_only_trades_received_by_the_row(hand_features):
    assert hand_features["signed_vol_1s"].to_list()[:3] == [
        None, pytest.approx(0.3), pytest.approx(1.0)]
    assert hand_features["tfi_1s"][1] == pytest.approx(0.3 / 0.7)
    assert hand_features["tfi_1s"][3] == 0.0  # no trades in the window: no flow
    assert hand_features["tfi_2s"][2] == pytest.approx(1.3 / 1.7)


def test_fee_aware_label_and_forward_return_match_hand_values(hand_features):
    # row 2 -> 3: bid 103 / ask 100.5 - 1 = 2.49% > 2 x 100 bps
    assert hand_features["y_1s"].to_list() == [0, 0, 1, None]
    assert hand_features["fwd_ret_1s"][2] == pytest.approx(103.5 / 100.25 - 1)
    assert hand_features.schema["y_1s"] == pl.Int8
    assert hand_features.schema["fwd_ret_1s"] == pl.Float64


def test_time_of_day_is_the_utc_clock_on_a_circle(hand_features):
    # the book starts at 00:00:10 UTC
    angle = 2 * math.pi * 10 / 86_400
    assert hand_features["tod_sin"][0] == pytest.approx(math.sin(angle))
    assert hand_features["tod_cos"][0] == pytest.approx(math.cos(angle))


def test_trades_in_receive_order_bucket_as_a_binary_search_does():
    """The one-pass merge (trades sorted by receive time) against the binary search the
    build uses for trades out of order: the same row for every trade, on grid times, before
    the first row and after the last, over 20,000 random trades."""
    import numpy as np

    from features.definitions import trade_buckets

    rng = np.random.default_rng(7)
    grid = np.arange(1_000, dtype=np.int64) * S + 5 * S
    received = np.sort(np.concatenate([
        rng.integers(0, 1_010 * S, 20_000), grid[rng.integers(0, grid.size, 300)]]))
    size = rng.exponential(1.0, received.size)
    side = rng.choice(np.array([-1, 0, 1], np.int8), received.size)
    trades = pl.LazyFrame({"ts_recv": pl.Series(received).cast(pl.Datetime("ns", "UTC")),
                           "size": size, "side": side})
    merged = trade_buckets(trades, grid)
    shuffled = trade_buckets(trades.select(pl.all().shuffle(seed=1)), grid)
    row = np.searchsorted(grid, received, side="left")
    kept = row < grid.size
    for got, by_search, sign in zip(merged, shuffled, (1, -1), strict=True):
        mask = kept & (side == sign)
        expected = np.bincount(row[mask], weights=size[mask], minlength=grid.size)
        assert np.array_equal(got, expected)  # same sums in the same order: bit for bit
        assert np.allclose(by_search, expected, rtol=1e-12, atol=0)
    assert merged[0][0] > 0 and merged[0][-1] > 0  # trades before and at the last row count
