"""`bookcast serve`: an exchange emulator on loopback that plays captures in each venue's protocol."""

from collector.emulator.server import EmulatorConfig, FaultPlan, serve_captures

__all__ = ["EmulatorConfig", "FaultPlan", "serve_captures"]
