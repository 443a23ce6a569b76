"""The independent tardis files and the replays of the captures they were made from."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tardis_files import DEPTH, INTERVAL, SOURCES, snapshots, trades

from collector.pipeline import Pipeline
from collector.replay import replay_captures


@pytest.fixture(scope="session")
def tardis_dir(captures_dir) -> Path:
    path = captures_dir.parent / "imports" / "tardis"
    if not path.is_dir():
        pytest.fail(f"the shared tardis files are missing: expected them at {path}")
    return path


@dataclass
class Replayed:
    venue: str
    capture: Path
    root: Path
    snapshots: pl.DataFrame
    trades: pl.DataFrame
    pipeline: Pipeline  # finished: its books are the capture's last books


class Replays(dict):
    """Each capture replayed at the tests' grid and depth on first use, keyed by tardis
    exchange (a test module that needs one capture does not pay for the other)."""

    def __init__(self, captures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
        super().__init__()
        self.captures_dir, self.tmp_path_factory = captures_dir, tmp_path_factory

    def __missing__(self, exchange: str) -> Replayed:
        venue, capture = SOURCES[exchange]
        root = self.tmp_path_factory.mktemp(f"replay-{venue}")
        summary = replay_captures([self.captures_dir / capture], root, INTERVAL, DEPTH)
        self[exchange] = Replayed(venue, self.captures_dir / capture, root, snapshots(root),
                                  trades(root), summary.pipelines[venue])
        return self[exchange]


@pytest.fixture(scope="session")
def replayed(captures_dir, tmp_path_factory) -> Replays:
    return Replays(captures_dir, tmp_path_factory)
