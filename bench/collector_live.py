"""Live collection through real sockets: CPU at real speed, and the highest message rate.

    .venv/bin/python bench/collector_live.py [--seconds 30]

1. Ten streams (symbols) from four venues at real speed through `bookcast serve`:
   the daemon's CPU time (user + system) per wall second in steady state, and per
   1,000 msg/s. Target: under 5 % of one core. The warm-up covers the start
   (connections, full-depth snapshots) and the first flush, which imports pandas
   through pyarrow: a one-off ~0.4 s of CPU, a point and a half of a 25 s window.
2. Binance spot BTCUSDT + ETHUSDT at `--speed 0` (as fast as the daemon reads): the
   sustained messages/s, next to the anchor measured in the same run, `bookcast
   replay` of the same captures (the same pipeline with no sockets, no raw capture).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.processes import DaemonProcess as Daemon  # noqa: E402
from collector.processes import EmulatorProcess as Emulator  # noqa: E402

CAPTURES = ROOT.parent / "shared" / "data" / "captures"
TEN_STREAMS = {
    "binance-spot": (["binance-spot/btcusdt_20240808-09.jsonl.gz",
                      "binance-spot/ethusdt_20240808-09.jsonl.gz"], ["BTCUSDT", "ETHUSDT"]),
    "binance-usdm": (["binance-usdm/btcusdt_20240808.jsonl.gz",
                      "binance-usdm/ethusdt_20240808.jsonl.gz"], ["BTCUSDT", "ETHUSDT"]),
    "kraken": (["kraken/book1000_10pairs_20210417.jsonl.gz"], ["XBT/CHF", "ETH/CHF", "XMR/USD"]),
    "coinbase-exchange": (["coinbase-exchange/level2_10products_20210417.jsonl.gz"],
                          ["BAND-BTC", "YFI-BTC", "DASH-BTC"]),
}


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def real_speed_cpu(work: Path, seconds: float, warmup: float, flush: str = "5s"
                   ) -> dict[str, float]:
    """Daemon CPU seconds per wall second (user + system, psutil) over `seconds`."""
    files = [CAPTURES / f for paths, _ in TEN_STREAMS.values() for f in paths]
    emulator = Emulator(files, "--speed", "1")
    config = work / "ten.toml"
    lines = ['interval = "1s"', "depth = 100", f'flush_interval = "{flush}"',
             'stale_after = "120s"']
    for venue, (_, symbols) in TEN_STREAMS.items():
        quoted = ", ".join(f'"{s}"' for s in symbols)
        lines += ["[[stream]]", f'venue = "{venue}"', f"symbols = [{quoted}]",
                  f'endpoint = "{emulator.addresses[venue]}"']
    config.write_text("\n".join(lines) + "\n")
    daemon = Daemon(work / "ten", "--config", str(config))
    try:
        proc = psutil.Process(daemon.proc.pid)
        time.sleep(warmup)
        cpu0, wall0, msgs0 = cpu_seconds(proc), time.monotonic(), \
            daemon.metrics()["bookcast_messages_total"]
        time.sleep(seconds)
        cpu1, wall1, msgs1 = cpu_seconds(proc), time.monotonic(), \
            daemon.metrics()["bookcast_messages_total"]
        valid = daemon.metrics()["bookcast_book_valid"]
        daemon.terminate()
    finally:
        daemon.close()
        emulator.close()
    wall = wall1 - wall0
    return {"cpu_share": (cpu1 - cpu0) / wall, "msgs_per_s": (msgs1 - msgs0) / wall,
            "books_valid": valid, "wall_s": wall}


def max_rate(work: Path) -> dict[str, float]:
    files = [CAPTURES / f for f in TEN_STREAMS["binance-spot"][0]]
    emulator = Emulator(files, "--speed", "0")
    daemon = Daemon(work / "fast", "--venue", "binance-spot", "--symbol", "BTCUSDT", "--symbol",
                    "ETHUSDT", "--endpoint", emulator.addresses["binance-spot"], "--interval",
                    "100ms", "--depth", "100", "--flush-interval", "5s")
    try:
        samples = []
        while not emulator.stats("binance-spot")["done"]:
            samples.append((time.monotonic(), daemon.metrics()["bookcast_messages_total"]))
            time.sleep(0.5)
        samples.append((time.monotonic(), daemon.metrics()["bookcast_messages_total"]))
        daemon.terminate()
    finally:
        daemon.close()
        emulator.close()
    # sustained: from the first tenth of the run to its end (after the first snapshots)
    start = samples[len(samples) // 10]
    end = samples[-1]
    live = (end[1] - start[1]) / (end[0] - start[0])

    from collector.replay import replay_captures

    started = time.perf_counter()
    summary = replay_captures(files, work / "replayed", 100_000_000, 100)
    replay = summary.records / (time.perf_counter() - started)
    return {"live_msgs_per_s": live, "replay_msgs_per_s": replay, "messages": end[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--warmup", type=float, default=8.0,
                        help="seconds after start-up before measuring (past the first flush)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bookcast-bench-") as tmp:
        work = Path(tmp)
        real = real_speed_cpu(work, args.seconds, args.warmup)
        fast = max_rate(work)
    print(f"ten streams at real speed: {real['cpu_share'] * 100:.2f} % of one core "
          f"({real['msgs_per_s']:.0f} msg/s over {real['wall_s']:.0f} s, "
          f"{real['cpu_share'] * 100 / real['msgs_per_s'] * 1000:.2f} % per 1,000 msg/s, "
          f"{real['books_valid']:.0f}/10 books valid); target < 5 %: "
          f"ratio to target {real['cpu_share'] / 0.05:.2f}")
    print(f"max sustained through sockets: {fast['live_msgs_per_s']:,.0f} msg/s "
          f"({fast['messages']:,.0f} messages); replay of the same captures "
          f"{fast['replay_msgs_per_s']:,.0f} msg/s; live/replay ratio "
          f"{fast['live_msgs_per_s'] / fast['replay_msgs_per_s']:.2f}")


if __name__ == "__main__":
    main()
