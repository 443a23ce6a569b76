"""Benchmark: building the default feature set from 100-level snapshots, polars vs pandas.

    .venv/bin/python bench/features.py [--rows 20000] [--pandas-rows 5000]

Prints snapshot rows/s of `build_features` end to end (snapshot Parquet in -> features
Parquet out, micro-price fit included) and of the compute alone (Arrow batches already
decoded in memory -> the feature frame), against a straightforward pandas implementation
of the same features measured in the same run on the same partition (anchor; every one
of its columns is checked equal to 1e-9); the Parquet decode of the four 100-level list
columns on its own, which bounds the end-to-end rate; peak memory of a build in a fresh
process against the input partition's in-memory Arrow size; and the time for 10x rows.
The input is a synthetic partition written the way the collector writes snapshots
(`collector.writers.write_table_atomic`: zstd, no dictionary), random-walk mid, 100
levels a side.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bookcast.paths import partition_dir  # noqa: E402
from bookcast.schema import SNAPSHOT_SCHEMA, TRADE_SCHEMA, file_metadata  # noqa: E402
from collector.writers import write_table_atomic  # noqa: E402

S = 1_000_000_000
T0 = 1_723_161_600 * S
LEVELS = 100
INTERVAL = 100_000_000  # 100 ms grid: 1 s..60 s windows are 10..600 rows
HORIZONS = [h * S for h in (1, 5, 10, 30, 60)]


def _lists(values: np.ndarray) -> pa.ListArray:
    n, k = values.shape
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)),
                                    pa.array(values.ravel()))


def write_synthetic(root: Path, rows: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    tick = 0.01
    mid_ticks = 6_000_000 + np.cumsum(rng.integers(-3, 4, rows))
    half = rng.integers(1, 3, rows)
    steps = np.arange(LEVELS)
    bid_px = ((mid_ticks - half)[:, None] - steps * 2) * tick
    ask_px = ((mid_ticks + half)[:, None] + steps * 2) * tick
    ts = T0 + np.arange(rows, dtype=np.int64) * INTERVAL
    gap = np.zeros(rows, bool)
    gap[0] = True
    gap[rows // 2] = True  # one resync in the middle
    table = pa.table({
        "ts": pa.array(ts, pa.timestamp("ns", "UTC")),
        "ts_event": pa.array(ts, pa.timestamp("ns", "UTC")),
        "ts_recv": pa.array(ts, pa.timestamp("ns", "UTC")),
        "seq": pa.array(np.arange(rows, dtype=np.int64)),
        "bid_px": _lists(bid_px), "bid_sz": _lists(rng.exponential(1.0, (rows, LEVELS))),
        "ask_px": _lists(ask_px), "ask_sz": _lists(rng.exponential(1.0, (rows, LEVELS))),
        "n_updates": pa.array(np.ones(rows, np.int32)),
        "gap": pa.array(gap),
    }, schema=SNAPSHOT_SCHEMA)
    folder = partition_dir(root, "snapshots", "binance-spot", "BTCUSDT", "2024-08-09")
    meta = file_metadata("binance-spot", "BTCUSDT", depth=LEVELS, interval_ns=INTERVAL,
                         tick_size=tick)
    write_table_atomic(table.replace_schema_metadata(meta), folder / f"part-{T0}.parquet")
    n_trades = rows * 2
    t_ts = np.sort(rng.integers(T0, ts[-1], n_trades))
    trades = pa.table({
        "ts_recv": pa.array(t_ts, pa.timestamp("ns", "UTC")),
        "ts_event": pa.array(t_ts, pa.timestamp("ns", "UTC")),
        "trade_id": pa.array([str(i) for i in range(n_trades)]),
        "price": pa.array(np.full(n_trades, 60_000.0)),
        "size": pa.array(rng.exponential(0.05, n_trades)),
        "side": pa.array(rng.choice(np.array([-1, 1], np.int8), n_trades)),
    }, schema=TRADE_SCHEMA)
    tfolder = partition_dir(root, "trades", "binance-spot", "BTCUSDT", "2024-08-09")
    tfolder.mkdir(parents=True, exist_ok=True)
    pq.write_table(trades.replace_schema_metadata(file_metadata("binance-spot", "BTCUSDT")),
                   tfolder / f"part-{T0}.parquet")
    return folder / f"part-{T0}.parquet"


# ---------------------------------------------------------------- the pandas anchor


def pandas_features(snap_path: Path, trades_path: Path, fee_bps: float = 10.0,
                    interval_ns: int = INTERVAL, horizons_ns: list[int] = HORIZONS):
    """The default feature set written the straightforward pandas way (no micro-price)."""
    import pandas as pd

    from features.definitions import FEATURE_SETS

    cfg = FEATURE_SETS["default"]
    df = pd.read_parquet(snap_path).sort_values("ts").reset_index(drop=True)
    tr = pd.read_parquet(trades_path).sort_values("ts_recv")
    out = pd.DataFrame({"ts": df["ts"]})
    ts = df["ts"].astype("int64")
    seg = df["gap"].astype(int).cumsum()
    for i in range(cfg.levels):
        for src, short in (("bid_px", "bp"), ("bid_sz", "bs"), ("ask_px", "ap"), ("ask_sz", "as")):
            df[f"{short}{i}"] = df[src].apply(lambda v, i=i: v[i] if len(v) > i else np.nan)
    out["best_bid"], out["best_ask"] = df["bp0"], df["ap0"]
    out["best_bid_sz"], out["best_ask_sz"] = df["bs0"], df["as0"]
    out["mid"] = (df["bp0"] + df["ap0"]) / 2
    out["spread"] = df["ap0"] - df["bp0"]
    out["spread_bps"] = out["spread"] / out["mid"] * 1e4
    for x in cfg.depth_bps:
        out[f"depth_bid_{x:g}bps"] = [
            sz[px >= m * (1 - x * 1e-4)].sum() for px, sz, m in zip(df["bid_px"], df["bid_sz"], out["mid"], strict=True)]
        out[f"depth_ask_{x:g}bps"] = [
            sz[px <= m * (1 + x * 1e-4)].sum() for px, sz, m in zip(df["ask_px"], df["ask_sz"], out["mid"], strict=True)]
    k = cfg.levels
    out["slope_bid"] = df["bid_sz"].apply(lambda v: v[:k].sum()) / (
        (out["mid"] - df["bid_px"].apply(lambda v: v[:k][-1])) / out["mid"] * 1e4)
    out["slope_ask"] = df["ask_sz"].apply(lambda v: v[:k].sum()) / (
        (df["ask_px"].apply(lambda v: v[:k][-1]) - out["mid"]) / out["mid"] * 1e4)
    out["imb_1"] = (df["bs0"] - df["as0"]) / (df["bs0"] + df["as0"])
    for c in cfg.cumulative_imbalance_levels:
        b = df[[f"bs{i}" for i in range(c)]].sum(axis=1)
        a = df[[f"as{i}" for i in range(c)]].sum(axis=1)
        out[f"imb_cum_{c}"] = (b - a) / (b + a)
    w = np.exp(-cfg.ew_imbalance_decay * np.arange(k))
    b = df[[f"bs{i}" for i in range(k)]].to_numpy() @ w
    a = df[[f"as{i}" for i in range(k)]].to_numpy() @ w
    out["imb_ew"] = (b - a) / (b + a)
    out["wmid"] = (df["bp0"] * df["as0"] + df["ap0"] * df["bs0"]) / (df["bs0"] + df["as0"])

    def ok(n):
        return (seg.shift(n) == seg) & (ts.shift(n) == ts - n * interval_ns)

    ok1 = ok(1)
    for i in range(cfg.ofi_levels):
        bp, bs, ap, as_ = df[f"bp{i}"], df[f"bs{i}"], df[f"ap{i}"], df[f"as{i}"]
        e = (np.where(bp >= bp.shift(), bs, 0) - np.where(bp <= bp.shift(), bs.shift(), 0)
             - np.where(ap <= ap.shift(), as_, 0) + np.where(ap >= ap.shift(), as_.shift(), 0))
        df[f"e{i}"] = pd.Series(e).where(ok1)
    bucket = np.searchsorted(ts.to_numpy(), tr["ts_recv"].astype("int64").to_numpy(), "left")
    tr = tr.assign(row=bucket)[bucket < len(df)]
    buy = tr[tr["side"] > 0].groupby("row")["size"].sum().reindex(range(len(df)), fill_value=0.0)
    sell = tr[tr["side"] < 0].groupby("row")["size"].sum().reindex(range(len(df)), fill_value=0.0)
    r1 = np.log(out["mid"] / out["mid"].shift()).where(ok1)
    for w_ns in cfg.lookbacks_ns:
        n = w_ns // interval_ns
        name = f"{w_ns // S}s" if w_ns < 60 * S else f"{w_ns // (60 * S)}m"
        okn = ok(n)
        for i in range(cfg.ofi_levels):
            out[f"ofi_{i + 1}_{name}"] = df[f"e{i}"].rolling(n).sum().where(okn)
        bw, sw = buy.rolling(n).sum().where(okn), sell.rolling(n).sum().where(okn)
        out[f"tfi_{name}"] = ((bw - sw) / (bw + sw)).where(bw + sw > 0, 0.0).where(okn)
        out[f"signed_vol_{name}"] = bw - sw
        out[f"ret_{name}"] = np.log(out["mid"] / out["mid"].shift(n)).where(okn)
        out[f"rvol_{name}"] = np.sqrt((r1**2).rolling(n).sum()).where(okn)
    angle = (ts % (86_400 * S)) / (86_400 * S) * 2 * math.pi
    out["tod_sin"], out["tod_cos"] = np.sin(angle), np.cos(angle)
    for h in horizons_ns:
        n = h // interval_ns
        fwd = (seg.shift(-n) == seg) & (ts.shift(-n) == ts + n * interval_ns)
        name = f"{h // S}s" if h < 60 * S else f"{h // (60 * S)}m"
        out[f"fwd_ret_{name}"] = (out["mid"].shift(-n) / out["mid"] - 1).where(fwd)
        long_ = out["best_bid"].shift(-n) / out["best_ask"] - 1 > 2 * fee_bps * 1e-4
        short = 1 - out["best_ask"].shift(-n) / out["best_bid"] > 2 * fee_bps * 1e-4
        out[f"y_{name}"] = pd.Series(np.where(long_, 1, np.where(short, -1, 0))).where(fwd)
    return out


# ---------------------------------------------------------------- measurements


def polars_build(root: Path) -> float:
    """Seconds for `build_features` end to end: snapshot Parquet in, features Parquet out."""
    from features.build import build_features

    start = time.perf_counter()
    build_features(root, "default", HORIZONS, fee_bps=10.0)
    return time.perf_counter() - start


def snapshot_file(root: Path) -> Path:
    return next((root / "snapshots").rglob("*.parquet"))


def decode_only(root: Path) -> float:
    """Seconds to decode the columns the build reads, the way it reads them, and nothing else."""
    from features.definitions import SNAPSHOT_COLUMNS
    from features.partitions import read_snapshot_batches, snapshot_partitions

    (partition,) = snapshot_partitions(root)
    start = time.perf_counter()
    for _ in read_snapshot_batches(partition, SNAPSHOT_COLUMNS):
        pass
    return time.perf_counter() - start


def polars_compute(root: Path) -> tuple[float, object]:
    """Seconds from decoded Arrow batches in memory to the feature frame (micro-price fit
    and labels included); the batches and trades are read before the clock starts."""
    import polars as pl

    from features.build import (
        feature_frame,
        fit_microprice_on_training,
        output_columns,
        training_rows,
        with_microprice,
    )
    from features.definitions import FEATURE_SETS, SNAPSHOT_COLUMNS
    from features.partitions import read_snapshot_batches, snapshot_partitions

    (partition,) = snapshot_partitions(root)
    cfg = FEATURE_SETS["default"]
    batches = list(read_snapshot_batches(partition, SNAPSHOT_COLUMNS))
    trades = pl.read_parquet(next((root / "trades").rglob("*.parquet"))).lazy()
    start = time.perf_counter()
    frame = feature_frame(batches, trades, interval_ns=INTERVAL, config=cfg,
                          horizons_ns=HORIZONS, fee_bps=10.0)
    train_end = int(frame["_ts_ns"][0] + 0.6 * (frame["_ts_ns"][-1] - frame["_ts_ns"][0]))
    table = fit_microprice_on_training(training_rows(frame, train_end), partition)
    frame = with_microprice(frame, cfg, table)
    frame = frame.select(output_columns(frame))
    return time.perf_counter() - start, frame


def peak_rss_kib() -> int:
    """VmHWM: this process's peak resident size (ru_maxrss would carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def child_peak_rss_mb(root: Path) -> tuple[float, float]:
    """Peak RSS of a fresh process after its imports (compiled kernel loaded), and after
    building `root`'s features."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r});"
            f"import bench.features as b; from pathlib import Path; import polars, pandas;"
            f"from features.definitions import FEATURE_SETS, prepare_book;"
            f"prepare_book([], FEATURE_SETS['default']);"
            f"base = b.peak_rss_kib();"
            f"b.polars_build(Path({str(root)!r}));"
            f"print(base, b.peak_rss_kib())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=ROOT)
    base, peak = map(int, done.stdout.split())
    return base / 1024, peak / 1024


def check_against_pandas(pandas_frame, polars_frame) -> int:
    """Every column the pandas anchor computes equals polars' to 1e-9; returns their count."""
    for column in pandas_frame.columns:
        if column == "ts":
            continue
        a = pandas_frame[column].to_numpy(float)
        b = polars_frame[column].to_numpy().astype(float)
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=column)
    return len(pandas_frame.columns) - 1


