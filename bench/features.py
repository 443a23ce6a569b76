"""Features benchmark: `build_features` on real-like partitions, this tree against a
baseline commit and against a vectorised pandas implementation, at the same row counts.

    .venv/bin/python bench/features.py [--rows 20000,200000] [--rounds 3]
                                       [--baseline c6506aa | --baseline-dir DIR]
                                       [--codecs] [--sections]

Inputs. The real Binance BTCUSDT captures (spot and USD-M) are replayed by the collector
at 100 ms, 100 levels; that is the first case ("real", three date partitions). The
larger partitions are a block bootstrap of those real rows (`write_real_like`): runs of
1,000-3,000 consecutive real rows, each shifted by whole ticks so the mid runs on where
the last run ended, on one continuous 100 ms grid; trades likewise. So the books, their
row-to-row changes and the Parquet compression are the real ones (the bench prints bytes
per row of both), where uniform noise compressed 7x worse than real data.

Measured per case, in fresh processes, the four interleaved in rotating order over
`--rounds` rounds, each reported as the median and as the median of per-round ratios:
- `build_features` end to end (snapshot Parquet in, micro-price fit, features Parquet
  out), this tree and the baseline's code (exported with `git archive`, nothing of it
  committed here), wall and CPU seconds and peak RSS. The baseline runs twice: on the
  files this tree's writer wrote (both read the same bytes) and on the same rows written
  by the baseline's own `write_table_atomic(table, path)`, the call its snapshot writer
  made (`baseline, own files`: end to end as a user of each version gets it, since the
  snapshot encoding is part of this change);
- the pandas anchor (`pandas_features`: read with pandas, levels as 2-D arrays by
  `np.stack` plus masks, rolling windows in pandas): the same 59 columns (all but the
  micro-price), checked equal to this tree's output to 1e-9 on every case.
Before the clock starts, each build child builds a small warm-up partition (2,000 rows of
this tree's files), which loads every numba kernel with the argument types the build gives
it (steady state; an empty partition had loaded this tree's level walk for read-only Arrow
arrays only, so its page reader's writable buffers loaded another inside the clock);
`cold start` times a fresh process with an empty numba cache (JIT compilation included)
and with the cache written by the previous run.
`--codecs` adds the measurements behind the codec and row-group choices, `--sections` this
tree's CPU by step of the build on the largest partition (where the time goes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # after the project: bench/features.py is not the package

from baseline import baseline_tree, child_env, load, paired_ratio  # noqa: E402

from bookcast.paths import partition_dir  # noqa: E402
from bookcast.schema import (  # noqa: E402
    LEVEL_COLUMNS,
    SNAPSHOT_SCHEMA,
    TRADE_SCHEMA,
    TS,
    file_metadata,
)

CAPTURES = ROOT.parent / "shared" / "data" / "captures"
REAL_CAPTURES = ("binance-spot/btcusdt_20240808-09.jsonl.gz", "binance-usdm/btcusdt_20240808.jsonl.gz")
S = 1_000_000_000
DAY = 86_400 * S
T0 = 1_723_248_000 * S  # 2024-08-10 00:00 UTC: the real-like partitions' day
INTERVAL = 100_000_000  # 100 ms grid: 1 s..60 s windows are 10..600 rows
HORIZONS = [h * S for h in (1, 5, 10, 30, 60)]
WARM_UP_ROWS = 2_000  # the partition a build child runs before its clock starts
FEE_BPS = 10.0
TICK = 0.01
DEFAULT_BASELINE = "c6506aa"  # main before issue 17's features changes


# ---------------------------------------------------------------- inputs


def replay_real(root: Path) -> Path:
    """The real BTCUSDT captures replayed by the collector at 100 ms, 100 levels."""
    from collector.replay import replay_captures

    for capture in REAL_CAPTURES:
        replay_captures([CAPTURES / capture], root, INTERVAL, 100)
    return root


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    """A list column whose rows all hold the same number of levels, as a 2-D array."""
    flat = column.combine_chunks()
    lengths = np.diff(flat.offsets.to_numpy())
    if lengths.size and (lengths != lengths[0]).any():
        raise ValueError("the real partitions should hold 100 levels in every row")
    values = flat.values.to_numpy()
    return values.reshape(lengths.size, lengths[0] if lengths.size else 0)


def _lists(values: np.ndarray) -> pa.ListArray:
    n, k = values.shape
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)),
                                    pa.array(values.ravel()))


def write_real_like(real: Path, root: Path, rows: int, seed: int = 0) -> Path:
    """A one-day snapshots + trades partition of `rows` 100 ms rows, block-bootstrapped
    from the real replayed partitions under `real` (see the module docstring)."""
    from collector.writers import snapshot_row_group_rows, write_table_atomic

    rng = np.random.default_rng(seed)
    sources = []
    for folder in sorted((real / "snapshots").glob("venue=*/symbol=*/date=*")):
        snap = pq.read_table(folder)
        trades = pq.read_table(str(folder).replace("/snapshots/", "/trades/"))
        sources.append({
            "ts": snap["ts"].cast(pa.int64()).to_numpy(),
            "lag_event": pc.subtract(snap["ts"].cast(pa.int64()),
                                     snap["ts_event"].cast(pa.int64())).to_numpy(),
            "lag_recv": pc.subtract(snap["ts"].cast(pa.int64()),
                                    snap["ts_recv"].cast(pa.int64())).to_numpy(),
            "n_updates": snap["n_updates"].to_numpy(),
            **{c: _matrix(snap[c]) for c in ("bid_px", "bid_sz", "ask_px", "ask_sz")},
            "trade_ts": trades["ts_recv"].cast(pa.int64()).to_numpy(),
            "trade_lag": pc.subtract(trades["ts_recv"].cast(pa.int64()),
                                     trades["ts_event"].cast(pa.int64())).to_numpy(),
            "trade_px": trades["price"].to_numpy(), "trade_sz": trades["size"].to_numpy(),
            "trade_side": trades["side"].to_numpy(),
        })
    runs: dict[str, list[np.ndarray]] = {k: [] for k in (
        "bid_px", "bid_sz", "ask_px", "ask_sz", "lag_event", "lag_recv", "n_updates",
        "trade_ts", "trade_lag", "trade_px", "trade_sz", "trade_side")}
    done, mid_ticks = 0, None
    while done < rows:
        src = sources[int(rng.integers(len(sources)))]
        n = min(rows - done, int(rng.integers(1000, 3000)), src["ts"].size - 1)
        i = int(rng.integers(1, src["ts"].size - n + 1))
        bid = np.rint(src["bid_px"][i:i + n] / TICK).astype(np.int64)
        ask = np.rint(src["ask_px"][i:i + n] / TICK).astype(np.int64)
        shift = 0 if mid_ticks is None else mid_ticks - (bid[0, 0] + ask[0, 0]) // 2
        mid_ticks = (bid[-1, 0] + ask[-1, 0]) // 2 + shift
        # whole ticks over 100, as the collector's units / UNIT division gives them
        runs["bid_px"].append((bid + shift) / 100)
        runs["ask_px"].append((ask + shift) / 100)
        for key in ("bid_sz", "ask_sz", "lag_event", "lag_recv", "n_updates"):
            runs[key].append(src[key][i:i + n])
        # the trades received by these rows: after row i-1, up to row i+n-1
        lo, hi = np.searchsorted(src["trade_ts"], [src["ts"][i - 1], src["ts"][i + n - 1]],
                                 "right")
        runs["trade_ts"].append(src["trade_ts"][lo:hi] - src["ts"][i] + T0 + done * INTERVAL)
        runs["trade_px"].append(np.rint(src["trade_px"][lo:hi] / TICK + shift) / 100)
        for key in ("trade_lag", "trade_sz", "trade_side"):
            runs[key].append(src[key][lo:hi])
        done += n
    cat = {k: np.concatenate(v) for k, v in runs.items()}
    ts = T0 + np.arange(rows, dtype=np.int64) * INTERVAL
    gap = np.zeros(rows, bool)
    gap[0] = True  # the first sync; a real day has few more
    snapshots = pa.table({
        "ts": pa.array(ts, TS), "ts_event": pa.array(ts - cat["lag_event"], TS),
        "ts_recv": pa.array(ts - cat["lag_recv"], TS),
        "seq": pa.array(np.arange(rows, dtype=np.int64)),
        **{c: _lists(cat[c]) for c in ("bid_px", "bid_sz", "ask_px", "ask_sz")},
        "n_updates": pa.array(cat["n_updates"]), "gap": pa.array(gap),
    }, schema=SNAPSHOT_SCHEMA)
    date = "2024-08-10"
    meta = file_metadata("binance-spot", "BTCUSDT", depth=100, interval_ns=INTERVAL,
                         tick_size=TICK)
    path = partition_dir(root, "snapshots", "binance-spot", "BTCUSDT", date) / f"part-{T0}.parquet"
    write_table_atomic(snapshots.replace_schema_metadata(meta), path, snapshot_row_group_rows(100))
    order = np.argsort(cat["trade_ts"], kind="stable")
    trades = pa.table({
        "ts_recv": pa.array(cat["trade_ts"][order], TS),
        "ts_event": pa.array(cat["trade_ts"][order] - cat["trade_lag"][order], TS),
        "trade_id": pa.array([str(k) for k in range(order.size)]),
        "price": pa.array(cat["trade_px"][order]), "size": pa.array(cat["trade_sz"][order]),
        "side": pa.array(cat["trade_side"][order]),
    }, schema=TRADE_SCHEMA)
    write_table_atomic(trades.replace_schema_metadata(file_metadata("binance-spot", "BTCUSDT")),
                       partition_dir(root, "trades", "binance-spot", "BTCUSDT", date)
                       / f"part-{T0}.parquet")
    return path


def bytes_per_row(root: Path) -> float:
    files = list((root / "snapshots").rglob("*.parquet"))
    return sum(f.stat().st_size for f in files) / sum(pq.read_metadata(f).num_rows for f in files)


# ---------------------------------------------------------------- the pandas anchor


def _levels(column) -> tuple[np.ndarray, np.ndarray]:
    """A column of per-row level arrays as one 2-D array (np.stack; padded with NaN where
    a row holds fewer levels) and the rows whose list is null."""
    null = np.array([v is None for v in column], bool)
    values = [np.asarray([], float) if v is None else v for v in column]
    lengths = np.fromiter((len(v) for v in values), int, len(values))
    width = int(lengths.max(initial=0))
    if (lengths == width).all():
        return np.stack(values).astype(float) if width else np.empty((len(values), 0)), null
    out = np.full((len(values), width), np.nan)
    out[np.arange(width) < lengths[:, None]] = np.concatenate(values)
    return out, null


def pandas_features(snap_path: Path, trades_path: Path | None, fee_bps: float = FEE_BPS,
                    interval_ns: int = INTERVAL, horizons_ns: list[int] = HORIZONS):
    """The default feature set (all but the micro-price), vectorised pandas and NumPy."""
    import pandas as pd

    from features.definitions import FEATURE_SETS

    cfg = FEATURE_SETS["default"]
    columns = ["ts", "gap", "bid_px", "bid_sz", "ask_px", "ask_sz"]
    df = pd.read_parquet(snap_path, columns=columns).sort_values("ts", kind="stable")
    df = df.reset_index(drop=True)
    n = len(df)
    bid_px, bid_null = _levels(df["bid_px"])
    ask_px, ask_null = _levels(df["ask_px"])
    bid_sz, ask_sz = _levels(df["bid_sz"])[0], _levels(df["ask_sz"])[0]
    # sums count a missing level as 0
    bid_sz0, ask_sz0 = np.nan_to_num(bid_sz), np.nan_to_num(ask_sz)
    ts = df["ts"].astype("int64")
    seg = df["gap"].fillna(False).astype(int).cumsum()

    def level(m: np.ndarray, i: int) -> pd.Series:
        return pd.Series(m[:, i] if m.shape[1] > i else np.full(n, np.nan))

    def filled(m: np.ndarray, i: int) -> pd.Series:
        return level(m, i).fillna(0.0)

    def ratio(num, den):
        return (num / den).where(den > 0)

    out = pd.DataFrame({"ts": df["ts"]})
    bb, ba, bbs, bas = level(bid_px, 0), level(ask_px, 0), level(bid_sz, 0), level(ask_sz, 0)
    out["best_bid"], out["best_ask"], out["best_bid_sz"], out["best_ask_sz"] = bb, ba, bbs, bas
    mid = (bb + ba) / 2
    out["mid"] = mid
    out["spread"] = ba - bb
    out["spread_bps"] = out["spread"] / mid / 1e-4
    for x in cfg.depth_bps:
        bid_in = (bid_px - (mid.to_numpy() * (1 - x * 1e-4))[:, None]) >= 0
        ask_in = (ask_px - (mid.to_numpy() * (1 + x * 1e-4))[:, None]) <= 0
        out[f"depth_bid_{x:g}bps"] = np.where(bid_null, np.nan, np.where(bid_in, bid_sz0, 0).sum(1))
        out[f"depth_ask_{x:g}bps"] = np.where(ask_null, np.nan, np.where(ask_in, ask_sz0, 0).sum(1))
    k = cfg.levels
    for side, px, sz, sign in (("bid", bid_px, bid_sz0, 1), ("ask", ask_px, ask_sz0, -1)):
        size = sz[:, :k].sum(1)
        depth = np.isfinite(px[:, :k]).sum(1)
        last = np.where(depth > 0, px[np.arange(n), np.maximum(depth - 1, 0)]
                        if px.shape[1] else np.nan, np.nan)
        distance = sign * (mid - last) / mid / 1e-4
        out[f"slope_{side}"] = ratio(pd.Series(size), distance)
    out["imb_1"] = ratio(filled(bid_sz, 0) - filled(ask_sz, 0), filled(bid_sz, 0) + filled(ask_sz, 0))
    for c in cfg.cumulative_imbalance_levels:
        b, a = pd.Series(bid_sz0[:, :c].sum(1)), pd.Series(ask_sz0[:, :c].sum(1))
        out[f"imb_cum_{c}"] = ratio(b - a, b + a)
    w = np.exp(-cfg.ew_imbalance_decay * np.arange(k))
    b = pd.Series(np.pad(bid_sz0[:, :k], ((0, 0), (0, max(0, k - bid_sz.shape[1])))) @ w)
    a = pd.Series(np.pad(ask_sz0[:, :k], ((0, 0), (0, max(0, k - ask_sz.shape[1])))) @ w)
    out["imb_ew"] = ratio(b - a, b + a)
    out["wmid"] = ratio(bb * bas + ba * bbs, bbs + bas)

    def ok(m):
        return (seg.shift(m) == seg) & (ts.shift(m) == ts - m * interval_ns)

    ok1 = ok(1)
    events = []
    for i in range(cfg.ofi_levels):
        bp, bs, ap, as_ = level(bid_px, i), level(bid_sz, i), level(ask_px, i), level(ask_sz, i)
        e = (np.where(bp >= bp.shift(), bs, 0.0) - np.where(bp <= bp.shift(), bs.shift(), 0.0)
             - np.where(ap <= ap.shift(), as_, 0.0) + np.where(ap >= ap.shift(), as_.shift(), 0.0))
        events.append(pd.Series(e).where(ok1))
    if trades_path is not None:
        tr = pd.read_parquet(trades_path, columns=["ts_recv", "size", "side"])
        row = np.searchsorted(ts.to_numpy(), tr["ts_recv"].astype("int64").to_numpy(), "left")
        keep = row < n
        size, side, row = tr["size"].to_numpy()[keep], tr["side"].to_numpy()[keep], row[keep]
        buy = pd.Series(np.bincount(row[side > 0], size[side > 0], minlength=n))
        sell = pd.Series(np.bincount(row[side < 0], size[side < 0], minlength=n))
    r1 = np.log(mid / mid.shift()).where(ok1)
    for w_ns in cfg.lookbacks_ns:
        m = w_ns // interval_ns
        name = f"{w_ns // S}s" if w_ns < 60 * S else f"{w_ns // (60 * S)}m"
        okm = ok(m)
        for i, e in enumerate(events):
            out[f"ofi_{i + 1}_{name}"] = e.rolling(m).sum().where(okm)
        if trades_path is None:
            out[f"tfi_{name}"] = out[f"signed_vol_{name}"] = np.nan
        else:
            bw, sw = buy.rolling(m).sum().where(okm), sell.rolling(m).sum().where(okm)
            total = bw + sw
            out[f"tfi_{name}"] = ((bw - sw) / total).where(total > 0, 0.0).where(total.notna())
            out[f"signed_vol_{name}"] = bw - sw
        out[f"ret_{name}"] = np.log(mid / mid.shift(m)).where(okm)
        # pandas' rolling sum runs a running total: a window of zero returns after large
        # ones can come out a hair below 0, whose sqrt would be NaN; a sum of squares is >= 0.
        out[f"rvol_{name}"] = np.sqrt((r1**2).rolling(m).sum().clip(lower=0.0)).where(okm)
    angle = (ts % DAY) / DAY * 2 * math.pi
    out["tod_sin"], out["tod_cos"] = np.sin(angle), np.cos(angle)
    cost = 2 * fee_bps * 1e-4
    for h in horizons_ns:
        m = h // interval_ns
        forward = (seg.shift(-m) == seg) & (ts.shift(-m) == ts + m * interval_ns)
        name = f"{h // S}s" if h < 60 * S else f"{h // (60 * S)}m"
        out[f"fwd_ret_{name}"] = (mid.shift(-m) / mid - 1).where(forward)
        long_ = (bb.shift(-m) / ba - 1).where(forward)
        short = 1 - ba.shift(-m) / bb
        y = np.where(long_ > cost, 1.0, np.where(short > cost, -1.0, 0.0))
        out[f"y_{name}"] = pd.Series(y).where(long_.notna())
    return out


def check_against_pandas(reference, built) -> int:
    """Every column of the anchor equals the build's to 1e-9; returns how many.

    The anchor reads one partition; the build's forward returns and labels look into the
    next one (DESIGN.md: labels across partitions), so in the last horizon of a partition,
    where the anchor has no future, those two families are compared only where the anchor
    has a value."""
    assert len(reference) == built.height, "row counts differ"
    ts = reference["ts"].astype("int64").to_numpy()
    assert (built["ts"].dt.epoch("ns").to_numpy() == ts).all()
    tail = ts > ts.max() - max(HORIZONS)
    for column in reference.columns:
        if column == "ts":
            continue
        theirs = reference[column].to_numpy(float)
        ours = built[column].to_numpy().astype(float)
        if column.startswith(("fwd_ret_", "y_")):
            keep = ~(tail & np.isnan(theirs))
            theirs, ours = theirs[keep], ours[keep]
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9, equal_nan=True,
                                   err_msg=column)
    return len(reference.columns) - 1


# ---------------------------------------------------------------- runs in fresh processes

# argv: tree, job (build | pandas), data root, settings (JSON), warm-up root. Before the
# clock starts, a build of the small warm-up partition loads every numba kernel with the
# argument types the build gives it (compiled into NUMBA_CACHE_DIR if that is empty): an
# empty partition alone loaded this tree's level walk for Arrow's read-only arrays only,
# and its page reader's writable buffers then loaded another inside the clock (0.2-0.25 s
# of CPU at 200,000 rows).
CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
job, root, settings, warm = sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
from features.build import build_features
from features.definitions import FEATURE_SETS, prepare_book
prepare_book([], FEATURE_SETS["default"])
if job == "build":
    build_features(warm, "default", settings["horizons"], fee_bps=settings["fee_bps"])
start_wall, start_cpu = time.perf_counter(), time.process_time()
if job == "build":
    build_features(root, "default", settings["horizons"], fee_bps=settings["fee_bps"])
else:
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("bench_features", settings["bench"])
    bench_features = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_features)
    for folder in sorted(Path(root, "snapshots").glob("venue=*/symbol=*/date=*")):
        trades = Path(str(folder).replace("/snapshots/", "/trades/"))
        bench_features.pandas_features(folder, trades if trades.is_dir() else None)
wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"wall": wall, "cpu": cpu, "peak_mib": hwm / 1024}))
"""

