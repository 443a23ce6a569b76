"""The market simulator: a queue-reactive order-book model writing venues' own captures.

`simulate_captures` runs the model (model.py) with a preset and scenario (presets.py) and
writes each session's capture through its venue protocol (protocols/); `calibrate_preset`
estimates a preset from a real capture; `market_statistics` measures what the band table
(stats.BANDS) compares on real and simulated data alike.
The names below load on first use, so `bookcast --help` does not compile the model.
"""

from __future__ import annotations

from bookcast.lazy import lazy_exports

_EXPORTS = {
    "PRESETS": "collector.simulator.presets",
    "SCENARIO_NAMES": "collector.simulator.presets",
    "SymbolPreset": "collector.simulator.presets",
    "preset_for": "collector.simulator.presets",
    "regime_schedule": "collector.simulator.presets",
    "SimulationSummary": "collector.simulator.simulate",
    "capture_path": "collector.simulator.simulate",
    "simulate_captures": "collector.simulator.simulate",
    "simulate_session": "collector.simulator.simulate",
    "calibrate_preset": "collector.simulator.calibrate",
    "BANDS": "collector.simulator.stats",
    "market_statistics": "collector.simulator.stats",
    "read_market": "collector.simulator.stats",
}
__getattr__, __all__ = lazy_exports("collector.simulator", _EXPORTS)
