"""Kraken v1 book + trades, replayed from the real shared captures."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from collector.book import format_units, parse_units
from collector.capture import CaptureWriter, iter_capture
from collector.pipeline import Pipeline
from collector.replay import replay_pipeline
from collector.state import SymbolState
from collector.venues.kraken import Kraken, book_checksum

INTERVAL_NS = 100_000_000
BOOK = "kraken/book1000_10pairs_20210417.jsonl.gz"
TRADES = "kraken/trades_10pairs_20210417.jsonl.gz"
ASSET_PAIRS = "kraken/assetpairs_20210417.jsonl.gz"


def replay(paths: list[Path], root: Path, **kwargs: Any) -> Pipeline:
    return replay_pipeline("kraken", paths, root, INTERVAL_NS, **kwargs)


@pytest.fixture(scope="module")
def replayed(captures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    root = tmp_path_factory.mktemp("kraken")
    return replay([captures_dir / ASSET_PAIRS, captures_dir / BOOK, captures_dir / TRADES], root)


def test_every_kraken_checksum_verifies(replayed: Pipeline) -> None:
    venue = replayed.venue
    assert isinstance(venue, Kraken)
    assert venue.checksums_verified == 4269  # every update message that carries `c`
    states = replayed.states()
    assert len(states) == 10
    assert sum(s.checksum_failures for s in states) == 0
    assert sum(s.crossed for s in states) == 0
    assert all(s.valid and s.resyncs == 1 for s in states)
    assert replayed.parse_errors == 0


def test_kraken_tick_sizes_come_from_asset_pairs(replayed: Pipeline) -> None:
    ticks = {s.symbol: (s.tick_size, s.tick_size_source) for s in replayed.states()}
    assert ticks["XBT/CHF"] == (0.1, "AssetPairs REST reply")
    assert ticks["XMR/USD"] == (0.01, "AssetPairs REST reply")
    assert ticks["ADA/XBT"] == (1e-08, "AssetPairs REST reply")


def test_kraken_snapshot_rows_are_readable_and_never_crossed(replayed: Pipeline) -> None:
    root = replayed.root
    rows = pl.read_parquet(root / "snapshots" / "**" / "*.parquet", hive_partitioning=True)
    assert rows.height == replayed.rows_written > 0
    assert set(rows["symbol"].unique()) == {"ADA-XBT", "XBT-CHF", "OMG-USD", "OCEAN-XBT",
                                            "ETH-CHF", "SC-EUR", "GRT-ETH", "KSM-XBT",
                                            "XMR-USD", "WAVES-EUR"}
    best = rows.select(pl.col("symbol"), pl.col("gap"), pl.col("bid_px").list.first().alias("bid"),
                       pl.col("ask_px").list.first().alias("ask"))
    assert (best["bid"] < best["ask"]).all()
    assert best.group_by("symbol").agg(pl.col("gap").sum())["gap"].to_list() == [1] * 10
    assert rows["seq"].null_count() == rows.height  # Kraken books have no sequence numbers


def test_kraken_trades_carry_the_aggressor_side(replayed: Pipeline) -> None:
    trades = pl.read_parquet(replayed.root / "trades" / "**" / "*.parquet",
                             hive_partitioning=True).sort("ts_recv")
    assert trades.height == 10
    first = trades.row(0, named=True)
    # [993,[["354.11000000","0.89594024","1618678142.557535","s","l",""]],"trade","XMR/USD"]
    assert (first["symbol"], first["price"], first["size"], first["side"]) == (
        "XMR-USD", 354.11, 0.89594024, -1)
    assert first["trade_id"] == "1618678142.557535-0"
    assert trades.filter(pl.col("side") == 1).height == 5


def test_checksum_strips_the_point_and_leading_zeros() -> None:
    """Each level is price then volume at the venue's decimals, '.' and leading 0s removed."""
    state = SymbolState("kraken", "XBT/USD")
    state.extra["kraken_decimals"] = (5, 8)
    state.book.set_ask(parse_units("0.05005"), parse_units("0.00000500"))
    state.book.set_ask(parse_units("0.05010"), parse_units("1.50000000"))
    state.book.set_bid(parse_units("0.05000"), parse_units("0.00000500"))
    # asks ascending "5005"+"500", "5010"+"150000000"; then bids descending "5000"+"500"
    assert book_checksum(state) == zlib.crc32(b"50055005010150000000" b"5000500")


def _update_indices(records: list, pair: str) -> list[int]:
    found = []
    for i, rec in enumerate(records):
        if rec.kind == "recv" and rec.data.startswith("[") and rec.data.endswith(f'"{pair}"]') \
                and '"c":' in rec.data:
            found.append(i)
    return found


