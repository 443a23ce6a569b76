"""Loading the book: streamed from the snapshot files, each row keeping only the levels an
order of the run's size can walk, with the fills and every figure of the full book."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from backtest.data import Book, load_book
from backtest.engine import BacktestConfig, price_decisions, run_backtest
from backtest.signals import random_decisions

VENUE, SYMBOL = "binance-spot", "BTCUSDT"
INTERVAL = 250_000_000
SECOND = 1_000_000_000
# A few levels, several dozen, and more than some rows hold (those are kept whole).
NOTIONALS = (1_000.0, 100_000.0, 1_000_000.0)


@pytest.fixture(scope="module")
def depth_root(tmp_path_factory: pytest.TempPathFactory, captures_dir: Path) -> Path:
    """Eleven minutes of the real Binance spot BTCUSDT book, 100 levels a side on a 250 ms
    grid, in many part files (so loading crosses files and batches)."""
    from collector.replay import replay_captures

    root = tmp_path_factory.mktemp("depth-100")
    replay_captures([captures_dir / "binance-spot" / "btcusdt_20240808-09.jsonl.gz"], root,
                    interval_ns=INTERVAL, depth=100, rotate_rows=300)
    return root


@pytest.fixture(scope="module")
def full_book(depth_root: Path) -> Book:
    return load_book(depth_root, VENUE, SYMBOL, 0, 2**62)


def _levels(book: Book, side: str) -> list[list[tuple[float, float]]]:
    px, sz, off = (getattr(book, f"{side}_{k}") for k in ("px", "sz", "off"))
    return [list(zip(px[a:b], sz[a:b], strict=True)) for a, b in itertools.pairwise(off)]


def test_full_load_holds_every_level_of_the_files(depth_root: Path, full_book: Book) -> None:
    files = sorted((depth_root / "snapshots").rglob("part-*.parquet"))
    assert len(files) > 5
    frame = pl.concat([pl.read_parquet(f) for f in files]).sort("ts")
    assert full_book.ts.tolist() == frame["ts"].dt.epoch("ns").to_list()
    assert full_book.gap.tolist() == frame["gap"].fill_null(False).to_list()
    for side in ("bid", "ask"):
        expected = [list(zip(p, s, strict=True)) for p, s in
                    zip(frame[f"{side}_px"].to_list(), frame[f"{side}_sz"].to_list(), strict=True)]
        assert _levels(full_book, side) == expected
    assert np.isinf(full_book.reach_qty)


def _fills(book: Book, decisions, notional: float, maker: bool, latency_ns: int
           ) -> dict[str, np.ndarray]:
    config = BacktestConfig(fee_bps=5.0, hold_ns=None, horizon_ns=5 * SECOND, maker=maker,
                            notional=notional)
    f = price_decisions(book, decisions, config, latency_ns)
    return {k: getattr(f, k) for k in ("status", "entry_row", "exit_row", "qty", "entry_px",
                                       "exit_px", "exit_beyond")}


@pytest.mark.parametrize("notional", NOTIONALS)
def test_kept_levels_fill_exactly_as_the_full_book(depth_root: Path, full_book: Book,
                                                   notional: float) -> None:
    kept = load_book(depth_root, VENUE, SYMBOL, 0, 2**62, notional=notional)
    assert kept.bid_px.shape[0] < full_book.bid_px.shape[0]  # something was left out
    np.testing.assert_array_equal(kept.ts, full_book.ts)
    np.testing.assert_array_equal(kept.mid, full_book.mid)
    rng = np.random.default_rng(int(notional))
    decisions = random_decisions(full_book.ts[:-40], 300, 5 * SECOND, rng)
    deep = 0
    for maker in (False, True):
        for latency in (INTERVAL, 4 * INTERVAL):
            ours = _fills(kept, decisions, notional, maker, latency)
            full = _fills(full_book, decisions, notional, maker, latency)
            for name, values in full.items():
                np.testing.assert_array_equal(ours[name], values, err_msg=name)
            ok = full["status"] == 0
            assert ok.sum() >= 20
            deep += int(np.sum(np.abs(full["entry_px"][ok] / full_book.mid[full["entry_row"][ok]]
                                      - 1) > 1e-4))
    assert deep > 0  # the entries walked past the touch, where truncation could bite


def test_size_keeps_the_levels_of_that_size(depth_root: Path, full_book: Book) -> None:
    kept = load_book(depth_root, VENUE, SYMBOL, 0, 2**62, size=8.0)
    assert kept.reach_qty == 8.0 and kept.bid_px.shape[0] < full_book.bid_px.shape[0]
    config = BacktestConfig(fee_bps=5.0, hold_ns=5 * SECOND, horizon_ns=5 * SECOND, size=8.0)
    decisions = random_decisions(full_book.ts[:-40], 300, 5 * SECOND, np.random.default_rng(8))
    ours = price_decisions(kept, decisions, config, INTERVAL)
    full = price_decisions(full_book, decisions, config, INTERVAL)
    np.testing.assert_array_equal(ours.exit_px, full.exit_px)
    np.testing.assert_array_equal(ours.entry_px, full.entry_px)


def _random_predictions(book: Book, rng: np.random.Generator) -> pl.DataFrame:
    """Probabilities on every row but the last 40 (their round trips stay in the book)."""
    n = len(book) - 40
    p_up = rng.beta(1.0, 3.0, n)
    p_down = rng.beta(1.0, 3.0, n) * (1 - p_up)
    return pl.DataFrame({"ts": book.ts[:n], "venue": VENUE, "symbol": SYMBOL,
                         "p_down": p_down, "p_flat": 1 - p_up - p_down, "p_up": p_up,
                         "y": np.zeros(n, np.int8)})


def test_the_report_is_the_full_books(depth_root: Path, full_book: Book) -> None:
    """Every figure of a backtest with comparison rows and curves, on the kept levels."""
    kept = load_book(depth_root, VENUE, SYMBOL, 0, 2**62, notional=200_000.0)
    predictions = _random_predictions(full_book, np.random.default_rng(5))
    config = BacktestConfig(fee_bps=2.0, hold_ns=5 * SECOND, horizon_ns=5 * SECOND,
                            notional=200_000.0, threshold=0.4)
    ours, full = run_backtest(predictions, kept, config), run_backtest(predictions, full_book,
                                                                       config)
    assert full.stats["n_trades"] > 20
    assert ours.stats == full.stats
    assert ours.trades.equals(full.trades)
    assert ours.equity.equals(full.equity)


def test_files_out_of_order_load_the_same_book(depth_root: Path, tmp_path: Path) -> None:
    """Part files whose names run against time: rows are put back in time order, each
    with its own kept levels."""
    shuffled = tmp_path / "root"
    shutil.copytree(depth_root / "snapshots", shuffled / "snapshots")
    parts = sorted((shuffled / "snapshots").rglob("part-*.parquet"))
    for i, part in enumerate(parts):  # the newest file first by name
        part.rename(part.with_name(f".{i}"))
    for i, part in enumerate(parts):
        part.with_name(f".{i}").rename(part.with_name(f"part-{len(parts) - i:04d}.parquet"))
    for notional in (None, 100_000.0):
        ours = load_book(shuffled, VENUE, SYMBOL, 0, 2**62, notional=notional)
        theirs = load_book(depth_root, VENUE, SYMBOL, 0, 2**62, notional=notional)
        for name in ("ts", "gap", "mid", "bid_px", "bid_sz", "bid_off", "ask_px", "ask_sz",
                     "ask_off"):
            np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name), name)


def test_orders_larger_than_the_loaded_book_are_refused(depth_root: Path) -> None:
    kept = load_book(depth_root, VENUE, SYMBOL, 0, 2**62, notional=1_000.0)
    decisions = random_decisions(kept.ts[:-40], 10, 5 * SECOND, np.random.default_rng(1))
    price_decisions(kept, decisions, BacktestConfig(fee_bps=0.0, hold_ns=None,
                    horizon_ns=SECOND, notional=1_000.0), INTERVAL)
    for bigger in ({"notional": 1_100.0}, {"size": 1.0}):
        config = BacktestConfig(fee_bps=0.0, hold_ns=None, horizon_ns=SECOND, **bigger)
        with pytest.raises(ValueError, match="did not load"):
            price_decisions(kept, decisions, config, INTERVAL)


def test_files_without_statistics_keep_the_same_levels(depth_root: Path, tmp_path: Path) -> None:
    """The lowest price comes from the Parquet statistics, or from the levels themselves
    when a writer left them out: the same bound, the same book."""
    import pyarrow.parquet as pq

    bare = tmp_path / "root"
    shutil.copytree(depth_root / "snapshots", bare / "snapshots")
    for part in (bare / "snapshots").rglob("part-*.parquet"):
        pq.write_table(pq.read_table(part), part, write_statistics=False)
        assert pq.read_metadata(part).row_group(0).column(4).statistics is None
    ours = load_book(bare, VENUE, SYMBOL, 0, 2**62, notional=100_000.0)
    theirs = load_book(depth_root, VENUE, SYMBOL, 0, 2**62, notional=100_000.0)
    assert ours.reach_qty == theirs.reach_qty
    np.testing.assert_array_equal(ours.ask_off, theirs.ask_off)
    np.testing.assert_array_equal(ours.bid_sz, theirs.bid_sz)


def test_a_truncated_snapshot_file_is_named(depth_root: Path, tmp_path: Path) -> None:
    from bookcast.errors import UserError

    broken = tmp_path / "root"
    shutil.copytree(depth_root / "snapshots", broken / "snapshots")
    part = sorted((broken / "snapshots").rglob("part-*.parquet"))[3]
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    for notional in (None, 1_000.0):
        with pytest.raises(UserError, match=f"The snapshot file {part} cannot be read"):
            load_book(broken, VENUE, SYMBOL, 0, 2**62, notional=notional)


def test_released_levels_change_no_figure_and_refuse_pricing(depth_root: Path,
                                                            full_book: Book) -> None:
    """`backtest_run` frees the levels once every fill is priced: the report is the one of
    a book kept whole, the comparison rows keep no equity, and pricing afterwards fails."""
    rng = np.random.default_rng(8)
    predictions = _random_predictions(full_book, rng)
    config = BacktestConfig(fee_bps=2.0, hold_ns=5 * SECOND, horizon_ns=5 * SECOND,
                            notional=50_000.0, threshold=0.4)
    book = load_book(depth_root, VENUE, SYMBOL, 0, 2**62, notional=50_000.0)
    kept = run_backtest(predictions, full_book, config)
    released = run_backtest(predictions, book, config, release_levels=True)
    assert kept.stats["n_trades"] > 20 and kept.stats["latency_curve"]
    assert released.stats == kept.stats
    assert released.trades.equals(kept.trades)
    assert released.equity.equals(kept.equity)
    assert {name: r.equity for name, r in released.baselines.items()} == dict.fromkeys(
        ("random", "imbalance_l1", "oracle"))
    assert book.levels_released and not full_book.levels_released
    decisions = random_decisions(book.ts[:-20], 5, 5 * SECOND, rng)
    with pytest.raises(ValueError, match="levels were released"):
        price_decisions(book, decisions, config, INTERVAL)


@pytest.mark.parametrize("maker", [False, True], ids=["taker", "maker"])
def test_the_oracle_in_chunks_is_the_oracle_of_all_rows(full_book: Book, maker: bool,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The oracle's round trips are priced a chunk of rows at a time: chunks of 7 rows
    give the sides one chunk gives, on the real book."""
    from backtest import signals

    ts = full_book.ts[:-10] + 3  # between snapshots: the entry is the next one
    one = signals.oracle_sides(full_book, ts, 5 * SECOND, INTERVAL, 1.0, 0.5 if maker else None)
    monkeypatch.setattr(signals, "ORACLE_CHUNK_ROWS", 7)
    chunked = signals.oracle_sides(full_book, ts, 5 * SECOND, INTERVAL, 1.0,
                                   0.5 if maker else None)
    assert len(ts) > 7 * 100 and (one != 0).sum() > 50
    np.testing.assert_array_equal(chunked, one)