def rate(rows: int, seconds: float) -> str:
    return f"{rows:>9,} rows  {seconds:7.3f} s  {rows / seconds:>12,.0f} rows/s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--pandas-rows", type=int, default=5_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small"
        snap = write_synthetic(small, args.pandas_rows)
        trades = next((small / "trades").rglob("*.parquet"))
        polars_build(small)  # loads the compiled kernel (cached on disk) outside the clock
        start = time.perf_counter()
        pdf = pandas_features(snap, trades)
        pandas_s = time.perf_counter() - start
        small_compute_s, pl_frame = polars_compute(small)
        checked = check_against_pandas(pdf, pl_frame)
        small_build_s = polars_build(small)
        p = args.pandas_rows
        print(f"features bench: {LEVELS}-level snapshots, {INTERVAL // 1_000_000} ms grid, "
              f"default set ({len(pl_frame.columns) - 1} columns, {checked} checked against "
              f"pandas to 1e-9), 5 horizons")
        print(f"  pandas anchor   {rate(p, pandas_s)}  (read + features + labels)")
        print(f"  polars build    {rate(p, small_build_s)}  ({pandas_s / small_build_s:.1f}x "
              f"pandas; read, micro-price fit, write)")
        print(f"  polars compute  {rate(p, small_compute_s)}  ({pandas_s / small_compute_s:.1f}x "
              f"pandas; decoded batches in memory -> feature frame)")

        timings = {}
        for rows in (args.rows, 10 * args.rows):
            root = Path(tmp) / f"r{rows}"
            path = write_synthetic(root, rows)
            decode_s = decode_only(root)
            timings[rows] = polars_build(root)
            compute_s, _ = polars_compute(root)
            in_memory_mb = pq.read_table(path).nbytes / 2**20
            print(f"  {rows:,} rows: input {in_memory_mb:,.0f} MiB in memory, "
                  f"{path.stat().st_size / 2**20:,.0f} MiB on disk")
            print(f"    polars build    {rate(rows, timings[rows])}  "
                  f"({pandas_s / args.pandas_rows * rows / timings[rows]:.1f}x pandas' rate)")
            print(f"    polars compute  {rate(rows, compute_s)}  "
                  f"({pandas_s / args.pandas_rows * rows / compute_s:.1f}x pandas' rate)")
            print(f"    Parquet decode  {rate(rows, decode_s)}  (the 4 list columns + ts, gap "
                  f"alone: {decode_s / timings[rows]:.0%} of the build)")
        ratio = timings[10 * args.rows] / timings[args.rows]
        print(f"  scaling: 10x rows -> {ratio:.1f}x build time")

        rows = 10 * args.rows
        input_mb = pq.read_table(snapshot_file(Path(tmp) / f"r{rows}")).nbytes / 2**20
        before, after = child_peak_rss_mb(Path(tmp) / f"r{rows}")
        print(f"  peak memory building {rows:,} rows: {after:,.0f} MiB RSS "
              f"(process before the build {before:,.0f} MiB); build adds {after - before:,.0f} MiB "
              f"= {(after - before) / input_mb:.2f}x the {input_mb:,.0f} MiB input partition")


if __name__ == "__main__":
    main()
