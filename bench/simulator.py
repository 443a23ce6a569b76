"""Simulator speed: simulated seconds per wall-clock second on one core.

Anchor (issue 4): real time x 100, i.e. one simulated hour of one symbol in under 36 s.
The figure covers the whole job: the Numba event loop, Binance JSON encoding and gzip.

    .venv/bin/python bench/simulator.py [--hours 1] [--symbol BTCUSDT]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

TARGET_SPEEDUP = 100.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")

    from collector.simulator import preset_for, simulate_symbol

    preset = preset_for("binance-spot", args.symbol)
    with tempfile.TemporaryDirectory() as tmp:
        simulate_symbol(preset, 10 / 3600, args.seed, Path(tmp) / "warm.jsonl.gz")  # JIT
        path = Path(tmp) / "bench.jsonl.gz"
        started = time.perf_counter()
        summary = simulate_symbol(preset, args.hours, args.seed, path)
        wall = time.perf_counter() - started
        size_mb = path.stat().st_size / 1e6
    speed = summary.simulated_s / wall
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}")
    print(f"simulated {args.symbol} {args.hours:g} h: {summary.diffs} diffs, {summary.trades} "
          f"trades, {summary.records} records, {size_mb:.1f} MB gzip")
    print(f"wall {wall:.2f} s -> {speed:.0f} simulated s per wall s")
    print(f"ratio to the anchor (100x real time): {speed / TARGET_SPEEDUP:.2f}")


if __name__ == "__main__":
    main()