# argv: tree, source root, destination root. The same rows re-encoded by a tree's own writer.
REWRITE = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import pyarrow.parquet as pq
from collector.writers import write_table_atomic
source, destination = Path(sys.argv[2]), Path(sys.argv[3])
for path in sorted(source.rglob("*.parquet")):
    write_table_atomic(pq.read_table(path), destination / path.relative_to(source))
print("done")
"""

# A cold `bookcast features`-like start: process start to the written dataset.
COLD = """
import json, sys, time
start = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from features.build import build_features
settings = json.loads(sys.argv[3])
build_features(sys.argv[2], "default", settings["horizons"], fee_bps=settings["fee_bps"])
print(time.perf_counter() - start)
"""
SETTINGS = json.dumps({"horizons": HORIZONS, "fee_bps": FEE_BPS,
                       "bench": str(ROOT / "bench" / "features.py")})


def run_in(tree: Path, code: str, *args: str, cache: Path) -> str:
    done = subprocess.run([sys.executable, "-c", code, str(tree), *args], capture_output=True,
                          text=True, cwd=tree, env=child_env(NUMBA_CACHE_DIR=str(cache)))
    if done.returncode:
        raise RuntimeError(f"a run in {tree} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def scratch_root(inputs: Path, parent: Path) -> Path:
    """A data root that shares the inputs' snapshots and trades and writes its own features."""
    root = Path(tempfile.mkdtemp(dir=parent))
    for dataset in ("snapshots", "trades"):
        (root / dataset).symlink_to(inputs / dataset)
    return root


