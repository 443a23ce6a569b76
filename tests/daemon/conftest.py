"""Real processes on 127.0.0.1: `bookcast serve` playing capture slices, `bookcast collect`."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collector.capture import CaptureWriter, encode_record, iter_capture
from collector.daemon.service import SHUTDOWN_S
from collector.processes import BOOKCAST, STARTUP_S, DaemonProcess, EmulatorProcess

__all__ = ["BOOKCAST", "STARTUP_S", "Daemon", "Emulator", "stop_in_time"]


def write_slice(source: Path, dest: Path, records: int) -> Path:
    """The first `records` records of a capture, as a capture of their own."""
    with CaptureWriter(dest) as out:
        for rec in islice(iter_capture(source), records):
            out.write_line(encode_record(rec.ts_ns, rec.kind, rec.conn, rec.data, rec.url))
    return dest


@pytest.fixture(scope="session")
def slices(captures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Short slices of the real captures (about 80 s of market each)."""
    out = tmp_path_factory.mktemp("slices")
    return {
        "btc-spot": write_slice(captures_dir / "binance-spot/btcusdt_20240808-09.jsonl.gz",
                                out / "btc_spot.jsonl.gz", 12_000),
        "eth-spot": write_slice(captures_dir / "binance-spot/ethusdt_20240808-09.jsonl.gz",
                                out / "eth_spot.jsonl.gz", 10_000),
        "btc-usdm": write_slice(captures_dir / "binance-usdm/btcusdt_20240808.jsonl.gz",
                                out / "btc_usdm.jsonl.gz", 14_000),
    }


Emulator = EmulatorProcess
Daemon = DaemonProcess


def stop_in_time(daemon: DaemonProcess, sig: int = signal.SIGTERM) -> int:
    """Signal the daemon; its own account of the shutdown (signal to everything written or
    given up) must stay within SHUTDOWN_S, and the process must be gone within terminate's
    generous deadline. The wall time to exit is not asserted: on a loaded machine it
    includes waiting for a core, which no code of ours bounds. Returns the exit status."""
    rc, seconds = daemon.terminate(sig)
    own = daemon.own_shutdown_s()
    assert own is not None and own < SHUTDOWN_S, \
        f"shutdown took {own} s by the daemon's account ({seconds:.1f} s to exit)"
    return rc


@pytest.fixture
def processes() -> Iterator[list]:
    """Every emulator and daemon a test starts is stopped when it ends."""
    started: list = []
    yield started
    for proc in reversed(started):
        proc.close()


def read_rows(root: Path, dataset: str, venue: str, symbol: str) -> pa.Table:
    """All complete part files of one (venue, symbol), in time order."""
    base = root / dataset / f"venue={venue}" / f"symbol={symbol.replace('/', '-')}"
    files = sorted(p for p in base.rglob("part-*.parquet") if not p.name.startswith("."))
    if not files:
        return pa.table({})
    table = pa.concat_tables([pq.read_table(f) for f in files])
    key = "ts" if dataset == "snapshots" else "ts_recv"
    return table.sort_by([(key, "ascending")]) if dataset == "snapshots" else table


def raw_files(root: Path, venue: str) -> list[Path]:
    return sorted((root / "raw" / f"venue={venue}").rglob("capture-*.jsonl.zst"))

