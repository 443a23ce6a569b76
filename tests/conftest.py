"""Shared test fixtures: the real captures live in ../shared/data/captures/; `pipeline_root`
is a small data root made from them by the real pipeline (replay -> features ->
opportunities -> a quick run -> a backtest), built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from bookcast.timeutil import NS_PER_UNIT

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SECOND = NS_PER_UNIT["s"]
HORIZONS_NS = [1 * SECOND, 5 * SECOND, 10 * SECOND]
CAPTURES = (PROJECT_ROOT.parent / "shared" / "data" / "captures").resolve()


@pytest.fixture(scope="session")
def captures_dir() -> Path:
    if not CAPTURES.is_dir():
        pytest.fail(f"the shared captures are missing: expected them at {CAPTURES}")
    return CAPTURES


@pytest.fixture(scope="session")
def pipeline_root(tmp_path_factory: pytest.TempPathFactory, captures_dir: Path) -> Path:
    from backtest.engine import BacktestConfig, backtest_run, write_backtest
    from collector.replay import replay_captures
    from features.build import build_features
    from features.opportunities import opportunity_table, write_report
    from models.config import TrainConfig
    from models.runs import train_run

    root = tmp_path_factory.mktemp("dashboard-data")
    spot = captures_dir / "binance-spot"
    replay_captures([spot / "btcusdt_20240808-09.jsonl.gz"], root, interval_ns=SECOND)
    replay_captures([spot / "ethusdt_20240808-09.jsonl.gz"], root, interval_ns=SECOND)
    # Zero fee keeps some non-flat labels in 11 minutes of BTCUSDT.
    build_features(root, "compact", horizons_ns=HORIZONS_NS, fee_bps=0.0)
    write_report(opportunity_table(root, HORIZONS_NS, fee_levels_bps=(0.0, 1.0, 5.0)), root)
    run_dir = train_run(root, TrainConfig(model="logistic", horizon_ns=5 * SECOND,
                                          feature_set="compact", venue="binance-spot",
                                          symbol="BTCUSDT"))
    result = backtest_run(root, run_dir.name, BacktestConfig(
        fee_bps=0.0, hold_ns=5 * SECOND, horizon_ns=5 * SECOND))  # the run's fee
    write_backtest(result, root)
    return root
