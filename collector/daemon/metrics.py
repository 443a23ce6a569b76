"""Prometheus metrics and /healthz for the daemon, served on 127.0.0.1 by default.

The metrics render a read-only view of counters their owners keep (collector/daemon/
counters.py): the hot path pays nothing for them, and nothing here imports or changes
the service. The scrape runs in the event loop, so it reads consistent numbers without
a lock; the disk writer's counters are plain integers another thread increments.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

from collector.daemon.counters import DATASETS, FeedReport, ServiceCounters, WriteCounters

# name -> (help, SymbolState attribute)
SYMBOL_COUNTERS = {
    "bookcast_level_updates": ("Level updates applied to the book.", "level_updates"),
    "bookcast_gaps": ("Lost messages found (sequence gaps, checksum and join failures, "
                      "unreadable book messages, ticker disagreements) that invalidated a "
                      "book.", "gaps"),
    "bookcast_resyncs": ("Times a book was (re)synchronised from a snapshot.", "resyncs"),
    "bookcast_checksum_failures": ("Venue checksums that did not match the book.",
                                   "checksum_failures"),
    "bookcast_snapshot_requests": ("Snapshots asked of the venue.", "snapshot_requests"),
    "bookcast_crossed_books": ("Books found crossed (and resynchronised).", "crossed"),
}
# name -> (help, StreamCounters attribute)
STREAM_COUNTERS = {
    "bookcast_messages": ("Websocket messages received.", "messages"),
    "bookcast_bytes": ("Bytes of websocket messages received.", "bytes"),
    "bookcast_reconnects": ("Connections reopened after a loss.", "reconnects"),
    "bookcast_disconnects": ("Open connections lost (closed by the peer, stale, errors).",
                             "disconnects"),
    "bookcast_stale_streams": ("Connections closed because they went quiet.", "stale"),
    "bookcast_connect_failures": ("Connection attempts that failed.", "connect_failures"),
    "bookcast_invalid_utf8_frames": ("Text frames that were not UTF-8 (kept as b64 in the "
                                     "raw capture, counted as parse errors).", "invalid_utf8"),
}
# name -> (help, RestCounters attribute)
REST_COUNTERS = {
    "bookcast_rest_requests": ("REST requests sent.", "requests"),
    "bookcast_rest_failures": ("REST requests that failed and were retried.", "failures"),
    "bookcast_rest_throttled": ("REST replies 429/418 that blocked the host.", "throttled"),
}
# name -> (help, ServiceCounters attribute)
SERVICE_COUNTERS = {
    "bookcast_backpressure_events": ("Times a receiver found the queue full and waited (the "
                                     "socket stops being read).", "backpressure_events"),
    "bookcast_backpressure_seconds": ("Seconds receivers spent waiting for queue space.",
                                      "backpressure_seconds"),
    "bookcast_flushes": ("Flushes of Parquet and raw capture to the disk writer.", "flushes"),
    "bookcast_flush_late_seconds_max": ("The latest a flush ran after it was due (a busy "
                                        "loop), seconds.", "flush_late_seconds_max"),
    "bookcast_book_refreshes": ("Periodic fresh snapshots asked for (venues whose checks do "
                                "not cover every level).", "refreshes"),
    "bookcast_startup_recovered_files": ("Partial raw captures left by a crash whose complete "
                                         "lines were kept, at start-up.", "recovered_files"),
    "bookcast_startup_removed_files": ("Temporary files left by a crash that were removed at "
                                       "start-up.", "removed_files"),
}


@dataclass
class DaemonView:
    """Everything a scrape shows, as the owners hold it right now."""

    feeds: list[FeedReport]
    service: ServiceCounters
    writes: WriteCounters


class DaemonMetrics:
    """The daemon's registry: one scrape-time collector over `view()`."""

    def __init__(self, view: Callable[[], DaemonView],
                 health: Callable[[], list[str]]) -> None:
        self.view = view
        self.health = health
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_ViewCollector(view))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _ViewCollector:
    def __init__(self, view: Callable[[], DaemonView]) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        view = self.view()
        now = time.monotonic()
        wall = time.time_ns()
        written = view.writes.rows_written
        by_symbol = {name: CounterMetricFamily(name, text, labels=["venue", "symbol"])
                     for name, (text, _) in SYMBOL_COUNTERS.items()}
        by_stream = {name: CounterMetricFamily(name, text, labels=["venue", "conn"])
                     for name, (text, _) in STREAM_COUNTERS.items()}
        by_rest = {name: CounterMetricFamily(name, text, labels=["venue"])
                   for name, (text, _) in REST_COUNTERS.items()}
        snapshots = CounterMetricFamily("bookcast_snapshots_written", "Snapshot rows written "
                                        "to disk.", labels=["venue", "symbol"])
        trades = CounterMetricFamily("bookcast_trades_written", "Trade rows written to disk.",
                                     labels=["venue", "symbol"])
        valid = GaugeMetricFamily("bookcast_book_valid", "1 while the book is synchronised.",
                                  labels=["venue", "symbol"])
        since_update = GaugeMetricFamily("bookcast_seconds_since_last_update",
                                         "Seconds since the book last changed.",
                                         labels=["venue", "symbol"])
        since_message = GaugeMetricFamily("bookcast_seconds_since_last_message",
                                          "Seconds since the stream last said anything.",
                                          labels=["venue", "conn"])
        parse_errors = CounterMetricFamily("bookcast_parse_errors", "Messages that could not "
                                           "be read (counted and skipped).", labels=["venue"])
        raw_records = CounterMetricFamily("bookcast_raw_records", "Records logged to the raw "
                                          "capture.", labels=["venue"])
        raw_written = CounterMetricFamily("bookcast_raw_records_written", "Raw capture records "
                                          "written to disk.", labels=["venue"])
        top_checked = CounterMetricFamily("bookcast_top_of_book_checks", "Venue top-of-book "
                                          "messages compared with the rebuilt book.",
                                          labels=["venue"])
        top_mismatched = CounterMetricFamily("bookcast_top_of_book_mismatches", "Comparisons "
                                             "where the rebuilt book's best bid or ask "
                                             "differed.", labels=["venue"])
        lag = HistogramMetricFamily("bookcast_receive_lag_seconds", "Receive time minus "
                                    "exchange time of applied updates.", labels=["venue"])
        for feed in view.feeds:
            v = feed.venue
            for state in feed.states:
                labels = [v, state.symbol]
                for name, (_, attr) in SYMBOL_COUNTERS.items():
                    by_symbol[name].add_metric(labels, getattr(state, attr))
                snapshots.add_metric(labels, written.get(("snapshots", v, state.symbol), 0))
                trades.add_metric(labels, written.get(("trades", v, state.symbol), 0))
                valid.add_metric(labels, 1.0 if state.valid else 0.0)
                if state.ts_recv:
                    since_update.add_metric(labels, max(0.0, (wall - state.ts_recv) / 1e9))
            for name, (_, attr) in STREAM_COUNTERS.items():
                by_stream[name].add_metric([v, feed.conn], getattr(feed.stream, attr))
            if feed.stream.last_message_monotonic:
                since_message.add_metric([v, feed.conn],
                                         now - feed.stream.last_message_monotonic)
            for name, (_, attr) in REST_COUNTERS.items():
                by_rest[name].add_metric([v], getattr(feed.rest, attr))
            parse_errors.add_metric([v], feed.parse_errors)
            raw_records.add_metric([v], feed.raw_records)
            raw_written.add_metric([v], written.get(("raw", v, ""), 0))
            top_checked.add_metric([v], feed.top_checked)
            top_mismatched.add_metric([v], feed.top_mismatched)
            lag.add_metric([v], [(floatToGoString(b), c) for b, c in feed.lag.cumulative()],
                           feed.lag.total)
        yield from by_symbol.values()
        yield from by_stream.values()
        yield from by_rest.values()
        yield from (snapshots, trades, valid, since_update, since_message, parse_errors,
                    raw_records, raw_written, top_checked, top_mismatched, lag)
        yield from _write_metrics(view.writes)
        service = view.service
        depth = GaugeMetricFamily("bookcast_queue_depth", "Records waiting to be processed.")
        depth.add_metric([], service.queue_depth)
        capacity = GaugeMetricFamily("bookcast_queue_capacity", "Bound of the record queue.")
        capacity.add_metric([], service.queue_capacity)
        yield from (depth, capacity)
        loop_lag = HistogramMetricFamily("bookcast_event_loop_lag_seconds", "How late a "
                                         "100 ms timer of the event loop fired.")
        loop_lag.add_metric([], [(floatToGoString(b), c) for b, c in
                                 service.loop_lag.cumulative()], service.loop_lag.total)
        yield loop_lag
        for name, (text, attr) in SERVICE_COUNTERS.items():
            kind = GaugeMetricFamily if name.endswith("_max") else CounterMetricFamily
            family = kind(name, text)
            family.add_metric([], getattr(service, attr))
            yield family


