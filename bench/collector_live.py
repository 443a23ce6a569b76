"""Live collection through real sockets: CPU at real speed, a 44-stream load, the top rate.

    .venv/bin/python bench/collector_live.py [--seconds 25] [--pairs 3] [--anchor DIR]

1. Ten streams (symbols) from four venues at real speed through `bookcast serve`: the
   daemon's CPU time (user + system, psutil) per wall second in steady state. With
   `--anchor DIR` (a checkout of another commit, e.g. `git archive main | tar -x -C DIR`)
   the same run is made with that code too, alternating anchor and this tree `--pairs`
   times, and the paired median of the ratio is reported: both sides serve the same
   captures from the same emulator code (this tree's, or the anchor's with
   `--anchor-emulator`, whose subscribe sessions sent every product of a capture), with
   the same daemon flags.
2. 44 streams at real speed (every venue; the Binance captures are also served under
   nine renamed symbol pairs, so that 20 spot books load the daemon like 20 markets):
   CPU and RSS every second, and the latency of `/metrics` scraped ten times a second
   (p50, p99, max), measured by the client.
3. Binance spot BTCUSDT + ETHUSDT at `--speed 0` (as fast as the daemon reads): the
   sustained messages/s, next to `bookcast replay` of the same captures in the same run.

The machine's load average is printed with each figure: on a shared machine, compare
only figures of one run.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
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
KRAKEN_PAIRS = ["XBT/CHF", "ETH/CHF", "XMR/USD", "XBT/EUR", "ETH/EUR", "XBT/USD", "ETH/USD",
                "XDG/USD", "LTC/USD", "XRP/USD"]
COINBASE_PRODUCTS = ["SKL-USD", "SKL-BTC", "BAND-GBP", "NMR-EUR", "BAND-BTC", "YFI-BTC",
                     "DASH-BTC", "NU-GBP", "CRV-EUR", "SKL-GBP"]
RENAMED = 9  # copies of the two Binance spot captures under other symbols (44 streams)


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def write_config(path: Path, emulator: Emulator, streams: dict[str, list[str]],
                 flush: str = "5s") -> Path:
    lines = ['interval = "1s"', "depth = 100", f'flush_interval = "{flush}"',
             'stale_after = "120s"', 'log_format = "json"']
    for venue, symbols in streams.items():
        quoted = ", ".join(f'"{s}"' for s in symbols)
        lines += ["[[stream]]", f'venue = "{venue}"', f"symbols = [{quoted}]",
                  f'endpoint = "{emulator.addresses[venue]}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def real_speed_cpu(work: Path, seconds: float, warmup: float, anchor: Path | None = None,
                   emulator_code: Path | None = None) -> dict[str, float]:
    """Daemon CPU seconds per wall second over `seconds`, after `warmup`; the daemon (and
    with `emulator_code` the emulator) run from another source tree when given."""
    files = [CAPTURES / f for paths, _ in TEN_STREAMS.values() for f in paths]
    emulator = Emulator(files, "--speed", "1", code=emulator_code)
    run = work / f"ten-{time.monotonic_ns()}"
    run.mkdir()
    config = write_config(run / "ten.toml", emulator,
                          {v: symbols for v, (_, symbols) in TEN_STREAMS.items()})
    args = ("--config", str(config))
    daemon = Daemon(run / "data", *args, code=anchor)
    try:
        proc = psutil.Process(daemon.proc.pid)
        time.sleep(warmup)
        cpu0, wall0 = cpu_seconds(proc), time.monotonic()
        msgs0 = daemon.metrics()["bookcast_messages_total"]
        time.sleep(seconds)
        cpu1, wall1 = cpu_seconds(proc), time.monotonic()
        metrics = daemon.metrics()
        daemon.terminate()
    finally:
        daemon.close()
        emulator.close()
    wall = wall1 - wall0
    return {"cpu_share": (cpu1 - cpu0) / wall,
            "msgs_per_s": (metrics["bookcast_messages_total"] - msgs0) / wall,
            "books_valid": metrics["bookcast_book_valid"], "wall_s": wall}


def renamed_binance_captures(work: Path) -> tuple[list[Path], list[str]]:
    """The two spot captures, and RENAMED copies of each under other symbols."""
    sources = {"BTCUSDT": CAPTURES / TEN_STREAMS["binance-spot"][0][0],
               "ETHUSDT": CAPTURES / TEN_STREAMS["binance-spot"][0][1]}
    files, symbols = list(sources.values()), list(sources)
    for n in range(RENAMED):
        for symbol, source in sources.items():
            renamed = f"{symbol[:3]}{n}USDT"
            out = work / f"{renamed.lower()}.jsonl.gz"
            with gzip.open(source, "rt") as src, gzip.open(out, "wt", compresslevel=1) as dst:
                for line in src:
                    dst.write(line.replace(symbol, renamed).replace(symbol.lower(),
                                                                    renamed.lower()))
            files.append(out)
            symbols.append(renamed)
    return files, symbols


def load_44(work: Path, seconds: float) -> dict:
    """44 streams at real speed: CPU and RSS per second, /metrics latency (client side)."""
    spot_files, spot_symbols = renamed_binance_captures(work)
    files = [*spot_files, *(CAPTURES / f for f in TEN_STREAMS["binance-usdm"][0]),
             CAPTURES / TEN_STREAMS["kraken"][0][0],
             CAPTURES / TEN_STREAMS["coinbase-exchange"][0][0],
             CAPTURES / "coinbase-advanced/l2_trades_btc_eth_20260809.jsonl.gz"]
    streams = {"binance-spot": spot_symbols, "binance-usdm": ["BTCUSDT", "ETHUSDT"],
               "kraken": KRAKEN_PAIRS, "coinbase-exchange": COINBASE_PRODUCTS,
               "coinbase-advanced": ["BTC-USD", "ETH-USD"]}
    assert sum(len(s) for s in streams.values()) == 44
    emulator = Emulator(files, "--speed", "1", "--loop", "3")
    config = write_config(work / "44.toml", emulator, streams)
    # 20 spot books resync at once: lift the REST weight budget, as for a compressed test
    daemon = Daemon(work / "44", "--config", str(config), "--rest-weight-limit", "1000000")
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
    latencies: list[tuple[float, float]] = []  # (seconds since start, latency)
    stop = threading.Event()
    began = time.perf_counter()

    def scrape() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            with urllib.request.urlopen(url, timeout=30) as reply:
                reply.read()
            latencies.append((started - began, time.perf_counter() - started))
            stop.wait(0.1)

    samples = []
    try:
        proc = psutil.Process(daemon.proc.pid)
        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
        cpu_prev, t_prev = cpu_seconds(proc), time.monotonic()
        for _ in range(int(seconds)):
            time.sleep(1.0)
            cpu, now = cpu_seconds(proc), time.monotonic()
            samples.append(((cpu - cpu_prev) / (now - t_prev), proc.memory_info().rss / 2**20))
            cpu_prev, t_prev = cpu, now
        stop.set()
        scraper.join(30)
        metrics = daemon.metrics()
        loop_p99 = histogram_quantile(daemon, "bookcast_event_loop_lag_seconds", 0.99)
        daemon.terminate()
    finally:
        daemon.close()
        emulator.close()
    warm = seconds / 4  # the start: connections, every book's full-depth snapshot
    steady = samples[len(samples) // 4:]
    ordered = sorted(lat for _, lat in latencies)
    later = sorted(lat for t, lat in latencies if t >= warm)

    def pick(values: list[float], q: float) -> float:
        return 1000 * values[min(len(values) - 1, int(len(values) * q))]

    return {"cpu_mean": statistics.mean(c for c, _ in steady),
            "cpu_max": max(c for c, _ in steady),
            "rss": [round(r) for _, r in samples],
            "p50_ms": pick(ordered, 0.5), "p99_ms": pick(ordered, 0.99),
            "max_ms": 1000 * ordered[-1], "scrapes": len(ordered), "warm_s": warm,
            "steady_p99_ms": pick(later, 0.99), "steady_max_ms": 1000 * later[-1],
            "books_valid": metrics["bookcast_book_valid"], "loop_p99_ms": 1000 * loop_p99,
            "messages": metrics["bookcast_messages_total"]}


def histogram_quantile(daemon: Daemon, name: str, q: float) -> float:
    """The upper bound of the bucket holding quantile q of a Prometheus histogram."""
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=30) as reply:
        text = reply.read().decode()
    buckets = [(float(s.labels["le"]), s.value) for f in text_string_to_metric_families(text)
               if f.name == name for s in f.samples if s.name.endswith("_bucket")]
    total = buckets[-1][1]
    return next(bound for bound, count in buckets if count >= q * total)


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


def percents(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"{r['cpu_share'] * 100:.2f}" for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--warmup", type=float, default=8.0,
                        help="seconds after start-up before measuring (past the first flush)")
    parser.add_argument("--pairs", type=int, default=3, help="interleaved runs per side")
    parser.add_argument("--anchor", type=Path, help="source tree to compare the CPU with")
    parser.add_argument("--anchor-emulator", action="store_true",
                        help="serve both sides from the anchor's emulator (its traffic)")
    parser.add_argument("--only", choices=("cpu", "load", "rate"), help="one part only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bookcast-bench-") as tmp:
        work = Path(tmp)
        if args.only in (None, "cpu"):
            ours, theirs = [], []
            for _ in range(args.pairs if args.anchor else 1):
                served = args.anchor if args.anchor_emulator else None
                if args.anchor:
                    theirs.append(real_speed_cpu(work, args.seconds, args.warmup, args.anchor,
                                                 served))
                ours.append(real_speed_cpu(work, args.seconds, args.warmup, None, served))
            share = statistics.median(r["cpu_share"] for r in ours)
            msgs = statistics.median(r["msgs_per_s"] for r in ours)
            print(f"ten streams at real speed: {share * 100:.2f} % of one core (median of "
                  f"{len(ours)}: {percents(ours)}; "
                  f"{msgs:.0f} msg/s; {ours[0]['books_valid']:.0f}/10 books valid; {load()})")
            if theirs:
                ratios = [a["cpu_share"] / b["cpu_share"] for a, b in zip(ours, theirs,
                                                                           strict=True)]
                print(f"  anchor {args.anchor}: {percents(theirs)} %; "
                      f"paired median ratio this/anchor {statistics.median(ratios):.2f}")
        if args.only in (None, "load"):
            heavy = load_44(work, max(args.seconds, 30.0))
            print(f"44 streams at real speed: CPU {heavy['cpu_mean'] * 100:.1f} % of one core "
                  f"(max {heavy['cpu_max'] * 100:.1f} % in a second), /metrics p50 "
                  f"{heavy['p50_ms']:.1f} ms, p99 {heavy['p99_ms']:.1f} ms, max "
                  f"{heavy['max_ms']:.1f} ms over {heavy['scrapes']} scrapes (after the first "
                  f"{heavy['warm_s']:.0f} s: p99 {heavy['steady_p99_ms']:.1f} ms, max "
                  f"{heavy['steady_max_ms']:.1f} ms); the daemon's event loop lag p99 <= "
                  f"{heavy['loop_p99_ms']:.0f} ms; {heavy['books_valid']:.0f}/44 books "
                  f"valid; {load()}")
            print(f"  RSS MiB each second: {' '.join(map(str, heavy['rss']))}")
        if args.only in (None, "rate"):
            fast = max_rate(work)
            print(f"max sustained through sockets: {fast['live_msgs_per_s']:,.0f} msg/s "
                  f"({fast['messages']:,.0f} messages); replay of the same captures "
                  f"{fast['replay_msgs_per_s']:,.0f} msg/s; live/replay ratio "
                  f"{fast['live_msgs_per_s'] / fast['replay_msgs_per_s']:.2f}; {load()}")


if __name__ == "__main__":
    main()
