"""`bookcast verdict`: would the trained models' forecasts have paid, out of sample, after
spread and fees? One row per symbol x strategy x horizon x fee x execution.

Strategies per symbol: every trained model (the latest run of each model and horizon),
`random (<model>)` (random entries matched to that model's filled trades in number and
side mix), `imbalance rule` (the L1-imbalance baseline under the same trading policy as
the models) and `oracle` (perfect foresight of the round trip, an upper bound).
Fees: 0, 1, 2, 5, 7.5, 10 bps and the venue's taker and maker presets, charged per side on
both legs. Executions: `taker`, and `maker` (the entry rests at the touch and fills only
when the price trades through it, `backtest.fills`). Every row is the run's test split.

Labels, decision and backtest of one row share its fee and execution: the model's trading
policy is re-derived at the row's fee and execution (`backtest.decide`), the oracle knows
the round trip at that fee, and the fills are charged that fee. A strategy's decisions are
priced once per fee only where they change: fills never depend on fees, so the net of
fixed fills at any fee is arithmetic.

Writes reports/verdict.json (`{"rows": [...]}` with the keys of ROW_KEYS, plus the
minimum sample and what each inconclusive row would need) and reports/verdict.png (a fee
x horizon heat-map of net bps per trade per strategy, the oracle's break-even frontier
drawn).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from backtest import signals
from backtest.data import Book, load_book
from backtest.decide import RunContext, load_context
from backtest.engine import BacktestConfig, Fills, matched_random, price_decisions
from backtest.significance import HOUR_NS, MIN_SPAN_NS, MIN_TRADES, holm_keeps, judge_trades
from bookcast import terminal
from bookcast.errors import UserError
from bookcast.fees import DEFAULT_PRESET_FOR_VENUE, fee_preset
from bookcast.paths import runs_dir
from bookcast.terminal import Column
from bookcast.timeutil import format_duration_ns

FEE_GRID_BPS = (0.0, 1.0, 2.0, 5.0, 7.5, 10.0)
EXECUTIONS = ("taker", "maker")
ROW_KEYS = ("symbol", "strategy", "horizon", "fee_bps", "execution", "n_trades",
            "net_bps_per_trade", "ci95", "break_even_fee_bps", "verdict")
REPORT_DIR = "reports"
VERDICT_FILE = "verdict.json"
HEATMAP_FILE = "verdict.png"
NOTIONAL = 1000.0
IMBALANCE = "imbalance rule"
ORACLE = "oracle"
MARKS = {"pays": "P", "loses": "L", "inconclusive": "?", "no trades": "·"}


def report_dir(root: Path) -> Path:
    return root / REPORT_DIR


def fee_levels(venue: str) -> list[float]:
    """The fee grid plus the venue's regular taker and maker fees, per side."""
    levels = set(FEE_GRID_BPS)
    name = DEFAULT_PRESET_FOR_VENUE.get(venue)
    if name is not None:
        preset = fee_preset(name)
        levels |= {preset.taker_bps, preset.maker_bps}
    return sorted(levels)


# ---------------------------------------------------------------- pricing


@dataclass(frozen=True)
class Priced:
    """A strategy's filled round trips, fee-free: the net at any fee is arithmetic."""

    side: np.ndarray
    qty: np.ndarray
    entry_px: np.ndarray
    exit_px: np.ndarray
    entry_ts: np.ndarray
    exit_ts: np.ndarray

    @classmethod
    def of(cls, fills: Fills, book: Book) -> Priced:
        ok = fills.ok
        return cls(fills.decisions.side[ok].astype(np.float64), fills.qty[ok],
                   fills.entry_px[ok], fills.exit_px[ok], book.ts[fills.entry_row[ok]],
                   book.ts[fills.exit_row[ok]])

    def __len__(self) -> int:
        return int(self.side.shape[0])

    def row(self, fee_bps: float, drift_bps: float = 0.0) -> dict[str, Any]:
        """n_trades, net_bps_per_trade, ci95, break_even_fee_bps and the verdict at a fee
        per side on both legs (`pays` beating `drift_bps`, the mid's mean move over the
        horizon, given to each trade's side); also the span and what an inconclusive row
        would need."""
        n = len(self)
        if n == 0:
            return {"n_trades": 0, "net_bps_per_trade": None, "ci95": None,
                    "break_even_fee_bps": None, "verdict": "no trades", "span_ns": 0,
                    "needs": None, "drift_only": False, "p_value": None}
        at_fill = self.side * self.qty * (self.exit_px - self.entry_px)
        traded = self.qty * (self.entry_px + self.exit_px)
        net_bps = (at_fill - fee_bps * 1e-4 * traded) / (self.qty * self.entry_px) * 1e4
        span = int(self.exit_ts.max() - self.entry_ts.min())
        ci, judgement = judge_trades(net_bps, span, drift=self.side * drift_bps)
        return {"n_trades": n, "net_bps_per_trade": float(net_bps.mean()), "ci95": ci,
                "break_even_fee_bps": float(at_fill.sum() / traded.sum() * 1e4),
                "verdict": judgement.word, "span_ns": span, "drift_only": judgement.drift_only,
                "p_value": judgement.p_value,
                "needs": (None if judgement.trades_needed is None else
                          {"trades": judgement.trades_needed,
                           "test_hours": judgement.hours_needed,
                           "at_least": judgement.at_least})}


