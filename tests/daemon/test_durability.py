"""Crashes and long runs: SIGKILL leaves only complete files; memory stays flat."""

from __future__ import annotations

import random
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from collector.capture import iter_capture
from collector.replay import replay_captures

from .chaos import sigkill_loss, wait_for
from .conftest import Daemon, Emulator, raw_files, read_rows, stop_in_time

FLUSH_S = 0.5


def test_sigkill_at_random_moments_leaves_readable_files_and_loses_one_flush_at_most(
        processes: list, slices: dict[str, Path], tmp_path: Path) -> None:
    emulator = Emulator([slices["btc-spot"]], "--speed", "10", "--loop", "5")
    processes.append(emulator)
    rng = random.Random(7)
    for round_no in range(4):
        data_dir = tmp_path / f"run{round_no}"
        daemon = Daemon(data_dir, "--venue", "binance-spot", "--symbol", "BTCUSDT",
                        "--endpoint", emulator.addresses["binance-spot"], "--interval", "50ms",
                        "--depth", "10", "--flush-interval", f"{FLUSH_S}s")
        processes.append(daemon)
        # a random moment after the first rows reached the disk (a condition, not a race)
        wait_for("first rows on disk",
                 lambda d=daemon: d.metrics().get("bookcast_snapshots_written_total", 0) > 0)
        deadline = time.monotonic() + rng.uniform(0.0, 1.5)
        wait_for("the chosen moment", lambda t=deadline: time.monotonic() >= t)
        # at most the last flush interval (plus the daemon's own flush delay and slowest
        # write, from its /metrics) is lost, for the raw capture and the Parquet alike
        sigkill_loss(daemon, data_dir, "binance-spot", ["BTCUSDT"], FLUSH_S)

        # every file under a final name is complete
        parts = sorted(p for p in data_dir.rglob("*.parquet") if not p.name.startswith("."))
        assert parts, "nothing was flushed before the kill"
        for part in parts:
            pq.read_table(part)
        captures = raw_files(data_dir, "binance-spot")

        # what was written is exactly what replaying the capture gives, up to the kill
        replayed = tmp_path / f"replayed{round_no}"
        replay_captures(captures, replayed, 50_000_000, 10, venue="binance-spot")
        live = read_rows(data_dir, "snapshots", "binance-spot", "BTCUSDT").to_pydict()
        again = read_rows(replayed, "snapshots", "binance-spot", "BTCUSDT").to_pydict()
        n = len(live["ts"])
        assert n > 0
        assert live == {k: v[:n] for k, v in again.items()}


