"""The collector daemon: sockets -> one bounded queue -> raw capture + the shared pipeline.

    StreamConnection (ws) ─┐
    REST snapshot fetches ─┼─► bounded queue ─► process(): raw capture line, Pipeline.feed
                           ┘   (full: receivers wait, the socket stops being read, counted)

Every record is written to the raw capture and fed to the pipeline in the same order,
so `bookcast replay` of the raw capture reproduces the live Parquet row for row. Receive
times are made non-decreasing per venue at this point (a REST reply and a websocket
frame may reach the queue a microsecond out of order), which keeps the capture's order
and its time order the same.

Durability: every `flush_interval_s` the pipeline's writers write their rows to new
Parquet parts and the raw capture segment is closed; both appear under their final
names only complete (temporary name, fsync, rename). A SIGKILL loses at most the last
interval; SIGTERM or SIGINT drains the queue, samples to the last record, flushes and
exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import signal
import socket
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from bookcast.paths import raw_dir
from bookcast.timeutil import NS_PER_UNIT, utc_date, utc_day_start_ns
from collector.capture import CaptureRecord, CaptureWriter, encode_record
from collector.daemon.config import DaemonConfig, StreamConfig
from collector.daemon.connection import (
    BUDGET_SHARE,
    REST_WEIGHT_LIMITS,
    Backoff,
    FatalVenueError,
    RestCounters,
    StreamConnection,
    WeightBudget,
    fetch_with_retry,
    with_endpoint,
)
from collector.pipeline import Pipeline
from collector.state import SymbolState

log = logging.getLogger("bookcast.daemon")

RESYNC_TIMEOUT_S = 10.0  # a websocket resubscription that brings no snapshot -> reconnect
SHUTDOWN_CONNECTION_WAIT_S = 1.5
BATCH = 512  # records processed per wake-up before yielding to the receivers
LINGER_S = 0.05  # how long the processor lets records gather once one is waiting
RAW_BUFFER_BYTES = 1 << 16  # raw capture bytes handed to the compressor at once


class RecordQueue:
    """The bounded queue between the receivers and the one processor.

    At real speed messages arrive one at a time, a few hundred a second, and waking
    the processor for each costs more than processing it (a future, a task switch, a
    loop iteration with cold caches). So the processor wakes on the first record, then
    lets records gather for `linger_s` (or until `batch` are waiting) and takes them
    all at once: tens of wake-ups a second instead of one per message. Receive times
    are stamped by the receivers before queueing, so lingering changes no data; it
    delays processing by at most `linger_s`, and the flusher processes whatever
    lingers before it writes (`take_nowait`), so a crash loses no more than before.

    A full queue refuses a record; the receiver then waits for room (`put`), which is
    the counted backpressure. Nothing is dropped and the queue never exceeds capacity.
    """

    def __init__(self, capacity: int, batch: int = BATCH, linger_s: float = LINGER_S) -> None:
        self.capacity, self.batch, self.linger_s = capacity, batch, linger_s
        self.items: deque[Any] = deque()
        self._wake_at = math.inf  # queue length that wakes the processor while it waits
        self._processor: asyncio.Future[None] | None = None
        self._waiting_for_room: deque[asyncio.Future[None]] = deque()

    def qsize(self) -> int:
        return len(self.items)

    def put_nowait(self, item: Any) -> bool:
        """Append unless full; False means the caller must wait (`put`)."""
        items = self.items
        if len(items) >= self.capacity:
            return False
        items.append(item)
        if len(items) >= self._wake_at or item is None:  # None: stop, no lingering
            self._wake_processor()
        return True

    async def put(self, item: Any) -> None:
        """Append, waiting for the processor to make room while the queue is full."""
        while not self.put_nowait(item):
            room = asyncio.get_running_loop().create_future()
            self._waiting_for_room.append(room)
            try:
                await room
            except asyncio.CancelledError:
                if not room.cancelled():  # woken, then cancelled: pass the room on
                    self._make_room(1)
                raise

    def take_nowait(self) -> list[Any]:
        """Everything waiting, in arrival order, without waiting."""
        items = self.items
        batch = list(items)
        items.clear()
        self._make_room(len(batch))
        return batch

    async def take(self) -> list[Any]:
        """Up to `batch` items in arrival order: wait for one, then linger for more."""
        items = self.items
        if not items:
            await self._sleep(1, None)
        # (the flusher may have taken everything meanwhile; None asks to stop at once)
        if items and len(items) < self.batch and self.linger_s > 0 and items[-1] is not None:
            await self._sleep(self.batch, self.linger_s)
        batch = [items.popleft() for _ in range(min(self.batch, len(items)))]
        self._make_room(len(batch))
        return batch

    async def _sleep(self, wake_at: int, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        self._processor = waiter = loop.create_future()
        self._wake_at = wake_at
        timer = None if timeout is None else loop.call_later(timeout, self._wake_processor)
        try:
            await waiter
        finally:
            self._wake_at = math.inf
            self._processor = None
            if timer is not None:
                timer.cancel()

    def _wake_processor(self) -> None:
        processor = self._processor
        if processor is not None and not processor.done():
            processor.set_result(None)

    def _make_room(self, room: int) -> None:
        waiting = self._waiting_for_room
        while waiting and room:
            receiver = waiting.popleft()
            if not receiver.done():  # cancelled ones stay queued until here
                receiver.set_result(None)
                room -= 1


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "event": record.getMessage()}
        fields = getattr(record, "fields", None)
        if fields:
            obj.update(fields)
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(obj, default=str).decode()


def setup_json_logging(verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("bookcast").setLevel(logging.DEBUG if verbose else logging.INFO)


class RawCaptureLog:
    """The venue's raw capture under raw/venue=<v>/date=<d>/, one segment per flush interval.

    Segments are named by their first receive time, so sorting the names sorts the
    records; each is a complete zstd capture once it has its final name.
    """

    def __init__(self, root: Path, venue: str) -> None:
        self.root, self.venue = root, venue
        self.writer: CaptureWriter | None = None
        self.records = 0
        self.files: list[Path] = []
        self._day_end = 0
        self._buffer = bytearray()

    def write(self, line: bytes, ts_ns: int) -> None:
        if self.writer is None or ts_ns >= self._day_end:
            self._open(ts_ns)
        self._buffer += line
        self.records += 1
        if len(self._buffer) >= RAW_BUFFER_BYTES:
            self._drain()

    def _drain(self) -> None:
        # one compressor call per 64 KiB rather than per message
        if self._buffer and self.writer is not None:
            self.writer.write_line(bytes(self._buffer))
            self._buffer.clear()

    def _open(self, ts_ns: int) -> None:
        self.rotate()
        directory = raw_dir(self.root, self.venue, utc_date(ts_ns))
        self.writer = CaptureWriter(directory / f"capture-{ts_ns}.jsonl.zst")
        self._day_end = utc_day_start_ns(ts_ns) + NS_PER_UNIT["d"]

    def rotate(self) -> None:
        self._drain()
        if self.writer is not None:
            self.files.append(self.writer.close())
            self.writer = None


class VenueFeed:
    """One venue: its connection, REST fetches, pipeline and raw capture."""

    def __init__(self, service: CollectorService, stream: StreamConfig) -> None:
        cfg = service.config
        self.service = service
        self.venue = stream.venue
        self.stream = stream
        self.pipeline = Pipeline(stream.venue, cfg.data_dir, cfg.interval_ns, cfg.depth,
                                 stream.symbols, on_snapshot_request=self.snapshot_requested,
                                 on_event=self.book_event,
                                 top_of_book_check=cfg.top_of_book_check)
        self.raw = RawCaptureLog(cfg.data_dir, stream.venue)
        self.connection = StreamConnection(
            self.pipeline.venue, stream.symbols, f"{stream.venue}.ws", stream.endpoint,
            self.enqueue, cfg.stale_after_s, Backoff(cfg.backoff_initial_s, cfg.backoff_max_s),
            offer=self.offer)
        self.rest = RestCounters()
        self.rest_backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        limit = REST_WEIGHT_LIMITS.get(stream.venue)
        per_minute = cfg.rest_weight_limit or (int(limit * BUDGET_SHARE) if limit else None)
        self.budget = WeightBudget(per_minute) if limit and per_minute else None
        self.in_flight: dict[str, asyncio.Task] = {}
        self.last_ts = 0
        self.lag_seq: dict[str, int | None] = {}
        self.lag = service.metrics.lag_histogram(stream.venue)

    async def enqueue(self, rec: CaptureRecord) -> None:
        await self.service.put((self, rec))

    def offer(self, rec: CaptureRecord) -> bool:
        """Queue a record if there is room (no coroutine); False: `enqueue` must wait."""
        queue = self.service.queue
        return queue is not None and queue.put_nowait((self, rec))

    # -- pipeline hooks (called synchronously from Pipeline.feed) ------------------------
    def snapshot_requested(self, state: SymbolState) -> None:
        symbol = state.symbol
        if symbol in self.in_flight or self.service.stopping:
            return
        url = self.pipeline.venue.snapshot_url(symbol)
        if url is not None:
            coro = self.fetch_snapshot(symbol, with_endpoint(url, self.stream.endpoint))
        else:
            coro = self.resync_over_websocket(state)
        self.in_flight[symbol] = asyncio.get_running_loop().create_task(coro)

    def book_event(self, event: str, state: SymbolState, detail: str) -> None:
        fields = {"venue": self.venue, "symbol": state.symbol, "detail": detail,
                  "seq": state.seq}
        if event == "synced":
            log.info("book synchronised", extra={"fields": fields})
        else:
            log.warning("book invalid", extra={"fields": fields})

    # -- resynchronisation ---------------------------------------------------------------
    async def fetch_snapshot(self, symbol: str, url: str) -> None:
        try:
            body, ts_ns = await fetch_with_retry(self.service.http, self.venue, url,
                                                 self.budget, self.rest_backoff, self.rest)
        except FatalVenueError as exc:
            self.in_flight.pop(symbol, None)
            self.service.fail(str(exc))
            return
        # free the slot before queueing: the reply may not join and ask for another
        self.in_flight.pop(symbol, None)
        await self.enqueue(CaptureRecord(ts_ns, "http", f"{self.venue}.rest", body, url))

    async def resync_over_websocket(self, state: SymbolState) -> None:
        """Venues without REST snapshots resubscribe; if no snapshot comes, reconnect."""
        try:
            messages = getattr(self.pipeline.venue, "resync_messages", None)
            if messages is not None:
                for text in messages(state.symbol):
                    await self.connection.send(text)
            await asyncio.sleep(RESYNC_TIMEOUT_S)
            if not state.valid and not self.service.stopping:
                await self.connection.reconnect(f"no snapshot for {state.symbol} after "
                                                f"resubscribing")
        finally:
            self.in_flight.pop(state.symbol, None)

    async def check_symbols(self) -> None:
        """Ask the venue about each symbol once (a small depth request, not fed anywhere).

        An unknown symbol never sends a diff, so without this it would wait silently.
        Only a venue's explicit 'invalid symbol' stops the daemon; an unreachable venue
        is left to the connection's retries.
        """
        for symbol in self.stream.symbols:
            url = self.pipeline.venue.snapshot_url(symbol)
            if url is None:
                return
            probe = with_endpoint(re.sub(r"limit=\d+", "limit=5", url), self.stream.endpoint)
            try:
                await fetch_with_retry(self.service.http, self.venue, probe, self.budget,
                                       self.rest_backoff, self.rest)
            except FatalVenueError as exc:
                self.service.fail(str(exc))
                return

    # -- the one path every record takes -------------------------------------------------
    def process(self, rec: CaptureRecord) -> None:
        ts = rec.ts_ns
        if ts < self.last_ts:
            ts = rec.ts_ns = self.last_ts
        self.last_ts = ts
        if rec.b64 is not None:
            line = orjson.dumps({"ts_ns": ts, "kind": rec.kind, "conn": rec.conn,
                                 "b64": rec.b64}) + b"\n"
        else:
            line = encode_record(ts, rec.kind, rec.conn, rec.data, rec.url)
        self.raw.write(line, ts)
        self.pipeline.feed(rec)
        if rec.kind == "recv":
            lag_seq = self.lag_seq
            for state in self.pipeline.states():
                if state.ts_recv == ts and state.ts_event is not None \
                        and lag_seq.get(state.symbol) != state.seq:
                    lag_seq[state.symbol] = state.seq
                    self.lag.observe((ts - state.ts_event) / 1e9)

    def flush(self) -> None:
        # raw first: a crash between the two leaves the capture ahead of the Parquet,
        # so the Parquet stays a prefix of what replaying the capture gives
        self.raw.rotate()
        self.pipeline.flush()

    def finish(self) -> None:
        self.pipeline.finish()
        self.raw.rotate()


class CollectorService:
    """Runs every configured venue in one asyncio loop until stopped."""

    def __init__(self, config: DaemonConfig, metrics_socket: socket.socket | None) -> None:
        from collector.daemon.metrics import DaemonMetrics

        self.config = config
        self.metrics_socket = metrics_socket
        self.metrics = DaemonMetrics(self)
        self.queue: RecordQueue | None = None
        self.feeds: list[VenueFeed] = []
        self.http: Any = None
        self.stop = asyncio.Event()
        self.stopping = False
        self.fatal: str | None = None
        self.backpressure_events = 0
        self.backpressure_seconds = 0.0
        self.flushes = 0

    # -- receivers' side ------------------------------------------------------------------------
    async def put(self, item: tuple[VenueFeed, CaptureRecord] | None) -> None:
        queue = self.queue
        assert queue is not None
        if not queue.put_nowait(item):
            # the disk (or the CPU) is slower than the feed: wait, so the socket stops
            # being read and the venue's TCP window closes; nothing is dropped
            self.backpressure_events += 1
            started = time.monotonic()
            await queue.put(item)
            self.backpressure_seconds += time.monotonic() - started

    def fail(self, message: str) -> None:
        """A configuration mistake only the venue could reveal: stop cleanly, then report."""
        log.error("stopping: %s", message)
        self.fatal = message
        self.stop.set()

    def health_problems(self) -> list[str]:
        problems = []
        now = time.monotonic()
        for feed in self.feeds:
            conn = feed.connection
            if conn.ws is None:
                problems.append(f"{feed.venue} is not connected")
            elif now - conn.counters.last_message_monotonic > self.config.stale_after_s:
                problems.append(f"{feed.venue} has been quiet for "
                                f"{now - conn.counters.last_message_monotonic:.0f} s")
        return problems

    # -- the loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        import aiohttp

        from collector.daemon.metrics import start_metrics_server

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        self.queue = RecordQueue(self.config.queue_size)
        self.feeds = [VenueFeed(self, stream) for stream in self.config.streams]
        self.http = aiohttp.ClientSession(headers={"User-Agent": "bookcast-collector"})
        runner = None
        if self.metrics_socket is not None:
            runner = await start_metrics_server(self.metrics, self.metrics_socket)
            host, port = self.metrics_socket.getsockname()[:2]
            log.info("metrics listening", extra={"fields": {
                "address": f"{host}:{port}", "metrics_port": port}})
        processor = asyncio.create_task(self._process())
        flusher = asyncio.create_task(self._flush_every())
        connections = [asyncio.create_task(feed.connection.run(self.stop))
                       for feed in self.feeds]
        checks = [asyncio.create_task(feed.check_symbols()) for feed in self.feeds]
        timer = (asyncio.create_task(self._stop_after(self.config.run_for_s))
                 if self.config.run_for_s else None)
        log.info("collecting", extra={"fields": {
            "streams": [{"venue": s.venue, "symbols": s.symbols, "endpoint": s.endpoint}
                        for s in self.config.streams],
            "data_dir": str(self.config.data_dir),
            "flush_interval_s": self.config.flush_interval_s}})
        await self.stop.wait()
        started = time.monotonic()
        self.stopping = True
        for task in (flusher, timer, *checks):
            if task is not None:
                task.cancel()
        # closing the sockets first bounds the drain below: nothing new arrives
        await asyncio.wait([asyncio.create_task(feed.connection.close()) for feed in self.feeds],
                           timeout=SHUTDOWN_CONNECTION_WAIT_S)
        _, late = await asyncio.wait(connections, timeout=SHUTDOWN_CONNECTION_WAIT_S)
        for task in [*late, *(t for f in self.feeds for t in f.in_flight.values())]:
            task.cancel()
        await asyncio.gather(*late, *(t for f in self.feeds for t in f.in_flight.values()),
                             return_exceptions=True)
        await self.put(None)
        await processor
        for feed in self.feeds:
            feed.finish()
        await self.http.close()
        if runner is not None:
            await runner.cleanup()  # type: ignore[attr-defined]
        log.info("stopped", extra={"fields": {
            "shutdown_s": round(time.monotonic() - started, 3),
            "raw_records": sum(f.raw.records for f in self.feeds),
            "snapshot_rows": sum(f.pipeline.rows_written for f in self.feeds)}})

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("signal received; flushing and stopping", extra={"fields": {
            "signal": signal.Signals(sig).name}})
        self.stop.set()

    async def _stop_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.stop.set()

    async def _process(self) -> None:
        queue = self.queue
        assert queue is not None
        while True:
            batch = await queue.take()
            for item in batch:
                if item is None:
                    return
                feed, rec = item
                feed.process(rec)
            if queue.qsize():
                await asyncio.sleep(0)  # more is waiting: let the receivers and the flusher run

    async def _flush_every(self) -> None:
        queue = self.queue
        assert queue is not None
        while True:
            await asyncio.sleep(self.config.flush_interval_s)
            # what the processor lets linger is received, so it belongs to this flush:
            # a crash then loses no more than the flush interval. The processor holds
            # nothing between its awaits, so taking the queue here keeps the order.
            for feed, rec in queue.take_nowait():
                feed.process(rec)
            for feed in self.feeds:
                feed.flush()
            self.flushes += 1


def run_daemon(config: DaemonConfig, metrics_socket: socket.socket | None) -> str | None:
    """Run until SIGTERM/SIGINT (or run_for_s); returns a fatal error sentence, if any."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is an optional speed-up
        runner = asyncio.run

    async def main() -> str | None:
        service = CollectorService(config, metrics_socket)
        await service.run()
        return service.fatal

    return runner(main())
