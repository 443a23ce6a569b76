"""Importing the independent tardis files gives what replaying the original captures gives."""

from __future__ import annotations

import gzip

import polars as pl
import pyarrow.parquet as pq
import pytest
from tardis_files import (
    DEPTH,
    INTERVAL,
    local_us,
    read_lines,
    shift,
    snapshots,
    tardis_file,
    trades,
    write_csv,
)

from collector.importers.csvfile import CsvFile, read_header
from collector.importers.feed import TimeWindow
from collector.importers.tardis import L2_TYPES, import_tardis
from collector.pipeline import Pipeline

EXCHANGES = ["binance", "binance-futures"]
LEVELS = ["bid_px", "bid_sz", "ask_px", "ask_sz"]
US = pl.duration(microseconds=1)


def imported(tardis_dir, tmp_path, exchange, *data_types, **options):
    files = [tardis_file(tardis_dir, exchange, t) for t in data_types]
    summary = import_tardis(files, tmp_path, INTERVAL, options.pop("depth", DEPTH), **options)
    return summary


def truncated_to_us(frame: pl.DataFrame, *columns: str) -> pl.DataFrame:
    """tardis keeps receive times in µs; the capture has them in ns."""
    return frame.with_columns(pl.col(c).dt.truncate("1us") for c in columns)


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_incremental_book_l2_gives_the_replays_snapshots_row_for_row(
        exchange, tardis_dir, replayed, tmp_path):
    summary = imported(tardis_dir, tmp_path, exchange, "incremental_book_L2")
    got = snapshots(tmp_path)
    want = truncated_to_us(replayed[exchange].snapshots, "ts_recv")
    assert got.height == want.height > 3000
    assert got["venue"].unique().to_list() == [replayed[exchange].venue]
    # every column but seq (tardis has no update ids): levels, times, counts, gap flags
    columns = ["ts", "ts_event", "ts_recv", *LEVELS, "n_updates", "gap"]
    assert got.select(columns).equals(want.select(columns))
    assert got["seq"].null_count() == got.height
    assert got["gap"].sum() == 1 and got["gap"][0]
    assert got["bid_px"].list.len().max() == DEPTH
    (stream,) = summary.streams
    assert stream.gaps == 0 and stream.crossed == 0 and stream.resyncs == 1


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_book_snapshot_25_gives_the_same_top_25_and_nothing_past_its_last_change(
        exchange, tardis_dir, replayed, tmp_path):
    imported(tardis_dir, tmp_path, exchange, "book_snapshot_25")  # --depth 25 is its default
    got = snapshots(tmp_path)
    want = replayed[exchange].snapshots
    last = got["ts"].max()
    columns = ["ts", *LEVELS, "gap"]
    assert got.select(columns).equals(want.filter(pl.col("ts") <= last).select(columns))
    # the file ends at the last change of the top 25 (just after the import's last grid
    # point): the replay's few later rows all show one top 25, the file's last
    after = want.filter(pl.col("ts") > last)
    assert after.height < 10
    for column in LEVELS:
        assert all(v == after[column][0].to_list() for v in after[column].to_list())


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_trades_are_the_replays_trades(exchange, tardis_dir, replayed, tmp_path):
    imported(tardis_dir, tmp_path, exchange, "trades")
    got = trades(tmp_path)
    want = truncated_to_us(replayed[exchange].trades, "ts_recv")
    assert got.height == want.height > 19_000
    assert got.equals(want)


def test_files_carry_the_source_depth_and_grid_and_nothing_is_left_staged(
        tardis_dir, tmp_path):
    imported(tardis_dir, tmp_path, "binance", "incremental_book_L2", "trades")
    names = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                   if p.is_file())
    assert names and all(n.startswith(("snapshots/venue=binance-spot/symbol=BTCUSDT/date=",
                                       "trades/venue=binance-spot/symbol=BTCUSDT/date="))
                         and n.rsplit("/", 1)[1].startswith("part-") for n in names)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    for path in tmp_path.rglob("*.parquet"):
        meta = {k.decode(): v.decode() for k, v in pq.read_schema(path).metadata.items()}
        assert meta["source"] == "tardis" and meta["venue"] == "binance-spot"
        assert meta["symbol"] == "BTCUSDT"
        if "snapshots" in path.parts:
            assert meta["depth"] == "25" and meta["interval_ns"] == str(INTERVAL)
            assert meta["tick_size"] == "0.01"
            # tardis rows carry no update ids: nothing could see a lost update
            assert meta["verified_depth"] == "0"


