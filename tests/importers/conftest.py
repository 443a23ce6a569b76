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


@pytest.fixture(scope="session")
def replayed(captures_dir, tmp_path_factory) -> dict[str, Replayed]:
    """Each capture replayed once at the tests' grid and depth, keyed by tardis exchange."""
    out = {}
    for exchange, (venue, capture) in SOURCES.items():
        root = tmp_path_factory.mktemp(f"replay-{venue}")
        summary = replay_captures([captures_dir / capture], root, INTERVAL, DEPTH)
        out[exchange] = Replayed(venue, captures_dir / capture, root, snapshots(root),
                                 trades(root), summary.pipelines[venue])
    return out
