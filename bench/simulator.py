"""Simulator speed: simulated seconds per wall-clock second on one core.

Anchor (issue 4, kept by issue 13): real time x 100, i.e. one simulated hour of one
symbol in under 36 s. The figure covers the whole job: the Numba event loop, the venue's
JSON texts, the network model and gzip. Runs are interleaved per protocol and repeated;
the figure is the median.

    taskset -c 0 .venv/bin/python bench/simulator.py [--hours 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

TARGET_SPEEDUP = 100.0
CASES = (("binance-spot", ["BTCUSDT"]), ("binance-usdm", ["BTCUSDT"]),
         ("coinbase-advanced", ["BTC-USD"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="default")
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")

    from collector.simulator import preset_for, regime_schedule, simulate_session

    def run(venue: str, symbols: list[str], hours: float, path: Path):
        schedules = [regime_schedule(preset_for(venue, s), args.preset, hours)
                     for s in symbols]
        started = time.perf_counter()
        summary = simulate_session(venue, schedules, hours, args.seed, path)
        return summary, time.perf_counter() - started

    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    speeds: dict[str, list[float]] = {venue: [] for venue, _ in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        for venue, symbols in CASES:  # JIT and caches, not timed
            run(venue, symbols, 10 / 3600, Path(tmp) / "warm.jsonl.gz")
        for k in range(args.repeats):
            for venue, symbols in CASES:
                path = Path(tmp) / f"{venue}-{k}.jsonl.gz"
                summary, wall = run(venue, symbols, args.hours, path)
                speeds[venue].append(summary.simulated_s / wall)
                size_mb = path.stat().st_size / 1e6
                print(f"{venue} {','.join(symbols)} {args.hours:g} h ({args.preset}): "
                      f"{summary.diffs} diffs, {summary.trades} trades, {summary.records} "
                      f"records, {size_mb:.1f} MB gzip, wall {wall:.2f} s -> "
                      f"{summary.simulated_s / wall:.0f}x", flush=True)
                path.unlink()
    for venue, values in speeds.items():
        median = statistics.median(values)
        print(f"{venue}: median {median:.0f} simulated s per wall s over {len(values)} "
              f"runs; ratio to the anchor (100x real time): {median / TARGET_SPEEDUP:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