@dataclass
class Pricer:
    """Fills of one symbol's book, cached by (execution, decisions): the same decisions at
    another fee are never priced twice."""

    book: Book
    latency_ns: int
    notional: float = NOTIONAL
    cache: dict[tuple, Priced] = field(default_factory=dict)

    def config(self, execution: str, hold_ns: int) -> BacktestConfig:
        return BacktestConfig(fee_bps=0.0, hold_ns=hold_ns, horizon_ns=hold_ns,
                              maker=execution == "maker", notional=self.notional)

    def price(self, decisions: signals.Decisions, execution: str, hold_ns: int) -> Priced:
        key = (execution, decisions.entry_ts.tobytes(), decisions.exit_ts.tobytes(),
               decisions.side.tobytes())
        if key not in self.cache:
            fills = price_decisions(self.book, decisions, self.config(execution, hold_ns),
                                    self.latency_ns)
            self.cache[key] = Priced.of(fills, self.book)
        return self.cache[key]

    def signal(self, ts: np.ndarray, side: np.ndarray, execution: str, hold_ns: int) -> Priced:
        return self.price(signals.schedule(ts, side, hold_ns), execution, hold_ns)

    def random_like(self, model: Priced, ts: np.ndarray, execution: str, hold_ns: int,
                    seed: int) -> Priced:
        n_long, n_short = int((model.side > 0).sum()), int((model.side < 0).sum())
        rng = np.random.default_rng(seed)
        fills = matched_random(self.book, ts, n_long, n_short, hold_ns, rng,
                               self.config(execution, hold_ns), self.latency_ns)
        return Priced.of(fills, self.book)


# ---------------------------------------------------------------- which runs


