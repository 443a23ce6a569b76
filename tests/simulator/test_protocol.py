"""Every protocol the simulator writes speaks its venue as the real captures do, and
replays with zero gaps through the venue module's own sync rule."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from bookcast.errors import UserError
from collector.capture import iter_capture
from collector.replay import replay_captures
from collector.simulator import PRESETS

from .conftest import replay, simulate

DECIMAL8 = re.compile(r"^\d+\.\d{8}$")
MINUTES = 2
VENUES = ("binance-spot", "binance-usdm", "coinbase-advanced")
REAL = {"binance-spot": "binance-spot/btcusdt_20240808-09.jsonl.gz",
        "binance-usdm": "binance-usdm/btcusdt_20240808.jsonl.gz",
        "coinbase-advanced": "coinbase-advanced/l2_trades_btc_eth_20260809.jsonl.gz"}


def symbols_of(venue: str) -> list[str]:
    return [s for v, s in PRESETS if v == venue]


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> dict[str, list[Path]]:
    """A few simulated minutes of every preset symbol of every venue, one session each."""
    root = tmp_path_factory.mktemp("protocols")
    out: dict[str, list[Path]] = {}
    for venue in VENUES:
        names = symbols_of(venue)
        if venue == "coinbase-advanced":  # one connection carries every product
            out[venue] = [simulate(root, venue, names, "default", MINUTES / 60)]
        else:
            out[venue] = [simulate(root / s, venue, [s], "default", MINUTES / 60)
                          for s in names]
    return out


def shapes(path: Path, limit: int = 5000) -> dict[str, set]:
    """Key sets of each kind of message in a capture (real or simulated alike)."""
    found: dict[str, set] = {}
    for n, rec in enumerate(iter_capture(path)):
        if n > limit:
            break
        if rec.data is None or rec.kind not in ("recv", "http"):
            continue
        msg = orjson.loads(rec.data)
        if rec.kind == "http":
            key = "http"
            body = msg["products"][0] if "products" in msg else msg
        elif "stream" in msg:
            body = msg["data"]
            key = body.get("e", "bookTicker")
        else:
            key = msg["channel"]
            body = msg
            for event in msg["events"]:
                found.setdefault(f"{key}.event", set()).update(event)
                for item in [*event.get("updates", ()), *event.get("trades", ()),
                             *event.get("tickers", ())]:
                    found.setdefault(f"{key}.item", set()).update(item)
        found.setdefault(key, set()).update(body)
    return found


@pytest.mark.parametrize("venue", VENUES)
def test_every_protocol_replays_with_zero_gaps_and_full_books(captures, venue, tmp_path):
    for path in captures[venue]:
        replayed = replay(path, tmp_path / path.stem, interval_ns=1_000_000_000, depth=20)
        states = replayed.states()
        assert {s.symbol for s in states} >= set(symbols_of(venue)) or len(captures[venue]) > 1
        for state in states:
            assert state.gaps == 0 and state.crossed == 0 and state.checksum_failures == 0
            assert state.resyncs == 1  # the initial snapshot only
            assert state.trades > 100
        for market in replayed.markets.values():
            snaps = market.snapshots
            assert snaps.height >= MINUTES * 60 - 2
            assert snaps["gap"].sum() == 1 and snaps["gap"][0]
            assert snaps["bid_px"].list.len().min() == 20 and snaps["ask_px"].list.len().min() == 20
            assert market.tick_size == float(PRESETS[(venue, market.symbol)].tick_size)
        assert replayed.summary.parse_errors == 0 and replayed.summary.malformed == 0


@pytest.mark.parametrize("venue", VENUES)
def test_messages_have_the_real_captures_shape(captures, captures_dir, venue):
    real = shapes(captures_dir / REAL[venue])
    sim = shapes(captures[venue][0])
    for kind, keys in sim.items():
        assert kind in real, f"{venue} writes {kind} messages the real feed has not"
        assert keys <= real[kind], f"{venue} {kind}: {sorted(keys - real[kind])} unknown"
    wanted = {"binance-spot": {"depthUpdate", "trade", "http"},
              "binance-usdm": {"depthUpdate", "trade", "http"},
              "coinbase-advanced": {"l2_data", "market_trades", "ticker", "heartbeats",
                                    "subscriptions", "http"}}[venue]
    assert wanted <= set(sim)
    for kind in wanted:  # nothing the replay needs is left out
        assert real[kind] & sim[kind]


def test_binance_spot_ids_chain_and_the_rest_reply_arrives_after_the_first_diffs(captures):
    records = list(iter_capture(captures["binance-spot"][0]))
    http = [r for r in records if r.kind == "http"]
    assert len(http) == 1
    assert http[0].url == "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=5000"
    reply = orjson.loads(http[0].data)
    assert len(reply["bids"]) >= 100 and len(reply["asks"]) >= 100
    assert all(DECIMAL8.match(p) and DECIMAL8.match(q) for p, q in reply["bids"][:50])
    first_http = records.index(http[0])
    assert any(r.kind == "recv" and "depth" in r.data for r in records[:first_http])
    assert [r.ts_ns for r in records] == sorted(r.ts_ns for r in records)
    prev_u = None
    lags = []
    for r in records:
        if r.kind != "recv":
            continue
        data = orjson.loads(r.data)["data"]
        if data["e"] == "depthUpdate":
            if prev_u is not None:
                assert data["U"] == prev_u + 1
            prev_u = data["u"]
            bids = [float(p) for p, _ in data["b"]]
            assert bids == sorted(bids, reverse=True)
            lags.append((r.ts_ns - data["E"] * 1_000_000) / 1e6)
        else:
            assert data["E"] >= data["T"]
    lags.sort()
    assert 1.0 < lags[len(lags) // 2] < 10.0  # a few ms of network, with a right tail
    assert lags[int(len(lags) * 0.99)] > 1.5 * lags[len(lags) // 2]


def test_binance_usdm_chains_by_pu_only(captures, tmp_path):
    path = captures["binance-usdm"][0]
    prev_u = None
    for r in iter_capture(path):
        if r.kind == "recv" and '"depthUpdate"' in r.data:
            data = orjson.loads(r.data)["data"]
            if prev_u is not None:
                assert data["pu"] == prev_u and data["U"] != prev_u + 1
            prev_u = data["u"]
        if r.kind == "http":
            assert r.url.startswith("https://fapi.binance.com/fapi/v1/depth?symbol=")
            assert {"E", "T"} <= set(orjson.loads(r.data))
    # the spot rule (U == previous u + 1) would break the book at once; replay knows the
    # capture's host, so asking for spot is refused in one sentence instead
    with pytest.raises(UserError, match="binance-usdm"):
        replay_captures([path], tmp_path / "as-spot", venue="binance-spot")
    as_usdm = replay_captures([path], tmp_path / "as-usdm", venue="binance-usdm").streams
    assert as_usdm[0].gaps == 0 and as_usdm[0].snapshots >= MINUTES * 60 - 2


def test_coinbase_sequence_spans_every_channel_and_tickers_match_the_book(captures,
                                                                        tmp_path):
    path = captures["coinbase-advanced"][0]
    seqs, channels = [], set()
    for r in iter_capture(path):
        if r.kind == "recv":
            msg = orjson.loads(r.data)
            seqs.append(msg["sequence_num"])
            channels.add(msg["channel"])
    assert seqs == list(range(len(seqs)))
    assert channels == {"subscriptions", "l2_data", "market_trades", "ticker", "heartbeats"}
    summary = replay_captures([path], tmp_path / "data", interval_ns=1_000_000_000, depth=10)
    check = summary.top_checks["coinbase-advanced"]
    assert check.checked > 500 and check.mismatched == 0, check.examples[:3]
    assert {s.symbol for s in summary.streams} == {"BTC-USD", "ETH-USD"}


@pytest.mark.parametrize("venue", VENUES)
def test_same_seed_gives_identical_files_and_different_seeds_differ(tmp_path, venue):
    from collector.simulator import preset_for, regime_schedule, simulate_session

    symbol = symbols_of(venue)[1]
    schedule = [regime_schedule(preset_for(venue, symbol), "default", 20 / 3600)]
    paths = {}
    for name, seed, suffix in (("a", 1, "zst"), ("b", 1, "zst"), ("c", 2, "zst"),
                               ("d", 1, "gz"), ("e", 1, "gz")):
        # one file name: gzip's header holds it
        paths[name] = tmp_path / name / f"sim.jsonl.{suffix}"
        simulate_session(venue, schedule, 20 / 3600, seed, paths[name])
    assert paths["a"].read_bytes() == paths["b"].read_bytes()
    assert paths["a"].read_bytes() != paths["c"].read_bytes()
    assert paths["d"].read_bytes() == paths["e"].read_bytes()
