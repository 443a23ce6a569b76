"""Parquet files rotate by rows, by time and by date, and appear only when complete."""

from __future__ import annotations

import polars as pl
import pyarrow.parquet as pq

from collector.replay import replay_captures
from collector.writers import SnapshotWriter, TradeWriter

DAY = 86_400_000_000_000


def test_rotation_by_rows_and_by_time_splits_files_without_losing_rows(captures_dir, tmp_path):
    capture = captures_dir / "binance-usdm" / "btcusdt_20240808.jsonl.gz"
    whole = replay_captures([capture], tmp_path / "whole", 100_000_000)
    by_rows = replay_captures([capture], tmp_path / "rows", 100_000_000, rotate_rows=1000)
    by_time = replay_captures([capture], tmp_path / "time", 100_000_000,
                              rotate_ns=60_000_000_000)
    n = whole.streams[0].snapshots
    row_files = sorted((tmp_path / "rows" / "snapshots").rglob("*.parquet"))
    assert len(row_files) == -(-n // 1000)
    assert all(pq.read_metadata(f).num_rows <= 1000 for f in row_files)
    time_files = sorted((tmp_path / "time" / "snapshots").rglob("*.parquet"))
    for f in time_files:
        ts = pq.read_table(f, columns=["ts"])["ts"].cast("int64").to_numpy()
        assert ts[-1] - ts[0] < 60_000_000_000
        assert f.name == f"part-{ts[0]}.parquet"
    frames = [pl.read_parquet(tmp_path / d / "snapshots", hive_partitioning=True).sort("ts")
              for d in ("whole", "rows", "time")]
    assert frames[0].equals(frames[1]) and frames[0].equals(frames[2])
    assert by_rows.streams[0].snapshots == by_time.streams[0].snapshots == n
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_day_boundary_starts_a_new_date_partition(tmp_path):
    writer = TradeWriter(tmp_path, "binance-spot", "BTCUSDT", 10**6, None, {})
    late, early = DAY * 20_000 - 1, DAY * 20_000
    writer.add(late, late, "1", 100.0, 1.0, 1)
    writer.add(early, early, "2", 101.0, 2.0, -1)
    writer.flush()
    dates = sorted(p.parent.name for p in writer.files)
    assert dates == ["date=2024-10-03", "date=2024-10-04"]


def test_nothing_is_visible_under_a_final_name_before_flush(tmp_path):
    writer = SnapshotWriter(tmp_path, "kraken", "XBT/USD", 10, None,
                            {"depth": 1, "interval_ns": 1, "tick_size": 0.1})
    levels = ([100.0], [1.0], [100.1], [2.0])
    for i in range(25):
        writer.add(DAY * 20_000 + i, None, DAY * 20_000 + i, None, levels, 1, i == 0)
    # two parts of ten rows were cut; add() only detached them, nothing is on disk yet
    assert not list(tmp_path.rglob("*.parquet"))
    assert (writer.rows, writer.rows_pending) == (5, 20)
    writer.flush()
    files = sorted(tmp_path.rglob("*.parquet"))
    assert [pq.read_metadata(f).num_rows for f in files] == [10, 10, 5]
    assert "symbol=XBT-USD" in str(files[0])  # a path-safe symbol directory
    assert pq.read_schema(files[0]).metadata[b"symbol"] == b"XBT/USD"
    assert not list(tmp_path.rglob(".*.tmp"))