def latest_runs(root: Path, symbol: str | None = None) -> list[Path]:
    """The newest training run of each (venue, symbol, model, horizon) that stores what a
    verdict needs (its policies and validation probabilities)."""
    folder = runs_dir(root)
    chosen: dict[tuple, tuple[str, Path]] = {}
    for info_path in sorted(folder.glob("*/run.json")) if folder.is_dir() else []:
        run_dir = info_path.parent
        if run_dir.name.startswith("."):
            continue
        try:
            info = json.loads(info_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if info.get("kind", "train") != "train" or "rules" not in info:
            continue
        if symbol is not None and symbol not in (info.get("symbol"), run_dir.name):
            continue
        key = (info["venue"], info["symbol"], info["model"], info["horizon_ns"])
        stamp = str(info.get("created_at", ""))
        if key not in chosen or stamp >= chosen[key][0]:
            chosen[key] = (stamp, run_dir)
    return [path for _, path in sorted(chosen.values(), key=lambda v: str(v[1]))]


# ---------------------------------------------------------------- the report


@dataclass
class SymbolSummary:
    venue: str
    symbol: str
    fees: list[float]
    horizons: list[str]
    test_hours: float
    test_share: float
    runs: list[str]
    frontier: dict[str, dict[str, float | None]]  # execution -> horizon -> bps
    # The rows' `symbol`: the symbol, or "<venue> <symbol>" when the same symbol was
    # trained on more than one venue (spot and perpetual BTCUSDT are different markets).
    label: str = ""
    # horizon -> the mid's mean move over it across the test split, bps: what the market's
    # drift gave a long held that long, whatever the forecast
    drift_bps: dict[str, float] = field(default_factory=dict)


@dataclass
class VerdictReport:
    rows: list[dict[str, Any]]
    needs: list[dict[str, Any]]
    symbols: list[SymbolSummary]
    json_path: Path
    png_path: Path | None
    drift_only: list[dict[str, Any]] = field(default_factory=list)
    not_after_correction: list[dict[str, Any]] = field(default_factory=list)


def run_verdict(root: Path, symbol: str | None = None, progress: bool = False,
                notional: float = NOTIONAL) -> VerdictReport:
    """Evaluate every cell, write reports/verdict.json and the heat-map, return the report.
    Each trade is `notional` in the quote currency, walking the book as the backtest does."""
    if not notional > 0:
        raise UserError(f"The order notional {notional} is not positive.")
    runs = latest_runs(root, symbol)
    if not runs:
        what = f" for {symbol}" if symbol else ""
        raise UserError(f"There are no trained runs{what} under {runs_dir(root)} to judge; "
                        f"train some first with `bookcast train --data-dir {root}`.")
    by_symbol: dict[tuple[str, str], list[Path]] = {}
    for run_dir in runs:
        info = json.loads((run_dir / "run.json").read_text())
        by_symbol.setdefault((info["venue"], info["symbol"]), []).append(run_dir)
    rows: list[dict[str, Any]] = []
    needs: list[dict[str, Any]] = []
    drift_only: list[dict[str, Any]] = []
    by_chance: list[dict[str, Any]] = []
    summaries: list[SymbolSummary] = []
    items: Iterable = by_symbol.items()
    if progress:
        items = terminal.progress(list(by_symbol.items()), "verdict", total=len(by_symbol))
    venues = Counter(name for _, name in by_symbol)
    for (venue, name), run_dirs in items:
        label = name if venues[name] == 1 else f"{venue} {name}"
        symbol_rows, summary = judge_symbol(root, venue, name, run_dirs, notional, label)
        for row in symbol_rows:
            if row["drift_only"]:
                drift_only.append({k: row[k] for k in ROW_KEYS})
            if row["not_after_correction"]:
                by_chance.append({k: row[k] for k in ROW_KEYS}
                                 | {"p_value": row["p_value"], "family_size": row["family_size"]})
            if row["needs"] is not None:
                test_hours = row["needs"]["test_hours"]
                needs.append({k: row[k] for k in ("symbol", "strategy", "horizon", "fee_bps",
                                                  "execution")}
                             | {"trades_needed": row["needs"]["trades"],
                                "trades_needed_at_least": row["needs"]["at_least"],
                                "test_hours_needed": test_hours,
                                "beyond_drift": row["drift_only"],
                                "recorded_hours_needed": (None if test_hours is None else
                                                          test_hours / summary.test_share)})
            rows.append({k: row[k] for k in ROW_KEYS})
        summaries.append(summary)
    out = report_dir(root)
    out.mkdir(parents=True, exist_ok=True)
    png = write_heatmap(rows, summaries, out / HEATMAP_FILE)
    payload = {
        "rows": rows,
        "notional": notional,
        "minimum_sample": {"trades": MIN_TRADES, "span_minutes": MIN_SPAN_NS / 60e9,
                           "interval": "batch means, t, 95 %",
                           "coverage": "docs/backtest.md (tests/backtest/test_coverage.py)"},
        "needs": needs,
        # rows whose trades paid, but no more than the market's drift paid their sides
        # (`inconclusive`; backtest.significance)
        "drift_only": drift_only,
        # rows whose interval clears zero but not Holm's correction over the rows judged
        # with them (`inconclusive`)
        "not_after_correction": by_chance,
        "symbols": [summary.__dict__ for summary in summaries],
        "heatmap": None if png is None else str(png.name),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    path = out / VERDICT_FILE
    tmp = out / f".{VERDICT_FILE}.tmp"
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default))
    os.replace(tmp, path)
    return VerdictReport(rows, needs, summaries, path, png, drift_only, by_chance)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def judge_symbol(root: Path, venue: str, symbol: str, run_dirs: list[Path],
                 notional: float = NOTIONAL, label: str | None = None,
                 ) -> tuple[list[dict[str, Any]], SymbolSummary]:
    """Every row of one symbol: its models at their horizons, the comparison rows at the
    same horizons, the oracle at every horizon a model was trained for. `label` is the
    rows' `symbol` (default: the symbol itself)."""
    label = label or symbol
    cache: dict = {}
    contexts = [load_context(run_dir, root, cache) for run_dir in run_dirs]
    fees = fee_levels(venue)
    first = min(int(c.data.ts[c.splits.test[0]]) for c in contexts)
    last = max(int(c.data.ts[c.splits.test[-1]]) for c in contexts)
    reach = max(c.data.horizon_ns for c in contexts) + 2 * contexts[0].data.interval_ns
    book = load_book(root, venue, symbol, first, last + reach, notional=notional)
    pricer = Pricer(book, contexts[0].latency_ns, notional)
    rows: list[dict[str, Any]] = []
    by_horizon: dict[int, list[RunContext]] = {}
    for c in contexts:
        by_horizon.setdefault(c.data.horizon_ns, []).append(c)
    frontier: dict[str, dict[str, float | None]] = {e: {} for e in EXECUTIONS}
    summary_drift: dict[str, float] = {}
    for horizon_ns in sorted(by_horizon):
        group = by_horizon[horizon_ns]
        horizon = format_duration_ns(horizon_ns)
        test_ts = group[0].data.ts[group[0].splits.test]
        drift = book.mean_move_bps(test_ts, horizon_ns)
        for execution in EXECUTIONS:
            for fee in fees:
                cell = {"symbol": label, "horizon": horizon, "fee_bps": float(fee),
                        "execution": execution}
                for c in group:
                    ts, side = c.decide("model", fee, execution)
                    model = pricer.signal(ts, side, execution, horizon_ns)
                    rows.append(cell | {"strategy": c.meta["model"]} | model.row(fee, drift))
                    random = pricer.random_like(model, ts, execution, horizon_ns,
                                                seed=int(c.config.seed))
                    rows.append(cell | {"strategy": f"random ({c.meta['model']})"}
                                | random.row(fee, drift))
                ts, side = group[0].decide("imbalance_rule", fee, execution)
                rows.append(cell | {"strategy": IMBALANCE}
                            | pricer.signal(ts, side, execution, horizon_ns).row(fee, drift))
                oracle = signals.oracle_sides(book, test_ts, horizon_ns, pricer.latency_ns, fee,
                                              fee if execution == "maker" else None)
                priced = pricer.signal(test_ts, oracle, execution, horizon_ns)
                rows.append(cell | {"strategy": ORACLE} | priced.row(fee, drift))
                if fee == 0.0:
                    frontier[execution][horizon] = priced.row(0.0)["break_even_fee_bps"]
                    summary_drift[horizon] = drift
    correct_for_many(rows)
    test_spans = [float(c.data.ts[c.splits.test[-1]] - c.data.ts[c.splits.test[0]])
                  for c in contexts]
    summary = SymbolSummary(
        venue=venue, symbol=symbol, fees=fees,
        horizons=[format_duration_ns(h) for h in sorted(by_horizon)],
        test_hours=max(test_spans) / HOUR_NS,
        test_share=float(contexts[0].config.fractions[2]),
        runs=[c.meta["run_id"] for c in contexts], frontier=frontier, label=label,
        drift_bps=summary_drift)
    return rows, summary


