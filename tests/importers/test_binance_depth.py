"""Binance's historical order-book files, written here from the real USDⓈ-M capture, import
to the book the capture's replay keeps; a lost update is a flagged gap."""

from __future__ import annotations

import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest
from tardis_files import INTERVAL, SOURCES, snapshots, write_csv

from bookcast.errors import UserError
from collector.capture import iter_capture
from collector.importers.binance import DEPTH_COLUMNS, TICKER_COLUMNS, import_binance

LEVELS = ["bid_px", "bid_sz", "ask_px", "ask_sz"]
HEADER = ",".join(DEPTH_COLUMNS)


@pytest.fixture(scope="module")
def usdm_messages(captures_dir):
    """The capture's REST snapshot, depth diffs and bookTicker messages, in receive order."""
    snapshot, diffs, tickers = None, [], []
    for rec in iter_capture(captures_dir / SOURCES["binance-futures"][1]):
        if rec.kind == "http":
            snapshot = orjson.loads(rec.data)
        elif rec.kind == "recv":
            msg = orjson.loads(rec.data)["data"]
            if msg.get("e") == "depthUpdate":
                diffs.append(msg)
            elif msg.get("e") == "bookTicker":
                tickers.append(msg)
    return snapshot, diffs, tickers


def t_depth_rows(snapshot, diffs, skip_update=None):
    """Binance's T_DEPTH layout: the snapshot as `snap` rows, then each diff newer than it as
    `set` rows sharing its ids (`skip_update`: the index of a diff to leave out)."""
    last_id = snapshot["lastUpdateId"]
    rows = [f"BTCUSDT,{snapshot['T']},{last_id},{last_id},{side},snap,{p},{q},-1"
            for side, key in (("b", "bids"), ("a", "asks")) for p, q in snapshot[key]]
    newer = [d for d in diffs if d["u"] >= last_id]
    for n, d in enumerate(newer):
        if n == skip_update:
            continue
        rows += [f"BTCUSDT,{d['T']},{d['U']},{d['u']},{side},set,{p},{q},{d['pu']}"
                 for side in ("b", "a") for p, q in d[side]]
    return rows, newer


@pytest.fixture(scope="module")
def whole_import(usdm_messages, tmp_path_factory):
    """The capture's every update as a T_DEPTH file, imported."""
    snapshot, diffs, _ = usdm_messages
    tmp = tmp_path_factory.mktemp("t-depth")
    rows, _ = t_depth_rows(snapshot, diffs)
    path = write_csv(tmp / "BTCUSDT_T_DEPTH_2024-08-08.csv.gz", HEADER, rows)
    return import_binance([path], tmp / "out", INTERVAL, 25), tmp / "out"


def test_a_t_depth_file_imports_to_the_replays_book_at_every_update_id(whole_import,
                                                                       replayed):
    summary, out = whole_import
    (stream,) = summary.streams
    assert stream.gaps == 0 and stream.resyncs == 1 and stream.crossed == 0
    got = snapshots(out)
    want = replayed["binance-futures"].snapshots
    # the file has no receive times, so its grid is on exchange time: rows meet the
    # replay's where both books stand at the same update id
    same_id = got.unique("seq").join(want.unique("seq"), on="seq", suffix="_replay")
    assert same_id.height > 1000
    for column in LEVELS:
        assert (same_id[column] == same_id[f"{column}_replay"]).all()
    assert got["gap"].to_list() == [True] + [False] * (got.height - 1)
    assert (got["ts_event"] == got["ts_recv"]).all()
    # and every level of the final book
    (pipeline,) = summary.pipelines
    mine = pipeline.state("BTCUSDT").book
    theirs = replayed["binance-futures"].pipeline.state("BTCUSDT").book
    assert mine.bids() == theirs.bids() and mine.asks() == theirs.asks()
    # every update was checked against the one before it (pu), as the capture's were
    assert verified_depths(out) == {"25"}


def verified_depths(root) -> set[str]:
    return {pq.read_schema(p).metadata[b"verified_depth"].decode()
            for p in (root / "snapshots").rglob("*.parquet")}


