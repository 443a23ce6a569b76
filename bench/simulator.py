"""Simulator speed: simulated seconds per wall-clock second on one core.

Anchor (issue 4, kept by issue 13): real time x 100, i.e. one simulated hour of one
symbol in under 36 s. The figure covers the whole job: the Numba event loop, the venue's
JSON texts, the network model and gzip. Runs are interleaved per protocol and repeated;
the figure is the median. The process's CPU time is printed beside the wall time: on a
shared, loaded machine the wall figure also counts the time other jobs held the core.

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
    from collector.simulator.simulate import (
        CHUNK_NS,
        NS,
        SIM_START_NS,
        WARMUP_NS,
        SimulatedBook,
        symbol_rngs,
    )

    def run(venue: str, symbols: list[str], hours: float, path: Path):
        schedules = [regime_schedule(preset_for(venue, s), args.preset, hours)
                     for s in symbols]
        started, cpu = time.perf_counter(), time.process_time()
        summary = simulate_session(venue, schedules, hours, args.seed, path)
        return summary, time.perf_counter() - started, time.process_time() - cpu

    def model_only(venue: str, symbol: str, hours: float) -> tuple[float, float]:
        """The Numba event loop alone, as simulate_session drives it: no wire, no gzip."""
        book = SimulatedBook(preset_for(venue, symbol), symbol_rngs(args.seed, symbol)[0],
                             SIM_START_NS - WARMUP_NS)
        book.advance(SIM_START_NS)
        end = SIM_START_NS + round(hours * 3600 * NS)
        started, cpu = time.perf_counter(), time.process_time()
        for t in range(SIM_START_NS + CHUNK_NS, end + CHUNK_NS, CHUNK_NS):
            book.advance(min(t, end))
        return time.perf_counter() - started, time.process_time() - cpu

    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    speeds: dict[str, list[float]] = {venue: [] for venue, _ in CASES}
    loop_cpu: list[float] = []
    cpu_speeds: dict[str, list[float]] = {venue: [] for venue, _ in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        for venue, symbols in CASES:  # JIT and caches, not timed
            run(venue, symbols, 10 / 3600, Path(tmp) / "warm.jsonl.gz")
        for k in range(args.repeats):
            for venue, symbols in CASES:
                path = Path(tmp) / f"{venue}-{k}.jsonl.gz"
                summary, wall, cpu = run(venue, symbols, args.hours, path)
                speeds[venue].append(summary.simulated_s / wall)
                cpu_speeds[venue].append(summary.simulated_s / cpu)
                size_mb = path.stat().st_size / 1e6
                print(f"{venue} {','.join(symbols)} {args.hours:g} h ({args.preset}): "
                      f"{summary.diffs} diffs, {summary.trades} trades, {summary.records} "
                      f"records, {size_mb:.1f} MB gzip, wall {wall:.2f} s -> "
                      f"{summary.simulated_s / wall:.0f}x, CPU {cpu:.2f} s -> "
                      f"{summary.simulated_s / cpu:.0f}x", flush=True)
                path.unlink()
            loop_cpu.append(model_only(CASES[0][0], CASES[0][1][0], args.hours)[1])
    for venue, values in speeds.items():
        median = statistics.median(values)
        print(f"{venue}: median {median:.0f} simulated s per wall s over {len(values)} "
              f"runs ({statistics.median(cpu_speeds[venue]):.0f} per CPU s); ratio to the "
              f"anchor (100x real time): {median / TARGET_SPEEDUP:.2f}")
    print(f"{CASES[0][0]} {CASES[0][1][0]}: the model loop alone, median "
          f"{statistics.median(loop_cpu):.2f} CPU s of the {args.hours:g} h")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
