"""Coinbase Exchange (legacy) level2 + matches + ticker, replayed from the real capture."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from collector.book import format_units, parse_units
from collector.capture import CaptureWriter, iter_capture, merge_captures
from collector.pipeline import Pipeline
from collector.replay import replay_pipeline
from collector.venues.coinbase_exchange import CoinbaseExchange, parse_rfc3339_ns

INTERVAL_NS = 100_000_000
LEVEL2 = "coinbase-exchange/level2_10products_20210417.jsonl.gz"
PRODUCTS = "coinbase-exchange/products_20210417.jsonl.gz"


def replay(paths: list[Path], root: Path, **kwargs: Any) -> Pipeline:
    return replay_pipeline("coinbase-exchange", paths, root, INTERVAL_NS, **kwargs)


@pytest.fixture(scope="module")
def replayed(captures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return replay([captures_dir / PRODUCTS, captures_dir / LEVEL2],
                  tmp_path_factory.mktemp("coinbase-exchange"))


def test_coinbase_exchange_books_stay_valid_and_never_cross(replayed: Pipeline) -> None:
    assert isinstance(replayed.venue, CoinbaseExchange)
    states = {s.symbol: s for s in replayed.states()}
    assert len(states) == 10
    assert sum(s.level_updates for s in states.values()) == 9719  # every l2update applied
    for state in states.values():
        assert (state.crossed, state.resyncs, state.valid) == (0, 1, True)
        assert state.tick_size_source == "products REST reply"
    assert states["SKL-BTC"].tick_size == 1e-08 and states["NMR-EUR"].tick_size == 0.0001
    assert replayed.parse_errors == 0


def test_coinbase_exchange_rows_are_readable(replayed: Pipeline) -> None:
    rows = pl.read_parquet(replayed.root / "snapshots" / "**" / "*.parquet",
                           hive_partitioning=True)
    assert rows.height == replayed.rows_written > 2000
    best = rows.select(pl.col("bid_px").list.first().alias("bid"),
                       pl.col("ask_px").list.first().alias("ask"))
    assert (best["bid"] < best["ask"]).all()
    assert rows.group_by("symbol").agg(pl.col("gap").sum())["gap"].to_list() == [1] * 10
    assert rows["seq"].null_count() == rows.height  # level2 carries no sequence numbers
    assert rows["ts_event"].null_count() > 0  # a snapshot has no exchange time


def test_match_side_is_the_maker_side(captures_dir: Path, tmp_path: Path) -> None:
    """Matches at the best ask are buyer-initiated (+1); `side` names the maker."""
    pipeline = Pipeline("coinbase-exchange", tmp_path, interval_ns=INTERVAL_NS)
    at_touch: dict[str, str] = {}
    for rec in merge_captures([captures_dir / PRODUCTS, captures_dir / LEVEL2]):
        msg = orjson.loads(rec.data) if rec.kind == "recv" else {}
        if msg.get("type") == "match":
            state = pipeline.state(msg["product_id"])
            price = parse_units(msg["price"])
            if state.valid and price == state.book.best_ask()[0]:
                at_touch[str(msg["trade_id"])] = "ask"
            elif state.valid and price == state.book.best_bid()[0]:
                at_touch[str(msg["trade_id"])] = "bid"
        pipeline.feed(rec)
    pipeline.finish()
    trades = pl.read_parquet(tmp_path / "trades" / "**" / "*.parquet", hive_partitioning=True)
    assert trades.height == 107  # 97 matches + the 10 last_match sent on subscription
    sides = dict(zip(trades["trade_id"], trades["side"], strict=True))
    seen = Counter((where, sides[tid]) for tid, where in at_touch.items())
    assert seen == {("ask", 1): 36, ("bid", -1): 24}  # never the other way round


def test_ticker_agrees_with_the_book_where_comparable(captures_dir: Path, tmp_path: Path) -> None:
    """The ticker's best bid/ask against the rebuilt book at the ticker's arrival.

    Comparable means: the book is synchronised, has applied at least one l2update
    since its snapshot (a snapshot has no exchange time), and the ticker's `time`
    (its match) is at or after the `time` of the last l2update applied, so the
    book holds every change up to the match. 97 of the 107 tickers qualify (the
    other 10 are the subscription-time tickers of old matches, older than the
    snapshot) and all 97 agree.
    """
    pipeline = Pipeline("coinbase-exchange", tmp_path, interval_ns=INTERVAL_NS)
    outcome: Counter[bool] = Counter()
    for rec in merge_captures([captures_dir / PRODUCTS, captures_dir / LEVEL2]):
        pipeline.feed(rec)
        msg = orjson.loads(rec.data) if rec.kind == "recv" else {}
        if msg.get("type") != "ticker":
            continue
        state = pipeline.state(msg["product_id"])
        if not state.valid or state.ts_event is None:
            continue
        if parse_rfc3339_ns(msg["time"]) < state.ts_event:
            continue
        want = (parse_units(msg["best_bid"]), parse_units(msg["best_ask"]))
        outcome[(state.book.best_bid()[0], state.book.best_ask()[0]) == want] += 1
    pipeline.finish()
    assert outcome == {True: 97}
    assert pipeline.venue.tickers_seen == 107 and pipeline.venue.tickers_compared == 97


def test_crossed_update_invalidates_only_that_product(captures_dir: Path, tmp_path: Path) -> None:
    """Without sequence numbers the crossed-book guard is what catches a broken book.

    One SKL-USD l2update is edited into a bid above the best ask: SKL-USD goes
    invalid and a resubscription is requested; a later snapshot (built from the
    correctly kept book) resynchronises it, its next row has gap = true and its
    final book equals the unedited replay's. The other nine products are untouched.
    """
    product = "SKL-USD"
    records = list(iter_capture(captures_dir / LEVEL2))
    updates = [i for i, r in enumerate(records) if r.kind == "recv"
               and '"l2update"' in r.data and f'"{product}"' in r.data]
    broken, resnap_after = updates[500], updates[600]

    reference = Pipeline("coinbase-exchange", tmp_path / "reference", interval_ns=INTERVAL_NS)
    for rec in records[:resnap_after + 1]:
        reference.feed(rec)
    book = reference.state(product).book
    snapshot = {"type": "snapshot", "product_id": product,
                "bids": [[format_units(p, 10), format_units(q, 10)] for p, q in book.bids()],
                "asks": [[format_units(p, 10), format_units(q, 10)] for p, q in book.asks()]}

    edited = tmp_path / "edited.jsonl.gz"
    with CaptureWriter(edited) as out:
        for i, rec in enumerate(records):
            data = rec.data
            if i == broken:
                data = orjson.dumps(dict(orjson.loads(data), changes=[["buy", "9.0", "1"]])).decode()
            out.write(rec.ts_ns, rec.kind, rec.conn, data, rec.url)
            if i == resnap_after:
                out.write(rec.ts_ns + 1, "recv", rec.conn, orjson.dumps(snapshot).decode())

    requested: list[str] = []
    pipeline = replay([captures_dir / PRODUCTS, edited], tmp_path / "data",
                      on_snapshot_request=lambda s: requested.append(s.symbol))
    full = replay([captures_dir / PRODUCTS, captures_dir / LEVEL2], tmp_path / "full")
    state = pipeline.state(product)
    assert requested == [product]
    assert (state.crossed, state.resyncs, state.valid) == (1, 2, True)
    assert state.book.bids() == full.state(product).book.bids()
    assert state.book.asks() == full.state(product).book.asks()
    assert pipeline.parse_errors == 0

    def rows(root: Path, symbol: str | None = None) -> pl.DataFrame:
        frame = pl.read_parquet(root / "snapshots" / "**" / "*.parquet", hive_partitioning=True)
        frame = frame.with_columns(pl.col("ts").dt.epoch("ns")).sort("symbol", "ts")
        if symbol is None:
            return frame.filter(pl.col("symbol") != product)
        return frame.filter(pl.col("symbol") == symbol)

    assert rows(tmp_path / "data").equals(rows(tmp_path / "full"))
    mine = rows(tmp_path / "data", product)
    t_broken, t_snap = records[broken].ts_ns, records[resnap_after].ts_ns + 1
    assert mine.filter(pl.col("ts") <= t_broken).height > 0
    assert mine.filter((pl.col("ts") > t_broken) & (pl.col("ts") < t_snap)).height == 0
    after = mine.filter(pl.col("ts") >= t_snap)
    assert after.height > 0 and after["gap"][0] is True and not after["gap"][1:].any()


def test_malformed_coinbase_exchange_messages_are_counted_not_raised(tmp_path: Path) -> None:
    from collector.capture import CaptureRecord

    pipeline = Pipeline("coinbase-exchange", tmp_path, interval_ns=INTERVAL_NS)
    bad = ["{oops", "[]", '{"type": "snapshot", "product_id": "A-B", "bids": [["1", "x"]]}',
           '{"type": "match", "product_id": "A-B", "trade_id": 1, "side": "buy", '
           '"price": "1", "size": "1", "time": "yesterday"}']
    for i, data in enumerate(bad):
        pipeline.feed(CaptureRecord(i + 1, "recv", "coinbase-exchange.ws", data))
    assert pipeline.parse_errors == 4
