"""Mistakes a user can make end in one clear UserError naming the input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from backtest import BacktestConfig, backtest_run
from backtest.cli import register
from bookcast.errors import UserError

BOOK = ([(100.0, 1.0)], [(100.1, 1.0)])


@pytest.fixture
def market(tmp_path: Path, hand) -> Path:
    ts = hand.T0 + np.arange(20, dtype=np.int64) * hand.SECOND
    hand.write_snapshots(tmp_path, ts, [BOOK[0]] * 20, [BOOK[1]] * 20)
    hand.write_run(tmp_path, "ok", ts[:15], p_up=np.full(15, 0.5), p_down=np.full(15, 0.1))
    later = ts + 60 * hand.SECOND
    hand.write_run(tmp_path, "uncovered", later, p_up=np.full(20, 0.5), p_down=np.full(20, 0.1))
    return tmp_path


def cli(root: Path, *args: str) -> BaseException | None:
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    result = CliRunner().invoke(app, ["backtest", "--data-dir", str(root), *args])
    return result.exception


def config(**changes: object) -> BacktestConfig:
    values: dict = {"fee_bps": 10.0, "hold_ns": 3_000_000_000, "horizon_ns": 3_000_000_000}
    values.update(changes)
    return BacktestConfig(**values)


def test_unknown_run_names_the_run_and_the_known_ones(market: Path) -> None:
    error = cli(market, "--run", "nope")
    assert isinstance(error, UserError)
    assert "Unknown run 'nope'" in str(error) and "ok" in str(error)


def test_predictions_outside_the_snapshots_are_refused(market: Path) -> None:
    with pytest.raises(UserError, match="not covered by the snapshots of binance-spot BTCUSDT"):
        backtest_run(market, "uncovered", config())


@pytest.mark.parametrize(("args", "message"), [
    (["--fee-bps", "-1"], "fee -1.0 bps is negative"),
    (["--latency", "-5ms"], "latency '-5ms' is negative"),
    (["--latency", "soon"], "latency 'soon' is not a duration"),
    (["--latency", "10ms"], "shorter than one snapshot"),
    (["--threshold", "1.5"], "threshold 1.5 is not a probability"),
    (["--fee-preset", "nowhere"], "Unknown fee preset 'nowhere'"),
    (["--fee-preset", "kraken", "--fee-bps", "3"], "either --fee-preset or --fee-bps"),
    (["--size", "0"], "order size 0.0 is not positive"),
])
def test_bad_options_give_one_clear_error(market: Path, args: list[str], message: str) -> None:
    error = cli(market, "--run", "ok", *args)
    assert isinstance(error, UserError), error
    assert message in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize("changes", [{"fee_bps": -0.5}, {"latency_ns": -1},
                                     {"maker_fee_bps": -1.0}, {"notional": 0.0}])
def test_python_surface_rejects_negative_fees_and_latencies(market: Path, changes: dict) -> None:
    with pytest.raises(UserError):
        backtest_run(market, "ok", config(**changes))


def test_missing_snapshots_are_named(market: Path, hand) -> None:
    for part in (market / "snapshots").rglob("*.parquet"):
        part.unlink()
    with pytest.raises(UserError, match="no snapshots for binance-spot BTCUSDT"):
        backtest_run(market, "ok", config())


@pytest.mark.parametrize("column", ["venue", "symbol"])
def test_predictions_of_another_market_are_named(market: Path, column: str) -> None:
    """One row of another venue or symbol (or none) is enough to refuse the file."""
    import polars as pl

    from backtest.data import load_run

    path = market / "runs" / "ok" / "predictions.parquet"
    frame = pl.read_parquet(path)
    loaded = load_run(market, "ok").predictions
    assert loaded.columns == list(frame.columns)
    assert loaded[column].dtype == pl.Categorical
    assert loaded[column].cast(pl.String).to_list() == frame[column].to_list()
    for other in ("OTHER", None):
        values = frame[column].to_list()
        values[7] = other
        frame.with_columns(pl.Series(column, values, pl.String)).write_parquet(path)
        with pytest.raises(UserError, match=f"predictions file {path} holds {column}"):
            backtest_run(market, "ok", config())
