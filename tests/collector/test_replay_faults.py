"""Faults edited into a real capture are detected, flagged, and recovered from."""

from __future__ import annotations

import gzip
import logging
import subprocess
import sys
from pathlib import Path

import orjson
import polars as pl
import pytest

from collector.book import format_units
from collector.capture import CaptureWriter, iter_capture
from collector.pipeline import Pipeline
from collector.replay import replay_captures

INTERVAL = 100_000_000
SPOT = "binance-spot/btcusdt_20240808-09.jsonl.gz"


@pytest.fixture(scope="module")
def spot_records(captures_dir):
    return list(iter_capture(captures_dir / SPOT))


def write_capture(path: Path, records) -> Path:
    with CaptureWriter(path) as writer:
        for r in records:
            writer.write(r.ts_ns, r.kind, r.conn, r.data, r.url)
    return path


def depth_indices(records) -> list[int]:
    return [i for i, r in enumerate(records) if r.kind == "recv" and "@depth" in r.data[:40]]


def rest_snapshot_at(records, upto: int):
    """The exact book after record `upto`, as Binance's REST depth reply would give it."""
    pipeline = Pipeline("binance-spot", "/nonexistent-never-written", INTERVAL)
    for rec in records[: upto + 1]:
        pipeline.venue.on_record(rec)  # books only: no sampling, nothing written
    state = pipeline.state("BTCUSDT")
    reply = {"lastUpdateId": state.seq,
             "bids": [[format_units(p, 8), format_units(q, 8)] for p, q in state.book.bids()],
             "asks": [[format_units(p, 8), format_units(q, 8)] for p, q in state.book.asks()]}
    return orjson.dumps(reply).decode()


def rows(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path / "snapshots", hive_partitioning=True).sort("ts")


def test_a_removed_diff_is_a_flagged_gap_and_the_book_is_exact_again_after_resync(
        spot_records, tmp_path):
    depth = depth_indices(spot_records)
    removed, resync_at = depth[2000], depth[2100]
    snapshot = rest_snapshot_at(spot_records, resync_at)
    edited = [r for i, r in enumerate(spot_records) if i != removed]
    insert_pos = resync_at  # after the original record resync_at (one record was removed)
    resync_ts = spot_records[resync_at].ts_ns
    http = type(spot_records[0])(resync_ts, "http", "binance-spot.ws.http", snapshot,
                                 "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=5000")
    edited.insert(insert_pos, http)
    original = replay_captures([write_capture(tmp_path / "orig.jsonl.gz", spot_records)],
                               tmp_path / "a", INTERVAL)
    faulty = replay_captures([write_capture(tmp_path / "edited.jsonl.gz", edited)],
                             tmp_path / "b", INTERVAL)
    assert original.streams[0].gaps == 0
    stream = faulty.streams[0]
    assert stream.gaps == 1 and stream.resyncs == 2

    a, b = rows(tmp_path / "a"), rows(tmp_path / "b")
    last_verified_ts = spot_records[depth[1999]].ts_ns
    ts_b = b["ts"].dt.epoch("ns")
    # nothing is written for a moment after the last diff that the sequence vouches for:
    # the rows between it and the lost diff are as suspect as those after it
    assert ts_b.filter((ts_b >= last_verified_ts) & (ts_b < resync_ts)).len() == 0
    assert ts_b.filter(ts_b < last_verified_ts).len() > 0
    after = b.filter(pl.col("ts").dt.epoch("ns") >= resync_ts)
    assert after["gap"][0] is True and after["gap"][1:].sum() == 0
    cols = ["ts", "seq", "bid_px", "bid_sz", "ask_px", "ask_sz"]
    expected = a.filter(pl.col("ts").dt.epoch("ns") >= resync_ts).select(cols)
    assert after.select(cols).equals(expected)
    # before the last verified diff, both replays agree row for row
    assert b.filter(pl.col("ts").dt.epoch("ns") < last_verified_ts).select(cols).equals(
        a.filter(pl.col("ts").dt.epoch("ns") < last_verified_ts).select(cols))


