"""`bookcast serve`: an exchange emulator on loopback that plays captures in each venue's protocol.

The names below load on first use, so `bookcast --help` does not import the server.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"EmulatorConfig", "FaultPlan", "serve_captures"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'collector.emulator' has no attribute {name!r}")
    return getattr(importlib.import_module("collector.emulator.server"), name)
