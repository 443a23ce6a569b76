"""Datasets for models: splits, training-only statistics, the sequence view, the join."""

from __future__ import annotations

import numpy as np
import pytest
from book_fixture import NS

from bookcast.errors import UserError
from models.config import TrainConfig
from models.dataset import (
    FeatureScaler,
    SequenceView,
    chronological_splits,
    load_model_data,
    valid_window_ends,
    window_splits,
)
from models.pipeline import input_window_ns, usable_rows
from models.runs import model_splits

H = 10 * NS


def test_splits_never_overlap_and_keep_the_embargo(book_data_dir):
    data = load_model_data(book_data_dir, H, feature_set="compact")
    config = TrainConfig(feature_set="compact", window=20)
    splits = model_splits(data, config)
    embargo = H + input_window_ns(data, config)
    assert splits.embargo_ns == embargo >= H + 20 * NS
    ts = data.ts
    # every training label and the validation input windows end before validation begins
    assert ts[splits.train].max() + embargo < ts[splits.val].min()
    assert ts[splits.val].max() + embargo < ts[splits.test].min()
    assert not set(splits.train) & set(splits.val) | set(splits.val) & set(splits.test)
    ranges = splits.ranges(ts)
    assert ranges["train"]["last_ts"] < ranges["val"]["first_ts"] < ranges["test"]["first_ts"]


def test_splits_hold_for_irregular_timestamps():
    rng = np.random.default_rng(3)
    ts = np.cumsum(rng.integers(1, 5, 2000)) * NS
    labelled = rng.random(2000) > 0.2
    s = chronological_splits(ts, labelled, 7 * NS, 13 * NS)
    assert ts[s.train].max() + 20 * NS < ts[s.val].min()
    assert ts[s.val].max() + 20 * NS < ts[s.test].min()
    assert labelled[np.concatenate([s.train, s.val, s.test])].all()


def test_walk_forward_block_tests_after_its_training_window():
    ts = np.arange(10_000) * NS
    s = window_splits(ts, np.ones(10_000, bool), 0, 3000 * NS, 1000 * NS, 10 * NS, 20 * NS)
    assert ts[s.train].max() + 30 * NS < ts[s.val].min()
    assert ts[s.val].max() + 30 * NS < ts[s.test].min()
    assert ts[s.test].min() >= 3000 * NS and ts[s.test].max() < 4000 * NS


def test_normalisation_statistics_come_from_training_rows_only(book_data_dir):
    data = load_model_data(book_data_dir, H, feature_set="compact")
    splits = model_splits(data, TrainConfig(feature_set="compact", window=20))
    before = FeatureScaler.fit(data.features[splits.train])
    poisoned = data.features.copy()
    poisoned[splits.val] *= 1000.0
    poisoned[splits.test] += 1e6
    after = FeatureScaler.fit(poisoned[splits.train])
    np.testing.assert_array_equal(before.mean, after.mean)
    np.testing.assert_array_equal(before.std, after.std)


def test_labels_and_net_returns_are_the_feature_builders_round_trip(book_data_dir):
    import polars as pl

    data = load_model_data(book_data_dir, H, feature_set="compact")
    rows = data.labelled
    assert rows.sum() > 0.9 * len(data) and np.isfinite(data.long_net[rows]).all()
    long_pays, short_pays = data.long_net[rows] > 0, data.short_net[rows] > 0
    np.testing.assert_array_equal(data.y[rows] == 1, long_pays)
    np.testing.assert_array_equal(data.y[rows] == -1, short_pays & ~long_pays)
    stored = pl.read_parquet(book_data_dir / "features" / "compact" / "**" / "*.parquet"
                             ).sort("ts")["y_10s"]
    np.testing.assert_array_equal(stored.is_not_null().to_numpy(), rows)
    np.testing.assert_array_equal(stored.drop_nulls().to_numpy(), data.y[rows])


def test_labels_at_another_fee_equal_a_plain_loop_over_the_book(book_data_dir):
    data = load_model_data(book_data_dir, H, feature_set="compact", fee_bps=2.0)
    cost, n = 2 * 2.0 * 1e-4, 10
    ask, bid = data.book[:, 0], data.book[:, 2]
    for i in range(len(data)):
        j = i + n
        if j >= len(data) or data.ts[j] != data.ts[i] + H or data.gap[i + 1:j + 1].any():
            assert not data.labelled[i]
            continue
        expected = (1 if bid[j] / ask[i] - 1 > cost else -1 if 1 - ask[j] / bid[i] > cost
                    else 0)
        assert data.labelled[i] and data.y[i] == expected, i
    assert data.at_fee(0.0).y.tolist() == load_model_data(book_data_dir, H,
                                                          feature_set="compact").y.tolist()


def test_price_level_features_become_distance_from_mid(book_data_dir):
    data = load_model_data(book_data_dir, H, feature_set="compact")
    assert "mid" in data.price_columns and "mid_vs_mid_bps" in data.feature_names
    assert "imb_1" in data.feature_names  # imbalances are not prices
    j = data.feature_names.index("mid_vs_mid_bps")
    assert np.nanmax(np.abs(data.features[:, j])) < 1e-6


def test_sequence_view_serves_windows_without_copying_the_array(tmp_path):
    values = np.arange(50 * 8, dtype=np.float32).reshape(50, 8)
    ends = np.array([9, 10, 49])
    view = SequenceView(values, ends, window=10)
    assert view.shape == (3, 10, 8)
    assert np.shares_memory(view.windows, values)  # the strided view is not a copy
    batch = view[np.array([0, 2])]
    np.testing.assert_array_equal(batch[0], values[0:10])
    np.testing.assert_array_equal(batch[1], values[40:50])
    mapped = SequenceView.memory_mapped(values, tmp_path / "book.npy", ends, 10)
    assert isinstance(mapped.values, np.memmap)
    np.testing.assert_array_equal(mapped[1], values[1:11])


def test_windows_never_span_a_gap():
    ts = np.arange(100) * NS
    gap = np.zeros(100, bool)
    gap[[0, 50]] = True
    ok = valid_window_ends(ts, gap, 10, NS)
    assert not ok[:9].any() and ok[9:50].all()
    assert not ok[50:59].any() and ok[59:].all()
    ts_hole = ts.copy()
    ts_hole[30:] += 60 * NS  # a missing minute, no gap flag
    assert not valid_window_ends(ts_hole, np.zeros(100, bool), 10, NS)[30:39].any()


def test_deeplob_rows_all_have_complete_windows(book_data_dir):
    from models.pipeline import InputBuilder, Scalers

    data = load_model_data(book_data_dir, H, feature_set="compact")
    rows = np.flatnonzero(usable_rows(data))
    inputs = InputBuilder(data, Scalers.fit(data, rows), 20)
    kept = inputs.window_rows(rows)
    assert 0 < len(kept) < len(rows)
    first_after_gap = np.flatnonzero(data.gap)
    for g in first_after_gap:
        assert not np.any((kept >= g) & (kept < g + 19))


def test_missing_dataset_or_horizon_is_a_user_error(tmp_path, book_data_dir):
    with pytest.raises(UserError, match="No features dataset"):
        load_model_data(tmp_path, H)
    with pytest.raises(UserError, match="no labels for horizon 7s"):
        load_model_data(book_data_dir, 7 * NS, feature_set="compact")
