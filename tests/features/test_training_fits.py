"""Estimates fitted on training rows only: the micro-price table and the research-label alpha."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from features.build import build_features
from features.labels import fit_research_threshold, research_labels
from features.microprice import fit_microprice, microprice_expr

S = 1_000_000_000
T0 = 1_723_161_600 * S
TICK = 0.5


def imbalance_driven_book(n: int, seed: int) -> pl.DataFrame:
    """One-tick spread; the mid moves up after bid-heavy rows and down after ask-heavy ones."""
    rng = np.random.default_rng(seed)
    bid_sz = rng.uniform(0.1, 10, n)
    ask_sz = rng.uniform(0.1, 10, n)
    imbalance = bid_sz / (bid_sz + ask_sz)
    step = np.where(rng.uniform(size=n) < np.abs(imbalance - 0.5) * 1.6,
                    np.sign(imbalance - 0.5), 0.0)
    bid = 100 + TICK * np.concatenate([[0.0], np.cumsum(step[:-1])])
    return pl.DataFrame({
        "ts": pl.Series(T0 + np.arange(n) * S).cast(pl.Datetime("ns", "UTC")),
        "gap": np.arange(n) == 0,
        "best_bid": bid, "best_ask": bid + TICK, "best_bid_sz": bid_sz, "best_ask_sz": ask_sz,
    })


def test_microprice_leans_toward_the_heavier_side_and_is_symmetric():
    table = fit_microprice(imbalance_driven_book(4000, seed=1), tick_size=TICK, interval_ns=S)
    g = np.array(table.adjustment_ticks[0])  # one-tick spread
    assert g[-1] > 0.1 and g[0] < -0.1  # bid-heavy books sit below their future price
    np.testing.assert_allclose(g, -g[::-1], atol=1e-9)  # symmetrised as in Stoikov (2018)
    assert table.transitions_used > 3000
    frame = imbalance_driven_book(10, seed=2).with_columns(microprice_expr(table))
    mid = (frame["best_bid"] + frame["best_ask"]) / 2
    assert ((frame["microprice"] - mid).abs() <= TICK).all()


def test_microprice_fit_uses_only_rows_before_the_training_end(tmp_path, books):
    rows = books.flat_rows(120, gaps=(0,))
    books.write_snapshots(tmp_path, rows, tick_size=0.5)
    train_end = T0 + 60 * S
    build_features(tmp_path, "compact", [S], fee_bps=0.0, microprice_train_end_ns=train_end)
    first = json.loads((tmp_path / "features/compact/config.json").read_text())["microprice"]
    # rewrite every row after the training end with a different book
    changed = rows[:60] + [(ts, [(p + 3, q * 5) for p, q in b], [(p + 3, q) for p, q in a], g)
                           for ts, b, a, g in rows[60:]]
    for f in (tmp_path / "snapshots").rglob("*.parquet"):
        f.unlink()
    books.write_snapshots(tmp_path, changed, tick_size=0.5)
    build_features(tmp_path, "compact", [S], fee_bps=0.0, microprice_train_end_ns=train_end)
    second = json.loads((tmp_path / "features/compact/config.json").read_text())["microprice"]
    assert first == second
    assert first["binance-spot BTCUSDT"]["train_end_ns"] == train_end


def test_research_threshold_comes_from_the_training_slice_only():
    book = imbalance_driven_book(600, seed=3).with_columns(
        ((pl.col("best_bid") + pl.col("best_ask")) / 2).alias("mid"))
    train, test = book.head(400), book.tail(200)
    alpha = fit_research_threshold(train, k=5, interval_ns=S)
    wild_test = test.with_columns(pl.col("mid") * 3)  # whatever happens later...
    assert fit_research_threshold(pl.concat([train, wild_test]).head(400), 5, S) == alpha
    moves = train.with_columns(
        (pl.mean_horizontal([pl.col("mid").shift(-j) for j in range(1, 6)]) / pl.col("mid") - 1)
        .abs().alias("m")).drop_nulls("m")["m"]
    assert alpha == pytest.approx(float(np.quantile(moves.to_numpy(), 1 / 3)))
    labels = research_labels(train, 5, S, alpha)["y_research"]
    flat = (labels == 0).sum() / labels.drop_nulls().len()
    assert flat == pytest.approx(1 / 3, abs=0.02)
    assert labels.tail(5).is_null().all()  # no 5 rows of future


def test_frames_waiting_for_the_fit_give_the_same_dataset_in_memory_or_on_disk(
        tmp_path, books, monkeypatch):
    """Partitions before the training end wait for the micro-price table; those after it are
    written at once. Held in memory or, past the budget, in temporary files: the same bytes
    of data, the same table, and no temporary file left behind."""
    import features.build as build

    day = 86_400 * S
    every_row = []
    for d in range(4):  # four daily partitions, each with its own book shape
        rows = [(T0 + d * day + i * S, [(100.0 - 0.5 * (i % 3), 1.0 + d + i % 4)],
                 [(100.5 + 0.5 * (i % 2), 2.0 + (i * d) % 3)], i == 0) for i in range(50)]
        books.write_snapshots(tmp_path / "data", rows, tick_size=0.5)
        every_row += rows
    train_end = T0 + day + 25 * S  # inside the second partition
    outputs = {}
    for label, budget in (("memory", 1 << 30), ("disk", 0)):
        monkeypatch.setattr(build, "WAITING_FRAMES_BUDGET_BYTES", budget)
        written = build_features(tmp_path / "data", "compact", [S, 5 * S], fee_bps=0.0,
                                 microprice_train_end_ns=train_end)
        assert len(written) == 4
        outputs[label] = ([pl.read_parquet(p) for p in written],
                          json.loads((tmp_path / "data/features/compact/config.json")
                                     .read_text())["microprice"])
        assert not list((tmp_path / "data").rglob("*.tmp"))
    (mem_frames, mem_table), (disk_frames, disk_table) = outputs["memory"], outputs["disk"]
    assert mem_table == disk_table and mem_table["binance-spot BTCUSDT"]["table"] is not None
    assert all(a.equals(b) for a, b in zip(mem_frames, disk_frames, strict=True))
    # the micro-price is there in every partition, fitted once for the symbol, on every
    # training row of every partition before the training end (and on nothing after it)
    assert all(f["microprice"].null_count() == 0 for f in mem_frames)
    training = pl.DataFrame(
        [(ts, gap, b[0][0], a[0][0], b[0][1], a[0][1]) for ts, b, a, gap in every_row
         if ts < train_end], orient="row",
        schema=["ts", "gap", "best_bid", "best_ask", "best_bid_sz", "best_ask_sz"],
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    direct = fit_microprice(training, tick_size=0.5, interval_ns=S)
    assert mem_table["binance-spot BTCUSDT"]["table"] == direct.to_json()