def _write_metrics(writes: WriteCounters) -> Iterator[Metric]:
    errors = CounterMetricFamily("bookcast_write_errors", "Writes to disk that failed (and "
                                 "were retried).", labels=["dataset"])
    dropped = CounterMetricFamily("bookcast_rows_dropped", "Rows (raw: records) dropped "
                                  "because the disk writer's memory bound was reached.",
                                  labels=["dataset"])
    parts = CounterMetricFamily("bookcast_parts_written", "Files written (Parquet parts, raw "
                                "segments).", labels=["dataset"])
    for dataset in DATASETS:
        errors.add_metric([dataset], writes.errors[dataset])
        dropped.add_metric([dataset], writes.dropped[dataset])
        parts.add_metric([dataset], writes.parts[dataset])
    backlog = GaugeMetricFamily("bookcast_write_backlog_bytes", "Memory held by rows waiting "
                                "for the disk.")
    backlog.add_metric([], writes.backlog_bytes)
    failing = GaugeMetricFamily("bookcast_write_failing", "1 while writes to disk fail.")
    failing.add_metric([], 0.0 if writes.failing_since is None else 1.0)
    slowest = GaugeMetricFamily("bookcast_write_seconds_max", "The longest time from a flush to "
                                "one of its parts on disk (waiting, encoding, fsync, rename), "
                                "seconds, of the parts written at the first try.")
    slowest.add_metric([], writes.write_seconds_max)
    yield from (errors, dropped, parts, backlog, failing, slowest)


async def start_metrics_server(metrics: DaemonMetrics, sock: socket.socket) -> object:
    """Serve /metrics and /healthz on an already bound socket; returns the runner."""
    from aiohttp import web

    async def metrics_page(request: web.Request) -> web.Response:
        body = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        problems = metrics.health()
        if problems:
            return web.Response(status=503, text="; ".join(problems) + "\n")
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    # a scrape still open at shutdown must not hold the exit (aiohttp waits 60 s by default)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    return runner
