"""The market simulator: a queue-reactive order-book model writing Binance spot captures.

`simulate_symbol` runs one symbol's model (model.py) with its preset (presets.py) and
writes the capture through protocol.py; `calibrate_preset` estimates a preset from a
real capture; `book_statistics` measures what the tests compare on real and simulated data.
The names below load on first use, so `bookcast --help` does not compile the model.
"""

from __future__ import annotations

from bookcast.lazy import lazy_exports

_EXPORTS = {
    "PRESETS": "collector.simulator.presets",
    "SymbolPreset": "collector.simulator.presets",
    "preset_for": "collector.simulator.presets",
    "SimulationSummary": "collector.simulator.simulate",
    "capture_path": "collector.simulator.simulate",
    "simulate_symbol": "collector.simulator.simulate",
}
__getattr__, __all__ = lazy_exports("collector.simulator", _EXPORTS)
