"""The compiled level walk and streamed build equal straightforward references.

`prepare_book` walks the 100-level lists once in NumPy/Numba; these tests hold it to
(1) the pandas implementation of bench/features.py, column by column, on the real
Binance capture replayed by the collector, and (2) the plain polars list expressions the
features were first written with, on ragged books (thin, one-sided, empty, null sides).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from bookcast.schema import SNAPSHOT_SCHEMA
from bookcast.timeutil import parse_duration_ns
from features.build import build_features, partition_features
from features.definitions import BPS, FeatureConfig, prepare_book

S = 1_000_000_000
T0 = 1_723_161_600 * S
PROJECT = Path(__file__).resolve().parents[2]
HORIZONS = [h * S for h in (1, 5, 10, 30, 60)]


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_features", PROJECT / "bench/features.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.parametrize("replayed, interval_ns, partitions",
                         [("binance_btc", S, 2), ("binance_btc_100ms", S // 10, 2)])
def test_build_on_real_binance_equals_the_pandas_reference_in_every_column(
        request, replayed, interval_ns, partitions):
    """The vectorised pandas anchor of bench/features.py, on the real capture (whose spot
    file crosses midnight UTC) at the 1 s default grid and the 100 ms bench grid."""
    root = request.getfixturevalue(replayed)
    pandas_features = bench_module().pandas_features
    build_features(root, "default", HORIZONS, fee_bps=1.0)
    folders = sorted((root / "snapshots").glob("venue=*/symbol=*/date=*"))
    assert len(folders) == partitions
    checked_rows = 0
    for folder in folders:
        relative = folder.relative_to(root / "snapshots")
        built = pl.read_parquet(root / "features/default" / relative / "*.parquet")
        reference = pandas_features(folder, root / "trades" / relative, fee_bps=1.0,
                                    interval_ns=interval_ns, horizons_ns=HORIZONS)
        assert built.height == len(reference)
        assert (built["ts"].dt.epoch("ns").to_numpy() == reference["ts"].astype("int64")).all()
        columns = [c for c in reference.columns if c != "ts"]
        assert len(columns) == len(built.columns) - 2  # all but ts and the micro-price
        for column in columns:
            ours, theirs = built[column].to_numpy().astype(float), reference[column].to_numpy(float)
            if column.startswith(("fwd_ret_", "y_")) and folder != folders[-1]:
                # The reference stops at the partition's end; labels reach into the next
                # day (checked row by row in test_labels_cross_midnight_on_real_binance).
                horizon = parse_duration_ns(column.split("_")[-1]) // interval_ns
                tail = np.arange(len(theirs)) >= len(theirs) - horizon
                assert np.isnan(theirs[tail]).all() and np.isfinite(ours[tail]).all()
                ours, theirs = ours[~tail], theirs[~tail]
            np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9, equal_nan=True,
                                       err_msg=column)
        # the real book is deep: depth within 25 bps and the 10-level slope see real sizes
        assert (built["depth_bid_25bps"] > 0).all() and built["slope_ask"].null_count() == 0
        checked_rows += built.height
    assert checked_rows > 600 * S // interval_ns


def test_flat_windows_give_exact_zeros_not_running_sum_residues(binance_btc_100ms):
    """On real rows, a window without trades has exactly zero volume and a window with an
    unchanged mid exactly zero volatility (a running sum left 2e-17 and -1e-20 there,
    which made tfi -3 and rvol NaN); the imbalance stays within [-1, 1]."""
    root = binance_btc_100ms
    build_features(root, "default", HORIZONS, fee_bps=1.0)
    quiet_trades = quiet_mid = 0
    for folder in sorted((root / "features/default").glob("venue=*/symbol=*/date=*")):
        frame = pl.read_parquet(folder / "*.parquet")
        trades = pl.read_parquet(str(folder).replace("features/default", "trades") + "/*.parquet")
        ts = frame["ts"].dt.epoch("ns").to_numpy()
        # trades per row, as the features bucket them: ts[t-1] < ts_recv <= ts[t]
        row = np.searchsorted(ts, trades["ts_recv"].dt.epoch("ns").to_numpy(), "left")
        per_row = np.bincount(row[row < ts.size], minlength=ts.size)
        in_window = np.convolve(per_row, np.ones(10, int))[:ts.size]  # the 1 s window
        vol, tfi = frame["signed_vol_1s"].to_numpy(), frame["tfi_1s"].to_numpy()
        no_trade = (in_window == 0) & ~np.isnan(vol)
        assert (vol[no_trade] == 0).all() and (tfi[no_trade] == 0).all()
        quiet_trades += int(no_trade.sum())
        flat = frame.select((pl.col("mid").rolling_max(11) == pl.col("mid").rolling_min(11))
                            & pl.col("ret_1s").is_not_null()).to_series().to_numpy()
        assert (frame["rvol_1s"].to_numpy()[flat] == 0).all()
        quiet_mid += int(flat.sum())
        for name in ("1s", "10s", "1m"):
            assert frame[f"tfi_{name}"].drop_nulls().is_between(-1.0, 1.0).all()
            assert not frame[f"rvol_{name}"].is_nan().any()
    assert quiet_trades > 30 and quiet_mid > 100  # the case is really there


# ---------------------------------------------------------------- ragged books

CONFIG = FeatureConfig(levels=4, cumulative_imbalance_levels=(2, 4), depth_bps=(30.0, 400.0),
                       ofi_levels=3, lookbacks_ns=(S, 2 * S), microprice=False)


def list_expression_reference(book: pl.DataFrame, cfg: FeatureConfig) -> pl.DataFrame:
    """The level features as plain polars list expressions, the way they were first written."""
    level = {short: [pl.col(name).list.get(i, null_on_oob=True).fill_null(0.0)
                     for i in range(cfg.levels)]
             for short, name in (("bs", "bid_sz"), ("as", "ask_sz"))}
    mid = (pl.col("bid_px").list.get(0, null_on_oob=True)
           + pl.col("ask_px").list.get(0, null_on_oob=True)) / 2

    def ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
        return pl.when(den > 0).then(num / den)

    out = []
    for x in cfg.depth_bps:
        bid_in = (pl.col("bid_px") - mid * (1 - x * BPS)).list.eval(pl.element() >= 0)
        ask_in = (pl.col("ask_px") - mid * (1 + x * BPS)).list.eval(pl.element() <= 0)
        out.append((pl.col("bid_sz") * bid_in.cast(pl.List(pl.Float64))).list.sum()
                   .alias(f"depth_bid_{x:g}bps"))
        out.append((pl.col("ask_sz") * ask_in.cast(pl.List(pl.Float64))).list.sum()
                   .alias(f"depth_ask_{x:g}bps"))
    for side, sign in (("bid", 1), ("ask", -1)):
        size = pl.col(f"{side}_sz").list.slice(0, cfg.levels).list.sum()
        last = pl.col(f"{side}_px").list.slice(0, cfg.levels).list.last()
        out.append(ratio(size, sign * (mid - last) / mid / BPS).alias(f"slope_{side}"))
    out.append(ratio(level["bs"][0] - level["as"][0], level["bs"][0] + level["as"][0])
               .alias("imb_1"))
    for k in cfg.cumulative_imbalance_levels:
        bid, ask = pl.sum_horizontal(level["bs"][:k]), pl.sum_horizontal(level["as"][:k])
        out.append(ratio(bid - ask, bid + ask).alias(f"imb_cum_{k}"))
    w = [math.exp(-cfg.ew_imbalance_decay * i) for i in range(cfg.levels)]
    bid = pl.sum_horizontal([wi * b for wi, b in zip(w, level["bs"], strict=True)])
    ask = pl.sum_horizontal([wi * a for wi, a in zip(w, level["as"], strict=True)])
    out.append(ratio(bid - ask, bid + ask).alias("imb_ew"))
    for i in range(cfg.ofi_levels):
        for short, name in (("bp", "bid_px"), ("bs", "bid_sz"), ("ap", "ask_px"),
                            ("as", "ask_sz")):
            out.append(pl.col(name).list.get(i, null_on_oob=True).alias(f"_{short}{i}"))
    return book.sort("ts").select("ts", *out)


def ragged_table(seed: int, n: int = 60) -> pa.Table:
    """Books 0..7 levels deep a side, some sides empty, a few null, shuffled in time."""
    rng = np.random.default_rng(seed)
    rows = {name: [] for name in SNAPSHOT_SCHEMA.names}
    for i in rng.permutation(n):
        mid = 100 + rng.integers(-20, 20) * 0.5
        for side, sign in (("bid", -1), ("ask", 1)):
            depth = int(rng.integers(0, 8))
            px = [float(mid + sign * (0.25 + 0.5 * j)) for j in range(depth)]
            sz = [float(v) for v in rng.exponential(2.0, depth)]
            null = rng.uniform() < 0.05
            rows[f"{side}_px"].append(None if null else px)
            rows[f"{side}_sz"].append(None if null else sz)
        ts = T0 + int(i) * S
        rows["ts"].append(ts)
        rows["ts_event"].append(ts)
        rows["ts_recv"].append(ts)
        rows["seq"].append(int(i))
        rows["n_updates"].append(1)
        rows["gap"].append(bool(i == 0 or rng.uniform() < 0.1))
    return pa.table(rows, schema=SNAPSHOT_SCHEMA)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_level_walk_equals_the_list_expressions_on_ragged_books(seed):
    table = ragged_table(seed)
    # streamed in small unsorted batches, as read_snapshot_batches hands them over
    book = prepare_book(table.select(list(SNAPSHOT_SCHEMA.names)).to_batches(max_chunksize=7),
                        CONFIG)
    features = partition_features(table.to_batches(max_chunksize=11), None, interval_ns=S,
                                  config=CONFIG, horizons_ns=[S], fee_bps=0.0).collect()
    reference = list_expression_reference(pl.from_arrow(table), CONFIG)  # type: ignore[arg-type]
    assert features["ts"].equals(reference["ts"]) and book["ts"].is_sorted()
    for column in reference.columns[1:]:
        got = (book if column.startswith("_") else features)[column]
        want = reference[column]
        assert got.is_null().equals(want.is_null()), column
        np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12, atol=1e-12,
                                   equal_nan=True, err_msg=column)
    # the books were thin enough to exercise every branch
    assert features["slope_bid"].null_count() > 0 and (features["depth_ask_30bps"] == 0).any()


def test_streamed_batches_and_a_lazy_frame_give_the_same_features(books):
    rows = books.flat_rows(30, gaps=(0, 12))
    table = books.book_table(rows)
    kwargs = dict(trades=None, interval_ns=S, config=CONFIG, horizons_ns=[S, 3 * S], fee_bps=1.0)
    from_lazy = partition_features(books.book_frame(rows), **kwargs).collect()
    from_batches = partition_features(table.to_batches(max_chunksize=4), **kwargs).collect()
    assert from_lazy.equals(from_batches)


@pytest.mark.parametrize("rows_hint", [0, 1, 23, 60, 200])
def test_the_book_is_the_same_whatever_row_count_it_was_told(rows_hint):
    """Told the partition's row count, the walk writes each batch in place; told too few
    (or none) it grows, told too many it keeps only what it walked."""
    table = ragged_table(4)
    batches = table.select(list(SNAPSHOT_SCHEMA.names)).to_batches(max_chunksize=7)
    exact = prepare_book(batches, CONFIG, rows=table.num_rows)
    assert exact.height == table.num_rows
    assert prepare_book(batches, CONFIG, rows=rows_hint).equals(exact)
