"""`bookcast collect`: the long-running collector daemon (live websockets -> raw capture + Parquet).

The names below load on first use, so other commands do not import the daemon.
"""

from __future__ import annotations

from bookcast.lazy import lazy_exports

_EXPORTS = {
    "DaemonConfig": "collector.daemon.config", "StreamConfig": "collector.daemon.config",
    "CollectorService": "collector.daemon.service", "run_daemon": "collector.daemon.service",
}
__getattr__, __all__ = lazy_exports("collector.daemon", _EXPORTS)
