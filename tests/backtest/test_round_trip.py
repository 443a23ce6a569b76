"""Hand-computed fills: the engine must agree with pencil and paper to the cent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from backtest import BacktestConfig, load_book, load_run, run_backtest
from backtest.cli import register
from backtest.fills import walk_book

LOW_BIDS = [(100.00, 1.0), (99.90, 2.0), (99.80, 5.0)]
LOW_ASKS = [(100.10, 1.0), (100.20, 2.0), (100.30, 5.0)]
HIGH_BIDS = [(101.00, 1.0), (100.90, 2.0), (100.80, 5.0)]
HIGH_ASKS = [(101.10, 1.0), (101.20, 2.0), (101.30, 5.0)]


@pytest.fixture
def step_market(tmp_path: Path, hand) -> Path:
    """Ten 1 s snapshots; the book jumps up a dollar at row 5; the model says 'up' at row 1."""
    ts = hand.T0 + np.arange(10, dtype=np.int64) * hand.SECOND
    hand.write_snapshots(tmp_path, ts, [LOW_BIDS] * 5 + [HIGH_BIDS] * 5,
                         [LOW_ASKS] * 5 + [HIGH_ASKS] * 5)
    p_up = np.full(8, 0.05)
    p_up[1] = 0.8
    hand.write_run(tmp_path, "hand", ts[:8], p_up=p_up, p_down=np.full(8, 0.05),
                   horizon_ns=3 * hand.SECOND)
    return tmp_path


def test_walk_book_averages_the_levels_it_takes() -> None:
    px = np.array([100.10, 100.20, 100.30])
    sz = np.array([1.0, 2.0, 5.0])
    assert walk_book(px, sz, 0, 3, 0.5) == (100.10, 0.0)
    avg, beyond = walk_book(px, sz, 0, 3, 2.5)
    assert avg == pytest.approx((1.0 * 100.10 + 1.5 * 100.20) / 2.5, abs=1e-12)
    assert beyond == 0.0
    avg, beyond = walk_book(px, sz, 0, 3, 10.0)
    assert beyond == pytest.approx(2.0)
    assert avg == pytest.approx((100.10 + 200.40 + 501.50 + 2 * 100.30) / 10.0)


@pytest.mark.parametrize(("size", "entry_px", "exit_px"), [
    (0.5, 100.10, 101.00),  # inside the touch: the best ask, then the best bid
    (2.5, 100.16, 100.94),  # walks a second level on both sides
])
def test_hand_computed_round_trip_matches_to_the_cent(step_market: Path, size: float,
                                                      entry_px: float, exit_px: float) -> None:
    run = load_run(step_market, "hand")
    book = load_book(step_market, run.venue, run.symbol, int(run.predictions["ts"][0]),
                     int(run.predictions["ts"][-1]))
    config = BacktestConfig(fee_bps=10.0, hold_ns=3_000_000_000, horizon_ns=run.horizon_ns,
                            size=size, baselines=False)
    result = run_backtest(run.predictions, book, config)
    trade = result.trades.row(0, named=True)
    fees = 0.001 * size * (entry_px + exit_px)
    assert result.trades.height == 1
    assert trade["side"] == 1
    # signal at 00:00:01, one snapshot of latency -> buy at 00:00:02; exit signal 00:00:04 -> 05
    assert trade["entry_ts"].second == 2 and trade["exit_ts"].second == 5
    assert round(trade["entry_px"], 2) == entry_px
    assert round(trade["exit_px"], 2) == exit_px
    assert round(trade["fees"], 2) == round(fees, 2)
    assert trade["net_pnl"] == pytest.approx(size * (exit_px - entry_px) - fees, abs=0.005)
    stats = result.stats
    assert stats["gross_pnl_mid"] == pytest.approx(size * (101.05 - 100.05), abs=1e-9)
    assert stats["spread_cost"] == pytest.approx(size * 1.0 - size * (exit_px - entry_px), abs=1e-9)
    assert stats["net_pnl"] == pytest.approx(
        stats["gross_pnl_mid"] - stats["spread_cost"] - stats["fees"], abs=1e-9)


def test_cli_writes_the_backtest_directory_with_the_hand_computed_trade(step_market: Path) -> None:
    app = typer.Typer()
    app.callback()(lambda: None)  # a group, so "backtest" stays a subcommand as in bookcast
    register(app)
    done = CliRunner().invoke(app, [
        "backtest", "--run", "hand", "--data-dir", str(step_market), "--size", "2.5",
        "--fee-bps", "10", "--hold", "3s", "--latency", "1s"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    [out] = list((step_market / "backtests").iterdir())
    assert {p.name for p in out.iterdir()} == {"config.json", "trades.parquet",
                                               "equity.parquet", "stats.json"}
    trades = pl.read_parquet(out / "trades.parquet")
    assert trades["entry_px"].round(2).to_list() == [100.16]
    assert trades["exit_px"].round(2).to_list() == [100.94]
    stats = json.loads((out / "stats.json").read_text())
    assert round(stats["net_pnl"], 2) == round(2.5 * (100.94 - 100.16) - 0.001 * 2.5 * 201.10, 2)
    assert set(stats["baselines"]) == {"random", "imbalance_l1", "oracle"}
    equity = pl.read_parquet(out / "equity.parquet")
    assert equity.columns == ["ts", "equity", "equity_gross"]
    capital = json.loads((out / "config.json").read_text())["capital"]
    assert equity["equity"][-1] == pytest.approx(capital + stats["net_pnl"], abs=1e-6)
    assert "model" in done.output and "imbalance_l1" in done.output