def test_a_removed_row_breaks_the_pu_chain_and_is_flagged_as_a_gap(
        usdm_messages, whole_import, tmp_path):
    snapshot, diffs, _ = usdm_messages
    _, newer = t_depth_rows(snapshot, diffs)
    # a diff of a single level: removing its one row removes the whole update
    victim = next(i for i, d in enumerate(newer) if i > 500 and len(d["b"]) + len(d["a"]) == 1)
    rows, _ = t_depth_rows(snapshot, diffs, skip_update=victim)
    path = write_csv(tmp_path / "gap.csv.gz", HEADER, rows)
    summary = import_binance([path], tmp_path / "out", INTERVAL, 25)
    (stream,) = summary.streams
    assert stream.gaps == 1
    got = snapshots(tmp_path / "out")
    lost_ms = newer[victim + 1]["T"]
    # no row stands for a moment after the break: the book waits for a snapshot that the
    # file does not have
    assert got["ts"].dt.epoch("ns").max() < lost_ms * 1_000_000
    assert summary.warnings.counts["update rows without a book"] == sum(
        len(d["b"]) + len(d["a"]) for d in newer[victim + 1:])
    # before the break, the book is the whole file's, row for row
    whole = snapshots(whole_import[1])
    assert got.select("ts", *LEVELS).equals(whole.head(got.height).select("ts", *LEVELS))


def test_a_file_without_a_header_reads_in_the_documented_order(usdm_messages, tmp_path):
    snapshot, diffs, _ = usdm_messages
    rows, _ = t_depth_rows(snapshot, diffs[:600])
    with_header = write_csv(tmp_path / "a.csv", HEADER, rows)
    without = write_csv(tmp_path / "b.csv", rows[0], rows[1:])
    import_binance([with_header], tmp_path / "a", INTERVAL, 5)
    import_binance([without], tmp_path / "b", INTERVAL, 5)
    assert snapshots(tmp_path / "a").equals(snapshots(tmp_path / "b"))


def test_book_ticker_rows_are_one_level_snapshots_on_event_time(usdm_messages, tmp_path):
    _, _, tickers = usdm_messages
    rows = [f"{m['u']},{m['b']},{m['B']},{m['a']},{m['A']},{m['T']},{m['E']}" for m in tickers]
    path = write_csv(tmp_path / "BTCUSDT-bookTicker-2024-08-08.csv", ",".join(TICKER_COLUMNS),
                     rows)
    summary = import_binance([path], tmp_path / "out", INTERVAL)
    assert summary.streams[0].symbol == "BTCUSDT"
    got = snapshots(tmp_path / "out")
    assert got["bid_px"].list.len().max() == 1
    # independently: the last ticker at or before each grid time, by event time
    quotes = pl.read_csv(path).with_columns(
        (pl.col("event_time") * 1_000_000).cast(pl.Datetime("ns", "UTC")).alias("ts")
    ).sort("ts", maintain_order=True)
    expected = got.select("ts").join_asof(quotes, on="ts", strategy="backward")
    assert got.height > 3000
    assert (got["bid_px"].list.first() == expected["best_bid_price"]).all()
    assert (got["ask_sz"].list.first() == expected["best_ask_qty"]).all()
    assert (got["seq"] == expected["update_id"]).all()
    assert verified_depths(tmp_path / "out") == {"0"}  # tickers are not chained


def test_other_product_families_and_unchecked_chains_are_refused(tmp_path):
    coin_m = write_csv(tmp_path / "coinm.csv", HEADER,
                       ["BTCUSD_PERP,1723161256493,1,1,b,snap,61800.1,10,-1"])
    with pytest.raises(UserError) as err:
        import_binance([coin_m], tmp_path / "out", INTERVAL)
    assert str(err.value) == (f"'{coin_m}' holds BTCUSD_PERP, a Binance COIN-M contract (sizes "
                              f"in contracts, inverse PnL), which binance-usdm does not speak; "
                              f"bookcast has no COIN-M venue.")
    no_pu = write_csv(tmp_path / "nopu.csv", "symbol,timestamp,trans_id,first_update_id,"
                      "last_update_id,side,update_type,price,qty",
                      ["BTCUSDT,1723161256493,1,1,1,b,snap,61800.1,10"])
    with pytest.raises(UserError, match="has no pu column, so the futures rule"):
        import_binance([no_pu], tmp_path / "out", INTERVAL)
    odd = write_csv(tmp_path / "odd.csv", "symbol,time,price", ["BTCUSDT,1,2"])
    with pytest.raises(UserError, match=r"line 1: the header 'symbol,time,price' is neither "
                                        r"Binance's order-book update file"):
        import_binance([odd], tmp_path / "out", INTERVAL)
    ticker = write_csv(tmp_path / "quotes.csv", ",".join(TICKER_COLUMNS), ["1,2,3,4,5,6,7"])
    with pytest.raises(UserError, match="is a bookTicker file, which names no symbol; pass "
                                        "--symbol"):
        import_binance([ticker], tmp_path / "out", INTERVAL)
    assert not (tmp_path / "out" / "snapshots").exists()