def test_gzip_zstd_and_plain_files_import_alike_and_progress_counts_every_byte(
        tardis_dir, tmp_path):
    source = tardis_file(tardis_dir, "binance", "incremental_book_L2")
    header, lines = read_lines(source)
    lines = lines[:60_000]
    results = []
    for name in ("l2.csv", "l2.csv.zst", "l2.csv.gz"):
        path = write_csv(tmp_path / name, header, lines)
        seen = []
        rows = sum(b.data.num_rows for b in CsvFile(path, read_header(path), L2_TYPES,
                                                     on_bytes=seen.append).batches())
        assert rows == len(lines)
        assert sum(seen) == path.stat().st_size and len(seen) > 1
        import_tardis([path], tmp_path / name.replace(".", "-"), INTERVAL, 5)
        results.append(snapshots(tmp_path / name.replace(".", "-")))
    assert results[0].height > 500
    assert results[0].equals(results[1]) and results[0].equals(results[2])


def test_from_and_to_cut_the_rows_but_the_book_is_built_from_the_start(
        tardis_dir, replayed, tmp_path):
    want = replayed["binance"].snapshots
    start, end = want["ts"][1000], want["ts"][2000]
    ns = lambda t: int(t.timestamp() * 1e9)  # noqa: E731
    imported(tardis_dir, tmp_path, "binance", "incremental_book_L2", "trades",
             window=TimeWindow(ns(start) - 50_000_000, ns(end) + 50_000_000))
    got = snapshots(tmp_path)
    assert got["ts"].to_list() == want["ts"][1000:2001].to_list()
    assert got.select(LEVELS).equals(want[1000:2001].select(LEVELS))
    assert got["gap"].to_list() == [True] + [False] * 1000  # nothing before --from to join
    traded = trades(tmp_path)["ts_recv"].dt.epoch("ns")
    assert traded.min() >= ns(start) - 50_000_000 and traded.max() <= ns(end) + 50_000_000
    assert traded.len() == replayed["binance"].trades.filter(
        pl.col("ts_recv").dt.truncate("1us").is_between(start - pl.duration(milliseconds=50),
                                                        end + pl.duration(milliseconds=50))
    ).height


def test_no_row_is_written_at_or_after_the_last_update_even_on_a_grid_point(
        tardis_dir, tmp_path):
    """As in replay: a row stands for a moment only once a later update vouches for it."""
    header, lines = read_lines(tardis_file(tardis_dir, "binance", "incremental_book_L2"))
    lines = lines[:20_000]
    step_us = INTERVAL // 1000
    last_us = local_us(lines[-1])
    on_grid = [shift(line, -last_us % step_us) for line in lines]  # the last update on g
    last_ns = local_us(on_grid[-1]) * 1000
    assert last_ns % INTERVAL == 0
    import_tardis([write_csv(tmp_path / "l2.csv", header, on_grid)], tmp_path / "a", INTERVAL, 5)
    ts = snapshots(tmp_path / "a")["ts"].dt.epoch("ns")
    assert ts.max() == last_ns - INTERVAL
    assert (ts.diff().drop_nulls() == INTERVAL).all()
    # with --to before the last update, that later update vouches for the rows up to --to
    to = last_ns - 10 * INTERVAL
    import_tardis([tmp_path / "l2.csv"], tmp_path / "b", INTERVAL, 5,
                  window=TimeWindow(None, to))
    assert snapshots(tmp_path / "b")["ts"].dt.epoch("ns").max() == to


def book_at(capture, t_us):
    """The replayed book of the capture once every record received by t_us is applied."""
    pipeline = Pipeline("binance-spot", "/nonexistent-never-written", INTERVAL)
    from collector.capture import iter_capture

    for rec in iter_capture(capture):
        if rec.ts_ns // 1000 > t_us:
            break
        pipeline.venue.on_record(rec)
    return pipeline.state("BTCUSDT").book


