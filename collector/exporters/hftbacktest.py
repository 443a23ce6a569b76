"""`bookcast export hftbacktest`: raw captures -> hftbacktest's event file (.npz).

hftbacktest (https://hftbacktest.readthedocs.io/en/latest/data.html) reads a NumPy
structured array named `data` in an .npz, one row per event:

    ev u64 | exch_ts i64 | local_ts i64 | px f64 | qty f64 | order_id u64 | ival i64 | fval f64

`ev` is a kind (DEPTH_EVENT 1, TRADE_EVENT 2, DEPTH_CLEAR_EVENT 3, DEPTH_SNAPSHOT_EVENT 4)
with flags: BUY_EVENT (1 << 29: a bid level, or a trade whose buyer was the aggressor),
SELL_EVENT (1 << 28), and EXCH_EVENT (1 << 31) / LOCAL_EVENT (1 << 30) saying which of
hftbacktest's two processors (the exchange's, in exch_ts order, and the strategy's, in
local_ts order) reads the row.

The capture goes through the venue module and the same book as replay; every change the
book makes becomes an event, so hftbacktest's book equals bookcast's at every receive
time:
- a (re)synchronisation: DEPTH_CLEAR (both sides), then a DEPTH_SNAPSHOT per level; the
  buffered diffs applied with it follow as depth events;
- an invalidated book (a gap, a crossed book, a reconnection): DEPTH_CLEAR, so hftbacktest
  shows no book while bookcast writes no rows;
- a level set or deleted: DEPTH_EVENT (qty 0 deletes); a trade: TRADE_EVENT.

Timestamps: local_ts is bookcast's receive time, exactly (the snapshots' clock). exch_ts is
the venue's event time; hftbacktest needs it before local_ts (a positive feed latency),
and a recording machine whose clock ran behind the venue's gives negative latencies, so
every exch_ts is moved back by the largest negative latency plus `base_latency`, one
offset for the whole file (recorded in the file as `bookcast_exch_shift_ns`). Events
whose exch_ts and local_ts orders disagree are split into an EXCH_EVENT and a LOCAL_EVENT
row, as hftbacktest's own `correct_event_order` does.
"""

from __future__ import annotations

import json
import math
import os
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bookcast.errors import UserError
from collector.book import UNIT, OrderBook
from collector.capture import CaptureRecord, merge_captures
from collector.pipeline import Pipeline
from collector.state import SymbolState

# hftbacktest's documented event layout and flags (hftbacktest.types, 2.4.4)
EVENT_DTYPE = np.dtype([("ev", "u8"), ("exch_ts", "i8"), ("local_ts", "i8"), ("px", "f8"),
                        ("qty", "f8"), ("order_id", "u8"), ("ival", "i8"), ("fval", "f8")],
                       align=True)
DEPTH_EVENT = 1
TRADE_EVENT = 2
DEPTH_CLEAR_EVENT = 3
DEPTH_SNAPSHOT_EVENT = 4
EXCH_EVENT = 1 << 31
LOCAL_EVENT = 1 << 30
BUY_EVENT = 1 << 29
SELL_EVENT = 1 << 28

_PENDING = -1  # a book event's times, filled in when its record has been applied