def correct_for_many(rows: list[dict[str, Any]]) -> None:
    """A `pays` stays only where it survives Holm's correction over every row with an
    interval (`backtest.significance.holm_keeps`); the others become `inconclusive`,
    flagged `not_after_correction`."""
    family = [r for r in rows if r["p_value"] is not None]
    for row, kept in zip(family, holm_keeps([r["p_value"] for r in family]), strict=True):
        row["not_after_correction"] = row["verdict"] == "pays" and not kept
        if row["not_after_correction"]:
            row["verdict"] = "inconclusive"
    for row in rows:
        row.setdefault("not_after_correction", False)
        row["family_size"] = len(family)


# ---------------------------------------------------------------- printing


def _cell(row: dict[str, Any]) -> str:
    if row["verdict"] == "no trades":
        return MARKS["no trades"]
    return f"{row['net_bps_per_trade']:+.1f} {MARKS[row['verdict']]}"


def print_verdict(report: VerdictReport, file: IO[str] | None = None) -> None:
    """Per symbol and execution: strategy x horizon down, fees across, each cell the net
    bps per trade and its verdict mark; then what the marks mean and what is missing."""
    import sys
    import textwrap

    out = file or sys.stdout
    width = terminal.page_width()

    def say(text: str) -> None:
        out.write(textwrap.fill(text, width, break_long_words=False) + "\n")

    for summary in report.symbols:
        rows = [r for r in report.rows if r["symbol"] == summary.label]
        for execution in EXECUTIONS:
            grid: dict[tuple[str, str], dict[float, dict[str, Any]]] = {}
            for r in rows:
                if r["execution"] == execution:
                    grid.setdefault((r["strategy"], r["horizon"]), {})[r["fee_bps"]] = r
            columns = [Column("strategy", align="left"), Column("horizon", align="left"),
                       *[Column(f"{fee:g}", "bps") for fee in summary.fees]]
            table = [(strategy, horizon, *[_cell(cells[fee]) if fee in cells else "-"
                                           for fee in summary.fees])
                     for (strategy, horizon), cells in grid.items()]
            what = ("taker orders both ways" if execution == "taker" else
                    "passive entries filled only when traded through, taker exits")
            title = (f"{summary.venue} {summary.symbol}, {execution}: net bps per trade after "
                     f"spread and fees (fee per side on both legs), {what}; test split "
                     f"{summary.test_hours:.2f} h")
            out.write(terminal.render_table(columns, table, title=title, keys=2) + "\n\n")
        frontier = ", ".join(f"{h} {v:.2f}" for h, v in summary.frontier["taker"].items()
                             if v is not None)
        if frontier:
            say(f"Oracle break-even fee per side (taker, every move that beats the spread): "
                f"{frontier} bps.")
        say(_conclusion(summary, rows, report.needs))
        drifted = [r for r in report.drift_only if r["symbol"] == summary.label]
        if drifted:
            moves = ", ".join(f"{h} {v:+.2f}" for h, v in summary.drift_bps.items())
            say(f"{len(drifted)} row(s) paid no more than the market's drift paid their sides "
                f"(the mid's mean move over the test split: {moves} bps): marked "
                f"inconclusive, listed under drift_only in the JSON.")
        chance = [r for r in report.not_after_correction if r["symbol"] == summary.label]
        if chance:
            say(f"{len(chance)} row(s) whose 95 % interval clears zero did not survive Holm's "
                f"correction over the {chance[0]['family_size']} rows judged here (one in "
                f"forty clears it by chance): marked inconclusive, listed under "
                f"not_after_correction in the JSON.")
        out.write("\n")
    say(f"Marks: P pays (95 % interval above zero, also beyond the market's drift, and "
        f"surviving Holm's correction over the rows judged), L loses (interval below zero), "
        f"? inconclusive, "
        f"{MARKS['no trades']} no trades. A verdict needs at least {MIN_TRADES} trades over "
        f"{MIN_SPAN_NS // 60_000_000_000} minutes.")
    say(f"written to {report.json_path}"
        + (f" and {report.png_path}" if report.png_path else ""))
    out.flush()


