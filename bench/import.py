"""Import benchmark: `bookcast import tardis` against replaying the same data, in one run.

The shared tardis file `binance-futures_incremental_book_L2_2024-08-08_BTCUSDT.csv.gz` was
made (independently) from the USDⓈ-M capture `binance-usdm/btcusdt_20240808.jsonl.gz`: its
445,262 rows are the capture's 443,262 depth-diff levels plus the 2,000 levels of its REST
snapshot. Both sides therefore apply the same book updates and write the same snapshots
(depth 100 on the 100 ms grid):

  import: the tardis CSV -> bookcast's book -> snapshots Parquet;
  replay: the capture's REST snapshot and depth diffs only (its trades and bookTicker are
          left out, so neither side does work the other does not) -> the same.

Each is measured at 1x and at 20x: the file, and the capture, repeated 20 times one after
the other (each copy a second after the previous ended, update ids moved on, so every copy
opens with a snapshot: one resync per copy on both sides). Every measurement runs in a
fresh process, which reports its own wall time for the work and its peak RSS; runs are
interleaved, who goes first alternating from round to round, and the ratio is the median
of the per-round ratios. The 1x and 20x peak memory show whether memory stays flat as the input grows.

Run: .venv/bin/python bench/import.py [--runs 3]; `--flat 5 40` measures only the import's
peak memory at those numbers of copies (one run each).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TARDIS = SHARED / "imports" / "tardis" / "binance-futures_incremental_book_L2_2024-08-08_BTCUSDT.csv.gz"
CAPTURE = SHARED / "captures" / "binance-usdm" / "btcusdt_20240808.jsonl.gz"
INTERVAL = 100_000_000
DEPTH = 100
sys.path.insert(0, str(ROOT))


def _tardis_files_module():
    """The tests' text-level tardis editing (it does not go through the importer)."""
    spec = importlib.util.spec_from_file_location(
        "tardis_files", ROOT / "tests" / "importers" / "tardis_files.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def depth_only_capture(copies: int, span_ns: int, out: Path) -> tuple[Path, int]:
    """The capture's REST snapshot and depth diffs, `copies` times one after the other, with
    receive times, event times and update ids moved on by `span_ns` (the tardis copies'
    shift, so both sides' copies meet the grid alike) for each copy. Returns the file and
    its number of level updates (snapshot levels included)."""
    from collector.capture import CaptureWriter, iter_capture

    records = [r for r in iter_capture(CAPTURE)
               if r.kind == "http" or (r.kind == "recv" and '"depthUpdate"' in (r.data or ""))]
    assert span_ns > records[-1].ts_ns - records[0].ts_ns, "copies would overlap"
    span_ms = span_ns // 1_000_000
    messages = [orjson.loads(r.data) for r in records]
    ids = [i for m in messages for i in ((m["lastUpdateId"],) if "lastUpdateId" in m
                                         else (m["data"]["U"], m["data"]["u"]))]
    id_span = max(ids) - min(ids) + 1_000_000
    levels = 0
    with CaptureWriter(out) as writer:
        for k in range(copies):
            for rec, msg in zip(records, messages, strict=True):
                if rec.kind == "http":
                    moved = dict(msg, lastUpdateId=msg["lastUpdateId"] + k * id_span,
                                 E=msg["E"] + k * span_ms, T=msg["T"] + k * span_ms)
                    levels += len(msg["bids"]) + len(msg["asks"])
                else:
                    d = msg["data"]
                    moved = dict(msg, data=dict(d, U=d["U"] + k * id_span, u=d["u"] + k * id_span,
                                                pu=d["pu"] + k * id_span, E=d["E"] + k * span_ms,
                                                T=d["T"] + k * span_ms))
                    levels += len(d["b"]) + len(d["a"])
                moved_rec = dataclasses.replace(rec, ts_ns=rec.ts_ns + k * span_ns,
                                                data=orjson.dumps(moved).decode())
                writer.write(moved_rec.ts_ns, moved_rec.kind, moved_rec.conn, moved_rec.data,
                             moved_rec.url)
    return out, levels


def child(kind: str, path: str, out: str) -> None:
    """One measurement, in this fresh process: the work's wall time and the peak RSS."""
    import logging

    logging.disable(logging.WARNING)  # each copy's resync is logged; not the point here
    if kind == "import":
        from collector.importers.tardis import import_tardis

        cpu, started = time.process_time(), time.perf_counter()
        summary = import_tardis([path], out, INTERVAL, DEPTH)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        updates, rows = summary.rows_read, sum(s.rows_written for s in summary.streams)
    else:
        from collector.replay import replay_captures

        cpu, started = time.process_time(), time.perf_counter()
        summary = replay_captures([path], out, INTERVAL, DEPTH)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        updates = sum(p.state("BTCUSDT").level_updates for p in summary.pipelines.values())
        rows = sum(s.snapshots for s in summary.streams)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "updates": updates, "rows": rows,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(kind: str, path: Path, work: Path) -> dict:
    out = Path(tempfile.mkdtemp(dir=work))
    proc = subprocess.run([sys.executable, __file__, "--child", kind, str(path), str(out)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--child", nargs=3)
    parser.add_argument("--flat", type=int, nargs="+", metavar="COPIES",
                        help="only the import's peak memory, once at each number of copies")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    tardis_files = _tardis_files_module()
    if args.flat:
        flat(tardis_files, args.flat)
        return
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        work = Path(tmp)
        span_ns = tardis_files.copy_span_us(TARDIS) * 1000
        inputs = {1: (TARDIS, depth_only_capture(1, span_ns, work / "capture-1x.jsonl.gz")[0]),
                  args.copies: (tardis_files.write_shifted_copies(
                      TARDIS, args.copies, work / f"tardis-{args.copies}x.csv.gz"),
                      depth_only_capture(args.copies, span_ns,
                                         work / f"capture-{args.copies}x.jsonl.gz")[0])}
        load_before = os.getloadavg()
        results: dict[tuple[int, str], list[dict]] = {}
        for round_no in range(args.runs):
            for copies, (tardis, capture) in inputs.items():
                pair = [("import", tardis), ("replay", capture)]
                for kind, path in pair if round_no % 2 == 0 else pair[::-1]:  # alternate who goes first
                    results.setdefault((copies, kind), []).append(measure(kind, path, work))
                    for leftover in work.glob("tmp*"):
                        subprocess.run(["rm", "-rf", str(leftover)], check=True)
        load_after = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after; {args.runs} interleaved rounds, fresh process each")
    print(f"{'input':>6} {'side':>7} {'book updates':>13} {'rows':>8} {'median s':>9} "
          f"{'updates/s':>11} {'CPU s':>7} {'peak RSS MB':>12}")
    for (copies, kind), runs in results.items():
        # both sides apply the same book updates (the file's rows, the capture's levels)
        updates = results[(copies, "import")][0]["updates"]
        seconds = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        print(f"{copies:>5}x {kind:>7} {updates:>13,} {runs[0]['rows']:>8,} {seconds:>9.2f} "
              f"{updates / seconds:>11,.0f} {cpu:>7.2f} "
              f"{max(r['peak_rss_mb'] for r in runs):>12.0f}")
    for copies in inputs:
        ratios = [r["seconds"] / i["seconds"] for i, r in zip(results[(copies, "import")],
                                                              results[(copies, "replay")],
                                                              strict=True)]
        cpu_ratios = [r["cpu"] / i["cpu"] for i, r in zip(results[(copies, "import")],
                                                          results[(copies, "replay")],
                                                          strict=True)]
        print(f"{copies:>5}x import speed per book update = {statistics.median(ratios):.2f}x "
              f"replay's by wall time (per round: {', '.join(f'{r:.2f}' for r in ratios)}), "
              f"{statistics.median(cpu_ratios):.2f}x by CPU time (per round: "
              f"{', '.join(f'{r:.2f}' for r in cpu_ratios)})")
    grow = (max(r["peak_rss_mb"] for r in results[(args.copies, "import")])
            / max(r["peak_rss_mb"] for r in results[(1, "import")]))
    print(f"import peak memory, {args.copies}x input against 1x: {grow:.2f}x")


def flat(tardis_files, counts: list[int]) -> None:
    """The import's peak RSS at each number of copies: flat once its first file is cut."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        work = Path(tmp)
        for copies in counts:
            path = tardis_files.write_shifted_copies(TARDIS, copies, work / f"{copies}x.csv.gz")
            r = measure("import", path, work)
            print(f"{copies:>5}x import: {r['updates']:>11,} book updates, {r['rows']:>8,} rows, "
                  f"{r['cpu']:.2f} s CPU, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
            path.unlink()
            for leftover in work.glob("tmp*"):
                subprocess.run(["rm", "-rf", str(leftover)], check=True)
    print(f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
