"""Snapshot rows go into NumPy buffers and out as Arrow arrays, exactly.

The writer turns the book's integer units into float64 itself (one correctly rounded
division each, like Python's int / int), copies an unchanged book's row without
converting it again, and splits a part whose lists outgrow int32 offsets into list
chunks. Each test compares what is read back with values computed independently in
plain Python.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import collector.writers as writers
from collector.book import UNIT, BookLevels, OrderBook
from collector.pipeline import Pipeline
from collector.replay import replay_pipeline
from collector.writers import SnapshotWriter

DAY = 86_400_000_000_000
T0 = DAY * 19_944
META = {"depth": "full", "interval_ns": 1, "tick_size": 0.01}


def python_floats(levels: BookLevels) -> tuple[list[float], ...]:
    """The floats a row must hold, by Python's own exact int / int division."""
    return ([p / UNIT for p in levels.bid_prices], [v / UNIT for v in levels.bid_sizes],
            [-k / UNIT for k in levels.ask_keys], [v / UNIT for v in levels.ask_sizes])


def read_levels(root: Path) -> list[tuple[list[float], ...]]:
    files = sorted((root / "snapshots").rglob("*.parquet"))
    rows = []
    for f in files:
        t = pq.read_table(f, columns=["bid_px", "bid_sz", "ask_px", "ask_sz"]).to_pydict()
        rows += list(zip(t["bid_px"], t["bid_sz"], t["ask_px"], t["ask_sz"], strict=True))
    return rows


def test_units_become_the_correctly_rounded_floats_even_past_exact_integers(tmp_path):
    """Sizes past 2**53 units (900k coins) and past int64 (a billion coins, as on SHIB books)
    take Python's exact division; ordinary ones NumPy's, which must agree with it."""
    rng = random.Random(3)
    book = OrderBook()
    writer = SnapshotWriter(tmp_path, "binance-spot", "SHIBUSDT", 10**6, None, META)
    expected = []
    ordinary = [rng.randrange(1, 10**15) for _ in range(2000)]
    huge = [2**53 + 1, 2**53 + 3, 3 * 10**17 + 7, 2**63 - 1, 2**63 + 5, 10**22 + 1]
    for i in range(300):
        size = huge[i % len(huge)] if i % 5 == 0 else ordinary[i]
        price = rng.randrange(1, 10**14) if i % 7 else 2**53 + 2 * i + 1  # a price past 2**53
        book.set_bid(price, size) if i % 2 else book.set_ask(price + 10**14, size)
        if rng.random() < 0.3:
            book.set_bid(price, 0)  # deletes, and sometimes an empty side
        levels = book.levels(None)
        expected.append(python_floats(levels))
        writer.add(T0 + i, None, T0 + i, i, levels, 1, False)
    writer.flush()
    got = read_levels(tmp_path)
    assert got == [tuple(map(list, row)) for row in expected]
    assert any(v > 9e8 for row in got for v in row[1] + row[3])  # the huge sizes are there


@pytest.mark.parametrize("side", ["bid", "ask"])
def test_the_largest_price_of_a_side_past_exact_integers_is_still_exact(tmp_path, side):
    """Small sizes, and one price of 2**53 + 3 units (900,719.9 coins): the best bid, or the
    deepest ask. float64 rounds that integer, so NumPy's division would be off by an ulp."""
    book = OrderBook()
    far = 2**53 + 3
    if side == "bid":  # crossed, which the writer does not judge; ordinary asks
        book.load([(far, UNIT), (100 * UNIT, UNIT)], [(101 * UNIT, UNIT), (102 * UNIT, UNIT)])
    else:
        book.load([(100 * UNIT, UNIT), (99 * UNIT, UNIT)], [(101 * UNIT, UNIT), (far, UNIT)])
    levels = book.levels(None)
    writer = SnapshotWriter(tmp_path, "binance-spot", "BTCUSDT", 10**6, None, META)
    writer.add(T0, None, T0, None, levels, 1, False)
    writer.flush()
    assert read_levels(tmp_path) == [tuple(map(list, python_floats(levels)))]
    assert float(far) / UNIT != far / UNIT  # the case where the two divisions differ


