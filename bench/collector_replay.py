"""Collector replay benchmark: this tree against an earlier commit, and against cryptofeed.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/collector_replay.py [--baseline c6506aa | --baseline-dir DIR]
                                               [--rounds 5] [--full-rounds 3]

All on the real Binance spot BTCUSDT capture (6,495 depth diffs, ~11 minutes), 100 ms grid.

1. End to end, this tree against the baseline: `replay_captures` (capture file -> parse ->
   sync -> book -> snapshots and trades Parquet), depth 100 and full depth, each run in a
   fresh process (imports included, so pyarrow's lazy pandas import counts where it
   happens), the two trees interleaved (A B, B A, ...) and compared as the median of the
   per-round ratios. Wall and CPU seconds, peak RSS (VmHWM). The baseline's code is
   exported with `git archive` into a temporary directory (nothing of it is committed
   here), or taken from --baseline-dir.
2. In memory, this tree against cryptofeed 2.4.1's Binance `message_handler` and its C
   order book, on the same depth diffs and REST snapshot, already read: (a) update
   processing alone (parse, sync, apply; no level is read), (b) with sampling: 100
   levels a side at every 100 ms grid point (bookcast: into the snapshot writer's
   buffers, as float64; cryptofeed: `book.index(i)` reads, its natural form). The two
   interleaved per round; median of the per-round ratios.
3. One full-depth row of a 5,000-level book (levels read + SnapshotWriter.add), both
   trees, in the same fresh processes as 1.
4. `--codecs ROUNDS` (alone): this tree's replay end to end with each candidate pair of
   codecs for the snapshot and the trade files (zstd 1 for both, LZ4 HC 3 for the
   snapshots, LZ4 HC 3 for both, plain lz4 snapshots), depth 100 and full depth; the CPU
   each costs against zstd 1 for both, and the snapshot bytes (the choice in
   collector/writers.py).

Load average is printed beside each section: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "bench"))  # after the project: bench/features.py is not the package

from baseline import baseline_tree, child_env, load, paired_ratio  # noqa: E402

CAPTURE = ROOT.parent / "shared" / "data" / "captures" / "binance-spot" / "btcusdt_20240808-09.jsonl.gz"
INTERVAL = 100_000_000
DEPTH = 100
DEFAULT_BASELINE = "c6506aa"  # main before issue 17's writer and book changes


# ---------------------------------------------------------------- 1. end to end, two trees

# Run in a fresh process with the tree under test first on sys.path. Works with the
# baseline's API (book.top + float lists) and this tree's (book.levels).
CHILD = """
import json, sys, tempfile, time
start_wall, start_cpu = time.perf_counter(), time.process_time()
sys.path.insert(0, sys.argv[1])
from collector.replay import replay_captures
depth = None if sys.argv[3] == "full" else int(sys.argv[3])
with tempfile.TemporaryDirectory() as out:
    s = replay_captures([sys.argv[2]], out, int(sys.argv[4]), depth)
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
import collector.book as B
from collector.writers import SnapshotWriter
book = B.OrderBook()
mid = 60_000 * B.UNIT
book.load([(mid - (i + 1) * B.UNIT // 100, B.UNIT + i) for i in range(2500)],
          [(mid + (i + 1) * B.UNIT // 100, B.UNIT + i) for i in range(2500)])
read = book.levels if hasattr(book, "levels") else book.top
with tempfile.TemporaryDirectory() as out:
    w = SnapshotWriter(out, "binance-spot", "BTCUSDT", 10**9, None, {})
    t = time.perf_counter()
    for i in range(200):
        book.set_bid(mid - B.UNIT // 100, B.UNIT + i)  # the book changed: no copy shortcut
        w.add(i, i, i, i, read(None), 1, False)
    row_ms = (time.perf_counter() - t) / 200 * 1e3
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"wall": wall, "cpu": cpu, "peak_mib": hwm / 1024, "records": s.records,
                  "rows": sum(x.snapshots for x in s.streams), "full_row_ms": row_ms,
                  "pandas": "pandas" in sys.modules}))
"""


def run_child(tree: Path, depth: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(CAPTURE), depth,
                           str(INTERVAL)], capture_output=True, text=True, cwd=tree,
                          env=child_env())
    if done.returncode:
        raise RuntimeError(f"the replay in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def paired(before: list[dict], after: list[dict], key: str) -> tuple[float, float, float]:
    """Median before, median after, median of the per-round ratios before / after."""
    return (statistics.median(b[key] for b in before), statistics.median(a[key] for a in after),
            paired_ratio([b[key] for b in before], [a[key] for a in after]))


def end_to_end(base: Path, rounds: int, depth: str) -> tuple[list[dict], list[dict]]:
    before, after = [], []
    for r in range(rounds):
        order = [(base, before), (ROOT, after)]
        for tree, results in order if r % 2 == 0 else order[::-1]:
            results.append(run_child(tree, depth))
    return before, after


# ---------------------------------------------------------------- 2. against cryptofeed


def load_depth_messages() -> tuple[list, int]:
    """The REST snapshot and depth diffs of the capture, in order, and their level count."""
    from collector.capture import iter_capture

    records, levels = [], 0
    for rec in iter_capture(CAPTURE):
        if rec.kind == "http" or "@depth" in (rec.data or "")[:40]:
            records.append(rec)
            if rec.kind == "recv":
                msg = json.loads(rec.data)["data"]
                levels += len(msg["b"]) + len(msg["a"])
    return records, levels


def bookcast_in_memory(records: list, sample: bool) -> tuple[float, int]:
    """Seconds to feed the records through the venue module, sync rule and book; with
    `sample`, the real sampler and SnapshotWriter too (rows buffered, never written)."""
    from collector.pipeline import Pipeline

    class UpdatesOnly(Pipeline):  # no grid row is ever written
        def advance(self, state, ts_recv: int) -> None:
            pass

        def hold(self, state, ts_recv: int) -> list:
            return []

    with tempfile.TemporaryDirectory() as out:
        pipeline = (Pipeline if sample else UpdatesOnly)("binance-spot", out, INTERVAL, DEPTH,
                                                         rotate_rows=10**9)
        feed = pipeline.feed
        start = time.perf_counter()
        for rec in records:
            feed(rec)  # rows are sampled as each diff vouches for them
        return time.perf_counter() - start, pipeline.rows_written


def cryptofeed_in_memory(records: list, sample: bool) -> tuple[float, int]:
    from cryptofeed.defines import L2_BOOK
    from cryptofeed.exchanges import Binance
    from cryptofeed.symbols import Symbols

    logging.getLogger("feedhandler").setLevel(logging.ERROR)
    # cryptofeed reads exchangeInfo at start-up; give its own parser the one symbol offline
    exchange_info = {"symbols": [{"symbol": "BTCUSDT", "baseAsset": "BTC", "quoteAsset": "USDT",
                                  "filters": [{"tickSize": "0.01000000"}]}]}
    Symbols.set(Binance.id, *Binance._parse_symbol_data(exchange_info))
    rest_reply = next(r.data for r in records if r.kind == "http")

    class CapturedRest:
        """Serves the capture's REST depth reply where cryptofeed would fetch it."""

        async def read(self, address: str, **kwargs) -> str:
            return rest_reply

    async def on_book(book, receipt_ts):
        pass

    feed = Binance(symbols=["BTC-USDT"], channels=[L2_BOOK], callbacks={L2_BOOK: on_book},
                   max_depth=0)
    feed.http_conn = CapturedRest()
    rows = 0

    def read_levels() -> None:
        book = feed._l2_book["BTC-USDT"].book
        for side in (book.bids, book.asks):
            for i in range(min(DEPTH, len(side))):
                side.index(i)

    async def run() -> None:
        nonlocal rows
        next_grid = None
        handler = feed.message_handler
        for rec in records:
            if rec.kind != "recv":
                continue
            t = rec.ts_ns
            if sample and next_grid is not None:
                while next_grid < t:
                    read_levels()
                    rows += 1
                    next_grid += INTERVAL
            await handler(rec.data, None, t / 1e9)
            if next_grid is None and "BTC-USDT" in feed._l2_book:
                next_grid = -(-t // INTERVAL) * INTERVAL

    start = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - start, rows


def against_cryptofeed(records: list, rounds: int, sample: bool) -> dict:
    ours, theirs = [], []
    for r in range(rounds):
        pair = [(bookcast_in_memory, ours), (cryptofeed_in_memory, theirs)]
        for run, results in pair if r % 2 == 0 else pair[::-1]:
            results.append(run(records, sample))
    return {"bookcast_s": statistics.median(t for t, _ in ours),
            "cryptofeed_s": statistics.median(t for t, _ in theirs),
            "ratio": paired_ratio([t for t, _ in theirs], [t for t, _ in ours]),
            "rows": (ours[0][1], theirs[0][1])}


# ---------------------------------------------------------------- 4. the files' codec

# argv: tree, capture, depth, interval, then the snapshots' and the trades' codec, each as
# codec:level ("-" for the codec's default level). This tree's replay with
# `collector.writers.SNAPSHOT_COMPRESSION` and `RECORD_COMPRESSION` set for the run.
CODEC_CHILD = """
import json, sys, tempfile, time
from pathlib import Path
start_wall, start_cpu = time.perf_counter(), time.process_time()
sys.path.insert(0, sys.argv[1])
import collector.writers as writers
def codec(arg):
    name, level = arg.split(":")
    return name, None if level == "-" else int(level)
writers.SNAPSHOT_COMPRESSION, writers.RECORD_COMPRESSION = codec(sys.argv[5]), codec(sys.argv[6])
from collector.replay import replay_captures
depth = None if sys.argv[3] == "full" else int(sys.argv[3])
with tempfile.TemporaryDirectory() as out:
    replay_captures([sys.argv[2]], out, int(sys.argv[4]), depth)
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    size = sum(f.stat().st_size for f in Path(out, "snapshots").rglob("*.parquet"))
print(json.dumps({"wall": wall, "cpu": cpu, "snapshot_bytes": size}))
"""
# (snapshots, trades); the first is the anchor
CODECS = (("zstd:1", "zstd:1"), ("lz4_raw:3", "zstd:1"), ("lz4_raw:3", "lz4_raw:3"),
          ("lz4_raw:-", "zstd:1"))


def codecs(rounds: int) -> None:
    """This tree's replay end to end with each candidate codec for its files, in fresh
    processes, interleaved in rotating order; paired medians against the first."""
    from collector.writers import RECORD_COMPRESSION, SNAPSHOT_COMPRESSION

    print(f"\n[the files' codecs (snapshots, trades): this tree's replay, {rounds} rounds; "
          f"written now: {SNAPSHOT_COMPRESSION}, {RECORD_COMPRESSION}; {load()}]")
    for depth in ("100", "full"):
        runs: dict[tuple[str, str], list[dict]] = {c: [] for c in CODECS}
        for r in range(rounds):
            for snapshots, trades in CODECS[r % len(CODECS):] + CODECS[:r % len(CODECS)]:
                done = subprocess.run(
                    [sys.executable, "-c", CODEC_CHILD, str(ROOT), str(CAPTURE), depth,
                     str(INTERVAL), snapshots, trades], capture_output=True, text=True,
                    cwd=ROOT, env=child_env())
                if done.returncode:
                    raise RuntimeError(f"the replay with {snapshots}, {trades} failed:\n"
                                       f"{done.stderr[-3000:]}")
                runs[(snapshots, trades)].append(
                    json.loads(done.stdout.strip().splitlines()[-1]))
        anchor = runs[CODECS[0]]
        for (snapshots, trades), results in runs.items():
            print(f"  depth {depth:4s} snapshots {snapshots:10s} trades {trades:10s}: wall "
                  f"{statistics.median(x['wall'] for x in results):6.2f} s, CPU "
                  f"{statistics.median(x['cpu'] for x in results):6.2f} s "
                  f"({paired_ratio([x['cpu'] for x in results], [a['cpu'] for a in anchor]):.2f}x "
                  f"of {CODECS[0][0]} for both, paired), snapshots "
                  f"{results[0]['snapshot_bytes']:,} B")
    print(f"  [{load()}]")


# ---------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE,
                        help=f"git revision to compare against (default {DEFAULT_BASELINE})")
    parser.add_argument("--baseline-dir", help="a checkout of the baseline instead of a revision")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds, depth 100")
    parser.add_argument("--full-rounds", type=int, default=3, help="interleaved rounds, full depth")
    parser.add_argument("--cryptofeed-rounds", type=int, default=5)
    parser.add_argument("--codecs", type=int, default=0, metavar="ROUNDS",
                        help="only the files' codec: this tree's replay with each candidate")
    args = parser.parse_args()
    if args.codecs:
        codecs(args.codecs)
        return

    from importlib.metadata import version

    import cryptofeed

    label = args.baseline_dir or args.baseline
    print(f"capture {CAPTURE.name}, grid {INTERVAL // 1_000_000} ms; baseline {label}; "
          f"python {sys.version.split()[0]}")
    with baseline_tree(args.baseline, args.baseline_dir) as base:
        for depth, rounds in (("100", args.rounds), ("full", args.full_rounds)):
            print(f"\n[end to end, depth {depth}, {rounds} interleaved rounds; {load()}]")
            before, after = end_to_end(base, rounds, depth)
            assert before[0]["rows"] == after[0]["rows"], "the two trees wrote different rows"
            for key, what in (("wall", "wall s"), ("cpu", "CPU s"), ("peak_mib", "peak MiB")):
                b, a, ratio = paired(before, after, key)
                print(f"  {what:9s} baseline {b:8.2f}   this tree {a:8.2f}   "
                      f"baseline / this, paired median {ratio:5.2f}x")
            print(f"  rows {after[0]['rows']:,}, records {after[0]['records']:,}; pandas "
                  f"imported: baseline {before[0]['pandas']}, this tree {after[0]['pandas']}")
            if depth == "100":
                b, a, ratio = paired(before, after, "full_row_ms")
                print(f"  one full-depth row of a 5,000-level book: baseline {b:.2f} ms, "
                      f"this tree {a:.2f} ms ({ratio:.2f}x)")
            print(f"  [{load()}]")

    records, levels = load_depth_messages()
    n_msgs = sum(r.kind == "recv" for r in records)
    print(f"\n[in memory against cryptofeed {version('cryptofeed')} "
          f"({cryptofeed.__file__.rsplit('/', 2)[-2]}): {n_msgs:,} depth diffs, "
          f"{levels:,} level updates; {load()}]")
    for sample, what in ((False, "update processing alone"),
                         (True, f"with sampling ({DEPTH} levels a side every 100 ms)")):
        res = against_cryptofeed(records, args.cryptofeed_rounds, sample)
        print(f"  {what}: bookcast {res['bookcast_s']:.3f} s "
              f"({levels / res['bookcast_s']:,.0f} level updates/s), cryptofeed "
              f"{res['cryptofeed_s']:.3f} s ({levels / res['cryptofeed_s']:,.0f}/s); "
              f"cryptofeed / bookcast, paired median {res['ratio']:.2f}x; rows {res['rows']}")
    print(f"  [{load()}]")


if __name__ == "__main__":
    main()