def compare(case: str, inputs: Path, rows: int, base: Path, rounds: int, tmp: Path,
            caches: dict[str, Path], warm: Path) -> None:
    """Every job on `inputs` in fresh processes, interleaved; `warm` is the warm-up
    partition each build child runs before its clock (CHILD)."""
    import polars as pl

    own = Path(tempfile.mkdtemp(dir=tmp))
    run_in(base, REWRITE, str(inputs), str(own), cache=caches["baseline"])
    jobs = {"baseline": (base, "build", inputs), "baseline, own files": (base, "build", own),
            "this tree": (ROOT, "build", inputs), "pandas": (ROOT, "pandas", inputs)}
    results: dict[str, list[dict]] = {name: [] for name in jobs}
    print(f"\n[{case}: {rows:,} rows, {bytes_per_row(inputs):.0f} B/row on disk as this tree "
          f"writes them, {bytes_per_row(own):.0f} as the baseline does; {rounds} rounds; "
          f"{load()}]")
    names = list(jobs)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            tree, job, source = jobs[name]
            root = scratch_root(source, tmp)
            results[name].append(json.loads(run_in(
                tree, CHILD, job, str(root), SETTINGS, str(scratch_root(warm, tmp)),
                cache=caches[name])))
    this = results["this tree"]
    for name in jobs:
        runs = results[name]
        wall = statistics.median(x["wall"] for x in runs)
        cpu = statistics.median(x["cpu"] for x in runs)
        line = (f"  {name:19s} {rows / wall:>10,.0f} rows/s  wall {wall:6.2f} s  cpu {cpu:6.2f} s  "
                f"peak {statistics.median(x['peak_mib'] for x in runs):6.0f} MiB")
        if name != "this tree":
            line += (f"   this tree is {paired_ratio([x['wall'] for x in runs], [t['wall'] for t in this]):4.2f}x "
                     f"faster (wall), {paired_ratio([x['cpu'] for x in runs], [t['cpu'] for t in this]):4.2f}x "
                     f"(cpu), paired medians")
        print(line)
    # the anchor computes what the build writes
    root = scratch_root(inputs, tmp)
    from features.build import build_features

    build_features(root, "default", HORIZONS, fee_bps=FEE_BPS)
    checked = 0
    for folder in sorted((root / "snapshots").glob("venue=*/symbol=*/date=*")):
        relative = folder.relative_to(root / "snapshots")
        trades = root / "trades" / relative
        reference = pandas_features(folder, trades if trades.is_dir() else None)
        built = pl.read_parquet(root / "features" / "default" / relative / "*.parquet")
        checked = check_against_pandas(reference, built)
    print(f"  pandas anchor: all {checked} columns equal this tree's to 1e-9  [{load()}]")


