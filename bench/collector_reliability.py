"""The collector's reliability report (docs/collector.md): faults against the real daemon.

    .venv/bin/python bench/collector_reliability.py [--kills 20] [--skip-matrix] [--workers 1]

1. The venue x fault matrix: `pytest -m "chaos or not chaos" tests/daemon/test_chaos.py`
   with BOOKCAST_CHAOS_REPORT set, rendered as a table: what the emulator (or the test)
   injected, what the daemon's /metrics counted, rows flagged gap = true, rows at no state
   the original capture's book passed through (without the flag), and data lost.
2. The disk-full timeline of the binance-spot case (fill -> 503 -> drops -> free -> resume).
3. SIGKILL x N on one data directory (Binance spot at 10x, flush 0.5 s): the raw capture's
   and the Parquet's loss per kill, against the bound the daemon's own timings give, and
   the temporary files each kill left and the next start removed or recovered.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CAPTURES = ROOT.parent / "shared" / "data" / "captures"
FAULT_LABELS = {"gap": "gap", "corrupt": "corrupt", "drop": "drop", "stall": "stall",
                "kill": "exchange killed", "disk_full": "disk full", "sigkill": "SIGKILL"}


def matrix(report: Path, workers: int) -> list[dict]:
    env = {**os.environ, "BOOKCAST_CHAOS_REPORT": str(report)}
    parallel = ["-n", str(workers)] if workers > 1 else []
    subprocess.run([sys.executable, "-m", "pytest", "-q", *parallel, "-m", "chaos or not chaos",
                    "tests/daemon/test_chaos.py"], cwd=ROOT, env=env, check=False)
    return [json.loads(line) for line in report.read_text().splitlines()]


def injected(r: dict) -> str:
    i = r["injected"]
    return {"gap": lambda: f"{i.get('gaps', 0)} skipped ({i.get('followed', 0)} followed)",
            "corrupt": lambda: f"{i.get('corruptions', 0)} garbled",
            "drop": lambda: f"{i.get('drops', 0)} closed",
            "stall": lambda: f"{i.get('stalls', 0)} stalls, {i.get('stalled_messages', 0)} msgs lost",
            "kill": lambda: f"killed {i.get('outage_s', 0)} s",
            "disk_full": lambda: "1 episode",
            "sigkill": lambda: "1 kill"}[r["fault"]]()


def detected(r: dict) -> str:
    d = {k.removeprefix("bookcast_").removesuffix("_total"): int(v)
         for k, v in r["detected"].items() if v}
    keep = {"gap": ("gaps", "checksum_failures"), "corrupt": ("parse_errors", "gaps"),
            "drop": ("disconnects",), "stall": ("stale_streams", "gaps"),
            "kill": ("disconnects", "connect_failures"),
            "disk_full": ("write_errors", "rows_dropped"),
            "sigkill": ("startup_recovered_files", "startup_removed_files")}[r["fault"]]
    return ", ".join(f"{k} {d.get(k, 0)}" for k in keep)


def lost(r: dict) -> str:
    if r["fault"] == "sigkill":
        s = r["lost_s"]
        return f"raw {s['raw']:.2f} s, Parquet {s['parquet']:.2f} s (bound {s['bound']:.2f})"
    if r["fault"] == "disk_full":
        return f"{int(r['detected'].get('bookcast_rows_dropped_total', 0)):,} rows dropped, flagged"
    return "-"


def render(results: list[dict]) -> str:
    lines = ["| venue | fault | injected | counted in /metrics | rows | gap rows | wrong rows "
             "(unflagged) | oldest book | data lost |", "|---|---|---|---|---|---|---|---|---|"]
    order = {f: n for n, f in enumerate(FAULT_LABELS)}
    for r in sorted(results, key=lambda r: (r["venue"], order[r["fault"]])):
        wrong = str(r["wrong"])
        if r["wrong_unverified"]:
            wrong += f" ({r['wrong_unverified']} below the verified depth)"
        lines.append(f"| {r['venue']} | {FAULT_LABELS[r['fault']]} | {injected(r)} | "
                     f"{detected(r)} | {r['rows']:,} | {r['flagged']} | {wrong} | "
                     f"{r['oldest_book_s']:.2f} s | {lost(r)} |")
    own = max(r["own_shutdown_s"] for r in results)
    wall = sorted(r["shutdown_s"] for r in results)
    lines.append(f"\nSIGTERM after each case: exit 0 in {sum(not r['exit_code'] for r in results)}"
                 f" of {len(results)}; the daemon's own shutdown at most {own:.2f} s; signal to "
                 f"exit (wall) median {statistics.median(wall):.2f} s, max {wall[-1]:.2f} s")
    return "\n".join(lines)


def sigkills(kills: int, work: Path) -> None:
    from collector.processes import DaemonProcess, EmulatorProcess
    from tests.daemon.chaos import sigkill_loss, wait_for

    slice_path = work / "slice.jsonl.gz"
    from tests.daemon.conftest import write_slice

    write_slice(CAPTURES / "binance-spot/btcusdt_20240808-09.jsonl.gz", slice_path, 12_000)
    emulator = EmulatorProcess([slice_path], "--speed", "10", "--loop", "50")
    data_dir = work / "data"
    rng = random.Random(20)
    raw, parquet, bounds, debris, cleaned = [], [], [], [], []
    try:
        for n in range(kills):
            daemon = DaemonProcess(data_dir, "--venue", "binance-spot", "--symbol", "BTCUSDT",
                                   "--endpoint", emulator.addresses["binance-spot"],
                                   "--interval", "50ms", "--depth", "10", "--flush-interval",
                                   "0.5s", "--log-format", "json", log=work / f"d{n}.log")
            if n:
                events = [e for e in daemon.events() if e["event"] == "cleaned up after a crash"]
                cleaned.append(events[0] if events else {})
            written = daemon.metrics().get("bookcast_snapshots_written_total", 0)
            wait_for("new rows", lambda d=daemon, w=written:
                     d.metrics().get("bookcast_snapshots_written_total", 0) > w)
            moment = time.monotonic() + rng.uniform(0.0, 1.5)
            wait_for("the moment", lambda m=moment: time.monotonic() >= m)
            loss = sigkill_loss(daemon, data_dir, "binance-spot", ["BTCUSDT"], 0.5)
            daemon.close()
            raw.append(loss["raw"])
            parquet.append(loss["parquet"])
            bounds.append(loss["bound"])
            debris.append(len(list(data_dir.rglob(".*.tmp"))))
        final = DaemonProcess(data_dir, "--venue", "binance-spot", "--symbol", "BTCUSDT",
                              "--endpoint", emulator.addresses["binance-spot"],
                              log=work / "final.log")
        final.terminate()
        left = len(list(data_dir.rglob(".*.tmp")))
    finally:
        emulator.close()
    print(f"SIGKILL x{kills} (flush 0.5 s): raw lost median {statistics.median(raw):.3f} s, "
          f"max {max(raw):.3f} s; Parquet lost median {statistics.median(parquet):.3f} s, "
          f"max {max(parquet):.3f} s; bound (flush + the daemon's slowest flush delay and "
          f"write) median {statistics.median(bounds):.3f} s, max {max(bounds):.3f} s")
    recovered = sum(c.get("recovered_raw_files", 0) for c in cleaned)
    removed = sum(c.get("removed_temp_files", 0) for c in cleaned)
    print(f"  temporary files left by the kills: {sum(debris)} (per kill: {debris}); "
          f"recovered at the next start {recovered}, removed {removed}; left at the end: "
          f"{left}; load {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--skip-matrix", action="store_true")
    parser.add_argument("--workers", type=int, default=1,
                        help="pytest-xdist workers for the matrix (1: one case at a time)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bookcast-reliability-") as tmp:
        work = Path(tmp)
        if not args.skip_matrix:
            results = matrix(work / "chaos.jsonl", args.workers)
            print(render(results))
            for r in results:
                if r["venue"] == "binance-spot" and r["fault"] == "disk_full":
                    print("\ndisk-full timeline (binance-spot):")
                    for at, event in r["timeline"]:
                        print(f"  {at:6.2f} s  {event}")
            print(f"\nload {os.getloadavg()[0]:.1f}")
        sigkills(args.kills, work)


if __name__ == "__main__":
    main()
