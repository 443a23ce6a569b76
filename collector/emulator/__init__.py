"""`bookcast serve`: an exchange emulator on loopback that plays captures in each venue's protocol.

The names below load on first use, so `bookcast --help` does not import the server.
"""

from __future__ import annotations

from bookcast.lazy import lazy_exports

_EXPORTS = {"EmulatorConfig": "collector.emulator.server",
            "serve_captures": "collector.emulator.server",
            "FaultPlan": "collector.emulator.faults",
            "ExchangeBook": "collector.emulator.exchange"}
__getattr__, __all__ = lazy_exports("collector.emulator", _EXPORTS)
