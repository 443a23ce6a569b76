"""What the models see: imbalance features that point the way the book leans (on a real
capture and after the dataset code), every family leaning with them, and DeepLOB's prices
in bps from the mid."""

from __future__ import annotations

import numpy as np
import polars as pl
from book_fixture import NS

from models.baselines import cumulative_imbalance
from models.config import TrainConfig
from models.dataset import ASK_PX, BID_PX, load_model_data
from models.pipeline import InputBuilder, Scalers

IMBALANCE_PREFIXES = ("imb_", "ofi_1_1s", "tfi_1s")


def test_imbalance_features_point_the_way_the_next_move_goes_on_real_binance(
        real_spot_features):
    """Real BTCUSDT spot: more size on the bid (and buying flow) comes before the mid rises.
    A sign flip of any imbalance feature turns its correlation negative."""
    frame = pl.read_parquet(real_spot_features / "features" / "default" / "**" / "*.parquet")
    columns = [c for c in frame.columns if c.startswith(IMBALANCE_PREFIXES)]
    assert {"imb_1", "imb_cum_2", "imb_cum_10", "imb_ew", "ofi_1_1s", "tfi_1s"} <= set(columns)
    for column in columns:
        corr = frame.select(pl.corr(column, "fwd_ret_1s")).item()
        assert corr > 0.1, (column, corr)


def test_the_dataset_keeps_the_sign_of_the_book(book_data_dir):
    data = load_model_data(book_data_dir, 10 * NS, feature_set="compact")
    book_side = cumulative_imbalance(data.book, 1)
    for j, name in enumerate(data.feature_names):
        if name.startswith("imb_"):
            ok = np.isfinite(data.features[:, j])
            assert np.corrcoef(data.features[ok, j], book_side[ok])[0, 1] > 0.3, name
    j = data.feature_names.index("imb_1")
    np.testing.assert_allclose(data.features[:, j], book_side, atol=1e-12)
    # ...and the fixture's moves follow that imbalance, as the labels must show
    rows = data.labelled
    assert np.corrcoef(book_side[rows], data.y[rows])[0, 1] > 0.2


def test_deeplob_sees_prices_in_bps_from_the_mid_and_scaled_sizes(book_data_dir):
    data = load_model_data(book_data_dir, 10 * NS, feature_set="compact")
    rows = np.flatnonzero(data.labelled)
    config = TrainConfig(model="deeplob", feature_set="compact", window=20)
    train = rows[: len(rows) // 2]
    inputs = InputBuilder(data, Scalers.fit(data, train), config.window)
    ends = inputs.window_rows(rows)[-200:]
    windows = inputs("sequence", ends)[np.arange(200)]
    scale = inputs.scalers.book.price_scale
    last = windows[:, -1, :]
    # the decision row's best ask and bid sit half a spread either side of its mid
    spread_bps = (data.book[ends, ASK_PX] / data.book[ends, BID_PX] - 1) * 1e4
    np.testing.assert_allclose(last[:, ASK_PX] - last[:, BID_PX], spread_bps / scale,
                               rtol=1e-3)
    np.testing.assert_allclose(last[:, ASK_PX] + last[:, BID_PX], 0.0, atol=1e-3)
    # a tick is a sizeable input, not 1e-4 of a standard deviation
    assert 0.05 < (1e4 * 0.01 / 100.0) / scale < 20
    # drift cannot shift the inputs: the same book at prices 7 % higher reads the same
    lifted = data.book.copy()
    lifted[:, ASK_PX::4] *= 1.07
    lifted[:, BID_PX::4] *= 1.07
    from dataclasses import replace

    moved = InputBuilder(replace(data, book=lifted), inputs.scalers, config.window)
    np.testing.assert_allclose(moved("sequence", ends)[np.arange(200)], windows, atol=2e-3)
    # sizes are log-scaled z-scores of the training rows: of order one
    sizes = windows[..., 1::2]
    assert np.abs(sizes).max() < 10 and 0.3 < sizes.std() < 3
