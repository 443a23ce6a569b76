"""The collector daemon: sockets -> one bounded queue -> raw capture + the shared pipeline.

    StreamConnection (ws) ─┐                                           ┌► disk writer thread
    REST snapshot fetches ─┼─► RecordQueue ─► VenueFeed.process() ─────┤  (Parquet parts,
    connection losses     ─┘   (bounded)      capture line, Pipeline   │   raw segments)
                                                                       └ every flush_interval

Everything on the event loop is cheap: receiving, parsing, books, sampling, and cutting
the rows into parts. Encoding, compression, fsync and rename run on the disk writer's
thread (collector/daemon/storage.py), so a slow or full disk never stalls a socket or
`/metrics`, and a write failure is retried there until the disk takes it again.

Durability: every `flush_interval_s` the rows and capture lines gathered so far go to
the disk writer, which writes them at once under temporary names, then renames. A
SIGKILL loses at most the last interval plus the write in progress. SIGTERM or SIGINT
closes the sockets, drains the queue, hands everything to the disk writer and waits
for it, all within SHUTDOWN_S: exit 0 when everything was written, else a sentence
saying what was not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any

from collector.daemon.config import DaemonConfig
from collector.daemon.connection import HostThrottle
from collector.daemon.counters import ServiceCounters, WriteCounters
from collector.daemon.feed import VenueFeed
from collector.daemon.metrics import DaemonMetrics, DaemonView
from collector.daemon.record_queue import RecordQueue
from collector.daemon.startup import Debris
from collector.daemon.storage import DiskWriter, WriteJob, warm_up_writers

log = logging.getLogger("bookcast.daemon")

SHUTDOWN_S = 5.0  # SIGTERM to exit, in every state
SLICE_S = 0.02  # the processor yields to the rest of the loop at least this often
# a record this large (a full-book snapshot: Coinbase Advanced sends ~5 MB, 50k levels)
# is processed on a worker thread, so the loop keeps serving sockets and /metrics
OFFLOAD_BYTES = 32 * 1024
LAG_PROBE_S = 0.1  # how often the event loop's responsiveness is measured
SHUTDOWN_CONNECTION_WAIT_S = 1.0
SHUTDOWN_DRAIN_S = 1.0  # the processor's last batches
SHUTDOWN_MARGIN_S = 2.0  # left for giving up on the disk, closing sessions, exiting


@dataclass
class Outcome:
    """How a run ended: a configuration mistake the venue revealed (`refused`, exit 2),
    data that could not be collected or written (`incomplete`, exit 1), or neither."""

    refused: str | None = None
    incomplete: str | None = None


class CollectorService:
    """Runs every configured venue in one asyncio loop until stopped."""

    def __init__(self, config: DaemonConfig, metrics_socket: socket.socket | None) -> None:
        self.config = config
        self.metrics_socket = metrics_socket
        self.counters = ServiceCounters(queue_capacity=config.queue_size)
        self.writes = WriteCounters()
        self.metrics = DaemonMetrics(self.view, self.health_problems)
        self.queue: RecordQueue | None = None
        self.feeds: list[VenueFeed] = []
        self.disk: DiskWriter | None = None
        self.http: Any = None
        self.rest_throttles: dict[str, HostThrottle] = {}
        self.stop = asyncio.Event()
        self.stopping = False
        self.refused: str | None = None
        self.crashed: str | None = None
        # held while a record is processed off the loop: nothing else may touch the feeds
        self.exclusive = asyncio.Lock()
        self.offloaded: asyncio.Future | None = None

    # -- what /metrics and /healthz show ----------------------------------------------------
    def view(self) -> DaemonView:
        queue = self.queue
        self.counters.queue_depth = queue.qsize() if queue is not None else 0
        self.counters.refreshes = sum(f.refreshes for f in self.feeds)
        return DaemonView([feed.report() for feed in self.feeds], self.counters, self.writes)

    def health_problems(self) -> list[str]:
        problems = []
        now = time.monotonic()
        if self.crashed:
            problems.append(f"the daemon stopped processing: {self.crashed}")
        writes = self.writes
        if writes.failing_since is not None:
            problems.append(f"writing to {self.config.data_dir} fails since "
                            f"{now - writes.failing_since:.0f} s ({writes.last_error}); "
                            f"{writes.backlog_parts} parts wait in memory")
        for feed in self.feeds:
            conn = feed.connection
            if conn.ws is None:
                problems.append(f"{feed.venue} is not connected")
            elif now - conn.counters.last_message_monotonic > self.config.stale_after_s:
                problems.append(f"{feed.venue} has been quiet for "
                                f"{now - conn.counters.last_message_monotonic:.0f} s")
        return problems

    # -- the feeds' side (collector.daemon.feed.FeedHost) -------------------------------------
    async def put(self, item: Any) -> None:
        queue = self.queue
        assert queue is not None
        if not queue.put_nowait(item):
            # the CPU is slower than the feed: wait, so the socket stops being read and
            # the venue's TCP window closes; nothing is dropped
            self.counters.backpressure_events += 1
            started = time.monotonic()
            await queue.put(item)
            self.counters.backpressure_seconds += time.monotonic() - started

    def offer(self, item: Any) -> bool:
        queue = self.queue
        return queue is not None and queue.put_nowait(item)

    def fail(self, message: str) -> None:
        """A configuration mistake only the venue could reveal: stop cleanly, then report."""
        log.error("stopping: %s", message)
        self.refused = message
        self.stop.set()

    # -- the loop -----------------------------------------------------------------------------
    async def run(self) -> Outcome:
        import aiohttp

        from collector.daemon.metrics import start_metrics_server

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        warm_up_writers()
        self.queue = RecordQueue(self.config.queue_size)
        self.feeds = [VenueFeed(self, stream) for stream in self.config.streams]
        by_venue = {feed.venue: feed for feed in self.feeds}
        self.disk = DiskWriter(self.writes, self.config.write_backlog_bytes,
                               lambda job: by_venue[job.venue].dropped(job))
        self.http = aiohttp.ClientSession(headers={"User-Agent": "bookcast-collector"})
        runner = None
        if self.metrics_socket is not None:
            runner = await start_metrics_server(self.metrics, self.metrics_socket)
            host, port = self.metrics_socket.getsockname()[:2]
            log.info("metrics listening", extra={"fields": {
                "address": f"{host}:{port}", "metrics_port": port}})
        processor = self._watched(self._process(), "processing records")
        flusher = self._watched(self._flush_every(), "flushing")
        connections = [asyncio.create_task(feed.connection.run(self.stop))
                       for feed in self.feeds]
        helpers = [asyncio.create_task(feed.check_symbols()) for feed in self.feeds]
        helpers.append(asyncio.create_task(self._measure_loop_lag()))
        helpers += [asyncio.create_task(feed.refresh_books(self.config.refresh_every_s))
                    for feed in self.feeds
                    if feed.pipeline.venue.needs_refresh and self.config.refresh_every_s]
        if self.config.run_for_s:
            helpers.append(asyncio.create_task(self._stop_after(self.config.run_for_s)))
        log.info("collecting", extra={"fields": {
            "streams": [{"venue": s.venue, "symbols": s.symbols, "endpoint": s.endpoint}
                        for s in self.config.streams],
            "data_dir": str(self.config.data_dir),
            "flush_interval_s": self.config.flush_interval_s}})
        await self.stop.wait()
        outcome = await self._shut_down(processor, flusher, connections, helpers)
        await self.http.close()
        if runner is not None:
            await runner.cleanup()  # type: ignore[attr-defined]
        return outcome

    def _watched(self, coro: Any, what: str) -> asyncio.Task:
        """A task whose death by an error stops the daemon loudly instead of silently."""
        task = asyncio.create_task(coro)

        def done(task: asyncio.Task) -> None:
            if task.cancelled() or task.exception() is None:
                return
            exc = task.exception()
            log.error("stopping: an error while %s", what, exc_info=exc)
            self.crashed = f"{type(exc).__name__} while {what}: {exc}"
            self.stop.set()

        task.add_done_callback(done)
        return task

    async def _shut_down(self, processor: asyncio.Task, flusher: asyncio.Task,
                         connections: list[asyncio.Task], helpers: list[asyncio.Task]
                         ) -> Outcome:
        started = time.monotonic()
        deadline = started + SHUTDOWN_S - SHUTDOWN_MARGIN_S
        self.stopping = True
        for task in (flusher, *helpers):
            task.cancel()
        # closing the sockets first bounds the drain below: nothing new arrives
        await asyncio.wait([asyncio.create_task(feed.connection.close()) for feed in self.feeds],
                           timeout=SHUTDOWN_CONNECTION_WAIT_S)
        _, late = await asyncio.wait(connections, timeout=SHUTDOWN_CONNECTION_WAIT_S)
        fetches = [t for f in self.feeds for t in f.in_flight.values()]
        for task in (*late, *fetches):
            task.cancel()
        await asyncio.gather(*late, *fetches, *helpers, flusher, return_exceptions=True)
        if not processor.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SHUTDOWN_DRAIN_S):
                    await self.put(None)
                    await processor
        if not processor.done():
            processor.cancel()
        await self._quiesce()
        jobs = self._take_writes()
        assert self.disk is not None
        self.disk.submit(jobs)
        unwritten = await asyncio.to_thread(self.disk.close, deadline)
        outcome = Outcome(refused=self.refused)
        root = self.config.data_dir
        if unwritten is not None:
            outcome.incomplete = unwritten.sentence(root)
        elif self.crashed:
            outcome.incomplete = f"The collector stopped after an error ({self.crashed})."
        elif self.config.run_for_s and not self.refused:
            outcome.incomplete = self._nothing_collected()
        fields = {"shutdown_s": round(time.monotonic() - started, 3),
                  "raw_records": sum(f.raw.records for f in self.feeds),
                  "snapshot_rows": sum(f.pipeline.rows_written for f in self.feeds),
                  "write_errors": sum(self.writes.errors.values()),
                  "rows_dropped": sum(self.writes.dropped.values())}
        if outcome.incomplete:
            log.error("stopped: %s", outcome.incomplete, extra={"fields": fields})
        else:
            log.info("stopped", extra={"fields": fields})
        return outcome

    async def _quiesce(self) -> None:
        """Wait until no record is being processed off the loop (the feeds are ours)."""
        async with self.exclusive:
            pass
        if self.offloaded is not None and not self.offloaded.done():
            await asyncio.shield(self.offloaded)  # its processor was cancelled meanwhile

    def _take_writes(self) -> list[WriteJob]:
        return [job for feed in self.feeds for job in feed.take_writes()]

    def _nothing_collected(self) -> str | None:
        """A bounded run (--run-for) that got nothing from a venue did not do its job."""
        empty = [feed.venue for feed in self.feeds if not feed.connection.counters.messages]
        if not empty:
            return None
        reasons = []
        for feed in self.feeds:
            if feed.venue in empty:
                failures = feed.connection.counters.connect_failures
                reasons.append(f"{feed.venue} at {feed.connection.url}"
                               + (f" ({failures} failed connection attempts)" if failures else ""))
        return (f"Nothing was received in {self.config.run_for_s:g} s from "
                f"{', '.join(reasons)}; check the venue and --endpoint.")

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("signal received; flushing and stopping", extra={"fields": {
            "signal": signal.Signals(sig).name}})
        self.stop.set()

    async def _measure_loop_lag(self) -> None:
        """How late a timer fires: what anything waiting on the loop (a socket, /metrics)
        waits on top of its own work, from the daemon's side."""
        lag = self.counters.loop_lag
        while True:
            planned = time.perf_counter() + LAG_PROBE_S
            await asyncio.sleep(LAG_PROBE_S)
            lag.observe(max(0.0, time.perf_counter() - planned))

    async def _stop_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.stop.set()

    async def _process(self) -> None:
        queue = self.queue
        assert queue is not None
        clock = time.perf_counter
        loop = asyncio.get_running_loop()
        while True:
            batch = await queue.take()
            started = clock()
            for n, item in enumerate(batch):
                if item is None:
                    return
                feed, rec = item
                data = getattr(rec, "data", None)
                if data is not None and len(data) >= OFFLOAD_BYTES:
                    queue.put_back(batch[n + 1:])
                    async with self.exclusive:
                        self.offloaded = loop.run_in_executor(None, feed.process, rec)
                        await asyncio.shield(self.offloaded)
                    break
                feed.process(rec)
                if clock() - started > SLICE_S:
                    # a batch of full-depth snapshots can take long: hand the rest back
                    # (in order, ahead of newer records) and let the sockets, the
                    # flusher and /metrics run; nothing is held across the await
                    queue.put_back(batch[n + 1:])
                    break
            if queue.qsize():
                await asyncio.sleep(0)  # more is waiting: let the receivers and the flusher run

    async def _flush_every(self) -> None:
        queue = self.queue
        disk = self.disk
        assert queue is not None and disk is not None
        interval = self.config.flush_interval_s
        due = time.monotonic() + interval
        while True:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self._quiesce()
            late = time.monotonic() - due
            self.counters.flush_late_seconds_max = max(self.counters.flush_late_seconds_max,
                                                       late)
            due = max(due + interval, time.monotonic())
            # what the processor lets linger is received, so it belongs to this flush:
            # a crash then loses no more than the flush interval. The processor holds
            # nothing between its awaits, so taking the queue here keeps the order.
            cut_at = time.monotonic()
            for feed, rec in queue.take_nowait():
                feed.process(rec)
            jobs = self._take_writes()
            for job in jobs:
                job.cut_at = cut_at
            disk.submit(jobs)
            self.counters.flushes += 1


def run_daemon(config: DaemonConfig, metrics_socket: socket.socket | None,
               debris: Debris | None = None) -> Outcome:
    """Run until SIGTERM/SIGINT (or run_for_s); returns how it ended."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is an optional speed-up
        runner = asyncio.run

    async def main() -> Outcome:
        service = CollectorService(config, metrics_socket)
        if debris is not None:
            service.counters.recovered_files = debris.recovered
            service.counters.removed_files = debris.removed
        return await service.run()

    return runner(main())
