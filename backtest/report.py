"""The summary a person reads: the model next to its comparison rows, costs kept apart."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from bookcast import terminal


def _money(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:,.3f}, {ci[1]:,.3f}]"


def summary_table(stats: dict[str, Any], title: str) -> Table:
    """One row per strategy: trades, hit rate, gross at the mid, spread, fees, net, risk."""
    table = Table(title=title, title_justify="left")
    for name in ("strategy", "trades", "hit", "gross@mid", "spread", "fees", "net",
                 "net/trade 95% CI", "avg win", "avg loss", "sharpe", "max DD", "turnover",
                 "break-even fee"):
        table.add_column(name, justify="left" if name == "strategy" else "right")
    rows = [("model", stats), *list(stats.get("baselines", {}).items())]
    for name, s in rows:
        table.add_row(
            name, str(s["n_trades"]), _pct(s["hit_rate"]), _money(s["gross_pnl_mid"]),
            _money(s["spread_cost"]), _money(s["fees"]), _money(s["net_pnl"]),
            _ci(s["net_pnl_per_trade_ci95"]), _money(s["avg_win"]), _money(s["avg_loss"]),
            _num(s["sharpe"]), _pct(s["max_drawdown"]), _num(s["turnover"], 1),
            "-" if s["break_even_fee_bps"] is None else f"{s['break_even_fee_bps']:.2f} bps",
        )
    return table


def curve_table(stats: dict[str, Any]) -> Table | None:
    """Net PnL of the model over fee levels and over latencies, side by side."""
    fees = stats.get("fee_curve")
    lats = stats.get("latency_curve")
    if not fees and not lats:
        return None
    table = Table(title="net PnL of the model over fees (per side) and latencies",
                  title_justify="left")
    for name in ("fee", "net PnL", "latency", "trades", "net PnL "):
        table.add_column(name, justify="right")
    fees, lats = fees or [], lats or []
    for i in range(max(len(fees), len(lats))):
        f = fees[i] if i < len(fees) else None
        lat = lats[i] if i < len(lats) else None
        table.add_row(
            "" if f is None else f"{f['fee_bps']:g} bps", "" if f is None else _money(f["net_pnl"]),
            "" if lat is None else lat["latency"], "" if lat is None else str(lat["n_trades"]),
            "" if lat is None else _money(lat["net_pnl"]),
        )
    return table


def print_report(config: dict[str, Any], stats: dict[str, Any], where: str | None = None,
                 console: Console | None = None) -> None:
    console = console or terminal.console()
    fee_text = f"{config['fee_bps']:g} bps taker ({config['fee_source']})"
    if config.get("maker"):
        fee_text += f", passive entries at {config.get('maker_fee_bps')} bps maker"
    title = (f"{config.get('run_id', 'predictions')} on {config['venue']} {config['symbol']}: "
             f"fees {fee_text}, latency {config['latency']}, hold {config['hold']}, "
             f"capital {config['capital']:,.2f}")
    console.print(summary_table(stats, title))
    curves = curve_table(stats)
    if curves is not None:
        console.print(curves)
    if stats.get("skipped"):
        parts = ", ".join(f"{k} {v}" for k, v in stats["skipped"].items())
        console.print(f"decisions not traded: {parts}")
    if where:
        console.print(f"written to {where}")
