"""Playing captures in time: every loop's records, at --speed times their pace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import orjson

from collector.capture import CaptureRecord, merge_captures

ID_SHIFT = 10**12  # each further loop of a capture lives this far up the id space


def timeline(captures: list[Path], loops: int) -> Iterator[tuple[CaptureRecord, float]]:
    """Records of every loop with their offset in capture seconds from the start.

    Loops after the first move every Binance update id up by ID_SHIFT, so the join
    between loops is a sequence gap the client must resynchronise across, as it would be.
    """
    first_ts: int | None = None
    span_ns = 0
    for loop_no in range(max(1, loops)):
        last_ts = first_ts or 0
        for rec in merge_captures(captures):
            if first_ts is None:
                first_ts = rec.ts_ns
            last_ts = max(last_ts, rec.ts_ns)
            if loop_no:
                rec = shift_binance_record(rec, loop_no * ID_SHIFT)
            yield rec, (rec.ts_ns - first_ts + loop_no * span_ns) / 1e9
        span_ns = last_ts - (first_ts or 0) + 1_000_000_000


async def paced(records: Iterator[tuple[CaptureRecord, float]],
                speed: float) -> AsyncIterator[CaptureRecord]:
    """Yield records at `speed` times their recorded pace (0: as fast as possible)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    for n, (rec, offset) in enumerate(records):
        if speed > 0:
            delay = started + offset / speed - loop.time()
            if delay > 0.0005:
                await asyncio.sleep(delay)
        elif not n & 0xFF:
            await asyncio.sleep(0)
        yield rec


def shift_binance_record(rec: CaptureRecord, shift: int) -> CaptureRecord:
    """A later loop's copy of a record: update ids moved up by `shift`."""
    if rec.data is None or rec.kind not in ("recv", "http") or ('"u' not in rec.data \
            and "lastUpdateId" not in rec.data):
        return rec
    try:
        obj = orjson.loads(rec.data)
    except orjson.JSONDecodeError:
        return rec
    payload = obj.get("data", obj) if isinstance(obj, dict) else None
    if not isinstance(payload, dict):
        return rec
    for key in ("U", "u", "pu", "lastUpdateId"):
        if isinstance(payload.get(key), int):
            payload[key] += shift
    return replace(rec, data=orjson.dumps(obj).decode())
