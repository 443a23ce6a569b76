"""The simulated capture speaks Binance spot exactly as the real capture does."""

from __future__ import annotations

import gzip
import re

import orjson

from collector.capture import iter_capture
from collector.simulator import preset_for, simulate_symbol

DECIMAL8 = re.compile(r"^\d+\.\d{8}$")


def test_capture_records_have_the_real_binance_spot_shape(simulated_btc):
    records = list(iter_capture(simulated_btc.capture))
    http = [r for r in records if r.kind == "http"]
    assert len(http) == 1
    assert http[0].url == "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=5000"
    reply = orjson.loads(http[0].data)
    assert set(reply) == {"lastUpdateId", "bids", "asks"}
    assert len(reply["bids"]) >= 100 and len(reply["asks"]) >= 100
    assert all(DECIMAL8.match(p) and DECIMAL8.match(q) for p, q in reply["bids"][:50])

    ws = [r for r in records if r.kind == "recv"]
    assert {r.conn for r in ws} == {"binance-spot.ws"}
    first_http = records.index(http[0])
    assert any(r.kind == "recv" and "depth" in r.data for r in records[:first_http]), \
        "a few diffs arrive before the REST reply, as in the real feed"
    ts = [r.ts_ns for r in records]
    assert ts == sorted(ts)

    prev_u = None
    deletes = sides = 0
    trade_sides = set()
    for r in ws:
        msg = orjson.loads(r.data)
        data = msg["data"]
        if msg["stream"] == "btcusdt@depth@100ms":
            assert data["e"] == "depthUpdate" and data["s"] == "BTCUSDT"
            if prev_u is not None:
                assert data["U"] == prev_u + 1
            prev_u = data["u"]
            assert data["U"] <= data["u"]
            bids = [float(p) for p, _ in data["b"]]
            asks = [float(p) for p, _ in data["a"]]
            assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
            for p, q in data["b"] + data["a"]:
                assert DECIMAL8.match(p) and DECIMAL8.match(q)
                deletes += q == "0.00000000"
                sides += 1
            # receive time = exchange event time + a few ms of network latency
            assert 0 <= r.ts_ns - data["E"] * 1_000_000 < 2_000_000_000
        else:
            assert msg["stream"] == "btcusdt@trade"
            assert set(data) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
            assert data["E"] >= data["T"]
            trade_sides.add(data["m"])
    assert deletes > 0 and sides > deletes
    assert trade_sides == {True, False}


def test_receive_latency_is_a_few_ms_with_a_right_tail(simulated_btc):
    lags = []
    for r in iter_capture(simulated_btc.capture):
        if r.kind == "recv" and '"depthUpdate"' in r.data:
            lags.append((r.ts_ns - orjson.loads(r.data)["data"]["E"] * 1_000_000) / 1e6)
    lags.sort()
    median = lags[len(lags) // 2]
    assert 1.0 < median < 10.0
    assert lags[int(len(lags) * 0.99)] > 1.5 * median


def test_same_seed_gives_identical_files_and_different_seeds_differ(tmp_path):
    preset = preset_for("binance-spot", "ETHUSDT")
    paths = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        paths[name] = tmp_path / f"{name}.jsonl.zst"
        simulate_symbol(preset, 20 / 3600, seed, paths[name])
    assert paths["a"].read_bytes() == paths["b"].read_bytes()
    assert paths["a"].read_bytes() != paths["c"].read_bytes()
    gz = [tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"]
    for p in gz:
        simulate_symbol(preset, 20 / 3600, 1, p)
    assert gzip.decompress(gz[0].read_bytes()) == gzip.decompress(gz[1].read_bytes())