class EventLog:
    """Events in compact arrays (kind with side flags, times, price, quantity)."""

    def __init__(self) -> None:
        self.ev = array("Q")
        self.exch_ts = array("q")
        self.local_ts = array("q")
        self.px = array("d")
        self.qty = array("d")
        self.price_gcd = 0  # in book units: the tick that divides every price
        self.size_gcd = 0  # the lot that divides every size
        self._stamped = 0

    def __len__(self) -> int:
        return len(self.ev)

    def level(self, kind: int, side: int, price: int, size: int) -> None:
        self.ev.append(kind | side)
        self.exch_ts.append(_PENDING)
        self.local_ts.append(_PENDING)
        self.px.append(price / UNIT)
        self.qty.append(size / UNIT)
        self.price_gcd = math.gcd(self.price_gcd, price)
        if size:
            self.size_gcd = math.gcd(self.size_gcd, size)

    def clear(self) -> None:
        """Both sides cleared (a clear with no side flag; its price is not read)."""
        self.ev.append(DEPTH_CLEAR_EVENT)
        self.exch_ts.append(_PENDING)
        self.local_ts.append(_PENDING)
        self.px.append(0.0)
        self.qty.append(0.0)

    def restart(self) -> None:
        """Forget the events so far (those before --from); the tick and lot stay known."""
        for column in (self.ev, self.exch_ts, self.local_ts, self.px, self.qty):
            del column[:]
        self._stamped = 0

    def trade(self, exch_ts: int, local_ts: int, price: float, size: float, side: int) -> None:
        self.ev.append(TRADE_EVENT | (BUY_EVENT if side > 0 else SELL_EVENT))
        self.exch_ts.append(exch_ts)
        self.local_ts.append(local_ts)
        self.px.append(price)
        self.qty.append(size)

    def stamp(self, local_ts: int, exch_ts: int) -> None:
        """Give the book events of the record just applied its receive time and the venue
        time of the book's last update."""
        for k in range(self._stamped, len(self.ev)):
            if self.local_ts[k] == _PENDING:
                self.local_ts[k] = local_ts
                self.exch_ts[k] = exch_ts
        self._stamped = len(self.ev)


