"""A Binance REST snapshot finds its symbol however it arrives, and a capture of another
product family is refused in one sentence naming what was found."""

from __future__ import annotations

import dataclasses
import itertools

import orjson
import polars as pl
import pytest

from bookcast.errors import UserError
from collector.capture import CaptureWriter, iter_capture
from collector.replay import replay_captures

INTERVAL = 100_000_000
SPOT = "binance-spot/btcusdt_20240808-09.jsonl.gz"
USDM = "binance-usdm/btcusdt_20240808.jsonl.gz"
LEVELS = ["ts", "seq", "bid_px", "bid_sz", "ask_px", "ask_sz"]


@pytest.fixture(scope="module")
def spot(captures_dir):
    """The first three minutes of the real spot capture (its snapshot comes 7 records in)."""
    return list(itertools.islice(iter_capture(captures_dir / SPOT), 30_000))


@pytest.fixture(scope="module")
def spot_rows(spot, tmp_path_factory):
    out = tmp_path_factory.mktemp("spot")
    replay_captures([write(out / "spot.jsonl.gz", spot)], out, INTERVAL, 10)
    return rows(out)


def rows(root):
    return pl.read_parquet(root / "snapshots").sort("ts")


def write(path, records):
    with CaptureWriter(path) as writer:
        for r in records:
            writer.write(r.ts_ns, r.kind, r.conn, r.data, r.url)
    return path


def snapshot_first(records, url=None):
    """The capture with its REST reply moved before the first diff, as when the collector
    asked for the snapshot before the diff stream began."""
    i = next(i for i, r in enumerate(records) if r.kind == "http")
    reply = dataclasses.replace(records[i], ts_ns=records[0].ts_ns - 1,
                                url=url or records[i].url)
    assert "symbol=" not in reply.url  # the shared capture's url does not name the symbol
    return [reply, *records[:i], *records[i + 1:]]


def test_a_snapshot_before_the_first_diff_joins_it(spot, spot_rows, tmp_path):
    summary = replay_captures([write(tmp_path / "first.jsonl.gz", snapshot_first(spot))],
                              tmp_path / "out", INTERVAL, 10)
    (stream,) = summary.streams
    assert stream.resyncs == 1 and stream.gaps == 0
    got = rows(tmp_path / "out")
    # from the moment the original capture had its book, the two agree row for row
    later = got.filter(pl.col("ts") >= spot_rows["ts"][0])
    assert later.select(LEVELS).equals(spot_rows.select(LEVELS))
    assert got["gap"].sum() == 1


def test_a_snapshot_before_any_diff_goes_to_the_only_subscribed_symbol(spot, spot_rows,
                                                                       tmp_path):
    first = snapshot_first(spot)
    connect = dataclasses.replace(spot[0], ts_ns=first[0].ts_ns - 1, kind="connect", data=None,
                                  url="wss://stream.binance.com:9443/stream?streams="
                                      "btcusdt@depth@100ms/btcusdt@trade")
    summary = replay_captures([write(tmp_path / "sub.jsonl.gz", [connect, *first])],
                              tmp_path / "out", INTERVAL, 10)
    assert summary.streams[0].resyncs == 1 and summary.streams[0].gaps == 0
    got = rows(tmp_path / "out")
    # joined at once, at the snapshot's own receipt: the first row is the snapshot's book
    assert got["ts"][0] <= spot_rows["ts"][0]
    later = got.filter(pl.col("ts") >= spot_rows["ts"][0])
    assert later.select(LEVELS).equals(spot_rows.select(LEVELS))


def test_a_snapshot_that_matches_no_symbol_says_so(captures_dir, spot, tmp_path):
    """An ETHUSDT snapshot in a BTCUSDT capture: its ids are billions from BTCUSDT's."""
    eth = next(r for r in iter_capture(captures_dir / "binance-spot/ethusdt_20240808-09.jsonl.gz")
               if r.kind == "http")
    i = next(i for i, r in enumerate(spot) if r.kind == "http")
    records = [*spot[:i], dataclasses.replace(eth, ts_ns=spot[i].ts_ns), *spot[i + 1:]]
    path = write(tmp_path / "wrong.jsonl.gz", records)
    with pytest.raises(UserError) as err:
        replay_captures([path], tmp_path / "out", INTERVAL, 10)
    assert str(err.value) == (f"The capture '{path}' holds 1 depth snapshot that matches none "
                              f"of its symbols (by request, subscription or update ids), so no "
                              f"binance-spot book could be built.")


def coin_margined(records):
    """The USDⓈ-M capture rewritten as COIN-M would send it: BTCUSD_PERP with a `ps` pair."""
    out = []
    for r in records:
        if r.kind == "recv" and '"depthUpdate"' in r.data:
            msg = orjson.loads(r.data)
            msg["data"]["s"], msg["data"]["ps"] = "BTCUSD_PERP", "BTCUSD"
            msg["stream"] = "btcusd_perp@depth@0ms"
            r = dataclasses.replace(r, data=orjson.dumps(msg).decode())
        out.append(r)
    return out


def test_a_coin_m_capture_under_binance_usdm_is_refused_naming_what_was_found(
        captures_dir, tmp_path):
    records = list(iter_capture(captures_dir / USDM))
    path = write(tmp_path / "coinm.jsonl.gz", coin_margined(records))
    with pytest.raises(UserError) as err:
        replay_captures([path], tmp_path / "out", INTERVAL, 10, venue="binance-usdm")
    first_diff = next(n for n, r in enumerate(records, start=1) if "depthUpdate" in r.data)
    assert str(err.value) == (
        f"{path}:{first_diff}: BTCUSD_PERP is a Binance COIN-M contract (its diffs carry a 'ps' "
        f"field; sizes are contracts, PnL is inverse), which binance-usdm does not speak; "
        f"bookcast has no COIN-M venue.")
    assert not (tmp_path / "out" / "snapshots").exists()
    # recorded from the COIN-M host: said before any work
    connect = dataclasses.replace(records[0], kind="connect", data=None,
                                  url="wss://dstream.binance.com/stream?streams=btcusd_perp@depth")
    hosted = write(tmp_path / "dstream.jsonl.gz", [connect, *coin_margined(records)])
    with pytest.raises(UserError) as err:
        replay_captures([hosted], tmp_path / "out", INTERVAL, 10, venue="binance-usdm")
    assert str(err.value) == (f"'{hosted}' was recorded from dstream.binance.com: Binance COIN-M "
                              f"futures, which bookcast has no venue for; binance-usdm does not "
                              f"speak it.")


def test_spot_and_futures_captures_under_each_others_venue_are_refused(captures_dir, tmp_path):
    with pytest.raises(UserError, match=r"a Binance spot diff \(it has no 'pu' field\) in a "
                                        r"binance-usdm replay; replay it with --venue "
                                        r"binance-spot\."):
        replay_captures([captures_dir / SPOT], tmp_path / "a", INTERVAL, venue="binance-usdm")
    with pytest.raises(UserError, match=r"a Binance futures diff \(it has a 'pu' field\) in a "
                                        r"binance-spot replay; replay it with --venue "
                                        r"binance-usdm\."):
        replay_captures([captures_dir / USDM], tmp_path / "b", INTERVAL, venue="binance-spot")