def is_model(strategy: str) -> bool:
    return strategy not in (IMBALANCE, ORACLE) and not strategy.startswith("random")


def _conclusion(summary: SymbolSummary, rows: list[dict[str, Any]],
                needs: list[dict[str, Any]]) -> str:
    """One or two sentences: which models pay where, else what a verdict would need."""
    models = [r for r in rows if is_model(r["strategy"])]
    paying: dict[tuple[str, str, str], list[float]] = {}
    for r in models:
        if r["verdict"] == "pays":
            paying.setdefault((r["strategy"], r["horizon"], r["execution"]), []).append(
                r["fee_bps"])
    if paying:
        parts = [f"{s} {h} {e} at {', '.join(f'{f:g}' for f in sorted(fees))} bps"
                 for (s, h, e), fees in paying.items()]
        return f"{summary.label}: pays after spread and fees: {'; '.join(parts)}."
    text = f"{summary.label}: no model pays at any fee"
    if any(r["verdict"] == "loses" for r in models):
        text += "; where they traded enough, they lose"
    wanted = [n for n in needs if n["symbol"] == summary.label and is_model(n["strategy"])]
    if wanted:
        closest = min(wanted, key=lambda n: n["trades_needed"])
        text += (f". The inconclusive model row closest to a verdict ({closest['strategy']} "
                 f"{closest['horizon']} {closest['execution']} at {closest['fee_bps']:g} bps) "
                 f"needs {'at least ' if closest['trades_needed_at_least'] else '~'}"
                 f"{closest['trades_needed']:,} trades"
                 + _hours_text(closest["test_hours_needed"], summary.test_share))
        farthest = max(wanted, key=lambda n: n["trades_needed"])
        if farthest is not closest:
            hours = farthest["test_hours_needed"]
            text += (f"; the farthest ~{farthest['trades_needed']:,}"
                     + ("" if hours is None else
                        f" ({hours / summary.test_share:,.1f} h recorded)"))
    elif not any(r["n_trades"] for r in models):
        text += "; the models did not trade at any fee"
    return text + "."


