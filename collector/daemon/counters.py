"""The daemon's counters: plain numbers owned by the parts that change them.

Connections, REST fetches, the disk writer and the service each own their counters and
bump them on the hot path as plain attribute updates. `/metrics` reads them through
`FeedReport` and `ServiceCounters` at scrape time and never changes them; nothing
here imports the service, so the metrics module depends on these and nothing else.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field

from collector.state import SymbolState

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
               30.0, 60.0)
DATASETS = ("snapshots", "trades", "raw")


@dataclass
class StreamCounters:
    """One websocket connection's."""

    messages: int = 0
    bytes: int = 0
    connects: int = 0
    reconnects: int = 0
    disconnects: int = 0
    stale: int = 0
    connect_failures: int = 0
    invalid_utf8: int = 0
    last_message_monotonic: float = 0.0


@dataclass
class RestCounters:
    """One venue's REST requests."""

    requests: int = 0
    failures: int = 0
    throttled: int = 0
    banned: int = 0


class LagHistogram:
    """One venue's receive lags: counts per LAG_BUCKETS bound (`le`), then +Inf, and a sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LAG_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LAG_BUCKETS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        buckets, running = [], 0
        for bound, count in zip((*LAG_BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets


@dataclass
class WriteCounters:
    """What the disk writer did, per dataset, and per (venue, symbol) for rows."""

    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DATASETS, 0))
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DATASETS, 0))
    parts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DATASETS, 0))
    rows_written: dict[tuple[str, str, str], int] = field(
        default_factory=lambda: defaultdict(int))  # (dataset, venue, symbol) -> rows
    backlog_bytes: int = 0
    backlog_parts: int = 0
    write_seconds_max: float = 0.0  # longest from a flush to its part on disk (written)
    failing_since: float | None = None  # monotonic start of the current failure episode
    last_error: str = ""


@dataclass
class ServiceCounters:
    """The service's own: the queue, flushes, what start-up found."""

    queue_depth: int = 0
    queue_capacity: int = 0
    loop_lag: LagHistogram = field(default_factory=lambda: LagHistogram())
    backpressure_events: int = 0
    backpressure_seconds: float = 0.0
    flushes: int = 0
    flush_late_seconds_max: float = 0.0  # how much later than planned a flush ran, at most
    refreshes: int = 0
    recovered_files: int = 0
    removed_files: int = 0


@dataclass
class FeedReport:
    """One venue's numbers at scrape time (built by the feed; read by /metrics)."""

    venue: str
    conn: str
    stream: StreamCounters
    rest: RestCounters
    lag: LagHistogram
    states: list[SymbolState]
    parse_errors: int
    raw_records: int
    top_checked: int
    top_mismatched: int
