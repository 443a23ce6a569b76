"""Post-train behavioural tests: invariance, directional expectation and minimum
functionality, on models trained on the synthetic book through the real feature builder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from book_fixture import NS

from models.baselines import ImbalanceRule, LogisticForecaster
from models.config import TrainConfig
from models.dataset import load_model_data
from models.policy import ClassificationPolicy
from models.runs import model_splits, predict_with_run

H = 10 * NS


@pytest.fixture(scope="module")
def fitted_imbalance_models(book_data_dir):
    data = load_model_data(book_data_dir, H, feature_set="compact")
    s = model_splits(data, TrainConfig(feature_set="compact", window=20))
    rule = ImbalanceRule().fit(data.book[s.train], data.y[s.train], data.book[s.val],
                               data.y[s.val])
    rule.policy = ClassificationPolicy.tune(rule.predict_proba(data.book[s.val]), data.y[s.val])
    rule.predict = lambda X: rule.policy.signals(rule.predict_proba(X))
    logistic = LogisticForecaster("book").fit(data.book[s.train], data.y[s.train])
    return data, s, rule, logistic


def test_scaling_every_size_leaves_imbalance_predictions_unchanged(fitted_imbalance_models):
    data, s, rule, logistic = fitted_imbalance_models
    book = data.book[s.test]
    scaled = book.copy()
    scaled[:, 1::2] *= 7.3  # every size column (ask_sz, bid_sz at each level)
    for model in (rule, logistic):
        np.testing.assert_allclose(model.predict_proba(scaled), model.predict_proba(book),
                                   atol=1e-9)
    np.testing.assert_array_equal(rule.predict(scaled), rule.predict(book))


def test_more_size_at_the_best_bid_never_lowers_p_up_of_the_imbalance_rule(
        fitted_imbalance_models):
    data, s, rule, _ = fitted_imbalance_models
    book = data.book[s.test]
    p_up = rule.predict_proba(book)[:, 2]
    for extra in (0.1, 1.0, 10.0):
        more = book.copy()
        more[:, 3] += extra  # level-1 bid size
        assert (rule.predict_proba(more)[:, 2] >= p_up - 1e-12).all()


def test_imbalance_rule_calls_a_bid_heavy_thin_ask_book_up(fitted_imbalance_models):
    data, s, rule, _ = fitted_imbalance_models
    book = data.book[s.test].copy()
    book[:, 3] = 50.0  # heavy best bid
    book[:, 1] = 0.05  # thin best ask
    assert (rule.predict(book) == 1).all()
    assert (rule.predict_proba(book)[:, 2] > rule.predict_proba(data.book[s.test])[:, 2].mean()
            ).all()


def _rebuild_with_edited_best_level(src: Path, dst: Path, ts_edit: np.ndarray, bid_factor: float,
                                    ask_factor: float) -> None:
    """Copy the snapshots, scale level-1 bid/ask sizes at `ts_edit`, rebuild the features
    with the original microprice fit, so only the edited rows can differ."""
    from features.build import build_features

    shutil.copytree(src / "snapshots", dst / "snapshots")
    config = json.loads((src / "features" / "compact" / "config.json").read_text())
    train_end = next(iter(config["microprice"].values()))["train_end_ns"]
    for path in (dst / "snapshots").rglob("*.parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        frame = pl.from_arrow(table)
        hit = frame["ts"].dt.epoch("ns").is_in(ts_edit.tolist())

        def scale_first(col: str, factor: float, hit: pl.Series = hit) -> pl.Expr:
            first = pl.col(col).list.first() * factor
            return (pl.when(hit).then(pl.concat_list(first, pl.col(col).list.slice(1)))
                    .otherwise(pl.col(col)).alias(col))

        frame = frame.with_columns(scale_first("bid_sz", bid_factor),
                                   scale_first("ask_sz", ask_factor))
        pq.write_table(frame.to_arrow().cast(table.schema).replace_schema_metadata(
            table.schema.metadata), path)
    build_features(dst, "compact", horizons_ns=[H], fee_bps=0.0,
                   microprice_train_end_ns=train_end)


def _p(path: Path, ts_edit: np.ndarray) -> pl.DataFrame:
    frame = pl.read_parquet(path)
    return frame.filter(pl.col("ts").dt.epoch("ns").is_in(ts_edit.tolist())).sort("ts")


@pytest.fixture(scope="module")
def edited_rows(lightgbm_run):
    test = pl.read_parquet(lightgbm_run / "predictions.parquet")
    ts = test["ts"].dt.epoch("ns").to_numpy()
    return ts[5::20]  # spaced so no edit sits in another's lookback


def test_more_size_at_the_best_bid_never_lowers_p_up_of_trained_lightgbm(
        tmp_path, book_data_dir, lightgbm_run, edited_rows):
    original, _ = predict_with_run(str(lightgbm_run), book_data_dir, tmp_path / "orig.parquet")
    _rebuild_with_edited_best_level(book_data_dir, tmp_path / "more", edited_rows, 2.0, 1.0)
    edited, _ = predict_with_run(str(lightgbm_run), tmp_path / "more",
                                 tmp_path / "more.parquet")
    before, after = _p(original, edited_rows), _p(edited, edited_rows)
    assert len(before) == len(after) == len(edited_rows)
    assert (after["p_up"].to_numpy() >= before["p_up"].to_numpy() - 1e-9).all()


def test_trained_lightgbm_favours_up_on_a_bid_heavy_thin_ask_book(
        tmp_path, book_data_dir, lightgbm_run, edited_rows):
    original, _ = predict_with_run(str(lightgbm_run), book_data_dir, tmp_path / "orig.parquet")
    _rebuild_with_edited_best_level(book_data_dir, tmp_path / "heavy", edited_rows, 20.0, 0.05)
    edited, _ = predict_with_run(str(lightgbm_run), tmp_path / "heavy",
                                 tmp_path / "heavy.parquet")
    before, after = _p(original, edited_rows), _p(edited, edited_rows)
    assert (after["p_up"] > after["p_down"]).all()
    assert after["p_up"].mean() > before["p_up"].mean()