def test_wrong_checksum_forces_a_resync(captures_dir: Path, tmp_path: Path) -> None:
    """A corrupted `c` invalidates only that pair; rows stop until a new snapshot.

    The capture holds one snapshot per pair, so the edited copy gets a second one
    for XMR/USD a few updates after the bad checksum, built from the correctly
    kept book at that point (as Kraken would send on resubscription).
    """
    pair = "XMR/USD"
    records = list(iter_capture(captures_dir / BOOK))
    updates = _update_indices(records, pair)
    bad, resnap = updates[300], updates[310]

    # the book as Kraken has it just after `resnap`, from an unedited replay
    reference = Pipeline("kraken", tmp_path / "reference", interval_ns=INTERVAL_NS)
    for rec in records[:resnap + 1]:
        reference.feed(rec)
    kept = reference.state(pair)
    price_dp, volume_dp = kept.extra["kraken_decimals"]
    stamp = "1618678150.000000"
    channel_id = orjson.loads(records[bad].data)[0]
    snapshot = [channel_id,
                {"as": [[format_units(p, price_dp), format_units(v, volume_dp), stamp]
                for p, v in kept.book.asks()],
         "bs": [[format_units(p, price_dp), format_units(v, volume_dp), stamp]
                for p, v in kept.book.bids()]},
        "book-1000", pair]

    edited = tmp_path / "edited.jsonl.gz"
    with CaptureWriter(edited) as out:
        for i, rec in enumerate(records):
            data = rec.data
            if i == bad:
                msg = orjson.loads(data)
                msg[-3]["c"] = str((int(msg[-3]["c"]) + 1) % 2**32)
                data = orjson.dumps(msg).decode()
            out.write(rec.ts_ns, rec.kind, rec.conn, data, rec.url)
            if i == resnap:
                out.write(rec.ts_ns + 1, "recv", rec.conn, orjson.dumps(snapshot).decode())

    events: list[tuple[str, str, str]] = []
    requested: list[str] = []
    pipeline = replay([edited], tmp_path / "data",
                      on_snapshot_request=lambda s: requested.append(s.symbol),
                      on_event=lambda e, s, d: events.append((e, s.symbol, d)))
    state = pipeline.state(pair)
    assert state.checksum_failures == 1
    assert requested == [pair]
    invalid = [(symbol, detail) for event, symbol, detail in events if event == "invalid"]
    assert len(invalid) == 1 and invalid[0][0] == pair
    assert invalid[0][1].startswith("checksum mismatch")
    assert state.valid and state.resyncs == 2
    # every other update verified: those between the failure and the new snapshot are skipped
    assert pipeline.venue.checksums_verified == 4269 - _skipped(updates, bad, resnap)
    assert sum(s.checksum_failures for s in pipeline.states()) == 1

    rows = pl.read_parquet(tmp_path / "data" / "snapshots" / "venue=kraken" / "symbol=XMR-USD"
                           / "**" / "*.parquet").with_columns(pl.col("ts").dt.epoch("ns")).sort("ts")
    t_snap = records[resnap].ts_ns + 1
    t_verified = records[updates[299]].ts_ns  # the last update whose checksum verified
    assert rows.filter(pl.col("ts") < t_verified).height > 0
    # nothing after it: the bad checksum may stand for a change lost before it
    assert rows.filter((pl.col("ts") >= t_verified) & (pl.col("ts") < t_snap)).height == 0
    after = rows.filter(pl.col("ts") >= t_snap)
    assert after["gap"][0] is True and not after["gap"][1:].any()

    # the other pairs never noticed
    others = pl.read_parquet(tmp_path / "data" / "snapshots" / "**" / "*.parquet",
                             hive_partitioning=True).filter(pl.col("symbol") != "XMR-USD")
    assert others.group_by("symbol").agg(pl.col("gap").sum())["gap"].to_list() == [1] * 9


def _skipped(updates: list[int], bad: int, resnap: int) -> int:
    """Update messages of the pair that are not verified: the bad one and those ignored after."""
    return sum(1 for i in updates if bad <= i <= resnap)



def _feed(pipeline: Pipeline, ts: int, payload: object) -> None:
    from collector.capture import CaptureRecord

    data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    pipeline.feed(CaptureRecord(ts, "recv", "kraken.ws", data))


def test_book_is_truncated_to_the_subscribed_depth(tmp_path: Path) -> None:
    """depth 2: an insert above the best bid pushes the worst bid out of the book."""
    pipeline = Pipeline("kraken", tmp_path, interval_ns=INTERVAL_NS)
    _feed(pipeline, 1, {"channelID": 7, "channelName": "book-2", "event": "subscriptionStatus",
                        "pair": "XBT/USD", "status": "subscribed",
                        "subscription": {"depth": 2, "name": "book"}})
    _feed(pipeline, 2, [7, {"as": [["101.0", "1.00", "1.0"], ["102.0", "2.00", "1.0"],
                                   ["103.0", "3.00", "1.0"]],
                            "bs": [["99.0", "1.00", "1.0"], ["98.0", "2.00", "1.0"]]},
                        "book-2", "XBT/USD"])
    state = pipeline.state("XBT/USD")
    assert state.book.asks() == [(parse_units("101"), parse_units("1")),
                                 (parse_units("102"), parse_units("2"))]
    # after the insert the book is asks 101, 102 and bids 100, 99 (98 fell out of scope)
    expected = zlib.crc32(b"1010100" b"1020200" b"100050" b"990100")
    _feed(pipeline, 3, [7, {"b": [["100.0", "0.50", "2.0"]], "c": str(expected)},
                        "book-2", "XBT/USD"])
    assert state.valid and state.checksum_failures == 0
    assert [p for p, _ in state.book.bids()] == [parse_units("100"), parse_units("99")]
    assert state.ts_event == 2_000_000_000


def test_malformed_kraken_messages_are_counted_not_raised(tmp_path: Path) -> None:
    pipeline = Pipeline("kraken", tmp_path, interval_ns=INTERVAL_NS)
    for i, bad in enumerate(["{not json", "42", '[1, {"as": [["x", "1", "1"]]}, "book-10", "A/B"]',
                             '[1, [["1.0", "1.0", "nan", "b"]], "trade", "A/B"]']):
        _feed(pipeline, i + 1, bad)
    assert pipeline.parse_errors == 4
