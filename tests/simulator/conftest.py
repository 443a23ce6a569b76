"""Real and simulated markets, each replayed once per session by the project's replay on
the grid the band table is defined on (1 s, 10 levels)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from collector.replay import ReplaySummary, replay_captures
from collector.simulator import preset_for, regime_schedule, simulate_session
from collector.simulator.stats import DEPTH, GRID_NS, Market, read_market

SEED = 7
HOUR = 1.0


@dataclass
class Replayed:
    capture: Path
    summary: ReplaySummary
    markets: dict[str, Market]

    def states(self) -> list:
        return [s for p in self.summary.pipelines.values() for s in p.states()]


def replay(capture: Path, data: Path, interval_ns: int = GRID_NS,
           depth: int = DEPTH) -> Replayed:
    summary = replay_captures([capture], data, interval_ns=interval_ns, depth=depth)
    markets = {s.symbol: read_market(data, venue, s.symbol)
               for venue, p in summary.pipelines.items() for s in p.states() if s.resyncs}
    return Replayed(capture, summary, markets)


def simulate(root: Path, venue: str, symbols: list[str], scenario: str, hours: float,
             seed: int = SEED, switch_every_s: float = 1800.0) -> Path:
    path = root / f"{venue}_{scenario}.jsonl.gz"
    schedules = [regime_schedule(preset_for(venue, s), scenario, hours, switch_every_s)
                 for s in symbols]
    simulate_session(venue, schedules, hours, seed, path)
    return path


@pytest.fixture(scope="session")
def real_btc(tmp_path_factory: pytest.TempPathFactory, captures_dir: Path) -> Replayed:
    capture = captures_dir / "binance-spot" / "btcusdt_20240808-09.jsonl.gz"
    return replay(capture, tmp_path_factory.mktemp("real") / "data")


@pytest.fixture(scope="session")
def default_btc_hour(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    """One simulated hour of the default BTCUSDT preset, replayed."""
    root = tmp_path_factory.mktemp("default")
    return replay(simulate(root, "binance-spot", ["BTCUSDT"], "default", HOUR),
                  root / "data")
