"""One venue in the daemon: its connection, REST fetches, pipeline and raw capture.

Every record the connection or a REST fetch produces goes through the service's one
record queue to `VenueFeed.process`, which writes its capture line and feeds the
pipeline, in that order, so `bookcast replay` of the raw capture meets the records
the live pipeline met. A connection's loss travels the same queue (`ConnectionLost`),
so it reaches the books after every record received before it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from collector.capture import CaptureRecord, encode_record
from collector.daemon.connection import (
    BUDGET_SHARE,
    Backoff,
    FatalVenueError,
    HostThrottle,
    StreamConnection,
    WeightBudget,
    fetch_with_retry,
    with_endpoint,
)
from collector.daemon.counters import FeedReport, LagHistogram, RestCounters
from collector.daemon.raw_log import RawCaptureLog
from collector.daemon.storage import WriteJob
from collector.pipeline import Pipeline
from collector.state import SymbolState

if TYPE_CHECKING:
    from collector.daemon.config import DaemonConfig, StreamConfig

log = logging.getLogger("bookcast.daemon")

RESYNC_TIMEOUT_S = 10.0  # a websocket resubscription that brings no snapshot -> reconnect
TRADE_ROW_BYTES = 64  # memory a trade row holds until written (for the backlog bound)


@dataclass
class ConnectionLost:
    """A queue item: the connection closed or went stale at `ts_ns`."""

    ts_ns: int
    conn: str
    reason: str


class FeedHost(Protocol):
    """What a feed needs from the service (the service implements it)."""

    config: DaemonConfig
    http: Any
    rest_throttles: dict[str, HostThrottle]
    stopping: bool

    async def put(self, item: Any) -> None: ...

    def offer(self, item: Any) -> bool: ...

    def fail(self, message: str) -> None: ...


class VenueFeed:
    """One venue: its connection, REST fetches, pipeline and raw capture."""

    def __init__(self, host: FeedHost, stream: StreamConfig) -> None:
        cfg = host.config
        self.host = host
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
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
            offer=self.offer, on_lost=self.connection_lost)
        self.rest = RestCounters()
        self.rest_backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        venue = self.pipeline.venue
        limit = venue.rest_weight_limit
        per_minute = cfg.rest_weight_limit or (int(limit * BUDGET_SHARE) if limit else None)
        self.budget = WeightBudget(per_minute) if limit and per_minute else None
        self.in_flight: dict[str, asyncio.Task] = {}  # symbol -> its one snapshot request
        self.probing: set[str] = set()
        self.deferred: set[str] = set()  # snapshots asked for while the symbol was probed
        self.refreshes = 0
        self.last_ts = 0
        self.lag_seq: dict[str, int | None] = {}
        self.lag = LagHistogram()
        depth = cfg.depth if cfg.depth is not None else 1000
        self.snapshot_row_bytes = 96 + 32 * depth  # four float64 lists of `depth` levels

    def throttle(self, url: str) -> HostThrottle:
        """The one throttle of the host `url` goes to, shared by every request to it."""
        from urllib.parse import urlparse

        host = urlparse(url).netloc
        throttle = self.host.rest_throttles.get(host)
        if throttle is None:
            throttle = self.host.rest_throttles[host] = HostThrottle()
        return throttle

    async def enqueue(self, rec: CaptureRecord) -> None:
        await self.host.put((self, rec))

    def offer(self, rec: CaptureRecord) -> bool:
        """Queue a record if there is room (no coroutine); False: `enqueue` must wait."""
        return self.host.offer((self, rec))

    def connection_lost(self, reason: str) -> None:
        item = (self, ConnectionLost(time.time_ns(), self.connection.conn, reason))
        if not self.host.offer(item):
            asyncio.get_running_loop().create_task(self.host.put(item))

    # -- pipeline hooks (called synchronously from Pipeline.feed) ------------------------
    def snapshot_requested(self, state: SymbolState) -> None:
        if threading.get_ident() != self.loop_thread:
            # asked while a large record is processed off the loop: decide on the loop
            self.loop.call_soon_threadsafe(self.snapshot_requested, state)
            return
        symbol = state.symbol
        if symbol in self.in_flight or self.host.stopping:
            return  # one request per symbol: its reply, if it does not join, asks again
        if symbol in self.probing:
            self.deferred.add(symbol)
            return
        url = self.pipeline.venue.snapshot_url(symbol)
        if url is not None:
            coro = self.fetch_snapshot(symbol, with_endpoint(url, self.stream.endpoint))
        else:
            coro = self.resync_over_websocket(state)
        self.in_flight[symbol] = self.loop.create_task(coro)

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
            body, ts_ns = await fetch_with_retry(self.host.http, self.pipeline.venue, url,
                                                 self.budget, self.throttle(url),
                                                 self.rest_backoff, self.rest,
                                                 lambda: self.host.stopping)
        except FatalVenueError as exc:
            self.in_flight.pop(symbol, None)
            self.host.fail(str(exc))
            return
        # free the slot before queueing: the reply may not join and ask for another
        self.in_flight.pop(symbol, None)
        await self.enqueue(CaptureRecord(ts_ns, "http", f"{self.venue}.rest", body, url))

    async def resync_over_websocket(self, state: SymbolState) -> None:
        """Venues without REST snapshots resubscribe; if no snapshot comes, reconnect."""
        try:
            resyncs = state.resyncs
            for text in self.pipeline.venue.resync_messages(state.symbol):
                await self.connection.send(text)
            deadline = time.monotonic() + RESYNC_TIMEOUT_S
            while time.monotonic() < deadline and state.resyncs == resyncs:
                await asyncio.sleep(0.1)
            if state.resyncs == resyncs and not self.host.stopping:
                await self.connection.reconnect(f"no snapshot for {state.symbol} after "
                                                f"resubscribing")
        finally:
            self.in_flight.pop(state.symbol, None)

    async def refresh_books(self, every_s: float) -> None:
        """Resubscribe each valid book once per `every_s`, spread over the period.

        For venues whose checks cannot see every lost change (Kraken below the
        checksummed depth, Coinbase Exchange entirely), a fresh snapshot bounds how long
        such an error can last. The new snapshot starts the book afresh (gap = true).
        """
        symbols = self.stream.symbols
        step = every_s / len(symbols)
        await asyncio.sleep(every_s)
        while True:
            for symbol in symbols:
                state = self.pipeline.state(symbol)
                if state.valid and symbol not in self.in_flight:
                    self.refreshes += 1
                    log.info("refreshing a book", extra={"fields": {
                        "venue": self.venue, "symbol": symbol, "every_s": every_s}})
                    self.in_flight[symbol] = asyncio.get_running_loop().create_task(
                        self.resync_over_websocket(state))
                await asyncio.sleep(step)

    async def check_symbols(self) -> None:
        """Ask the venue about each symbol once (a small request, not fed anywhere).

        An unknown symbol never sends a diff, so without this it would wait silently.
        Only a venue's explicit 'invalid symbol' stops the daemon; an unreachable venue
        is left to the connection's retries. A snapshot asked for meanwhile waits for
        the probe, so a symbol never has two requests in flight.
        """
        venue = self.pipeline.venue
        for symbol in self.stream.symbols:
            url = venue.probe_url(symbol)
            if url is None:
                return
            probe = with_endpoint(url, self.stream.endpoint)
            self.probing.add(symbol)
            try:
                await fetch_with_retry(self.host.http, venue, probe, self.budget,
                                       self.throttle(probe), self.rest_backoff, self.rest,
                                       lambda: self.host.stopping)
            except FatalVenueError as exc:
                self.host.fail(str(exc))
                return
            finally:
                self.probing.discard(symbol)
                if symbol in self.deferred:
                    self.deferred.discard(symbol)
                    self.snapshot_requested(self.pipeline.state(symbol))

    # -- the one path every record takes -------------------------------------------------
    def process(self, rec: CaptureRecord | ConnectionLost) -> None:
        ts = rec.ts_ns
        if ts < self.last_ts:
            ts = rec.ts_ns = self.last_ts
        self.last_ts = ts
        if isinstance(rec, ConnectionLost):
            self.pipeline.connection_lost(rec.conn, ts, rec.reason)
            return
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

    def take_writes(self) -> list[WriteJob]:
        """Everything sampled or logged since the last flush, as parts for the disk writer.

        Raw first: if the process dies between them, the capture is ahead of the
        Parquet, so the Parquet stays a prefix of what replaying the capture gives.
        """
        jobs = [WriteJob("raw", self.venue, "", segment, segment.size)
                for segment in self.raw.detach()]
        for dataset, writers, row_bytes in (
                ("snapshots", self.pipeline.snapshot_writers, self.snapshot_row_bytes),
                ("trades", self.pipeline.trade_writers, TRADE_ROW_BYTES)):
            for symbol, writer in writers.items():
                for part in [*writer.take_pending(), writer.detach()]:
                    if part is not None:
                        jobs.append(WriteJob(dataset, self.venue, symbol, part,
                                             part.rows * row_bytes))
        return jobs

    def dropped(self, job: WriteJob) -> None:
        """Rows the disk writer had no room for: the book's next row says so."""
        if job.dataset == "snapshots":
            self.pipeline.mark_gap(job.symbol)
        elif job.dataset == "raw":
            self.raw.mark_lost([self.connection.conn])

    def report(self) -> FeedReport:
        conn = self.connection
        return FeedReport(self.venue, conn.conn, conn.counters, self.rest, self.lag,
                          self.pipeline.states(), self.pipeline.parse_errors, self.raw.records,
                          self.pipeline.top_check.checked, self.pipeline.top_check.mismatched)
