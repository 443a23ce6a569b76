"""An exported file loads in hftbacktest (2.4.4, from PyPI, in its own environment), and
hftbacktest's book shows bookcast's best bid and ask at every snapshot time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from bookcast.errors import UserError
from collector.exporters.hftbacktest import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EVENT_DTYPE,
    EXCH_EVENT,
    LOCAL_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
    export_hftbacktest,
)
from collector.replay import replay_captures

ROOT = Path(__file__).resolve().parents[2]
HFT_PYTHON = ROOT / ".venv-hftbacktest" / "bin" / "python"
PROBE = Path(__file__).with_name("hftbacktest_probe.py")
INTERVAL = 100_000_000
CAPTURES = {"binance-spot": "binance-spot/btcusdt_20240808-09.jsonl.gz",
            "binance-usdm": "binance-usdm/btcusdt_20240808.jsonl.gz"}


@pytest.fixture(scope="module")
def round_trips(captures_dir, tmp_path_factory):
    """Each capture replayed (1 level, 100 ms) and exported, and every exported file loaded
    by hftbacktest (one run of its environment for both, to pay its JIT once)."""
    if not HFT_PYTHON.exists():
        pytest.fail(f"hftbacktest's environment is missing: run `make .venv-hftbacktest/"
                    f".installed` (expected {HFT_PYTHON})")
    tmp = tmp_path_factory.mktemp("hftbacktest")
    out, jobs = {}, []
    for venue, name in sorted(CAPTURES.items()):
        capture = captures_dir / name
        replay_captures([capture], tmp / venue, INTERVAL, 1)
        rows = pl.read_parquet(tmp / venue / "snapshots").sort("ts")
        events = tmp / f"{venue}.npz"
        summary = export_hftbacktest(events, venue, "BTCUSDT", captures=[capture],
                                     base_latency_ns=1_000_000)
        np.save(tmp / f"{venue}-times.npy", rows["ts"].dt.epoch("ns").to_numpy())
        jobs.append({"events": str(events), "times": str(tmp / f"{venue}-times.npy"),
                     "tick": summary.tick_size, "lot": summary.lot_size,
                     "out": str(tmp / f"{venue}-book.npy")})
        out[venue] = (rows, summary, tmp / f"{venue}-book.npy")
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    subprocess.run([str(HFT_PYTHON), str(PROBE), str(tmp / "jobs.json")], check=True,
                   timeout=600, capture_output=True, cwd=tmp)
    return out


@pytest.mark.parametrize("venue", sorted(CAPTURES))
def test_hftbacktest_shows_bookcasts_best_bid_and_ask_at_every_snapshot(venue, round_trips):
    rows, summary, book_file = round_trips[venue]
    assert summary.tick_size == {"binance-spot": 0.01, "binance-usdm": 0.1}[venue]
    book = np.load(book_file)
    tick = summary.tick_size
    ticks = lambda px: np.round(np.asarray(px) / tick).astype(np.int64)  # noqa: E731
    assert len(book) == rows.height > 3000
    assert (ticks(book[:, 0]) == ticks(rows["bid_px"].list.first())).all()
    assert (ticks(book[:, 1]) == ticks(rows["ask_px"].list.first())).all()
    assert (book[:, 2] == rows["bid_sz"].list.first().to_numpy()).all()
    assert (book[:, 3] == rows["ask_sz"].list.first().to_numpy()).all()


def test_the_file_follows_hftbacktests_documented_layout_and_order(round_trips):
    _, summary, _ = round_trips["binance-usdm"]
    with np.load(summary.path) as npz:
        data = npz["data"]
        meta = json.loads(str(npz["bookcast_meta"]))
        shift = int(npz["bookcast_exch_shift_ns"])
    assert data.dtype == EVENT_DTYPE and data.dtype.itemsize == 64
    kinds, ev = data["ev"] & 0xFF, data["ev"]
    assert set(np.unique(kinds)) == {DEPTH_EVENT, TRADE_EVENT, DEPTH_CLEAR_EVENT,
                                     DEPTH_SNAPSHOT_EVENT}
    exch, local = (ev & EXCH_EVENT) != 0, (ev & LOCAL_EVENT) != 0
    assert (exch | local).all()
    assert (np.diff(data["exch_ts"][exch]) >= 0).all()  # what validate_event_order checks
    assert (np.diff(data["local_ts"][local]) >= 0).all()
    latency = data["local_ts"] - data["exch_ts"]
    assert latency.min() == 1_000_000  # the least latency is the base latency asked for
    # the capture's clock ran behind the venue's: exchange times were moved back
    assert shift == summary.exch_shift_ns > 1_000_000_000
    sides = ev & (BUY_EVENT | SELL_EVENT)
    levels = (kinds == DEPTH_EVENT) | (kinds == DEPTH_SNAPSHOT_EVENT) | (kinds == TRADE_EVENT)
    assert ((sides == BUY_EVENT) | (sides == SELL_EVENT))[levels].all()
    assert (sides[kinds == DEPTH_CLEAR_EVENT] == 0).all()  # a clear of both sides
    # one clear and one snapshot: the only synchronisation of this gapless capture
    local_kinds = kinds[local]
    assert (local_kinds == DEPTH_CLEAR_EVENT).sum() == 1
    first_snapshot = np.flatnonzero(local_kinds == DEPTH_SNAPSHOT_EVENT)
    assert local_kinds[first_snapshot[0] - 1] == DEPTH_CLEAR_EVENT
    assert meta["tick_size"] == summary.tick_size and meta["venue"] == "binance-usdm"
    assert summary.trades == 21_313 and summary.gaps == 0


def test_from_a_data_root_with_from_and_to(captures_dir, tmp_path):
    raw = tmp_path / "data" / "raw" / "venue=binance-spot" / "date=2024-08-08"
    raw.mkdir(parents=True)
    (raw / "capture-1.jsonl.gz").symlink_to(captures_dir / CAPTURES["binance-spot"])
    start, end = 1_723_161_400_000_000_000, 1_723_161_500_000_000_000
    proc = subprocess.run([sys.executable, "-m", "bookcast", "export", "hftbacktest",
                           "--data-dir", str(tmp_path / "data"), "--venue", "binance-spot",
                           "--symbol", "BTCUSDT", "--out", str(tmp_path / "w.npz"),
                           "--from", "2024-08-08T23:56:40", "--to", "2024-08-08T23:58:20"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "tick_size 0.01" in proc.stdout
    with np.load(tmp_path / "w.npz") as npz:
        data = npz["data"]
    local = data[(data["ev"] & LOCAL_EVENT) != 0]
    assert local["local_ts"].min() == start and local["local_ts"].max() <= end
    # the file opens with the book as it stood at --from
    assert local["ev"][0] & 0xFF == DEPTH_CLEAR_EVENT
    assert (local["ev"][1:2001] & 0xFF == DEPTH_SNAPSHOT_EVENT).all()
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_export_requests_end_in_one_sentence(captures_dir, tmp_path):
    capture = [captures_dir / CAPTURES["binance-spot"]]
    with pytest.raises(UserError, match="Unknown venue 'binance-x'"):
        export_hftbacktest(tmp_path / "a.npz", "binance-x", "BTCUSDT", captures=capture)
    with pytest.raises(UserError, match=r"must end in \.npz"):
        export_hftbacktest(tmp_path / "a.csv", "binance-spot", "BTCUSDT", captures=capture)
    with pytest.raises(UserError, match="holds no raw captures of binance-spot"):
        export_hftbacktest(tmp_path / "a.npz", "binance-spot", "BTCUSDT", data_dir=tmp_path)
    with pytest.raises(UserError, match="hold no ETHUSDT messages for binance-spot"):
        export_hftbacktest(tmp_path / "a.npz", "binance-spot", "ETHUSDT", captures=capture)
    assert not list(tmp_path.iterdir())
