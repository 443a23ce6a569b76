"""Property tests (hypothesis), leakage tests and gap tests of the features and labels."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.build import partition_features
from features.definitions import FeatureConfig
from features.labels import fee_aware_labels, round_trips

S = 1_000_000_000
T0 = 1_723_161_600 * S
CONFIG = FeatureConfig(levels=3, cumulative_imbalance_levels=(2, 3), depth_bps=(10.0,),
                       ofi_levels=3, lookbacks_ns=(S, 3 * S), microprice=False)
FAST = settings(max_examples=40, deadline=None)

sizes = st.floats(min_value=0.001, max_value=1e4, allow_nan=False)


@st.composite
def book_rows(draw, n_min: int = 2, n_max: int = 8):
    """Books on a 1 s grid: 3 levels a side, prices on a 0.5 tick, sizes random."""
    n = draw(st.integers(n_min, n_max))
    rows = []
    for i in range(n):
        bid = 100.0 + 0.5 * draw(st.integers(-6, 6))
        ask = bid + 0.5 * draw(st.integers(1, 4))
        bids = [(bid - j, draw(sizes)) for j in range(3)]
        asks = [(ask + j, draw(sizes)) for j in range(3)]
        rows.append((T0 + i * S, bids, asks, i == 0 or draw(st.booleans())))
    return rows


def features_of(books, rows, config=CONFIG, horizons=(S,), fee_bps=1.0, trades=None):
    return partition_features(books.book_frame(rows), trades, interval_ns=S, config=config,
                              horizons_ns=list(horizons), fee_bps=fee_bps).collect()


@FAST
@given(rows=book_rows())
def test_imbalances_lie_between_minus_one_and_one(books, rows):
    out = features_of(books, rows)
    for column in ("imb_1", "imb_cum_2", "imb_cum_3", "imb_ew"):
        values = out[column].drop_nulls()
        assert ((values >= -1) & (values <= 1)).all(), column


@FAST
@given(rows=book_rows(), scale=st.floats(min_value=1e-3, max_value=1e3))
def test_imbalances_do_not_change_when_every_size_is_scaled(books, rows, scale):
    scaled = [(t, [(p, q * scale) for p, q in b], [(p, q * scale) for p, q in a], g)
              for t, b, a, g in rows]
    before, after = features_of(books, rows), features_of(books, scaled)
    for column in ("imb_1", "imb_cum_2", "imb_cum_3", "imb_ew"):
        np.testing.assert_allclose(after[column].to_numpy(), before[column].to_numpy(),
                                   rtol=1e-9, atol=1e-12)


@FAST
@given(size_before=sizes, size_after=sizes, other=sizes, up=st.booleans())
def test_ofi_is_positive_when_the_bid_rises_and_negative_when_the_ask_falls(
    books, size_before, size_after, other, up
):
    """A rising bid adds buy pressure (+q_b); a falling ask adds sell pressure (-q_a)."""
    asks = [(101.0, other), (102.0, other), (103.0, other)]
    bids = [(99.0, other), (98.0, other), (97.0, other)]
    if up:
        first = [(98.5, size_before), *bids[1:]]
        second = [(99.0, size_after), *bids[1:]]
        rows = [(T0, first, asks, True), (T0 + S, second, asks, False)]
        expected = size_after
    else:
        first = [(101.5, size_before), *asks[1:]]
        second = [(101.0, size_after), *asks[1:]]
        rows = [(T0, bids, first, True), (T0 + S, bids, second, False)]
        expected = -size_after
    ofi = features_of(books, rows)["ofi_1_1s"][1]
    assert ofi == pytest.approx(expected)
    assert (ofi > 0) == up


def brute_force_labels(rows, n: int, fee_bps: float) -> list[int | None]:
    out: list[int | None] = []
    cost = 2 * fee_bps * 1e-4
    for i, (ts, bids, asks, _) in enumerate(rows):
        j = i + n
        if j >= len(rows) or rows[j][0] != ts + n * S or any(r[3] for r in rows[i + 1:j + 1]):
            out.append(None)
            continue
        bid_now, ask_now = bids[0][0], asks[0][0]
        bid_then, ask_then = rows[j][1][0][0], rows[j][2][0][0]
        if bid_then / ask_now - 1 > cost:
            out.append(1)
        elif 1 - ask_then / bid_now > cost:
            out.append(-1)
        else:
            out.append(0)
    return out


@FAST
@given(rows=book_rows(n_max=12), n=st.integers(1, 4),
       fee_bps=st.sampled_from([0.0, 1.0, 5.0, 25.0]))
def test_fee_aware_labels_equal_a_brute_force_loop(books, rows, n, fee_bps):
    book = books.book_frame(rows).select(
        "ts", "gap",
        pl.col("bid_px").list.first().alias("best_bid"),
        pl.col("ask_px").list.first().alias("best_ask"),
    ).with_columns(((pl.col("best_bid") + pl.col("best_ask")) / 2).alias("mid")).collect()
    labels = fee_aware_labels(book, [n * S], S, fee_bps)
    assert labels[f"y_{n}s"].to_list() == brute_force_labels(rows, n, fee_bps)


@FAST
@given(n=st.integers(1, 40), seed=st.integers(0, 2**16), horizon=st.integers(1, 4),
       chunk=st.integers(1, 9))
def test_round_trips_of_a_chunk_of_entries_are_the_whole_books(n, seed, horizon, chunk):
    """The oracle prices its entries chunk by chunk: any run of entry rows (unsorted,
    repeated, past the data) gets the round trips the whole book gives them, gaps, holes
    in the grid and empty sides included."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.cumsum(rng.choice([1, 1, 1, 2], n)) * S  # a hole now and then
    gap = rng.random(n) < 0.15
    bid = 100 + rng.integers(-3, 4, n) * 0.5
    ask = bid + 0.5
    bid[rng.random(n) < 0.1] = np.nan
    whole = round_trips(ts, gap, bid, ask, horizon * S)
    entry = rng.integers(0, n + 2, 3 * n)  # some past the data
    for first in range(0, entry.shape[0], chunk):
        rows = entry[first:first + chunk]
        part = round_trips(ts, gap, bid, ask, horizon * S, rows)
        inside = np.minimum(rows, n - 1)
        expected_exit = np.where(rows < n, whole.exit[inside], -1)
        np.testing.assert_array_equal(part.exit, expected_exit)
        for name in ("long_gross", "short_gross"):
            expected = np.where(rows < n, getattr(whole, name)[inside], np.nan)
            np.testing.assert_array_equal(getattr(part, name), expected)


