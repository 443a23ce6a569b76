"""Streamlit pieces every page shares: the data root, market pickers, "what to run next"."""

from __future__ import annotations

import datetime as dt
import shlex

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
