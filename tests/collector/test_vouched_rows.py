"""Rows are written only for moments the venue's checks vouch for (real captures, edited)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collector.capture import CaptureRecord, iter_capture, merge_captures
from collector.pipeline import Pipeline

INTERVAL = 100_000_000
SPOT = "binance-spot/btcusdt_20240808-09.jsonl.gz"
CBX = "coinbase-exchange/level2_10products_20210417.jsonl.gz"
KRAKEN = "kraken/book1000_10pairs_20210417.jsonl.gz"


def feed(venue: str, records: Iterable[CaptureRecord], root: Path, **options) -> Pipeline:
    pipeline = Pipeline(venue, root, INTERVAL, **options)
    for rec in records:
        pipeline.feed(rec)
    pipeline.finish()
    return pipeline


def rows(root: Path, venue: str, symbol: str) -> pa.Table:
    files = sorted((root / "snapshots" / f"venue={venue}" / f"symbol={symbol.replace('/', '-')}"
                    ).rglob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else pa.table({})


def ns(table: pa.Table, column: str) -> list[int]:
    return table.column(column).cast(pa.int64()).to_pylist()


@pytest.fixture(scope="module")
def spot(captures_dir: Path) -> list[CaptureRecord]:
    return list(iter_capture(captures_dir / SPOT))


def test_a_reconnection_writes_no_row_for_the_outage_and_flags_the_resync(
        spot: list[CaptureRecord], tmp_path: Path) -> None:
    """The exchange goes away for 5 s after diff k (its diffs meanwhile are lost); the
    connection comes back (`connect`), then a REST snapshot joins what follows."""
    from .test_replay_faults import rest_snapshot_at  # the book as Binance would serve it

    depth = [i for i, r in enumerate(spot) if r.kind == "recv" and "@depth" in r.data[:40]]
    down, back = depth[1000], depth[1050]
    outage_ns = spot[back].ts_ns - spot[down].ts_ns
    connect = CaptureRecord(spot[back].ts_ns - 1, "connect", spot[down].conn, None, "wss://x")
    snapshot = CaptureRecord(spot[depth[1051]].ts_ns - 1, "http", "binance-spot.rest",
                             rest_snapshot_at(spot, depth[1051] - 1),
                             "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=5000")
    edited = [*spot[:down + 1], connect, *spot[back + 1:depth[1051]], snapshot,
              *spot[depth[1051]:]]
    pipeline = feed("binance-spot", edited, tmp_path)
    state = pipeline.state("BTCUSDT")
    assert state.resyncs == 2 and state.gaps == 0  # invalid by the reconnection, not a gap
    table = rows(tmp_path, "binance-spot", "BTCUSDT")
    ts, recv, gap = ns(table, "ts"), ns(table, "ts_recv"), table.column("gap").to_pylist()
    assert outage_ns > 4_000_000_000
    # no row stands for a moment of the outage: none between the last diff before it
    # and the first row after the new snapshot, which is flagged
    inside = [t for t in ts if spot[down].ts_ns <= t < snapshot.ts_ns]
    assert inside == []
    first_after = ts.index(min(t for t in ts if t >= snapshot.ts_ns))
    assert gap[first_after] and sum(gap) == 2
    # on a stream that updates every 100 ms, no row is older than its book by much
    assert max(t - r for t, r in zip(ts, recv, strict=True)) < 1_500_000_000


def test_the_rows_after_the_last_record_of_a_stream_are_not_written(
        spot: list[CaptureRecord], tmp_path: Path) -> None:
    pipeline = feed("binance-spot", spot[:20_000], tmp_path)
    last_diff = max(r.ts_ns for r in spot[:20_000] if r.kind == "recv" and "@depth" in r.data[:40])
    ts = ns(rows(tmp_path, "binance-spot", "BTCUSDT"), "ts")
    assert max(ts) < last_diff and pipeline.rows_written == len(ts)


def test_metadata_says_how_far_each_venue_vouches_and_where_rows_came_from(
        captures_dir: Path, spot: list[CaptureRecord], tmp_path: Path) -> None:
    cases = [("binance-spot", spot[:8000], "BTCUSDT", 20, "20"),
             ("kraken", iter_capture(captures_dir / KRAKEN), "XBT/CHF", 20, "10"),
             ("coinbase-exchange", iter_capture(captures_dir / CBX), "BAND-BTC", 20, "0"),
             ("kraken", iter_capture(captures_dir / KRAKEN), "XBT/CHF", 5, "5")]
    for n, (venue, records, symbol, depth, verified) in enumerate(cases):
        root = tmp_path / str(n)
        feed(venue, records, root, depth=depth, source="tardis" if n == 3 else "capture")
        files = sorted((root / "snapshots" / f"venue={venue}"
                        / f"symbol={symbol.replace('/', '-')}").rglob("*.parquet"))
        meta = pq.read_schema(files[0]).metadata
        assert meta[b"verified_depth"] == verified.encode(), (venue, meta)
        assert meta[b"source"] == (b"tardis" if n == 3 else b"capture")
        trades = sorted((root / "trades").rglob("*.parquet"))
        if trades:
            assert pq.read_schema(trades[0]).metadata[b"source"] in (b"capture", b"tardis")


def half(rec: CaptureRecord) -> CaptureRecord:
    return CaptureRecord(rec.ts_ns, rec.kind, rec.conn, rec.data[: len(rec.data) // 2], rec.url)


def test_an_unreadable_coinbase_exchange_update_invalidates_its_product_only(
        captures_dir: Path, tmp_path: Path) -> None:
    records = list(iter_capture(captures_dir / CBX))
    victim = next(i for i, r in enumerate(records) if i > 3000 and r.kind == "recv"
                  and '"l2update"' in r.data and '"BAND-BTC"' in r.data)
    records[victim] = half(records[victim])
    requested: list[str] = []
    pipeline = feed("coinbase-exchange", records, tmp_path,
                    on_snapshot_request=lambda s: requested.append(s.symbol))
    band = pipeline.state("BAND-BTC")
    assert pipeline.parse_errors == 1 and band.gaps == 1 and not band.valid
    assert requested == ["BAND-BTC"]  # a resubscription, live
    assert all(s.valid and s.gaps == 0 for s in pipeline.states() if s.symbol != "BAND-BTC")
    # nothing after the last update that was read without fault
    ts = ns(rows(tmp_path, "coinbase-exchange", "BAND-BTC"), "ts")
    last_good = max(r.ts_ns for r in records[:victim] if r.kind == "recv"
                    and '"l2update"' in r.data and '"BAND-BTC"' in r.data)
    assert max(ts) < last_good


def test_an_unreadable_kraken_book_message_invalidates_its_pair_only(
        captures_dir: Path, tmp_path: Path) -> None:
    records = list(iter_capture(captures_dir / KRAKEN))
    victim = next(i for i, r in enumerate(records) if i > 2000 and r.kind == "recv"
                  and r.data.endswith('"XMR/USD"]') and '"c":' in r.data)
    records[victim] = half(records[victim])  # the pair's name (at the end) is cut off
    pipeline = feed("kraken", records, tmp_path)
    xmr = pipeline.state("XMR/USD")
    assert pipeline.parse_errors == 1 and xmr.gaps == 1 and not xmr.valid
    assert all(s.valid for s in pipeline.states() if s.symbol != "XMR/USD")


def test_a_ticker_the_book_never_shows_resyncs_its_product_and_a_lagging_one_does_not(
        captures_dir: Path, tmp_path: Path) -> None:
    """Coinbase Exchange: a ticker names a best bid the book does not show. If the level2
    feed shows it within a second (it lags the matching engine), nothing happens; if a
    second of exchange time passes without it, a change was lost: the product resyncs."""
    from collector.book import format_units
    from collector.venues.coinbase_exchange import format_rfc3339_ns, parse_rfc3339_ns

    records = list(iter_capture(captures_dir / CBX))
    # after the product's last real ticker (a later one that agrees with the book would
    # rightly clear the suspicion), where updates go on for more than a second
    last_ticker = max(i for i, r in enumerate(records) if r.kind == "recv"
                      and '"ticker"' in r.data and '"DASH-BTC"' in r.data)
    updates = [i for i, r in enumerate(records) if r.kind == "recv" and i > last_ticker
               and '"l2update"' in r.data and '"DASH-BTC"' in r.data]
    at = records[updates[0]]
    when = parse_rfc3339_ns(orjson.loads(at.data)["time"])
    book = feed("coinbase-exchange", records[:updates[0] + 1], tmp_path / "book")
    best_bid, best_ask = book.state("DASH-BTC").book.best_bid(), \
        book.state("DASH-BTC").book.best_ask()
    inside = format_units((best_bid[0] + best_ask[0]) // 2 // 100 * 100, 8)  # type: ignore[index]
    ask = format_units(best_ask[0], 8)  # type: ignore[index]

    def message(kind: str, offset_ns: int, **fields: object) -> CaptureRecord:
        msg = {"type": kind, "product_id": "DASH-BTC",
               "time": format_rfc3339_ns(when + offset_ns), **fields}
        return CaptureRecord(at.ts_ns + offset_ns // 1000, "recv", at.conn,
                             orjson.dumps(msg).decode())

    ticker = message("ticker", 1000, best_bid=inside, best_ask=ask, sequence=1)
    shows_it = message("l2update", 2000, changes=[["buy", inside, "1.0"]])
    head, tail = records[:updates[0] + 1], records[updates[0] + 1:]
    later = [parse_rfc3339_ns(orjson.loads(r.data)["time"]) for r in tail
             if r.kind == "recv" and '"l2update"' in r.data and '"DASH-BTC"' in r.data]
    assert any(t > when + 1_000_000_000 for t in later)

    lost = feed("coinbase-exchange", [*head, ticker, *tail], tmp_path / "lost")
    assert lost.state("DASH-BTC").gaps == 1
    assert lost.venue.ticker_mismatches == 1  # type: ignore[attr-defined]
    assert all(s.gaps == 0 for s in lost.states() if s.symbol != "DASH-BTC")
    lagging = feed("coinbase-exchange", [*head, ticker, shows_it, *tail], tmp_path / "lag")
    assert lagging.state("DASH-BTC").gaps == 0
    assert lagging.top_check.mismatched == 1  # seen and counted, but not a lost change


def test_a_raw_capture_with_dropped_records_is_rebuilt_not_joined_across_the_hole(
        captures_dir: Path, tmp_path: Path) -> None:
    """The daemon marks records it had to drop with a `connect` record; a replay of a
    capture of a venue without sequence numbers then waits for a fresh snapshot."""
    from collector.daemon.raw_log import RECORDS_DROPPED_URL

    records = list(merge_captures([captures_dir / CBX]))
    cut = 5000
    marker = CaptureRecord(records[cut].ts_ns, "connect", records[cut].conn, None,
                           RECORDS_DROPPED_URL)
    pipeline = feed("coinbase-exchange", [*records[:cut], marker, *records[cut + 200:]],
                    tmp_path)
    assert all(not s.valid for s in pipeline.states())  # no snapshot came after the hole
    for state in pipeline.states():
        table = rows(tmp_path, "coinbase-exchange", state.symbol)
        if table.num_rows:
            assert max(ns(table, "ts")) < records[cut].ts_ns


def test_a_capture_that_says_it_was_simulated_replays_with_source_simulator(
        spot: list[CaptureRecord], tmp_path: Path) -> None:
    from collector.capture import SIMULATOR_URL_PREFIX, CaptureWriter
    from collector.replay import replay_captures

    path = tmp_path / "sim.jsonl.gz"
    with CaptureWriter(path) as out:
        out.write(spot[0].ts_ns - 1, "connect", "binance-spot.ws", None,
                  f"{SIMULATOR_URL_PREFIX}default")
        for rec in spot[:6000]:
            out.write(rec.ts_ns, rec.kind, rec.conn, rec.data, rec.url)
    replay_captures([path], tmp_path / "out", INTERVAL, venue="binance-spot")
    files = sorted((tmp_path / "out" / "snapshots").rglob("*.parquet"))
    assert pq.read_schema(files[0]).metadata[b"source"] == b"simulator"
