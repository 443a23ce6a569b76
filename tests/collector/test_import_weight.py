"""`bookcast replay` and `bookcast collect` never import pandas.

pyarrow imports pandas the first time `pa.array()` meets a NumPy array or a list, and
importing it took about a second of the collector's first flush (and a tenth of a
replay). The writers build their Arrow arrays from buffers instead; these tests run
the real commands in fresh processes and look at what they imported.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from collector.processes import EmulatorProcess

# Runs the bookcast command line and reports, at exit, which heavy modules it imported.
REPORTING_CLI = """
import atexit, sys
atexit.register(lambda: print("imported:", sorted(m for m in ("pandas", "polars")
                                                  if m in sys.modules), file=sys.stderr))
from bookcast.cli import main
sys.argv[0] = "bookcast"
main()
"""


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", REPORTING_CLI, *args], capture_output=True,
                          text=True, timeout=timeout)


def test_replay_writes_parquet_without_importing_pandas(captures_dir, tmp_path):
    capture = captures_dir / "coinbase-advanced" / "l2_trades_btc_eth_20260809.jsonl.gz"
    done = run_cli("replay", str(capture), "--data-dir", str(tmp_path), "--interval", "100ms",
                   "--rotate-rows", "100", "--quiet")
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "snapshots").rglob("part-*.parquet"))) > 2  # rotation too
    assert list((tmp_path / "trades").rglob("part-*.parquet"))
    assert "imported: []" in done.stderr


def test_collect_writes_parquet_without_importing_pandas(captures_dir, tmp_path):
    capture = captures_dir / "binance-usdm" / "ethusdt_20240808.jsonl.gz"
    emulator = EmulatorProcess([capture], "--speed", "40")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", REPORTING_CLI, "collect", "--venue", "binance-usdm",
             "--symbol", "ETHUSDT", "--endpoint", emulator.addresses["binance-usdm"],
             "--data-dir", str(tmp_path), "--metrics-port", "0", "--interval", "100ms",
             "--flush-interval", "1s"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            parts: list[Path] = []
            while not parts and time.monotonic() < deadline and proc.poll() is None:
                parts = list((tmp_path / "snapshots").rglob("part-*.parquet"))
                time.sleep(0.2)
            assert parts, f"the daemon wrote no snapshot part: {proc.poll()}"
            proc.terminate()
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        emulator.close()
    assert proc.returncode == 0, stderr[-2000:]
    assert "imported: []" in stderr
