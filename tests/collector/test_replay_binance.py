"""Replaying the real Binance captures rebuilds exact, gapless, never-crossed books."""

from __future__ import annotations

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from bookcast.schema import SNAPSHOT_SCHEMA, TRADE_SCHEMA
from collector.replay import replay_captures

INTERVAL_100MS = 100_000_000


@pytest.fixture(scope="module", params=["binance-spot", "binance-usdm"])
def replayed(request, captures_dir, tmp_path_factory):
    venue = request.param
    files = sorted((captures_dir / venue).glob("*.jsonl.gz"))
    out = tmp_path_factory.mktemp(venue)
    summary = replay_captures(files, out, INTERVAL_100MS, depth=100)
    return venue, out, summary


def test_binance_books_have_no_gap_after_the_initial_join(replayed):
    _venue, out, summary = replayed
    assert {s.symbol for s in summary.streams} == {"BTCUSDT", "ETHUSDT"}
    for stream in summary.streams:
        assert stream.gaps == 0, stream
        assert stream.resyncs == 1  # the initial join only
        assert stream.messages > 6000 and stream.snapshots > 3000
    snaps = pl.read_parquet(out / "snapshots", hive_partitioning=True)
    firsts = snaps.sort("ts").group_by("symbol").agg(pl.col("gap").first(),
                                                      pl.col("gap").sum().alias("n_gap"))
    assert firsts["gap"].to_list() == [True, True]  # only the join row is flagged
    # the date partition splits the 2024-08-08/09 capture, yet one gap per symbol
    assert firsts["n_gap"].to_list() == [1, 1]
    assert summary.parse_errors == 0 and summary.malformed == 0


def test_no_rebuilt_book_is_ever_crossed(replayed):
    _, out, summary = replayed
    for pipeline in summary.pipelines.values():
        assert all(state.crossed == 0 for state in pipeline.states())
    snaps = pl.read_parquet(out / "snapshots", hive_partitioning=True)
    best = snaps.select(pl.col("bid_px").list.first(), pl.col("ask_px").list.first())
    assert (best["bid_px"] < best["ask_px"]).all()
    # best-first ordering inside every row
    assert snaps.select((pl.col("bid_px").list.diff().list.max() < 0).all()).item()
    assert snaps.select((pl.col("ask_px").list.diff().list.min() > 0).all()).item()


def test_top_of_book_equals_the_venue_book_ticker_at_the_same_update_id(replayed):
    """Binance's bookTicker carries the update id `u` of the book it shows. Where the
    rebuilt book stands at exactly that id (after a diff ending at `u`), the two are
    comparable and must agree on best bid and best ask prices."""
    venue, _, summary = replayed
    check = summary.top_checks[venue]
    assert check.checked > 1000, check
    assert check.mismatched == 0, check.examples


def test_snapshot_grid_is_fixed_receive_time_and_rows_hold_the_last_update(replayed):
    _, out, _ = replayed
    snaps = pl.read_parquet(out / "snapshots", hive_partitioning=True).sort("symbol", "ts")
    ts = snaps["ts"].dt.epoch("ns")
    assert (ts % INTERVAL_100MS == 0).all()
    per_symbol = snaps.group_by("symbol").agg(pl.col("ts").diff().drop_nulls().unique())
    for steps in per_symbol["ts"]:
        assert steps.to_list() == [pd.Timedelta(INTERVAL_100MS).to_pytimedelta()]
    # the last update applied is never after the grid time
    assert (snaps["ts_recv"] <= snaps["ts"]).all()
    assert snaps["bid_px"].list.len().max() == 100


def test_datasets_follow_the_design_schema_and_read_in_polars_duckdb_and_pandas(replayed):
    venue, out, _ = replayed
    files = sorted((out / "snapshots").rglob("*.parquet"))
    trade_files = sorted((out / "trades").rglob("*.parquet"))
    assert files and trade_files
    for path in files:
        assert path.name.startswith("part-") and "venue=" + venue in str(path)
        meta = pq.read_schema(path).metadata
        assert pq.read_schema(path).remove_metadata() == SNAPSHOT_SCHEMA
        for key in (b"bookcast.schema", b"venue", b"symbol", b"depth", b"interval_ns",
                    b"tick_size"):
            assert key in meta
        assert meta[b"interval_ns"] == b"100000000" and meta[b"depth"] == b"100"
    for path in trade_files:
        assert pq.read_schema(path).remove_metadata() == TRADE_SCHEMA
    n_polars = pl.scan_parquet(out / "snapshots" / "**" / "*.parquet").select(pl.len()).collect()
    n_duck = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/snapshots/**/*.parquet', "
                        "hive_partitioning=true)").fetchall()[0][0]
    n_pandas = len(pd.read_parquet(out / "snapshots"))
    assert n_polars.item() == n_duck == n_pandas
    trades = pl.read_parquet(out / "trades", hive_partitioning=True)
    assert set(trades["side"].unique().to_list()) == {-1, 1}
    assert trades["trade_id"].n_unique() == len(trades)


def test_replaying_the_same_capture_twice_gives_identical_rows(captures_dir, tmp_path):
    capture = captures_dir / "binance-usdm" / "ethusdt_20240808.jsonl.gz"
    first = replay_captures([capture], tmp_path / "a", INTERVAL_100MS)
    second = replay_captures([capture], tmp_path / "b", INTERVAL_100MS)
    assert [p.relative_to(tmp_path / "a") for p in first.files_written] == \
           [p.relative_to(tmp_path / "b") for p in second.files_written]
    for a, b in zip(first.files_written, second.files_written, strict=True):
        assert pq.read_table(a).equals(pq.read_table(b))


def test_full_depth_keeps_every_level(captures_dir, tmp_path):
    capture = captures_dir / "binance-spot" / "ethusdt_20240808-09.jsonl.gz"
    summary = replay_captures([capture], tmp_path, 1_000_000_000, depth=None)
    snaps = pl.read_parquet(tmp_path / "snapshots", hive_partitioning=True)
    state = summary.pipelines["binance-spot"].states()[0]
    # full depth keeps every level the REST snapshot and the diffs brought in
    assert snaps["bid_px"].list.len().max() > 1000
    # rows are not cut at 100 levels: the last row is as deep as the final book, give or
    # take the levels that changed after the last grid point
    assert abs(snaps.sort("ts")["bid_px"].list.len()[-1] - state.book.n_bids) < 100
    meta = pq.read_schema(summary.files_written[0]).metadata
    assert meta[b"depth"] == b"full"
