"""The market simulator: a queue-reactive order-book model writing Binance spot captures.

`simulate_symbol` runs one symbol's model (model.py) with its preset (presets.py) and
writes the capture through protocol.py; `calibrate_preset` estimates a preset from a
real capture; `book_statistics` measures what the tests compare on real and simulated data.
"""

from collector.simulator.presets import PRESETS, SymbolPreset, preset_for
from collector.simulator.simulate import SimulationSummary, capture_path, simulate_symbol

__all__ = ["PRESETS", "SimulationSummary", "SymbolPreset", "capture_path", "preset_for",
           "simulate_symbol"]
