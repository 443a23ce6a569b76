"""Tiny hand-made snapshot datasets and runs, written exactly as DESIGN.md lays them out."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bookcast.paths import partition_dir, runs_dir
from bookcast.schema import SNAPSHOT_SCHEMA, file_metadata
from bookcast.timeutil import utc_date

VENUE = "binance-spot"
SYMBOL = "BTCUSDT"
T0 = 1_723_161_600_000_000_000  # 2024-08-09 00:00:00 UTC
SECOND = 1_000_000_000

Levels = list[tuple[float, float]]


def write_snapshots(root: Path, ts: np.ndarray, bids: list[Levels], asks: list[Levels],
                    gap: np.ndarray | None = None, interval_ns: int = SECOND) -> Path:
    """One snapshot Parquet file with the collector's schema and metadata."""
    n = len(ts)
    columns = {
        "ts": pa.array(ts, pa.int64()).cast(SNAPSHOT_SCHEMA.field("ts").type),
        "ts_event": pa.nulls(n, SNAPSHOT_SCHEMA.field("ts_event").type),
        "ts_recv": pa.array(ts, pa.int64()).cast(SNAPSHOT_SCHEMA.field("ts_recv").type),
        "seq": pa.array(np.arange(n), pa.int64()),
        "bid_px": [[p for p, _ in row] for row in bids],
        "bid_sz": [[s for _, s in row] for row in bids],
        "ask_px": [[p for p, _ in row] for row in asks],
        "ask_sz": [[s for _, s in row] for row in asks],
        "n_updates": pa.array(np.ones(n, np.int32)),
        "gap": pa.array(np.zeros(n, bool) if gap is None else gap),
    }
    table = pa.table(columns, schema=SNAPSHOT_SCHEMA).replace_schema_metadata(
        file_metadata(VENUE, SYMBOL, depth=100, interval_ns=interval_ns, tick_size=0.01))
    directory = partition_dir(root, "snapshots", VENUE, SYMBOL, utc_date(int(ts[0])))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"part-{int(ts[0])}.parquet"
    pq.write_table(table, path)
    return path


def write_run(root: Path, run_id: str, ts: np.ndarray, p_up: np.ndarray, p_down: np.ndarray,
              y: np.ndarray | None = None, horizon_ns: int = 3 * SECOND,
              fee_bps: float = 10.0) -> Path:
    """runs/<run_id>/ with run.json and predictions.parquet as the models package writes them."""
    run_dir = runs_dir(root) / run_id
    run_dir.mkdir(parents=True)
    p_flat = 1.0 - p_up - p_down
    table = pa.table({
        "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
        "venue": [VENUE] * len(ts),
        "symbol": [SYMBOL] * len(ts),
        "p_down": p_down, "p_flat": p_flat, "p_up": p_up,
        "y": pa.array(np.zeros(len(ts), np.int8) if y is None else y, pa.int8()),
    })
    pq.write_table(table, run_dir / "predictions.parquet")
    (run_dir / "run.json").write_text(json.dumps({
        "run_id": run_id, "model": "hand-made", "horizon": f"{horizon_ns // SECOND}s",
        "horizon_ns": horizon_ns, "feature_set": "default", "venue": VENUE,
        "symbol": SYMBOL, "fee_bps": fee_bps,
    }))
    return run_dir


def random_walk_book(n: int, rng: np.random.Generator, step: float, spread: float,
                     depth_size: float = 1e6, start: float = 100.0
                     ) -> tuple[np.ndarray, list[Levels], list[Levels], np.ndarray]:
    """A book whose mid follows a Gaussian random walk, constant spread, deep touch."""
    mid = start + np.cumsum(rng.normal(0.0, step, n))
    ts = T0 + np.arange(n, dtype=np.int64) * SECOND
    bids = [[(m - spread / 2, depth_size)] for m in mid]
    asks = [[(m + spread / 2, depth_size)] for m in mid]
    return ts, bids, asks, mid


@pytest.fixture
def hand() -> SimpleNamespace:
    """The helpers above, for test modules (conftest is not importable under importlib mode)."""
    return SimpleNamespace(write_snapshots=write_snapshots, write_run=write_run,
                           random_walk_book=random_walk_book, T0=T0, SECOND=SECOND,
                           VENUE=VENUE, SYMBOL=SYMBOL)


MODELS_TESTS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="session")
def trained_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The models' synthetic book (level-1 imbalance drives the next moves), its features,
    and a LightGBM and a logistic run at 10 s and fee 0: what a verdict judges."""
    import sys

    sys.path.insert(0, str(MODELS_TESTS))
    from book_fixture import NS, build_dataset

    from models.config import TrainConfig
    from models.runs import train_run

    root = tmp_path_factory.mktemp("verdict") / "data"
    build_dataset(root, 3000, seed=0, gap_at=1500)
    for model in ("lightgbm", "logistic"):
        train_run(root, TrainConfig(model=model, horizon_ns=10 * NS, feature_set="compact",
                                    window=20), run_id=f"{model}-10s")
    return root
