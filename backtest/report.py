"""The summary a person reads: the model next to its comparison rows, costs kept apart,
every figure with its unit and the fee it was charged, whole in 100 columns."""

from __future__ import annotations

from typing import IO, Any

from backtest.significance import MIN_SPAN_NS, MIN_TRADES
from bookcast import terminal
from bookcast.terminal import Column

QUOTE_SUFFIXES = ("USDT", "USDC", "BUSD", "FDUSD", "USD", "EUR", "GBP", "BTC", "ETH")


def quote_currency(symbol: str) -> str:
    """The currency PnL is counted in: 'USDT' for BTCUSDT, 'USD' for BTC-USD or XBT/USD."""
    for sep in ("-", "/"):
        if sep in symbol:
            return symbol.split(sep, 1)[1]
    for suffix in QUOTE_SUFFIXES:
        if symbol.upper().endswith(suffix) and len(symbol) > len(suffix):
            return suffix
    return "quote"


def _money(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:,.2f}, {ci[1]:,.2f}]"


def strategy_rows(stats: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("model", stats), *list(stats.get("baselines", {}).items())]


def summary_table(stats: dict[str, Any], title: str, quote: str) -> str:
    """One row per strategy: trades, hit rate, gross at the mid, spread, fees, net, the
    net per trade with its interval, break-even fee and the verdict word."""
    columns = [Column("strategy", align="left"), Column("trades"), Column("hit", "%"),
               Column("gross at mid", quote), Column("spread", quote), Column("fees", quote),
               Column("net", quote), Column("net/trade", "bps"),
               Column("95% CI", "bps"), Column("break-even fee", "bps/side"),
               Column("verdict", align="left")]
    rows = [(name, s["n_trades"], _pct(s["hit_rate"]), _money(s["gross_pnl_mid"]),
             _money(s["spread_cost"]), _money(s["fees"]), _money(s["net_pnl"]),
             _num(s.get("net_bps_per_trade")), _ci(s.get("net_bps_per_trade_ci95")),
             _num(s["break_even_fee_bps"]), s.get("verdict", "-"))
            for name, s in strategy_rows(stats)]
    caption = (f"Intervals and verdicts need at least {MIN_TRADES} trades over "
               f"{MIN_SPAN_NS // 60_000_000_000} minutes (the sample whose coverage was "
               "measured); below it the word is 'inconclusive'.")
    return terminal.render_table(columns, rows, title=title, caption=caption)


def risk_table(stats: dict[str, Any], quote: str) -> str:
    columns = [Column("strategy", align="left"), Column("avg win", quote),
               Column("avg loss", quote), Column("Sharpe", "per day"),
               Column("max drawdown", "%"), Column("turnover", "x")]
    rows = [(name, _money(s["avg_win"]), _money(s["avg_loss"]), _num(s.get("sharpe_per_day")),
             _pct(s["max_drawdown"]), _num(s["turnover"], 1)) for name, s in strategy_rows(stats)]
    basis = stats.get("sharpe_basis")
    return terminal.render_table(columns, rows, caption=f"Sharpe {basis}." if basis else None)


def curve_table(stats: dict[str, Any], quote: str) -> str | None:
    """Net PnL of the model over fee levels and over latencies, side by side."""
    fees = stats.get("fee_curve") or []
    lats = stats.get("latency_curve") or []
    if not fees and not lats:
        return None
    columns = [Column("fee", "bps/side"), Column("net PnL", quote), Column("latency"),
               Column("trades"), Column("net PnL at latency", quote)]
    rows = []
    for i in range(max(len(fees), len(lats))):
        f = fees[i] if i < len(fees) else None
        lat = lats[i] if i < len(lats) else None
        rows.append(("" if f is None else f"{f['fee_bps']:g}",
                     "" if f is None else _money(f["net_pnl"]),
                     "" if lat is None else lat["latency"],
                     "" if lat is None else lat["n_trades"],
                     "" if lat is None else _money(lat["net_pnl"])))
    return terminal.render_table(columns, rows, title="The model over fees (fills held fixed) "
                                 "and over latencies (same decisions)")


def print_report(config: dict[str, Any], stats: dict[str, Any], where: str | None = None,
                 file: IO[str] | None = None) -> None:
    import sys
    import textwrap

    out = file or sys.stdout
    width = terminal.page_width()

    def say(text: str) -> None:
        out.write(textwrap.fill(text, width, break_long_words=False) + "\n")

    quote = quote_currency(str(config.get("symbol", "")))
    fee_text = f"{config['fee_bps']:g} bps taker per side ({config['fee_source']})"
    if config.get("maker"):
        fee_text += f", passive entries at {config.get('maker_fee_bps')} bps maker"
    title = (f"{config.get('run_id', 'predictions')} on {config['venue']} {config['symbol']}: "
             f"fees {fee_text}, latency {config['latency']}, hold {config['hold']}, capital "
             f"{config['capital']:,.2f} {quote} per trade")
    parts = [summary_table(stats, title, quote), risk_table(stats, quote),
             curve_table(stats, quote)]
    for part in parts:
        if part:
            out.write(part + "\n\n")
    if config.get("decision"):
        say(f"decision: {config['decision']}")
    if stats.get("skipped"):
        parts_text = ", ".join(f"{k} {v}" for k, v in stats["skipped"].items())
        say(f"decisions not traded: {parts_text}")
    for name, s in strategy_rows(stats):
        need = s.get("verdict_needs")
        if s.get("verdict") == "inconclusive" and need:
            hours = "" if need.get("hours") is None else f" (about {need['hours']:,.1f} h)"
            amount = "at least " if need.get("at_least") else "~"
            say(f"{name}: inconclusive; a verdict needs {amount}{need['trades']:,} trades"
                f"{hours} at this rate.")
    if where:
        out.write(f"written to {where}\n")
    out.flush()
