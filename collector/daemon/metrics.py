"""Prometheus metrics and /healthz for the daemon, served on 127.0.0.1 by default.

Counters are read from the pipeline's per-symbol state and the connections' counters
when Prometheus scrapes, so the hot path pays nothing for them; only the receive-lag
histogram is observed per applied update, into plain per-venue bucket counts (no lock:
the scrape runs in the same event loop).
"""

from __future__ import annotations

import socket
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from collector.daemon.service import CollectorService

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
               30.0, 60.0)

# name -> (help, SymbolState attribute)
SYMBOL_COUNTERS = {
    "bookcast_level_updates": ("Level updates applied to the book.", "level_updates"),
    "bookcast_gaps": ("Sequence gaps, checksum and join failures that invalidated a book.",
                      "gaps"),
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
}


class LagHistogram:
    """One venue's receive lags: counts per LAG_BUCKETS bound (`le`), then +Inf, and a sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LAG_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LAG_BUCKETS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        buckets, running = [], 0
        for bound, count in zip((*LAG_BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            buckets.append((floatToGoString(bound), running))
        return buckets


class DaemonMetrics:
    """The daemon's registry: a scrape-time collector, including the receive-lag histogram."""

    def __init__(self, service: CollectorService) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_ServiceCollector(service))
        self.receive_lag: dict[str, LagHistogram] = {}

    def lag_histogram(self, venue: str) -> LagHistogram:
        return self.receive_lag.setdefault(venue, LagHistogram())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _ServiceCollector:
    def __init__(self, service: CollectorService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        service = self.service
        now = time.monotonic()
        by_symbol = {name: CounterMetricFamily(name, text, labels=["venue", "symbol"])
                     for name, (text, _) in SYMBOL_COUNTERS.items()}
        by_stream = {name: CounterMetricFamily(name, text, labels=["venue", "conn"])
                     for name, (text, _) in STREAM_COUNTERS.items()}
        snapshots = CounterMetricFamily("bookcast_snapshots_written", "Snapshot rows written.",
                                        labels=["venue", "symbol"])
        trades = CounterMetricFamily("bookcast_trades_written", "Trade rows written.",
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
                                           "be parsed (counted and skipped).", labels=["venue"])
        raw_records = CounterMetricFamily("bookcast_raw_records", "Records written to the raw "
                                          "capture.", labels=["venue"])
        rest = CounterMetricFamily("bookcast_rest_requests", "REST snapshot requests sent.",
                                   labels=["venue"])
        rest_failed = CounterMetricFamily("bookcast_rest_failures", "REST requests that failed "
                                          "and were retried.", labels=["venue"])
        rest_throttled = CounterMetricFamily("bookcast_rest_throttled", "REST replies 429/418 "
                                             "whose Retry-After was honoured.", labels=["venue"])
        top_checked = CounterMetricFamily("bookcast_top_of_book_checks", "Venue top-of-book "
                                          "messages compared with the rebuilt book "
                                          "(--top-of-book-check).", labels=["venue"])
        top_mismatched = CounterMetricFamily("bookcast_top_of_book_mismatches", "Comparisons "
                                             "where the rebuilt book's best bid or ask "
                                             "differed.", labels=["venue"])
        wall = time.time_ns()
        for feed in service.feeds:
            v = feed.venue
            for state in feed.pipeline.states():
                labels = [v, state.symbol]
                for name, (_, attr) in SYMBOL_COUNTERS.items():
                    by_symbol[name].add_metric(labels, getattr(state, attr))
                writer = feed.pipeline.snapshot_writers.get(state.symbol)
                snapshots.add_metric(labels, writer.rows_written + writer.rows if writer else 0)
                twriter = feed.pipeline.trade_writers.get(state.symbol)
                trades.add_metric(labels, twriter.rows_written + twriter.rows if twriter else 0)
                valid.add_metric(labels, 1.0 if state.valid else 0.0)
                if state.ts_recv:
                    since_update.add_metric(labels, max(0.0, (wall - state.ts_recv) / 1e9))
            counters = feed.connection.counters
            for name, (_, attr) in STREAM_COUNTERS.items():
                by_stream[name].add_metric([v, feed.connection.conn], getattr(counters, attr))
            if counters.last_message_monotonic:
                since_message.add_metric([v, feed.connection.conn],
                                         now - counters.last_message_monotonic)
            parse_errors.add_metric([v], feed.pipeline.parse_errors)
            raw_records.add_metric([v], feed.raw.records)
            rest.add_metric([v], feed.rest.requests)
            rest_failed.add_metric([v], feed.rest.failures)
            rest_throttled.add_metric([v], feed.rest.throttled)
            top_checked.add_metric([v], feed.pipeline.top_check.checked)
            top_mismatched.add_metric([v], feed.pipeline.top_check.mismatched)
        yield from by_symbol.values()
        yield from by_stream.values()
        yield from (snapshots, trades, valid, since_update, since_message, parse_errors,
                    raw_records, rest, rest_failed, rest_throttled, top_checked, top_mismatched)
        lag = HistogramMetricFamily("bookcast_receive_lag_seconds", "Receive time minus "
                                    "exchange time of applied updates.", labels=["venue"])
        for venue, histogram in service.metrics.receive_lag.items():
            lag.add_metric([venue], histogram.cumulative(), histogram.total)
        yield lag
        queue = service.queue
        depth = GaugeMetricFamily("bookcast_queue_depth", "Records waiting to be processed.")
        depth.add_metric([], queue.qsize() if queue is not None else 0)
        yield depth
        capacity = GaugeMetricFamily("bookcast_queue_capacity", "Bound of the record queue.")
        capacity.add_metric([], service.config.queue_size)
        yield capacity
        pressure = CounterMetricFamily("bookcast_backpressure_events", "Times a receiver found "
                                       "the queue full and waited (the socket stops being read).")
        pressure.add_metric([], service.backpressure_events)
        yield pressure
        pressure_s = CounterMetricFamily("bookcast_backpressure_seconds", "Seconds receivers "
                                         "spent waiting for queue space.")
        pressure_s.add_metric([], service.backpressure_seconds)
        yield pressure_s
        flushes = CounterMetricFamily("bookcast_flushes", "Flushes of Parquet and raw capture.")
        flushes.add_metric([], service.flushes)
        yield flushes


async def start_metrics_server(metrics: DaemonMetrics, sock: socket.socket) -> object:
    """Serve /metrics and /healthz on an already bound socket; returns the runner."""
    from aiohttp import web

    async def metrics_page(request: web.Request) -> web.Response:
        body = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        problems = metrics.service.health_problems()
        if problems:
            return web.Response(status=503, text="; ".join(problems) + "\n")
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    return runner
