"""The writers' two phases: add()/detach() on the caller's thread, PendingPart.write() anywhere.

The daemon encodes and fsyncs Parquet off its event loop: it takes parts out of the
writers and writes them on another thread, retrying a failed write until the disk
takes it. These tests hold the writers to that contract on real files, a real full
disk (a small tmpfs) and a real second thread.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from collector.writers import PendingPart, SnapshotWriter, TradeWriter

DAY = 86_400_000_000_000
T0 = DAY * 19_944  # 2024-08-09 00:00 UTC
META = {"depth": 3, "interval_ns": 1_000_000_000, "tick_size": 0.01}


def levels_for(i: int, depth: int = 3) -> tuple[list[float], ...]:
    rng = np.random.default_rng(i)
    bid = [60_000.0 - i * 0.01 - k for k in range(depth)]
    ask = [60_000.5 + i * 0.01 + k for k in range(depth)]
    return bid, rng.random(depth).tolist(), ask, rng.random(depth).tolist()


def add_rows(writer: SnapshotWriter, start: int, n: int, depth: int = 3) -> None:
    for i in range(start, start + n):
        ts = T0 + i * 1_000_000_000
        writer.add(ts, ts - 5 if i % 2 else None, ts - 3, i if i % 3 else None,
                   levels_for(i, depth), i % 7, i == 0)


def read_rows(root: Path) -> pl.DataFrame:
    return pl.read_parquet(root / "snapshots", hive_partitioning=False).sort("ts")


def expected_rows(n: int, depth: int = 3) -> pl.DataFrame:
    """The rows add_rows() adds, built independently of the writer."""
    ts = [T0 + i * 1_000_000_000 for i in range(n)]
    lv = [levels_for(i, depth) for i in range(n)]
    return pl.DataFrame({
        "ts": ts, "ts_event": [t - 5 if i % 2 else None for i, t in enumerate(ts)],
        "ts_recv": [t - 3 for t in ts], "seq": [i if i % 3 else None for i in range(n)],
        "bid_px": [x[0] for x in lv], "bid_sz": [x[1] for x in lv],
        "ask_px": [x[2] for x in lv], "ask_sz": [x[3] for x in lv],
        "n_updates": [i % 7 for i in range(n)], "gap": [i == 0 for i in range(n)],
    }).with_columns(pl.col("ts", "ts_event", "ts_recv").cast(pl.Datetime("ns", "UTC")),
                    pl.col("n_updates").cast(pl.Int32))


def test_a_rotation_cut_waits_as_a_pending_part_until_taken(tmp_path):
    writer = SnapshotWriter(tmp_path, "binance-spot", "BTCUSDT", 4, None, META)
    add_rows(writer, 0, 10)
    assert not list(tmp_path.rglob("*"))  # add() wrote nothing, not even a directory
    parts = writer.take_pending()
    assert [(p.rows, p.first_ts) for p in parts] == [(4, T0), (4, T0 + 4 * 10**9)]
    assert all(p.path.name == f"part-{p.first_ts}.parquet" for p in parts)
    assert writer.take_pending() == [] and writer.rows == 2
    for part in reversed(parts):  # any order: each part knows its own final name
        assert part.write() == part.path
    assert writer.flush() is not None
    assert read_rows(tmp_path).equals(expected_rows(10))
    # the writer counts only what its own flush() wrote
    assert writer.rows_written == 2 and len(writer.files) == 1


def test_detach_takes_the_buffer_and_the_next_rows_start_a_new_part(tmp_path):
    writer = SnapshotWriter(tmp_path, "binance-spot", "BTCUSDT", 10**6, None, META)
    assert writer.detach() is None
    add_rows(writer, 0, 3)
    first = writer.detach()
    assert isinstance(first, PendingPart) and first.rows == 3 and writer.rows == 0
    add_rows(writer, 3, 2)
    second = writer.detach()
    assert second.first_ts == T0 + 3 * 10**9 and second.path != first.path
    second.write()
    first.write()
    assert read_rows(tmp_path).equals(expected_rows(5))


def test_a_part_written_on_another_thread_is_not_touched_by_later_adds(tmp_path):
    writer = SnapshotWriter(tmp_path, "binance-spot", "BTCUSDT", 500, None, META)
    written: list[Path] = []
    parts_ready = threading.Semaphore(0)
    queue: list[PendingPart | None] = []

    def write_parts() -> None:
        while True:
            parts_ready.acquire()
            part = queue.pop(0)
            if part is None:
                return
            written.append(part.write())

    thread = threading.Thread(target=write_parts)
    thread.start()
    try:
        for start in range(0, 3000, 250):
            add_rows(writer, start, 250)
            for part in [*writer.take_pending(), writer.detach()]:
                if part is not None:
                    queue.append(part)
                    parts_ready.release()
    finally:
        queue.append(None)
        parts_ready.release()
        thread.join(timeout=120)
    assert not thread.is_alive()
    assert len(written) == 12
    assert read_rows(tmp_path).equals(expected_rows(3000))


def test_a_date_change_cuts_a_part_in_each_date_partition(tmp_path):
    writer = TradeWriter(tmp_path, "binance-spot", "BTCUSDT", 10**6, None, {})
    writer.add(T0 - 1, T0 - 1, "1", 100.0, 1.0, 1)
    writer.add(T0, T0, "2", 101.0, 2.0, -1)
    (cut,) = writer.take_pending()
    assert cut.path.parent.name == "date=2024-08-08" and cut.rows == 1
    last = writer.detach()
    assert last.path.parent.name == "date=2024-08-09"


@pytest.fixture
def small_disk(tmp_path):
    """A real filesystem of 256 KiB (tmpfs); grow it with `grow()` to let writes through."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)

    try:
        yield mount, grow
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_raises_oserror_leaves_no_debris_and_the_retry_writes_the_part(small_disk):
    disk, grow = small_disk
    writer = SnapshotWriter(disk, "binance-spot", "BTCUSDT", 10**6, None,
                            {**META, "depth": 100})
    add_rows(writer, 0, 400, depth=100)  # random sizes: ~300 KiB even compressed
    part = writer.detach()
    for _ in range(2):  # the daemon retries; every failed try must clean up after itself
        with pytest.raises(OSError) as failure:
            part.write()
        assert failure.value.errno == 28  # ENOSPC, as the OS raised it
        assert not [p for p in disk.rglob("*") if p.is_file()]
    grow()
    assert part.write() == part.path
    assert part.write() == part.path  # a retry after success rewrites the same file
    assert [p.name for p in disk.rglob("*") if p.is_file()] == [part.path.name]
    assert read_rows(disk).equals(expected_rows(400, depth=100))


def test_flush_keeps_a_part_that_failed_and_the_next_flush_writes_it(small_disk):
    disk, grow = small_disk
    writer = SnapshotWriter(disk, "binance-spot", "BTCUSDT", 200, None, {**META, "depth": 100})
    add_rows(writer, 0, 450, depth=100)
    with pytest.raises(OSError):
        writer.flush()
    grow()
    writer.flush()
    assert [pq.read_metadata(f).num_rows for f in writer.files] == [200, 200, 50]
    assert writer.rows_written == 450 and writer.rows_pending == 0
    assert read_rows(disk).equals(expected_rows(450, depth=100))
    assert not list(disk.rglob(".*.tmp"))
