"""`bookcast collect`: the long-running collector daemon (live websockets -> raw capture + Parquet)."""

from collector.daemon.config import DaemonConfig, StreamConfig
from collector.daemon.service import CollectorService, run_daemon

__all__ = ["CollectorService", "DaemonConfig", "StreamConfig", "run_daemon"]