class RecordingBook(OrderBook):
    """The collector's book, logging every change it makes as an hftbacktest event."""

    __slots__ = ("log",)

    def __init__(self, log: EventLog) -> None:
        super().__init__()
        self.log = log

    def set_bid(self, price: int, size: int) -> None:
        super().set_bid(price, size)
        self.log.level(DEPTH_EVENT, BUY_EVENT, price, size)

    def set_ask(self, price: int, size: int) -> None:
        super().set_ask(price, size)
        self.log.level(DEPTH_EVENT, SELL_EVENT, price, size)

    def load(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        super().load(bids, asks)
        log = self.log
        log.clear()
        for price, size in self.bids():
            log.level(DEPTH_SNAPSHOT_EVENT, BUY_EVENT, price, size)
        for price, size in self.asks():
            log.level(DEPTH_SNAPSHOT_EVENT, SELL_EVENT, price, size)

    def clear(self) -> None:
        super().clear()
        self.log.clear()

    def truncate(self, depth: int) -> None:
        removed_bids, removed_asks = self.bids()[depth:], self.asks()[depth:]
        super().truncate(depth)
        for price, _ in removed_bids:
            self.log.level(DEPTH_EVENT, BUY_EVENT, price, 0)
        for price, _ in removed_asks:
            self.log.level(DEPTH_EVENT, SELL_EVENT, price, 0)


class EventRecorder(Pipeline):
    """The replay pipeline with a recording book and no sampling: the venue module's sync
    rule decides, exactly as in replay, when the book is valid."""

    def __init__(self, venue: str, symbol: str) -> None:
        super().__init__(venue, "/nonexistent-never-written", symbols=[symbol])
        self.events = EventLog()
        self.symbol = symbol

    def state(self, symbol: str) -> SymbolState:
        state = super().state(symbol)
        if not isinstance(state.book, RecordingBook):
            state.book = RecordingBook(self.events)
        return state

    def sample_until(self, t: int) -> None:
        """No grid rows: the events are the output."""

    def trade(self, state: SymbolState, ts_recv: int, ts_event: int | None, trade_id: str,
              price: float, size: float, side: int) -> None:
        state.trades += 1
        self.events.trade(ts_recv if ts_event is None else ts_event, ts_recv, price, size, side)

    def book_state(self) -> SymbolState | None:
        return self._states.get(self.symbol)

    def record(self, rec: CaptureRecord) -> None:
        self.feed(rec)
        state = self.book_state()
        if state is not None:
            self.events.stamp(rec.ts_ns, rec.ts_ns if state.ts_event is None else state.ts_event)

    def start_at(self, t: int) -> None:
        """--from: drop the events so far; the file opens with the book as it stands at t
        (a clear and a snapshot), or with nothing until the book is next synchronised."""
        log = self.events
        log.restart()
        state = self.book_state()
        if state is None or not state.valid:
            return
        log.clear()
        for price, size in state.book.bids():
            log.level(DEPTH_SNAPSHOT_EVENT, BUY_EVENT, price, size)
        for price, size in state.book.asks():
            log.level(DEPTH_SNAPSHOT_EVENT, SELL_EVENT, price, size)
        log.stamp(t, t if state.ts_event is None else state.ts_event)


# -- the command ----------------------------------------------------------------------------
@dataclass
class ExportSummary:
    path: Path
    events: int
    depth_events: int
    trades: int
    resyncs: int
    gaps: int
    tick_size: float | None
    lot_size: float | None
    exch_shift_ns: int
    first_ts: int | None
    last_ts: int | None
    seconds: float


def raw_captures(data_dir: Path, venue: str, start: int | None = None,
                 end: int | None = None) -> list[Path]:
    """The raw capture files of a venue under the data root, for the dates in range."""
    from bookcast.paths import raw_dir
    from bookcast.timeutil import utc_date

    base = raw_dir(data_dir, venue, "x").parent
    if not base.is_dir():
        raise UserError(f"'{data_dir}' holds no raw captures of {venue} (no {base}).")
    first = None if start is None else utc_date(start)
    last = None if end is None else utc_date(end)
    files = []
    for day in sorted(base.glob("date=*")):
        date = day.name.removeprefix("date=")
        if (first is not None and date < first) or (last is not None and date > last):
            continue
        files += sorted(p for p in day.iterdir()
                        if ".jsonl" in p.name and not p.name.startswith("."))
    if not files:
        raise UserError(f"'{base}' holds no capture files in the dates asked for.")
    return files


def export_hftbacktest(out: Path | str, venue: str, symbol: str,
                       data_dir: Path | str | None = None, captures: list[Path] | None = None,
                       start: int | None = None, end: int | None = None,
                       base_latency_ns: int = 0) -> ExportSummary:
    """Write `symbol`'s events from the raw captures to an hftbacktest .npz at `out`."""
    from collector.replay import refuse_other_family
    from collector.venues import venue_class

    started = time.perf_counter()
    venue_class(venue)
    out = Path(out)
    if out.suffix != ".npz":
        raise UserError(f"The output '{out}' must end in .npz (hftbacktest reads .npz files).")
    if out.parent and not out.parent.is_dir():
        raise UserError(f"The directory of the output '{out}' does not exist.")
    if base_latency_ns < 0:
        raise UserError(f"The base latency {base_latency_ns} ns is negative.")
    if captures:
        files = [Path(p) for p in captures]
    elif data_dir is not None:
        files = raw_captures(Path(data_dir), venue, start, end)
    else:
        raise UserError("Give capture files or --data-dir to export from.")
    for path in files:
        refuse_other_family(path, venue)
    recorder = EventRecorder(venue, symbol)
    waiting = start is not None
    for rec in merge_captures(files):
        if end is not None and rec.ts_ns > end:
            break
        if waiting and rec.ts_ns >= start:  # type: ignore[operator]
            recorder.start_at(start)  # type: ignore[arg-type]
            waiting = False
        recorder.record(rec)
    state = recorder.book_state()
    if state is None or not state.resyncs:
        what = "messages" if state is None else "depth snapshot that could be joined"
        raise UserError(f"The captures hold no {symbol} {what} for {venue}, so there is "
                        f"nothing to export.")
    log = recorder.events
    data, shift = event_array(log, base_latency_ns)
    tick = log.price_gcd / UNIT if log.price_gcd else None
    lot = log.size_gcd / UNIT if log.size_gcd else None
    meta = {"venue": venue, "symbol": symbol, "tick_size": tick, "lot_size": lot,
            "exch_shift_ns": shift, "base_latency_ns": base_latency_ns,
            "source": [str(p) for p in files], "bookcast.schema": "hftbacktest-2.4"}
    _save(out, data, shift, meta)
    kinds = data["ev"] & 0xFF
    local_rows = (data["ev"] & LOCAL_EVENT) != 0
    return ExportSummary(out, int(local_rows.sum()),
                         int(((kinds == DEPTH_EVENT) & local_rows).sum()),
                         int(((kinds == TRADE_EVENT) & local_rows).sum()), state.resyncs,
                         state.gaps, tick, lot, shift,
                         int(data["local_ts"][0]) if len(data) else None,
                         int(data["local_ts"][-1]) if len(data) else None,
                         time.perf_counter() - started)


def event_array(log: EventLog, base_latency_ns: int) -> tuple[np.ndarray, int]:
    """The events as hftbacktest's array: exch_ts moved back so every feed latency is at
    least `base_latency_ns`, rows in local order, split where the two orders disagree."""
    exch = np.frombuffer(log.exch_ts, dtype=np.int64).copy()
    local = np.frombuffer(log.local_ts, dtype=np.int64)
    n = len(local)
    if not n:
        return np.zeros(0, EVENT_DTYPE), 0
    worst = int((exch - local).max())  # the most negative feed latency, negated
    shift = max(0, worst + base_latency_ns)
    exch -= shift
    exch_order = np.argsort(exch, kind="stable")
    index, view = _merge_views(exch, local, exch_order)
    data = np.zeros(len(index), EVENT_DTYPE)
    data["ev"] = np.frombuffer(log.ev, dtype=np.uint64)[index] | view
    data["exch_ts"] = exch[index]
    data["local_ts"] = local[index]
    data["px"] = np.frombuffer(log.px, dtype=np.float64)[index]
    data["qty"] = np.frombuffer(log.qty, dtype=np.float64)[index]
    return data, shift


def _merge_views(exch: np.ndarray, local: np.ndarray, exch_order: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Interleave the local order (the rows as received) with the exchange-time order: an
    event at the head of both is one row read by both processors; otherwise the earlier
    head is emitted for its processor alone, and the event appears again for the other."""
    from numba import njit

    global _merge_views_jit
    if _merge_views_jit is None:
        _merge_views_jit = njit(cache=True)(_merge_views_py)
    return _merge_views_jit(exch, local, exch_order, np.uint64(EXCH_EVENT),
                            np.uint64(LOCAL_EVENT))


def _merge_views_py(exch, local, exch_order, exch_flag, local_flag):  # type: ignore[no-untyped-def]
    n = len(local)
    index = np.empty(2 * n, np.int64)
    view = np.empty(2 * n, np.uint64)
    i = j = k = 0
    while i < n or j < n:
        if i < n and j < n and exch_order[j] == i:
            index[k], view[k] = i, exch_flag | local_flag
            i += 1
            j += 1
        elif j < n and (i >= n or exch[exch_order[j]] <= local[i]):
            index[k], view[k] = exch_order[j], exch_flag
            j += 1
        else:
            index[k], view[k] = i, local_flag
            i += 1
        k += 1
    return index[:k], view[:k]


_merge_views_jit = None


def _save(out: Path, data: np.ndarray, shift: int, meta: dict[str, object]) -> None:
    """np.savez_compressed under a temporary name, then renamed: never a partial file."""
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with tmp.open("wb") as fh:
            np.savez_compressed(fh, data=data, bookcast_exch_shift_ns=np.int64(shift),
                                bookcast_meta=np.array(json.dumps(meta)))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
