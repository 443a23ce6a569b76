"""`bookcast simulate --compare CAPTURE`: a real capture against the simulator, statistic by
statistic, through the same path for both (capture -> replay on the 1 s grid with 10
levels -> stats.market_statistics) and against the one band table (stats.BANDS)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from bookcast.errors import UserError
from collector.simulator.presets import Regime
from collector.simulator.stats import (
    BANDS,
    DEPTH,
    GRID_NS,
    Comparison,
    MarketStatistics,
    compare,
    market_statistics,
    read_market,
)


@dataclass(frozen=True)
class SymbolComparison:
    venue: str
    symbol: str
    scenario: str
    real: MarketStatistics
    simulated: MarketStatistics
    rows: list[Comparison]

    @property
    def holds(self) -> bool:
        return all(r.holds for r in self.rows)


def replayed_statistics(capture: Path, data_dir: Path, venue: str | None = None,
                        symbols: list[str] | None = None) -> dict[str, MarketStatistics]:
    """Replay a capture on the statistics' grid and measure every symbol with a book."""
    from collector.replay import replay_captures

    summary = replay_captures([capture], data_dir, interval_ns=GRID_NS, depth=DEPTH,
                              venue=venue, symbols=symbols)
    out = {}
    for name, pipeline in summary.pipelines.items():
        for state in pipeline.states():
            if state.resyncs:
                out[state.symbol] = market_statistics(read_market(data_dir, name,
                                                                  state.symbol))
    return out


def real_market(capture: Path, data_dir: Path) -> tuple[str, dict[str, MarketStatistics]]:
    """(venue, statistics per symbol) of a real capture."""
    from collector.replay import sniff_venue

    if not capture.is_file():
        raise UserError(f"The capture '{capture}' does not exist.")
    venue = sniff_venue(capture)
    if venue is None:
        raise UserError(f"Cannot tell which venue recorded '{capture}'.")
    return venue, replayed_statistics(capture, data_dir, venue)


def compare_simulation(real: dict[str, MarketStatistics], venue: str,
                       schedules: list[list[Regime]], hours: float, seed: int,
                       work: Path) -> list[SymbolComparison]:
    """Simulate the schedules' symbols and set each against the real statistics."""
    from collector.simulator.simulate import capture_path, session_groups, simulate_session

    by_symbol = {s[0].preset.symbol: s for s in schedules}
    results = []
    for group in session_groups(venue, list(by_symbol)):
        path = capture_path(work / "sim", venue, group, seed)
        simulate_session(venue, [by_symbol[s] for s in group], hours, seed, path)
        simulated = replayed_statistics(path, work / "sim-data", venue)
        for symbol in group:
            scenario = "+".join(dict.fromkeys(r.name for r in by_symbol[symbol]))
            results.append(SymbolComparison(venue, symbol, scenario, real[symbol],
                                            simulated[symbol],
                                            compare(real[symbol], simulated[symbol])))
    return results


def comparisons(capture: Path, schedules_for: object, hours: float, seed: int
                ) -> list[SymbolComparison]:
    """Everything `--compare` prints: the capture's symbols that have a preset, simulated."""
    with tempfile.TemporaryDirectory(prefix="bookcast-compare-") as tmp:
        work = Path(tmp)
        venue, real = real_market(capture, work / "real")
        schedules = schedules_for(venue, sorted(real))  # type: ignore[operator]
        if not schedules:
            raise UserError(f"No symbol of '{capture}' ({', '.join(sorted(real))}) has a "
                            f"simulator preset for {venue}; pass --calibrate-from.")
        return compare_simulation(real, venue, schedules, hours, seed, work)


def markdown_table(results: list[SymbolComparison]) -> str:
    """The comparison as docs/simulator.md prints it: one column pair per symbol."""
    head = "| statistic | band |"
    rule = "|---|---|"
    for r in results:
        head += f" real {r.venue} {r.symbol} | simulated ({r.scenario}) |"
        rule += "---|---|"
    lines = [head, rule]
    for k, band in enumerate(BANDS):
        line = f"| {band.label} | {band.describe()} |"
        for r in results:
            row = r.rows[k]
            mark = "" if row.holds else " ✗"
            line += f" {_fmt(row.real)} | {_fmt(row.simulated)}{mark} |"
        lines.append(line)
    return "\n".join(lines)


def band_table() -> str:
    """The band table itself, as docs/simulator.md prints it (a test keeps them equal)."""
    lines = ["| statistic | band | why it matters |", "|---|---|---|"]
    lines += [f"| {b.label} (`{b.statistic}`) | {b.describe()} | {b.why} |" for b in BANDS]
    return "\n".join(lines)


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