def test_a_restart_after_sigkill_recovers_the_partial_capture_and_removes_debris(
        processes: list, slices: dict[str, Path], tmp_path: Path) -> None:
    """What a crash mid-write leaves (a partial zstd capture, a partial Parquet part) is
    recovered or removed at the next start, with one log line, and counted."""
    from collector.capture import CaptureWriter, encode_record

    data_dir = tmp_path / "data"
    day = data_dir / "raw" / "venue=binance-spot" / "date=2024-08-08"
    partial = CaptureWriter(day / "capture-1723161000000000000.jsonl.zst")
    records = list(iter_capture(slices["btc-spot"]))[:3000]
    for rec in records:
        partial.write_line(encode_record(rec.ts_ns, rec.kind, rec.conn, rec.data, rec.url))
    partial._stream.flush()  # a crash: bytes on disk, the frame never finished
    partial._raw.flush()
    cut = partial.tmp_path.read_bytes()
    partial.tmp_path.write_bytes(cut[: len(cut) * 2 // 3])  # and the tail never written
    parquet_tmp = (data_dir / "snapshots" / "venue=binance-spot" / "symbol=BTCUSDT"
                   / "date=2024-08-08" / ".part-1723161000000000000.parquet.tmp")
    parquet_tmp.parent.mkdir(parents=True)
    parquet_tmp.write_bytes(b"PAR1 half a file")
    other = data_dir / "snapshots" / "venue=binance-spot" / "symbol=ETHUSDT" / "date=2024-08-08"
    other.mkdir(parents=True)
    (other / ".part-1.parquet.tmp").write_bytes(b"not ours")  # another daemon's partition

    emulator = Emulator([slices["btc-spot"]], "--speed", "10")
    processes.append(emulator)
    daemon = Daemon(data_dir, "--venue", "binance-spot", "--symbol", "BTCUSDT",
                    "--endpoint", emulator.addresses["binance-spot"], "--flush-interval", "0.5s")
    processes.append(daemon)
    recovered = day / "capture-1723161000000000000.jsonl.zst"
    kept = list(iter_capture(recovered))
    assert 0 < len(kept) < len(records)
    assert [r.data for r in kept] == [r.data for r in records[:len(kept)]]  # a clean prefix
    assert not partial.tmp_path.exists() and not parquet_tmp.exists()
    assert (other / ".part-1.parquet.tmp").exists()  # not this daemon's partition
    cleaned = [e for e in daemon.events() if e["event"] == "cleaned up after a crash"]
    assert len(cleaned) == 1
    assert cleaned[0]["recovered_raw_files"] == 1 and cleaned[0]["removed_temp_files"] == 1
    assert cleaned[0]["recovered_lines"] == len(kept)
    metrics = daemon.metrics()
    assert metrics["bookcast_startup_recovered_files_total"] == 1
    assert metrics["bookcast_startup_removed_files_total"] == 1
    rc, _ = daemon.terminate()
    assert rc == 0


def soak(processes: list, captures: list[Path], data_dir: Path, loops: int,
         min_messages: int, queue_size: int) -> tuple[int, list[float], int]:
    """Messages as fast as the daemon reads them; returns messages, RSS samples (MiB) and
    how often a receiver found the queue full and waited."""
    emulator = Emulator(captures, "--speed", "0", "--loop", str(loops))
    processes.append(emulator)
    daemon = Daemon(data_dir, "--venue", "binance-spot", "--symbol", "BTCUSDT", "--symbol",
                    "ETHUSDT", "--endpoint", emulator.addresses["binance-spot"],
                    "--interval", "100ms", "--depth", "20", "--flush-interval", "1s",
                    # compressed time makes every loop's resync fall in one wall minute
                    "--rest-weight-limit", "1000000", "--queue-size", str(queue_size),
                    "--top-of-book-check")
    processes.append(daemon)
    proc = psutil.Process(daemon.proc.pid)
    rss: list[float] = []
    while not emulator.stats("binance-spot")["done"]:
        rss.append(proc.memory_info().rss / 2**20)
        time.sleep(0.2)
    metrics = daemon.metrics()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the socket buffers still hold the last messages
        time.sleep(0.3)
        rss.append(proc.memory_info().rss / 2**20)
        before, metrics = metrics, daemon.metrics()
        if metrics["bookcast_messages_total"] == before["bookcast_messages_total"] \
                and metrics["bookcast_queue_depth"] == 0:
            break
    messages = int(metrics["bookcast_messages_total"])
    assert stop_in_time(daemon) == 0
    assert messages >= min_messages
    # where the feed outran the daemon, it waited instead of dropping: the only gaps are
    # the joins between loops, at most one per symbol per join (when the emulator is a
    # loop ahead, one newer snapshot can cover two joins), nothing was lost silently
    assert 0 < metrics["bookcast_gaps_total"] <= 2 * (loops - 1)
    # with the bookTicker stream on, every rebuilt book was cross-checked and agreed
    assert metrics["bookcast_top_of_book_checks_total"] > 0
    assert metrics["bookcast_top_of_book_mismatches_total"] == 0
    return messages, rss, int(metrics["bookcast_backpressure_events_total"])


def assert_flat(rss: list[float], slack_mib: float = 0.0) -> None:
    """After warm-up (the first half: queue filled, first flushes done), RSS grows < 10 %
    (plus `slack_mib`: a run of a few seconds samples the allocator's steps, not a trend)."""
    print("rss MiB:", " ".join(f"{r:.0f}" for r in rss))
    warm = rss[len(rss) // 2:]
    assert len(warm) >= 4
    assert max(warm) < 1.10 * warm[0] + slack_mib, \
        f"RSS grew from {warm[0]:.0f} to {max(warm):.0f} MiB"


def test_short_soak_keeps_memory_flat(processes: list, slices: dict[str, Path],
                                      tmp_path: Path) -> None:
    _, rss, waited = soak(processes, [slices["btc-spot"], slices["eth-spot"]],
                          tmp_path / "data", loops=5, min_messages=100_000, queue_size=1000)
    # 100k messages take seconds: glibc arenas and the writer thread's buffers step up by
    # ~10-25 MiB in that time on a loaded machine; a leak of the messages would be ~100 MiB
    # (the million-message soak, marked slow, holds the 10 % line without slack)
    assert_flat(rss, slack_mib=32)
    if waited == 0:  # the emulator's share of a busy machine decides whether it outruns
        pytest.skip("memory stayed flat, but the feed never outran the daemon on this busy "
                    "machine, so waiting on a full queue was not exercised here "
                    "(tests/daemon/test_record_queue.py checks the wait in process)")


@pytest.mark.slow
def test_million_message_soak_keeps_memory_flat(processes: list, captures_dir: Path,
                                                tmp_path: Path) -> None:
    captures = [captures_dir / "binance-spot/btcusdt_20240808-09.jsonl.gz",
                captures_dir / "binance-spot/ethusdt_20240808-09.jsonl.gz"]
    # with a queue this deep the daemon may keep up with the emulator: no backpressure
    _, rss, _ = soak(processes, captures, tmp_path / "data", loops=6, min_messages=1_000_000,
                     queue_size=10_000)
    assert_flat(rss)
