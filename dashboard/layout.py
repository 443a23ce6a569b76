"""Streamlit pieces every page shares: the data root, market pickers, "what to run next"."""

from __future__ import annotations

import datetime as dt
import shlex
from typing import Any

import streamlit as st

from dashboard import data

EPOCH = dt.datetime(1970, 1, 1)

# What to run when a dataset is missing, in pipeline order; {root} is the data root.
NEXT_STEPS = {
    "snapshots": [
        "bookcast simulate --hours 0.2 --out captures/",
        "bookcast replay captures/binance-spot/*.jsonl.gz --data-dir {root}",
        "# or record live books: bookcast collect --data-dir {root}",
    ],
    "features": ["bookcast features --data-dir {root}"],
    "opportunities": ["bookcast opportunities --data-dir {root}"],
    "runs": ["bookcast train --data-dir {root} --model lightgbm --horizon 10s"],
    "backtests": ["bookcast backtest --data-dir {root} --run RUN_ID"],
}


def root() -> str:
    return str(data.current_root())


def show_next_step(what: str, message: str) -> None:
    """Say plainly what is missing and the commands that make it."""
    quoted = shlex.quote(root())
    st.info(message)
    st.code("\n".join(line.format(root=quoted) for line in NEXT_STEPS[what]), language="bash")


def market_label(market: tuple[str, str]) -> str:
    return f"{market[0]} · {market[1]}"


def pick_market(markets: list[tuple[str, str]], key: str) -> tuple[str, str]:
    """A (venue, symbol) selectbox; the choice is shared by pages through session state."""
    remembered = st.session_state.get("market")
    index = markets.index(remembered) if remembered in markets else 0
    choice = st.selectbox("Venue and symbol", markets, index=index, format_func=market_label,
                          key=key)
    st.session_state["market"] = choice
    return choice


def utc(ns: int | None) -> str:
    if ns is None:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def as_datetime(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).replace(tzinfo=None)


def as_ns(value: dt.datetime) -> int:
    return (value.replace(tzinfo=None) - EPOCH) // dt.timedelta(microseconds=1) * 1000


# Column names as a reader wants them, units in brackets; columns not listed read with
# spaces for underscores. Money is in the quote currency of the symbol.
LABELS = {
    "run_id": "run id", "fee_bps": "fee (bps)", "macro_f1": "macro-F1",
    "best_baseline": "best baseline", "best_baseline_macro_f1": "best baseline macro-F1",
    "n_trades": "trades", "net_pnl_bps": "net (bps)", "created_at": "created (UTC)",
    "is_model": "the run's model", "ap_up": "AP up", "ap_down": "AP down",
    "base_rate_up": "base rate up", "base_rate_down": "base rate down",
    "n": "rows", "mean_bps": "mean return (bps)", "se_bps": "standard error (bps)",
    "imbalance": "imbalance (bin centre)", "bin": "bin",
    "entry_ts": "entry (UTC)", "exit_ts": "exit (UTC)", "entry_px": "entry price paid",
    "exit_px": "exit price paid", "entry_mid": "entry mid", "exit_mid": "exit mid",
    "fees": "fees (quote)", "net_pnl": "net PnL (quote)", "side": "side (+1 long, -1 short)",
    "size": "size (base units)",
}


def show_table(frame: Any, key: str, labels: dict[str, str] | None = None) -> None:
    """A dataframe with readable column names, as wide as the page (never clipped)."""
    names = {**LABELS, **(labels or {})}
    renamed = frame.rename({c: names.get(c, c.replace("_", " ")) for c in frame.columns})
    st.dataframe(renamed, hide_index=True, width="stretch", key=key)
