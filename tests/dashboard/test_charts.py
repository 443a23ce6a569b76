"""The figure builders and the numbers behind them, without Streamlit."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve

from dashboard import charts

T0 = 1_723_161_600_000_000_000
SECOND = 1_000_000_000


def book_rows(n: int, levels: int = 3, tick: float = 0.5) -> pl.DataFrame:
    bid = [[100.0 - tick * i for i in range(levels)] for _ in range(n)]
    ask = [[100.0 + tick * (i + 1) for i in range(levels)] for _ in range(n)]
    size = [[float(i + 1) for i in range(levels)] for _ in range(n)]
    return pl.DataFrame({"ts_ns": [T0 + k * SECOND for k in range(n)], "gap": [False] * n,
                         "bid_px": bid, "bid_sz": size, "ask_px": ask, "ask_sz": size})


def test_depth_grid_puts_each_level_in_its_tick_bin():
    grid = charts.depth_grid(book_rows(4), tick_size=0.5)
    assert grid.bin_width == 0.5
    assert grid.size.shape == (len(grid.prices), 4)
    column = dict(zip(grid.prices.round(6), grid.size[:, 0], strict=True))
    assert column[100.0] == 1.0 and column[99.0] == 3.0 and column[101.5] == 3.0
    assert np.nansum(grid.size[:, 2]) == 12.0  # 1+2+3 a side


def test_depth_grid_keeps_at_most_the_asked_columns_with_the_last_book_of_each():
    rows = book_rows(1000)
    grid = charts.depth_grid(rows, max_columns=50, tick_size=0.5)
    assert grid.size.shape[1] == 50
    assert np.allclose(np.nansum(grid.size, axis=0), 12.0)


def test_bucketed_trades_keep_total_volume_per_side():
    n = 500
    trades = pl.DataFrame({"ts_ns": [T0 + k * SECOND // 10 for k in range(n)],
                           "price": [100.0 + (k % 3) for k in range(n)],
                           "size": [0.1 * (k % 7 + 1) for k in range(n)],
                           "side": [1 if k % 2 else -1 for k in range(n)]},
                          schema_overrides={"side": pl.Int8})
    times = np.arange(T0, T0 + 50 * SECOND, 5 * SECOND)
    bucketed = charts.bucket_trades(trades, times, max_markers=100)
    assert bucketed.height < trades.height
    for side in (1, -1):
        assert bucketed.filter(pl.col("side") == side)["size"].sum() == pytest.approx(
            trades.filter(pl.col("side") == side)["size"].sum())


def test_precision_recall_matches_scikit_learn():
    rng = np.random.default_rng(0)
    truth = rng.random(400) < 0.1
    score = np.round(rng.random(400) + truth * 0.3, 2)  # ties included
    precision, recall, ap = charts.precision_recall(truth, score)
    ref_p, ref_r, _ = precision_recall_curve(truth, score)
    assert ap == pytest.approx(average_precision_score(truth, score))
    assert np.allclose(sorted(zip(recall, precision, strict=True)),
                       sorted(zip(ref_r[:-1], ref_p[:-1], strict=True)))


def test_calibration_of_a_calibrated_forecast_lies_on_the_diagonal():
    rng = np.random.default_rng(1)
    prob = rng.random(200_000)
    truth = rng.random(prob.size) < prob
    mean_p, freq, count = charts.calibration(truth, prob, n_bins=10)
    assert count.sum() == prob.size
    assert np.allclose(mean_p, freq, atol=0.01)


def test_drawdown_is_the_fall_from_the_running_peak():
    assert np.allclose(charts.drawdown(np.array([100, 110, 99, 120, 60])),
                       [0, 0, -0.1, 0, -0.5])


def test_cost_waterfall_ends_at_gross_minus_spread_minus_fees():
    figure = charts.cost_waterfall({"gross_pnl_mid": 5.0, "spread_cost": 2.0, "fees": 4.0})
    assert list(figure.data[0].y) == [5.0, -2.0, -4.0, -1.0]


def test_figures_say_what_is_missing_instead_of_failing():
    for figure in (charts.equity_figure(None), charts.fee_curve_figure({}),
                   charts.latency_curve_figure({"latency_curve": None}),
                   charts.ci_figure({"model": {"net_pnl_per_trade_ci95": None}}),
                   charts.confusion_figure(None, "x"), charts.cost_waterfall({}),
                   charts.pr_figure({"model": pl.DataFrame({"p_up": [0.2]})}, "up")):
        assert figure.layout.annotations, figure.layout.title.text
