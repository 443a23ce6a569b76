"""One fee for labels, decision and backtest: the run's own fee by default, another fee
re-derived (or refused), another venue's preset refused; `--run PATH` writes only under the
data root; Sharpe per day; the comparison rows trade as often as the model, maker too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from backtest import BacktestConfig, book_from_levels, run_backtest
from backtest.cli import register
from bookcast.errors import UserError

SECOND = 1_000_000_000


def invoke(*args: str) -> tuple[BaseException | None, str]:
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "100"})
    return result.exception, result.output


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def copy_of_trained(trained_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(trained_root, root, ignore=shutil.ignore_patterns("backtests", "reports"))
    return root


def config_of(written: Path) -> dict:
    [bt] = [b for b in (written / "backtests").iterdir() if not b.name.startswith(".")]
    return json.loads((bt / "config.json").read_text())


def test_by_default_the_backtest_charges_the_runs_own_fee(copy_of_trained):
    error, out = invoke("backtest", "--run", "lightgbm-10s", "--data-dir", str(copy_of_trained))
    assert error is None, out
    config = config_of(copy_of_trained)
    assert config["fee_bps"] == config["run_fee_bps"] == 0.0
    assert config["decision"].startswith("the run's trading policy at its own fee")
    assert "0 bps taker per side (the run's fee)" in out


def test_another_fee_re_derives_the_decision_at_that_fee(copy_of_trained):
    error, out = invoke("backtest", "--run", "lightgbm-10s", "--data-dir", str(copy_of_trained),
                        "--fee-bps", "3")
    assert error is None, out
    config = config_of(copy_of_trained)
    assert config["fee_bps"] == 3.0 and config["run_fee_bps"] == 0.0
    assert config["decision"].startswith("re-derived at 3 bps per side")
    assert "decision: re-derived" in out


def test_a_run_without_stored_policies_is_refused_at_another_fee(copy_of_trained):
    run = copy_of_trained / "runs" / "lightgbm-10s"
    info = json.loads((run / "run.json").read_text())
    del info["rules"]
    (run / "run.json").write_text(json.dumps(info))
    error, _ = invoke("backtest", "--run", "lightgbm-10s", "--data-dir", str(copy_of_trained),
                      "--fee-bps", "3")
    assert isinstance(error, UserError) and "retrain it" in str(error)
    assert not (copy_of_trained / "backtests").exists()


def test_another_venues_fee_preset_is_refused_in_one_sentence(copy_of_trained):
    error, _ = invoke("backtest", "--run", "lightgbm-10s", "--data-dir", str(copy_of_trained),
                      "--fee-preset", "binance-usdm")
    assert isinstance(error, UserError)
    assert str(error) == ("The fee preset 'binance-usdm' is binance-usdm's, but this run trades "
                          "on binance-spot; choose a binance-spot preset or pass --fee-bps.")
    error, out = invoke("backtest", "--run", "lightgbm-10s", "--data-dir", str(copy_of_trained),
                        "--fee-preset", "binance-spot-bnb")
    assert error is None, out
    assert config_of(copy_of_trained)["fee_bps"] == 7.5


def test_a_run_given_as_a_path_writes_only_under_its_data_root(copy_of_trained, tmp_path,
                                                               monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    runs_before = listing(copy_of_trained / "runs")
    run_dir = copy_of_trained / "runs" / "logistic-10s"
    error, out = invoke("backtest", "--run", str(run_dir))
    assert error is None, out
    assert listing(copy_of_trained / "runs") == runs_before  # runs are never written into
    assert listing(elsewhere) == set()  # and no junk tree where the command ran
    [bt] = list((copy_of_trained / "backtests").iterdir())
    assert bt.name.startswith("logistic-10s-") and "/" not in bt.name
    assert {p.name for p in bt.iterdir()} == {"config.json", "trades.parquet",
                                              "equity.parquet", "stats.json"}


def test_sharpe_is_per_day_and_annualised_only_with_a_day_of_data(copy_of_trained):
    error, out = invoke("backtest", "--run", "lightgbm-10s", "--data-dir", str(copy_of_trained))
    assert error is None, out
    [bt] = list((copy_of_trained / "backtests").iterdir())
    stats = json.loads((bt / "stats.json").read_text())
    for s in (stats, *stats["baselines"].values()):
        assert s["sharpe"] is None  # ten minutes of test data
        assert s["sharpe_basis"].startswith("per day, from 0.")
    assert "Sharpe (per day)" in out
    for line in out.splitlines():
        assert len(line) <= 100 or line.startswith("written to /"), line


def market_with_partial_maker_fills(n: int = 4000, seed: int = 3):
    """A random walk of the touch one tick at a time: passive entries fill only when the
    price later trades through them, so some do and some do not."""
    rng = np.random.default_rng(seed)
    ticks = np.cumsum(rng.choice([-1, 0, 1], n, p=[0.3, 0.4, 0.3]))
    bid = 100.0 + 0.01 * ticks
    ts = 1_723_161_600 * SECOND + np.arange(n, dtype=np.int64) * SECOND
    sizes = rng.uniform(20.0, 80.0, (2, n))  # the imbalance rule needs something to read
    book = book_from_levels("binance-spot", "BTCUSDT", ts,
                            [[(b, s)] for b, s in zip(bid, sizes[0], strict=True)],
                            [[(b + 0.01, s)] for b, s in zip(bid, sizes[1], strict=True)])
    return book, ts, rng


def test_in_maker_mode_the_comparison_rows_trade_as_often_as_the_model(hand):
    import polars as pl

    book, ts, rng = market_with_partial_maker_fills()
    side = np.where(rng.random(len(ts)) < 0.1, rng.choice([-1, 1], len(ts)), 0)
    preds = pl.DataFrame({"ts": ts, "venue": "binance-spot", "symbol": "BTCUSDT",
                          "p_down": np.where(side < 0, 0.9, 0.05),
                          "p_flat": np.where(side == 0, 0.9, 0.05),
                          "p_up": np.where(side > 0, 0.9, 0.05), "y": np.zeros(len(ts), np.int8)})
    config = BacktestConfig(fee_bps=5.0, maker_fee_bps=2.0, maker=True, hold_ns=5 * SECOND,
                            horizon_ns=5 * SECOND, curves=False)
    stats = run_backtest(preds, book, config).stats
    assert stats["skipped"].get("maker_unfilled", 0) > 20  # the rule really refuses fills
    model_trades = stats["n_trades"]
    assert model_trades > 40
    for name in ("random", "imbalance_l1"):
        assert stats["baselines"][name]["n_trades"] == model_trades, name
    # ...and the random row keeps the model's mix of longs and shorts
    trades = run_backtest(preds, book, config).baselines["random"].trades
    model = run_backtest(preds, book, BacktestConfig(
        fee_bps=5.0, maker_fee_bps=2.0, maker=True, hold_ns=5 * SECOND, horizon_ns=5 * SECOND,
        curves=False, baselines=False)).trades
    assert (trades["side"] == 1).sum() == (model["side"] == 1).sum()
