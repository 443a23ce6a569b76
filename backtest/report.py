"""The summary a person reads: the model next to its comparison rows, costs kept apart."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from bookcast import terminal
from bookcast.terminal import Column


def _money(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:,.3f}, {ci[1]:,.3f}]"


def print_summary(stats: dict[str, Any], title: str) -> None:
    """One row per strategy: trades, hit rate, gross at the mid, spread, fees, net, risk."""
    ccy = "quote"
    columns = [Column("strategy", align="left"), Column("trades"), Column("hit", "%"),
               Column("gross at mid", ccy), Column("spread", ccy), Column("fees", ccy),
               Column("net", ccy), Column("net/trade 95% CI", ccy), Column("avg win", ccy),
               Column("avg loss", ccy), Column("sharpe"), Column("max DD", "%"),
               Column("turnover"), Column("break-even fee", "bps")]
    rows = [("model", stats), *list(stats.get("baselines", {}).items())]
    terminal.print_table(columns, [
        (name, str(s["n_trades"]), _pct(s["hit_rate"]), _money(s["gross_pnl_mid"]),
         _money(s["spread_cost"]), _money(s["fees"]), _money(s["net_pnl"]),
         _ci(s["net_pnl_per_trade_ci95"]), _money(s["avg_win"]), _money(s["avg_loss"]),
         _num(s["sharpe"]), _pct(s["max_drawdown"]), _num(s["turnover"], 1),
         _num(s["break_even_fee_bps"]))
        for name, s in rows], title=title)


def print_curves(stats: dict[str, Any]) -> None:
    """Net PnL of the model over fee levels and over latencies."""
    fees = stats.get("fee_curve") or []
    lats = stats.get("latency_curve") or []
    if fees:
        terminal.print_table([Column("fee per side", "bps"), Column("net PnL", "quote")],
                             [(f"{f['fee_bps']:g}", _money(f["net_pnl"])) for f in fees],
                             title="net PnL of the model over fees", keys=0)
    if lats:
        terminal.print_table([Column("latency"), Column("trades"), Column("net PnL", "quote")],
                             [(lat["latency"], str(lat["n_trades"]), _money(lat["net_pnl"]))
                              for lat in lats], title="net PnL of the model over latencies",
                             keys=0)


def print_report(config: dict[str, Any], stats: dict[str, Any], where: str | None = None,
                 console: Console | None = None) -> None:
    console = console or terminal.console()
    fee_text = f"{config['fee_bps']:g} bps taker ({config['fee_source']})"
    if config.get("maker"):
        fee_text += f", passive entries at {config.get('maker_fee_bps')} bps maker"
    title = (f"{config.get('run_id', 'predictions')} on {config['venue']} {config['symbol']}: "
             f"fees {fee_text}, latency {config['latency']}, hold {config['hold']}, "
             f"capital {config['capital']:,.2f}")
    print_summary(stats, title)
    print_curves(stats)
    if stats.get("skipped"):
        parts = ", ".join(f"{k} {v}" for k, v in stats["skipped"].items())
        console.print(f"decisions not traded: {parts}")
    if where:
        console.print(f"written to {where}")