def test_a_snapshot_after_updates_is_a_resync_and_the_stale_stretch_before_it_gets_no_rows(
        tardis_dir, replayed, tmp_path):
    """A tardis feed that reconnects: updates are lost for 2 s, then a fresh snapshot."""
    from collector.book import format_units

    header, lines = read_lines(tardis_file(tardis_dir, "binance", "incremental_book_L2"))
    cut = len(lines) // 2
    resync_us = local_us(lines[cut])
    lost_from = resync_us - 2_000_000
    book = book_at(replayed["binance"].capture, resync_us)
    snapshot = [f"binance,BTCUSDT,{resync_us},{resync_us},true,{side},"
                f"{format_units(p, 8)},{format_units(q, 8)}"
                for side, levels in (("bid", book.bids()), ("ask", book.asks()))
                for p, q in levels]
    edited = ([line for line in lines[:cut] if local_us(line) < lost_from] + snapshot
              + [line for line in lines[cut:] if local_us(line) > resync_us])
    summary = import_tardis([write_csv(tmp_path / "resync.csv.gz", header, edited)],
                            tmp_path / "out", INTERVAL, DEPTH)
    (stream,) = summary.streams
    assert stream.resyncs == 2 and stream.gaps == 1
    got, want = snapshots(tmp_path / "out"), replayed["binance"].snapshots
    got_ns = got["ts"].dt.epoch("ns")
    last_kept = max(local_us(line) for line in lines[:cut] if local_us(line) < lost_from)
    # no row stands for the stretch whose updates were lost
    assert got.filter((got_ns >= last_kept * 1000) & (got_ns < resync_us * 1000)).height == 0
    after = got.filter(got_ns >= resync_us * 1000)
    assert after["gap"].to_list() == [True] + [False] * (after.height - 1)
    assert after.select("ts", *LEVELS).equals(
        want.filter(pl.col("ts") >= after["ts"][0]).select("ts", *LEVELS))
    before = got.filter(got_ns < last_kept * 1000)
    assert before.select("ts", *LEVELS).equals(want.head(before.height).select("ts", *LEVELS))


def test_a_file_of_two_symbols_needs_symbol_and_imports_each_on_its_own(
        tardis_dir, tmp_path):
    from bookcast.errors import UserError

    header, lines = read_lines(tardis_file(tardis_dir, "binance", "incremental_book_L2"))
    lines = lines[:60_000]  # the snapshot and a minute of updates
    twin = [line.replace(",BTCUSDT,", ",ETHUSDT,", 1) for line in lines]
    mixed = [line for pair in zip(lines, twin, strict=True) for line in pair]
    path = write_csv(tmp_path / "mixed.csv.gz", header, mixed)
    with pytest.raises(UserError) as err:
        import_tardis([path], tmp_path / "refused", INTERVAL, 5)
    assert str(err.value) == (f"'{path}' line 3: symbol 'ETHUSDT' after 'BTCUSDT': the file "
                              f"mixes symbols; choose them with --symbol.")
    assert not (tmp_path / "refused" / "snapshots").exists()
    import_tardis([path], tmp_path / "both", INTERVAL, 5, symbols=["BTCUSDT", "ETHUSDT"])
    both = snapshots(tmp_path / "both")
    btc, eth = (both.filter(pl.col("symbol") == s).drop("symbol") for s in ("BTCUSDT", "ETHUSDT"))
    assert btc.height > 500 and btc.drop("date").equals(eth.drop("date"))
    import_tardis([path], tmp_path / "one", INTERVAL, 5, symbols=["ETHUSDT"])
    assert snapshots(tmp_path / "one").drop("date").equals(
        both.filter(pl.col("symbol") == "ETHUSDT").drop("date"))


