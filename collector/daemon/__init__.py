"""`bookcast collect`: the long-running collector daemon (live websockets -> raw capture + Parquet).

The names below load on first use, so other commands do not import the daemon.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DaemonConfig": "collector.daemon.config", "StreamConfig": "collector.daemon.config",
    "CollectorService": "collector.daemon.service", "run_daemon": "collector.daemon.service",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'collector.daemon' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