# ---------------------------------------------------------------- leakage


def random_book(n: int, seed: int, gaps=(0,)) -> list:
    rng = np.random.default_rng(seed)
    mids = 100 + np.cumsum(rng.integers(-2, 3, n)) * 0.5
    rows = []
    for i, m in enumerate(mids):
        bids = [(float(m - 0.5 - j), float(rng.uniform(0.1, 5))) for j in range(3)]
        asks = [(float(m + 0.5 + j), float(rng.uniform(0.1, 5))) for j in range(3)]
        rows.append((T0 + i * S, bids, asks, i in gaps))
    return rows


def random_trades(n: int, seed: int) -> pl.LazyFrame:
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(T0, T0 + n * S, 3 * n))
    return pl.from_arrow(_trades(ts, rng)).lazy()


def _trades(ts, rng):
    import pyarrow as pa

    from bookcast.schema import TRADE_SCHEMA

    return pa.table({"ts_recv": ts, "ts_event": ts, "trade_id": [str(i) for i in range(len(ts))],
                     "price": np.full(len(ts), 100.0), "size": rng.uniform(0.01, 2, len(ts)),
                     "side": rng.choice([-1, 1], len(ts)).astype(np.int8)}, schema=TRADE_SCHEMA)


@pytest.mark.parametrize("cut", [5, 17, 28])
def test_changing_rows_after_t_leaves_every_feature_at_t_unchanged(books, cut):
    n = 30
    rows = random_book(n, seed=1)
    trades = random_trades(n, seed=2)
    # a different future after the cut: other sizes, and every price 7 higher
    future = [(ts, [(p + 7, q) for p, q in b], [(p + 7, q) for p, q in a], g)
              for ts, b, a, g in random_book(n, seed=99)]
    changed = rows[: cut + 1] + future[cut + 1:]
    cut_ns = T0 + cut * S
    changed_trades = pl.concat([
        trades.filter(pl.col("ts_recv").dt.epoch("ns") <= cut_ns),
        random_trades(n, seed=3).filter(pl.col("ts_recv").dt.epoch("ns") > cut_ns),
    ]).sort("ts_recv")
    before = features_of(books, rows, horizons=(S, 5 * S), trades=trades)
    after = features_of(books, changed, horizons=(S, 5 * S), trades=changed_trades)
    inputs = [c for c in before.columns if not c.startswith(("fwd_ret_", "y_", "ts"))]
    past_before, past_after = before.head(cut + 1), after.head(cut + 1)
    assert past_before["ts"].equals(past_after["ts"])
    for column in inputs:
        x, y = past_before[column], past_after[column]
        assert x.is_null().equals(y.is_null()), column
        # Equal up to summation order: polars may add a bucket's trades in another order
        # when the frame around them differs; a leak would move values far more.
        np.testing.assert_allclose(y.to_numpy(), x.to_numpy(), rtol=1e-12, atol=1e-12,
                                   err_msg=column)
    # the labels do look ahead, so the changed future must show up in them
    assert not before.select("fwd_ret_1s").equals(after.select("fwd_ret_1s"))


# ---------------------------------------------------------------- gaps


def test_a_gap_nulls_exactly_the_windows_and_labels_that_cross_it(books):
    n, gap = 20, 9
    rows = random_book(n, seed=4, gaps=(0, gap))
    out = features_of(books, rows, horizons=(S, 3 * S), trades=random_trades(n, seed=5))
    t = np.arange(n)
    for window in (1, 3):
        # a window of w rows back needs rows t-w..t on one segment: [0, gap) or [gap, n)
        expected_null = (t < window) | ((t >= gap) & (t - window < gap))
        for column in (f"ret_{window}s", f"rvol_{window}s", f"ofi_1_{window}s",
                       f"tfi_{window}s", f"signed_vol_{window}s"):
            assert out[column].is_null().to_numpy().tolist() == expected_null.tolist(), column
    for h in (1, 3):
        expected_null = (t + h >= n) | ((t < gap) & (t + h >= gap))
        for column in (f"fwd_ret_{h}s", f"y_{h}s"):
            assert out[column].is_null().to_numpy().tolist() == expected_null.tolist(), column
    # features of a single row never look back, so a gap leaves them alone
    assert out["imb_1"].null_count() == 0 and out["spread"].null_count() == 0


def test_a_hole_in_the_grid_counts_as_a_gap(books):
    rows = random_book(12, seed=6)
    del rows[6]  # the 6 s snapshot is missing, with no gap flag
    out = features_of(books, rows, horizons=(S,))
    assert out["ret_1s"].is_null().to_list()[6] is True  # row at 7 s cannot reach 6 s
    assert out["y_1s"].is_null().to_list()[5] is True  # row at 5 s has no 6 s to look at
