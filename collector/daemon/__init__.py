"""`bookcast collect`: the long-running collector daemon (live websockets -> raw capture + Parquet).

    config.py        what to collect, checked up front (flags, TOML)
    startup.py       one writer per partition (locks) and a crash's debris
    connection.py    one websocket, REST fetches, back-off, rate limits
    record_queue.py  the bounded queue between the sockets and the processor
    feed.py          one venue: connection -> capture line + pipeline; resyncs, refreshes
    raw_log.py       the raw capture, cut into segments per flush
    storage.py       the disk writer thread: writes, retries, the memory bound
    counters.py      the numbers each part owns; metrics.py renders them
    logs.py          log lines as text or JSON
    service.py       runs it all in one event loop; shutdown in bounded time

The names below load on first use, so other commands do not import the daemon.
"""

from __future__ import annotations

from bookcast.lazy import lazy_exports

_EXPORTS = {
    "DaemonConfig": "collector.daemon.config", "StreamConfig": "collector.daemon.config",
    "CollectorService": "collector.daemon.service", "run_daemon": "collector.daemon.service",
}
__getattr__, __all__ = lazy_exports("collector.daemon", _EXPORTS)