def test_rows_a_little_out_of_order_are_put_back_and_counted(tardis_dir, tmp_path):
    header, lines = read_lines(tardis_file(tardis_dir, "binance", "incremental_book_L2"))
    lines = lines[:60_000]
    # swap two whole updates 100 ms apart, in the middle of a batch
    times = sorted({local_us(line) for line in lines[40_000:43_000]})
    a, b = times[0], times[1]
    first = [line for line in lines if local_us(line) == a]
    second = [line for line in lines if local_us(line) == b]
    i = lines.index(first[0])
    swapped = lines[:i] + second + first + lines[i + len(first) + len(second):]
    assert len(swapped) == len(lines) and swapped != lines
    original = import_tardis([write_csv(tmp_path / "a.csv.gz", header, lines)], tmp_path / "a",
                             INTERVAL, DEPTH)
    reordered = import_tardis([write_csv(tmp_path / "b.csv.gz", header, swapped)],
                              tmp_path / "b", INTERVAL, DEPTH)
    assert not original.warnings.counts
    assert reordered.warnings.counts == {"rows put back in receive order": len(first)}
    assert snapshots(tmp_path / "a").equals(snapshots(tmp_path / "b"))


def test_a_file_is_read_in_bounded_batches(tardis_dir, tmp_path):
    """The file is never held whole: the reader hands out batches of about 1 MB."""
    source = tardis_file(tardis_dir, "binance-futures", "incremental_book_L2")
    with gzip.open(source, "rb") as fh:
        size = len(fh.read())
    batches = list(CsvFile(source, read_header(source), L2_TYPES).batches())
    assert len(batches) >= size // (2 << 20)
    assert max(b.data.num_rows for b in batches) < 40_000
    assert sum(b.data.num_rows for b in batches) == 445_262
    assert [b.first_row for b in batches[:2]] == [0, batches[0].data.num_rows]


def test_replay_pipeline_agrees_with_the_importers_book_at_the_end(tardis_dir, replayed,
                                                                    tmp_path):
    """Not just the top 25: every level of the final book is the same."""
    summary = imported(tardis_dir, tmp_path, "binance-futures", "incremental_book_L2",
                       depth=1)  # the stored depth does not change the book kept
    (pipeline,) = summary.pipelines
    mine = pipeline.state("BTCUSDT").book
    theirs = replayed["binance-futures"].pipeline.state("BTCUSDT").book
    assert mine.n_bids > 1000 and mine.bids() == theirs.bids() and mine.asks() == theirs.asks()


def test_quotes_are_the_best_level_of_the_same_book(tardis_dir, tmp_path):
    """A quotes file written from book_snapshot_25's first levels imports to that file's
    first level."""
    header, lines = read_lines(tardis_file(tardis_dir, "binance", "book_snapshot_25"))
    names = header.split(",")
    columns = [names.index(c) for c in ("asks[0].amount", "asks[0].price", "bids[0].price",
                                        "bids[0].amount")]
    quotes = [",".join(line.split(",")[:4] + [line.split(",")[i] for i in columns])
              for line in lines]
    path = write_csv(tmp_path / "binance_quotes_2024-08-08_BTCUSDT.csv.gz",
                     "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,"
                     "bid_price,bid_amount", quotes)
    summary = import_tardis([path], tmp_path / "quotes", INTERVAL)  # depth 1: all it holds
    assert summary.streams[0].data_type == "quotes"
    import_tardis([tardis_file(tardis_dir, "binance", "book_snapshot_25")], tmp_path / "top",
                  INTERVAL, 1)
    got, want = snapshots(tmp_path / "quotes"), snapshots(tmp_path / "top")
    assert got.height > 6000
    assert got.select("ts", *LEVELS, "gap").equals(want.select("ts", *LEVELS, "gap"))


def test_an_exchange_bookcast_has_no_venue_for_imports_under_tardis_name(tardis_dir,
                                                                          tmp_path):
    header, lines = read_lines(tardis_file(tardis_dir, "binance", "incremental_book_L2"))
    renamed = [line.replace("binance,", "bybit-spot,", 1) for line in lines[:20_000]]
    import_tardis([write_csv(tmp_path / "bybit.csv.gz", header, renamed)], tmp_path / "out",
                  INTERVAL, 5)
    (part, *_) = sorted((tmp_path / "out").rglob("*.parquet"))
    assert "venue=bybit-spot" in part.parts[-4]
    meta = pq.read_schema(part).metadata
    # no venue module gives its tick: the book's price steps do
    assert meta[b"tick_size"] == b"0.01" and meta[b"tick_size_source"] == b"inferred from the book"