def test_an_unchanged_book_is_copied_and_a_changed_one_converted_again(tmp_path):
    book = OrderBook()
    book.load([(100 * UNIT, UNIT), (99 * UNIT, 2 * UNIT)], [(101 * UNIT, 3 * UNIT)])
    writer = SnapshotWriter(tmp_path, "kraken", "XBT/USD", 10**6, None, META)
    same = book.levels(None)
    writer.add(T0, None, T0, None, same, 1, True)
    writer.add(T0 + 1, None, T0 + 1, None, same, 0, False)  # the pipeline's repeat
    book.set_ask(101 * UNIT, 0)
    book.set_ask(102 * UNIT, 5 * UNIT)
    writer.add(T0 + 2, None, T0 + 2, None, book.levels(None), 2, False)
    writer.add(T0 + 3, None, T0 + 3, None, ([1.5], [2.5], [], []), 1, False)  # floats too
    writer.flush()
    assert read_levels(tmp_path) == [
        ([100.0, 99.0], [1.0, 2.0], [101.0], [3.0]),
        ([100.0, 99.0], [1.0, 2.0], [101.0], [3.0]),
        ([100.0, 99.0], [1.0, 2.0], [102.0], [5.0]),
        ([1.5], [2.5], [], []),
    ]


def test_lists_beyond_int32_offsets_are_written_as_list_chunks(tmp_path, monkeypatch):
    """A full-depth part can hold more than 2**31 values; shrink the limit to see the split."""
    monkeypatch.setattr(writers, "_MAX_LIST_VALUES", 7)
    writer = SnapshotWriter(tmp_path, "binance-spot", "BTCUSDT", 10**6, None, META)
    rows = []
    for i in range(40):
        k = i % 9  # 0..8 levels: some rows alone exceed the limit
        row = ([100.0 - j for j in range(k)], [float(i)] * k, [101.0 + j for j in range(k)],
               [float(j) for j in range(k)])
        rows.append(row)
        writer.add(T0 + i, None, T0 + i, None, row, 1, False)
    writer.flush()
    assert read_levels(tmp_path) == rows


def test_buffers_grow_across_thousands_of_rows_and_parts_start_small_again(tmp_path):
    writer = SnapshotWriter(tmp_path, "binance-spot", "BTCUSDT", 1500, None, META)
    rows = []
    for i in range(4000):
        k = (i * 7) % 300
        row = ([float(i)] * k, [1.0] * k, [float(i) + 0.5] * (300 - k), [2.0] * (300 - k))
        rows.append(row)
        writer.add(T0 + i, T0 + i if i % 2 else None, T0 + i, i, row, i, i == 0)
    writer.flush()
    assert [pq.read_metadata(f).num_rows for f in writer.files] == [1500, 1500, 1000]
    assert read_levels(tmp_path) == rows


class RecordingPipeline(Pipeline):
    """Keeps, for each row it takes, the book's levels as Python floats (book.top)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[list[float], ...]] = []

    def _row(self, state, g) -> tuple:
        self.seen.append(state.book.top(self.depth))
        return super()._row(state, g)


@pytest.mark.parametrize("depth, interval_s", [(None, 3), (25, 1)])
def test_replayed_rows_are_the_books_levels_as_python_computes_them(captures_dir, tmp_path,
                                                                    monkeypatch, depth,
                                                                    interval_s):
    monkeypatch.setattr("collector.replay.Pipeline", RecordingPipeline)
    capture = captures_dir / "binance-usdm" / "ethusdt_20240808.jsonl.gz"
    pipeline = replay_pipeline("binance-usdm", [capture], tmp_path, interval_s * 10**9,
                               depth=depth)
    assert isinstance(pipeline, RecordingPipeline) and len(pipeline.seen) > 100
    assert read_levels(tmp_path) == [tuple(row) for row in pipeline.seen]


def test_row_groups_hold_about_a_million_levels_so_a_time_window_reads_little(tmp_path):
    writer = SnapshotWriter(tmp_path, "binance-spot", "BTCUSDT", 10**6, None, META)
    row = ([1.0] * 100, [2.0] * 100, [3.0] * 100, [4.0] * 100)
    for i in range(25_000):
        writer.add(T0 + i, None, T0 + i, None, row, 1, False)
    (path,) = [writer.flush()]
    meta = pq.read_metadata(path)
    rows = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    assert rows == [10_485, 10_485, 4_030]  # 2**20 levels / 100 levels a row
    # a full-depth book of 5,000 levels a side: groups of 209 rows
    deep = SnapshotWriter(tmp_path / "deep", "binance-spot", "BTCUSDT", 10**6, None, META)
    wide = ([1.0] * 5000, [2.0] * 5000, [3.0] * 5000, [4.0] * 5000)
    for i in range(300):
        deep.add(T0 + i, None, T0 + i, None, wide, 1, False)
    meta = pq.read_metadata(deep.flush())
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [209, 91]
