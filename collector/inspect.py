"""`bookcast inspect`: what a data directory holds, read with duckdb from the Parquet files.

Four sections: the snapshots and trades per (venue, symbol, date), the feature sets per
partition, the runs and the backtests. `--json` prints the same as one document, keys
documented in docs/architecture.md ("Machine-readable output").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bookcast import terminal
from bookcast.errors import UserError, parquet_error
from bookcast.paths import backtests_dir, finished_ids, runs_dir
from bookcast.terminal import Column
from bookcast.timeutil import format_duration_ns


@dataclass
class Coverage:
    dataset: str
    venue: str
    symbol: str
    date: str
    files: int
    rows: int
    gaps: int | None
    first: str
    last: str


@dataclass
class FeatureCoverage:
    feature_set: str
    venue: str
    symbol: str
    date: str
    files: int
    rows: int
    first: str
    last: str
    horizons: list[str]
    fee_bps: float | None


@dataclass
class RunEntry:
    run_id: str
    model: str | None
    venue: str | None
    symbol: str | None
    horizon: str | None
    fee_bps: float | None


@dataclass
class BacktestEntry:
    backtest_id: str
    run_id: str | None
    venue: str | None
    symbol: str | None
    fee_bps: float | None
    n_trades: int | None
    net_pnl: float | None


@dataclass
class Inventory:
    data_dir: str
    datasets: list[Coverage] = field(default_factory=list)
    features: list[FeatureCoverage] = field(default_factory=list)
    runs: list[RunEntry] = field(default_factory=list)
    backtests: list[BacktestEntry] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.datasets or self.features or self.runs or self.backtests)


def inspect_data_dir(root: Path) -> list[Coverage]:
    """Rows, gaps and time range per (dataset, venue, symbol, date) of snapshots and trades."""
    _require_dir(root)
    out: list[Coverage] = []
    for dataset, ts_col, gap_expr in (("snapshots", "ts", "count_if(gap)"),
                                      ("trades", "ts_recv", "NULL")):
        rows = _partition_summary(root / dataset, ts_col, f", {gap_expr}",
                                  f"The {dataset} under '{root}' cannot be read")
        out += [Coverage(dataset, *r) for r in rows]
    return out


def inventory(root: Path) -> Inventory:
    """Everything `bookcast inspect` reports about one data root."""
    found = Inventory(str(root), datasets=inspect_data_dir(root))
    features = root / "features"
    for folder in sorted(p for p in features.iterdir() if p.is_dir()) if features.is_dir() else []:
        config = _read_json(folder / "config.json")
        horizons = list(config.get("horizons") or [format_duration_ns(h) for h in
                                                  config.get("horizons_ns") or []])
        rows = _partition_summary(folder, "ts", "", f"The feature set '{folder.name}' cannot be read")
        found.features += [FeatureCoverage(folder.name, *r, horizons=horizons,
                                           fee_bps=config.get("fee_bps")) for r in rows]
    for run_id in reversed(finished_ids(runs_dir(root), "run.json")):
        run = _read_json(runs_dir(root) / run_id / "run.json")
        found.runs.append(RunEntry(run_id, run.get("model"), run.get("venue"), run.get("symbol"),
                                   run.get("horizon"), run.get("fee_bps")))
    for backtest_id in reversed(finished_ids(backtests_dir(root), "stats.json")):
        folder = backtests_dir(root) / backtest_id
        config, stats = _read_json(folder / "config.json"), _read_json(folder / "stats.json")
        found.backtests.append(BacktestEntry(
            backtest_id, config.get("run_id"), config.get("venue"), config.get("symbol"),
            config.get("fee_bps"), stats.get("n_trades"), stats.get("net_pnl")))
    reports = root / "reports"
    found.reports = sorted(str(p.relative_to(root)) for p in reports.glob("*")
                           if p.is_file() and not p.name.startswith(".")) if reports.is_dir() else []
    return found


def _require_dir(root: Path) -> None:
    if not root.exists():
        raise UserError(f"The data directory '{root}' does not exist.")
    if not root.is_dir():
        raise UserError(f"'{root}' is not a directory.")


def _partition_summary(base: Path, ts_col: str, extra: str, what: str) -> list[tuple]:
    """(venue, symbol, date, files, rows[, extra], first, last) per Hive partition."""
    import duckdb

    files = sorted(base.glob("venue=*/symbol=*/date=*/*.parquet"))
    if not files:
        return []
    try:
        return duckdb.connect().execute(
            f"""SELECT venue, symbol, CAST(date AS VARCHAR), count(DISTINCT filename),
                       count(*){extra},
                       strftime(min({ts_col}), '%Y-%m-%d %H:%M:%S'),
                       strftime(max({ts_col}), '%Y-%m-%d %H:%M:%S')
                FROM read_parquet(?, hive_partitioning=true, filename=true,
                                  hive_types_autocast=false)
                GROUP BY ALL ORDER BY ALL""", [[str(f) for f in files]]).fetchall()
    except duckdb.Error as exc:
        raise parquet_error(files, exc, what) from None


def _read_json(path: Path) -> dict[str, Any]:
    """A run's or backtest's JSON file; a damaged one is named, never a traceback."""
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"The file '{path}' cannot be read as JSON: {exc}.") from None
    return value if isinstance(value, dict) else {}


def inventory_json(found: Inventory) -> dict[str, Any]:
    return asdict(found)


def print_inventory(found: Inventory) -> None:
    if found.is_empty():
        terminal.console().print(
            f"The data directory '{found.data_dir}' holds no snapshots, trades, features, "
            "runs or backtests yet. Start with `bookcast simulate`, `bookcast replay "
            "CAPTURE` or `bookcast collect`.", highlight=False)
        return
    if found.datasets:
        terminal.print_table(
            [Column("dataset", align="left"), Column("venue", align="left"),
             Column("symbol", align="left"), Column("date", align="left"), Column("files"),
             Column("rows"), Column("gaps"), Column("first", "UTC", "left"),
             Column("last", "UTC", "left")],
            [(c.dataset, c.venue, c.symbol, c.date, c.files, f"{c.rows:,}", c.gaps, c.first,
              c.last) for c in found.datasets],
            title=f"snapshots and trades under {found.data_dir}", keys=3)
    if found.features:
        terminal.print_table(
            [Column("feature set", align="left"), Column("venue", align="left"),
             Column("symbol", align="left"), Column("date", align="left"), Column("rows"),
             Column("label fee", "bps"), Column("horizons", align="left"),
             Column("first", "UTC", "left"), Column("last", "UTC", "left")],
            [(f.feature_set, f.venue, f.symbol, f.date, f"{f.rows:,}",
              None if f.fee_bps is None else f"{f.fee_bps:g}", ",".join(f.horizons), f.first,
              f.last) for f in found.features],
            title="features and fee-aware labels", keys=3)
    if found.runs:
        terminal.print_table(
            [Column("run id", align="left"), Column("model", align="left"),
             Column("venue", align="left"), Column("symbol", align="left"),
             Column("horizon"), Column("fee", "bps")],
            [(r.run_id, r.model, r.venue, r.symbol, r.horizon,
              None if r.fee_bps is None else f"{r.fee_bps:g}") for r in found.runs],
            title="runs (bookcast runs compares them)")
    if found.backtests:
        terminal.print_table(
            [Column("backtest id", align="left"), Column("symbol", align="left"),
             Column("fee", "bps"), Column("trades"), Column("net PnL", "quote currency")],
            [(b.backtest_id, b.symbol, None if b.fee_bps is None else f"{b.fee_bps:g}",
              b.n_trades, None if b.net_pnl is None else f"{b.net_pnl:,.2f}")
             for b in found.backtests],
            title="backtests")
    if found.reports:
        terminal.console().print("reports: " + ", ".join(found.reports), highlight=False)