def test_a_garbled_diff_is_counted_and_becomes_a_gap(spot_records, tmp_path):
    depth = depth_indices(spot_records)
    edited = list(spot_records)
    victim = edited[depth[500]]
    edited[depth[500]] = type(victim)(victim.ts_ns, "recv", victim.conn,
                                      victim.data[:60] + "#garbled#")
    summary = replay_captures([write_capture(tmp_path / "g.jsonl.gz", edited)], tmp_path / "o",
                              INTERVAL)
    assert summary.parse_errors == 1
    assert summary.streams[0].gaps == 1  # the next diff does not continue the book
    # no REST snapshot follows, so the book stays invalid: no rows after the gap
    last_row_ts = rows(tmp_path / "o")["ts"].dt.epoch("ns").max()
    assert last_row_ts < spot_records[depth[501]].ts_ns


def test_a_malformed_line_is_counted_and_skipped_with_one_warning_naming_file_and_line(
        spot_records, tmp_path, caplog):
    path = tmp_path / "malformed.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        for n, rec in enumerate(spot_records[:3000], start=1):
            if n == 10:
                fh.write(b'{"ts_ns": 1, "kind": "recv", "conn": \n')
            fh.write(orjson.dumps({"ts_ns": rec.ts_ns, "kind": rec.kind, "conn": rec.conn,
                                   "url": rec.url, "data": rec.data}) + b"\n")
    with caplog.at_level(logging.WARNING):
        summary = replay_captures([path], tmp_path / "out", INTERVAL)
    assert summary.malformed == 1
    warnings = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert warnings == [f"skipped malformed capture line {path}:10"]
    assert summary.streams[0].gaps == 0


def bookcast(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bookcast", *args], capture_output=True,
                          text=True, timeout=120)


def assert_one_sentence_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr  # one sentence, no traceback
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bad_inputs_end_in_one_clear_sentence_and_keep_what_was_written(
        captures_dir, spot_records, tmp_path):
    data = tmp_path / "data"
    good = captures_dir / "binance-usdm" / "ethusdt_20240808.jsonl.gz"
    assert bookcast("replay", str(good), "--data-dir", str(data), "-q").returncode == 0
    before = {p: p.read_bytes() for p in data.rglob("*.parquet")}
    assert before

    missing = tmp_path / "nope.jsonl.gz"
    assert_one_sentence_error(bookcast("replay", str(missing), "--data-dir", str(data)),
                              str(missing), "does not exist")
    assert_one_sentence_error(bookcast("replay", str(good), "--venue", "mtgox",
                                       "--data-dir", str(data)), "Unknown venue 'mtgox'")

    no_snapshot = write_capture(tmp_path / "nosnap.jsonl.gz",
                                [r for r in spot_records[:5000] if r.kind != "http"])
    assert_one_sentence_error(bookcast("replay", str(no_snapshot), "--data-dir", str(data)),
                              str(no_snapshot), "no depth snapshot")

    truncated = tmp_path / "truncated.jsonl.gz"
    truncated.write_bytes(good.read_bytes()[:200_000])
    assert_one_sentence_error(bookcast("replay", str(truncated), "--data-dir", str(data)),
                              str(truncated), "corrupt or truncated")

    empty = tmp_path / "empty.jsonl.gz"
    empty.write_bytes(b"")
    assert_one_sentence_error(bookcast("replay", str(empty), "--data-dir", str(data)),
                              str(empty), "is empty")

    assert_one_sentence_error(bookcast("replay", str(good), "--interval", "fast",
                                       "--data-dir", str(data)), "'fast'")
    assert_one_sentence_error(bookcast("inspect", str(tmp_path / "absent")), "does not exist")
    # nothing already written was lost or changed (the trades of the snapshot-less capture
    # are still real trades and are kept beside them)
    assert all(path.read_bytes() == content for path, content in before.items())
