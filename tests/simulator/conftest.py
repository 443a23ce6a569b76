"""Simulated and real Binance spot data, replayed once per session by the project's replay."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from collector.replay import ReplaySummary, replay_captures
from collector.simulator import preset_for, simulate_symbol
from collector.simulator.stats import read_replayed

SIM_MINUTES = 10
SIM_SEED = 7


@dataclass
class Replayed:
    capture: Path
    summary: ReplaySummary
    snapshots: pl.DataFrame
    trades: pl.DataFrame


def _replay(capture: Path, data: Path, symbol: str) -> Replayed:
    summary = replay_captures([capture], data, interval_ns=1_000_000_000, depth=100,
                              venue="binance-spot")
    snaps, trades = read_replayed(data, "binance-spot", symbol)
    return Replayed(capture, summary, snaps, trades)


@pytest.fixture(scope="session")
def simulated_btc(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    root = tmp_path_factory.mktemp("sim")
    capture = root / "btcusdt_sim.jsonl.gz"
    simulate_symbol(preset_for("binance-spot", "BTCUSDT"), SIM_MINUTES / 60, SIM_SEED, capture)
    return _replay(capture, root / "data", "BTCUSDT")


@pytest.fixture(scope="session")
def real_btc(tmp_path_factory: pytest.TempPathFactory, captures_dir: Path) -> Replayed:
    capture = captures_dir / "binance-spot" / "btcusdt_20240808-09.jsonl.gz"
    return _replay(capture, tmp_path_factory.mktemp("real") / "data", "BTCUSDT")