def cold_start(inputs: Path, base: Path, tmp: Path) -> None:
    print(f"\n[cold start on {bytes_per_row(inputs):.0f} B/row input: process start to the "
          f"written dataset; {load()}]")
    for name, tree in (("baseline", base), ("this tree", ROOT)):
        cache = Path(tempfile.mkdtemp(dir=tmp))
        cold = float(run_in(tree, COLD, str(scratch_root(inputs, tmp)), SETTINGS, cache=cache))
        warm = float(run_in(tree, COLD, str(scratch_root(inputs, tmp)), SETTINGS, cache=cache))
        print(f"  {name:10s} empty numba cache (JIT compiles) {cold:6.2f} s, "
              f"cache from that run {warm:6.2f} s")


# ---------------------------------------------------------------- codec measurements


def codecs(inputs: Path, tmp: Path) -> None:
    """Snapshot files: single-threaded decode time of the build's columns per codec and
    row-group size (10,485-row groups unless said);
    features files: write and read time per codec (the choices in writers/build)."""
    import polars as pl

    from collector.writers import SNAPSHOT_COMPRESSION, snapshot_row_group_rows
    from features.definitions import SNAPSHOT_COLUMNS
    from features.level_pages import (
        ChunkBuffers,
        UnsupportedPagesError,
        column_layouts,
        read_level_list,
    )

    snap = pq.read_table(next((inputs / "snapshots").rglob("*.parquet")))
    print(f"\n[codecs, {snap.num_rows:,} real-like rows; {load()}]")
    path = tmp / "codec.parquet"

    def best(fn, reps: int = 3) -> tuple[float, float]:
        walls, cpus = [], []
        for _ in range(reps):
            w, c = time.perf_counter(), time.process_time()
            fn()
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
        return min(walls), min(cpus)

    def decode() -> None:
        for _ in pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20).iter_batches(
                batch_size=4096, columns=list(SNAPSHOT_COLUMNS), use_threads=False):
            pass

    def pages() -> None:  # the build's page reader on the four lists, one thread
        file = pq.ParquetFile(path)
        layouts = column_layouts(file, LEVEL_COLUMNS)
        buffers = ChunkBuffers()
        for group in range(file.metadata.num_row_groups):
            for layout in layouts.values():
                read_level_list(path, file, group, layout, buffers)

    middle = snap["ts"][snap.num_rows // 2].as_py()

    def window() -> None:  # what a chart of five minutes reads (the dashboard's Book page)
        pl.scan_parquet(path).filter(pl.col("ts").is_between(
            middle, middle + dt.timedelta(minutes=5))).collect()

    rows = snapshot_row_group_rows(100)
    snapshot_codec, snapshot_level = SNAPSHOT_COMPRESSION
    for label, options in (
            (f"the collector's ({snapshot_codec} {snapshot_level})",
             {"compression": snapshot_codec, "compression_level": snapshot_level}),
            ("zstd 1 (the collector's before)", {}),
            ("lz4 HC 3, one row group", {"compression": "lz4_raw", "compression_level": 3,
                                         "row_group_size": None}),
            ("zstd 1, one row group", {"row_group_size": None}),
            ("zstd 3", {"compression_level": 3}),
            ("zstd -5", {"compression_level": -5}),
            ("lz4 (fast)", {"compression": "lz4_raw", "compression_level": None}),
            ("lz4 HC 3, data pages v2", {"compression": "lz4_raw", "compression_level": 3,
                                         "data_page_version": "2.0"}),
            ("snappy", {"compression": "snappy", "compression_level": None}),
            ("zstd 1, data pages v2", {"data_page_version": "2.0"}),
            ("zstd 1, dictionary", {"use_dictionary": True}),
            ("uncompressed", {"compression": "none", "compression_level": None})):
        kw = {"compression": "zstd", "compression_level": 1, "use_dictionary": False,
              "row_group_size": rows, **options}
        write = best(lambda kw=kw: pq.write_table(snap, path, **kw), 1)
        wall, cpu = best(decode)
        try:
            paged = f"{best(pages)[1]:5.2f} s"
        except UnsupportedPagesError:
            paged = "pyarrow"
        five = best(window)
        print(f"  snapshots {label:38s} {path.stat().st_size / snap.num_rows:6.0f} B/row  "
              f"write cpu {write[1]:5.2f} s  decode wall {wall:5.2f} s cpu {cpu:5.2f} s  "
              f"page reader cpu {paged}  5-minute window wall {five[0]:5.3f} s")
    from features.build import build_features

    root = scratch_root(inputs, tmp)
    (out,) = build_features(root, "default", HORIZONS, fee_bps=FEE_BPS)
    frame = pl.read_parquet(out)
    for codec, level in (("zstd", 1), ("zstd", 3), ("lz4", None), ("snappy", None),
                         ("uncompressed", None)):
        write = best(lambda c=codec, lv=level: frame.write_parquet(path, compression=c,
                                                                   compression_level=lv))
        read = best(lambda: pl.read_parquet(path))
        print(f"  features {codec} {level or '':2}  {path.stat().st_size / 2**20:6.1f} MiB  write "
              f"wall {write[0]:5.2f} cpu {write[1]:5.2f}  read wall {read[0]:5.2f} cpu {read[1]:5.2f}")


def sections(inputs: Path, tmp: Path, reps: int = 5) -> None:
    """Where this tree's build spends its CPU: the steps of `build_features` on one partition,
    each timed alone in this process (median of `reps`), the later ones on the earlier ones'
    results (the walk on batches decoded beforehand), so decoding is apart from the walk it
    overlaps in a build."""
    import polars as pl

    from features import build
    from features.definitions import FEATURE_SETS, SNAPSHOT_COLUMNS, prepare_book, snapshot_features
    from features.labels import label_columns
    from features.partitions import (
        read_snapshot_batches,
        read_snapshot_books,
        scan_trades,
        snapshot_partitions,
    )

    cfg = FEATURE_SETS["default"]
    (part,) = snapshot_partitions(inputs)
    prepare_book([], cfg)  # the kernel loaded
    cpu: dict[str, list[float]] = {}

    def step(name: str, fn, *args):
        start = time.process_time()
        out = fn(*args)
        cpu.setdefault(name, []).append(time.process_time() - start)
        return out

    def decode() -> int:  # streamed as the build streams them: memory is reused
        return sum(batch.num_rows for batch in read_snapshot_books(part, SNAPSHOT_COLUMNS))

    def arrow_decode() -> int:  # the same columns as pyarrow's Arrow lists (for reference)
        return sum(batch.num_rows for batch in read_snapshot_batches(part, SNAPSHOT_COLUMNS))

    def collect(lazy: pl.LazyFrame) -> pl.DataFrame:
        return lazy.collect(engine="in-memory")  # as feature_frame does

    def with_labels(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(label_columns(frame, HORIZONS, part.interval_ns, FEE_BPS))

    def fit(frame: pl.DataFrame):
        return build.fit_microprice_on_training(
            build.training_rows(frame, int(frame["_ts_ns"].max()) + 1), part)

    def write(frame: pl.DataFrame) -> Path:
        return build.write_partition(frame.select(build.output_columns(frame)),
                                     Path(tempfile.mkdtemp(dir=tmp)), {b"bench": b"sections"})

    # the walk is timed on batches kept whole (the page reader's values are reused)
    batches = list(read_snapshot_batches(part, SNAPSHOT_COLUMNS))
    reference: list[float] = []
    for _ in range(reps):
        step("decode (read_snapshot_books, two threads)", decode)
        start = time.process_time()
        arrow_decode()
        reference.append(time.process_time() - start)
        book = step("level walk and book columns (prepare_book)", prepare_book, batches, cfg)
        lazy = step("trades into the grid (trade_buckets)", snapshot_features, book.lazy(),
                    scan_trades(inputs, part), cfg, part.interval_ns)
        frame = step("feature expressions (collect)", collect, lazy)
        frame = step("labels (label_columns)", with_labels, frame)
        table = step("micro-price fit", fit, frame)
        frame = step("micro-price column", build.with_microprice, frame, cfg, table)
        step("features Parquet (write_partition)", write, frame)
    total = sum(statistics.median(v) for v in cpu.values())
    print(f"\n[CPU by step, this tree, {part.files[0].stat().st_size / 2**20:.0f} MiB partition "
          f"of {pl.scan_parquet(part.files).select(pl.len()).collect().item():,} rows; "
          f"median of {reps}; {load()}]")
    for name, values in cpu.items():
        median = statistics.median(values)
        print(f"  {name:46s} {median:6.3f} s  {median / total:4.0%}")
    print(f"  {'sum':46s} {total:6.3f} s")
    print(f"  {'(not in the sum) decode as pyarrow Arrow lists':46s} "
          f"{statistics.median(reference):6.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="20000,200000",
                        help="real-like partition sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE)
    parser.add_argument("--baseline-dir")
    parser.add_argument("--codecs", action="store_true", help="also the codec measurements")
    parser.add_argument("--sections", action="store_true",
                        help="also this tree's CPU by step on the largest partition")
    args = parser.parse_args()
    sizes = [int(r) for r in args.rows.split(",") if r]

    with tempfile.TemporaryDirectory(prefix="bookcast-features-bench-") as tmp_name, \
            baseline_tree(args.baseline, args.baseline_dir) as base:
        tmp = Path(tmp_name)
        caches = {name: Path(tempfile.mkdtemp(dir=tmp)) for name in (
            "baseline", "baseline, own files", "this tree", "pandas")}
        real = replay_real(tmp / "real")
        print(f"features bench: default set, 5 horizons, {INTERVAL // 1_000_000} ms grid; "
              f"baseline {args.baseline_dir or args.baseline}; python {sys.version.split()[0]}")
        rows = sum(pq.read_metadata(f).num_rows for f in (real / "snapshots").rglob("*.parquet"))
        # this tree's files, which every tree reads: the warm-up loads kernels, nothing else
        warm = tmp / "warm-up"
        write_real_like(real, warm, WARM_UP_ROWS)
        compare("real captures replayed (3 partitions)", real, rows, base, args.rounds, tmp,
                caches, warm)
        inputs = {}
        for n in sizes:
            inputs[n] = tmp / f"real-like-{n}"
            write_real_like(real, inputs[n], n)
            compare("real-like partition", inputs[n], n, base, args.rounds, tmp, caches, warm)
        if sizes:
            cold_start(inputs[sizes[0]], base, tmp)
            if args.sections:
                sections(inputs[sizes[-1]], tmp)
            if args.codecs:
                codecs(inputs[sizes[-1]], tmp)


if __name__ == "__main__":
    main()
