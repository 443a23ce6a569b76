"""A small synthetic order book whose level-1 imbalance really predicts the next moves,
written as a snapshots dataset with the real schema; the real feature builder then
turns it into the features dataset the models read.

Why not only the simulator: these tests need a known, strong signal so that 'the model
learned something' and 'adding bid size raises p_up' are checkable in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bookcast.paths import partition_dir
from bookcast.schema import SNAPSHOT_SCHEMA, file_metadata
from bookcast.timeutil import utc_date

VENUE, SYMBOL = "binance-spot", "BTCUSDT"
START_NS = 1_723_161_600_000_000_000  # 2024-08-09 00:00 UTC
NS = 1_000_000_000
TICK = 0.01


def synthetic_book(n_rows: int, seed: int = 0, levels: int = 10,
                   gap_at: int | None = None) -> dict[str, np.ndarray | list]:
    """Rows on a 1 s grid. Imbalance follows an AR(1); each second the mid steps one
    tick up with probability 0.15 (1 + 0.9 imb) and down with 0.15 (1 - 0.9 imb)."""
    rng = np.random.default_rng(seed)
    imb = np.zeros(n_rows)
    for i in range(1, n_rows):
        imb[i] = np.clip(0.95 * imb[i - 1] + rng.normal(0, 0.15), -0.95, 0.95)
    u = rng.random(n_rows)
    p_up, p_down = 0.15 * (1 + 0.9 * imb), 0.15 * (1 - 0.9 * imb)
    steps = np.where(u < p_up, 1, np.where(u > 1 - p_down, -1, 0))
    mid_ticks = 10_000 + np.concatenate([[0], np.cumsum(steps[:-1])])
    base = rng.lognormal(0.0, 0.3, n_rows)
    bid_px, bid_sz, ask_px, ask_sz = [], [], [], []
    for i in range(n_rows):
        best_bid = (mid_ticks[i] - 0.5) * TICK  # spread of one tick around a half-tick mid
        depth = rng.lognormal(0.0, 0.5, (2, levels))
        bid_px.append([round(best_bid - k * TICK, 2) for k in range(levels)])
        ask_px.append([round(best_bid + (k + 1) * TICK, 2) for k in range(levels)])
        bid_sz.append([base[i] * (1 + imb[i]), *depth[0, 1:]])
        ask_sz.append([base[i] * (1 - imb[i]), *depth[1, 1:]])
    gap = np.zeros(n_rows, dtype=bool)
    gap[0] = True
    if gap_at is not None:
        gap[gap_at] = True
    ts = START_NS + np.arange(n_rows, dtype=np.int64) * NS
    return {"ts": ts, "bid_px": bid_px, "bid_sz": bid_sz, "ask_px": ask_px, "ask_sz": ask_sz,
            "gap": gap, "imbalance": imb}


def write_snapshots(data_dir: Path, book: dict[str, np.ndarray | list],
                    levels: int = 10, venue: str = VENUE) -> Path:
    ts = book["ts"]
    n = len(ts)
    table = pa.table({
        "ts": pa.array(ts, type=pa.timestamp("ns", tz="UTC")),
        "ts_event": pa.array(ts, type=pa.timestamp("ns", tz="UTC")),
        "ts_recv": pa.array(ts, type=pa.timestamp("ns", tz="UTC")),
        "seq": pa.array(np.arange(n, dtype=np.int64)),
        "bid_px": book["bid_px"], "bid_sz": book["bid_sz"],
        "ask_px": book["ask_px"], "ask_sz": book["ask_sz"],
        "n_updates": pa.array(np.ones(n, dtype=np.int32)),
        "gap": pa.array(book["gap"]),
    }, schema=SNAPSHOT_SCHEMA)
    table = table.replace_schema_metadata(file_metadata(
        venue, SYMBOL, depth=levels, interval_ns=NS, tick_size=TICK))
    out = partition_dir(data_dir, "snapshots", venue, SYMBOL, utc_date(int(ts[0])))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"part-{int(ts[0])}.parquet"
    pq.write_table(table, path)
    return path


def build_dataset(data_dir: Path, n_rows: int, seed: int = 0, gap_at: int | None = None,
                  fee_bps: float = 0.0, horizons_ns: tuple[int, ...] = (10 * NS,),
                  feature_set: str = "compact", venues: tuple[str, ...] = (VENUE,),
                  ) -> dict[str, np.ndarray | list]:
    """Snapshots + features (by the real `features.build.build_features`) under data_dir;
    the same book under each of `venues`."""
    from features.build import build_features

    book = synthetic_book(n_rows, seed=seed, gap_at=gap_at)
    for venue in venues:
        write_snapshots(data_dir, book, venue=venue)
    build_features(data_dir, feature_set, horizons_ns=list(horizons_ns), fee_bps=fee_bps)
    return book
