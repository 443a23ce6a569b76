"""A REST snapshot newer than every buffered diff is joined by the next live diff."""

from __future__ import annotations

import orjson
import pytest

from collector.capture import CaptureRecord
from collector.pipeline import Pipeline

SNAPSHOT_URL = "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=5000"


def diff(venue: str, first: int, last: int, prev: int | None, bid: str) -> CaptureRecord:
    payload = {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": first, "u": last,
               "b": [[bid, "1.00000000"]], "a": [["101.00000000", "1.00000000"]]}
    if venue == "binance-usdm":
        payload["pu"] = prev
    data = orjson.dumps({"stream": "btcusdt@depth", "data": payload}).decode()
    return CaptureRecord(last, "recv", f"{venue}.ws", data)


def snapshot(last_update_id: int) -> CaptureRecord:
    reply = {"lastUpdateId": last_update_id, "bids": [["99.00000000", "2.00000000"]],
             "asks": [["101.00000000", "2.00000000"]]}
    return CaptureRecord(last_update_id, "http", "rest", orjson.dumps(reply).decode(),
                         SNAPSHOT_URL)


@pytest.mark.parametrize("venue", ["binance-spot", "binance-usdm"])
def test_the_first_live_diff_after_a_newer_snapshot_must_join_it(venue, tmp_path):
    pipeline = Pipeline(venue, tmp_path)
    L = 1000
    pipeline.feed(diff(venue, 990, 995, 989, "98.00000000"))  # buffered, older than L
    pipeline.feed(snapshot(L))
    state = pipeline.state("BTCUSDT")
    assert state.valid and state.seq == L
    pipeline.feed(diff(venue, 996, 999, 995, "98.10000000"))  # still older: dropped
    assert state.seq == L and state.gaps == 0
    pipeline.feed(diff(venue, 1000, 1005, 999, "98.20000000"))  # spans L+1 (and L): joins
    assert state.gaps == 0 and state.seq == 1005
    pipeline.feed(diff(venue, 1006, 1008, 1005, "98.30000000"))  # continues
    assert state.gaps == 0 and state.seq == 1008
    pipeline.feed(diff(venue, 1010, 1012, 1009, "98.40000000"))  # 1009 is missing
    assert state.gaps == 1 and not state.valid


@pytest.mark.parametrize("venue", ["binance-spot", "binance-usdm"])
def test_a_live_diff_that_starts_after_a_newer_snapshot_is_a_gap(venue, tmp_path):
    pipeline = Pipeline(venue, tmp_path)
    pipeline.feed(diff(venue, 990, 995, 989, "98.00000000"))
    pipeline.feed(snapshot(1000))
    pipeline.feed(diff(venue, 1003, 1005, 1002, "98.20000000"))  # 1001..1002 never seen
    state = pipeline.state("BTCUSDT")
    assert state.gaps == 1 and not state.valid