def _hours_text(test_hours: float | None, test_share: float) -> str:
    """How long a recording the test hours take, the test split being its last share."""
    if test_hours is None:
        return ""
    return (f", about {test_hours:,.1f} h of test data ({test_hours / test_share:,.1f} h "
            f"recorded, the test split being the last {test_share:.0%})")


# ---------------------------------------------------------------- heat-map


def write_heatmap(rows: list[dict[str, Any]], summaries: list[SymbolSummary],
                  path: Path) -> Path | None:
    """Fee x horizon per strategy (models, the imbalance rule, the oracle), one row of
    panels per symbol and execution, coloured by net bps per trade (no colour: no trades),
    each cell marked with its verdict; the oracle's break-even fee per horizon drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for summary in summaries:
        strategies = list(dict.fromkeys(r["strategy"] for r in rows
                                        if r["symbol"] == summary.label
                                        and not r["strategy"].startswith("random")))
        for execution in EXECUTIONS:
            panels.append((summary, execution, strategies))
    if not panels:
        return None
    n_cols = max(len(p[2]) for p in panels)
    values = [abs(r["net_bps_per_trade"]) for r in rows if r["net_bps_per_trade"] is not None]
    limit = float(np.quantile(values, 0.9)) if values else 1.0
    fig, axes = plt.subplots(len(panels), n_cols, squeeze=False, layout="constrained",
                             figsize=(2.6 * n_cols + 1, 2.4 * len(panels) + 0.5))
    image = None
    for i, (summary, execution, strategies) in enumerate(panels):
        for j in range(n_cols):
            ax = axes[i][j]
            if j >= len(strategies):
                ax.axis("off")
                continue
            strategy = strategies[j]
            grid = np.full((len(summary.fees), len(summary.horizons)), np.nan)
            marks = {}
            for r in rows:
                if (r["symbol"], r["strategy"], r["execution"]) != (summary.label, strategy,
                                                                   execution):
                    continue
                y, x = summary.fees.index(r["fee_bps"]), summary.horizons.index(r["horizon"])
                if r["net_bps_per_trade"] is not None:
                    grid[y, x] = r["net_bps_per_trade"]
                marks[(y, x)] = MARKS[r["verdict"]]
            image = ax.imshow(grid, origin="lower", aspect="auto", cmap="RdYlGn",
                              vmin=-limit, vmax=limit)
            for (y, x), mark in marks.items():
                ax.text(x, y, mark, ha="center", va="center", fontsize=8)
            edge = summary.frontier.get(execution, {})
            xs = [k for k, h in enumerate(summary.horizons) if edge.get(h) is not None]
            if xs:
                ys = [float(np.interp(edge[summary.horizons[k]], summary.fees,
                                      range(len(summary.fees)))) for k in xs]
                ax.plot(xs, ys, color="black", marker="o", lw=1.2, ms=3,
                        label="oracle break-even")
            ax.set_xticks(range(len(summary.horizons)), summary.horizons, fontsize=7)
            ax.set_yticks(range(len(summary.fees)), [f"{f:g}" for f in summary.fees], fontsize=7)
            ax.set_title(f"{summary.label} {execution}: {strategy}", fontsize=8)
            if j == 0:
                ax.set_ylabel("fee per side (bps)", fontsize=7)
            ax.set_xlabel("horizon", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="net bps per trade")
    fig.suptitle("Net bps per trade after spread and fees (P pays, L loses, ? inconclusive, "
                 "· no trades); line: oracle break-even fee", fontsize=9)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
    return path
