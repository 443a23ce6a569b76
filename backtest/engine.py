"""The backtest: predictions -> decisions -> book-walked fills -> vectorbt portfolios -> figures.

`run_backtest(predictions, book, config)` is the Python surface (the demo and the dashboard
call it); `backtest_run(root, run_id, config)` loads a run and its snapshots first, and
`write_backtest(result, root)` stores the immutable backtests/<id>/ of DESIGN.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from backtest import signals, stats
from backtest.data import Book, Run, load_book, load_run
from backtest.fills import FILL_STATUS_NAMES, FILLED, fill_round_trips
from bookcast.errors import UserError
from bookcast.memory import map_large_allocations
from bookcast.paths import backtests_dir, runs_dir
from bookcast.schema import EQUITY_COLUMNS, ROUND_TRIP_COLUMNS, file_metadata
from bookcast.timeutil import format_duration_ns

BASELINE_NAMES = ("random", "imbalance_l1", "oracle")


@dataclass(frozen=True)
class BacktestConfig:
    """How the predictions are traded. Fees are bps per side, durations ns."""

    fee_bps: float  # taker fee per side
    hold_ns: int | None  # exit this long after entry; None: hold until the signal changes
    horizon_ns: int  # the run's label horizon: the comparison rows hold this long
    latency_ns: int | None = None  # None: one snapshot interval, the execution model's minimum
    maker: bool = False  # passive entries at the touch, filled only when traded through
    maker_fee_bps: float | None = None  # fee of a passive fill; taker fee when None
    notional: float = 1000.0  # quote currency per trade, used when size is None
    size: float | None = None  # base-asset units per trade
    threshold: float | None = None  # None: the model's argmax decides
    seed: int = 0
    fee_source: str = "--fee-bps"
    baselines: bool = True
    curves: bool = True
    fee_levels_bps: tuple[float, ...] = (0.0, 1.0, 2.0, 5.0, 7.5, 10.0, 20.0, 50.0)
    latency_snapshots: tuple[int, ...] = (0, 1, 2, 5, 10)
    # DESIGN.md fills at least one snapshot after the signal; studies of look-ahead and the
    # frictionless identity lift that floor, nothing else should.
    allow_latency_below_snapshot: bool = False

    def validate(self) -> None:
        if self.fee_bps < 0 or (self.maker_fee_bps is not None and self.maker_fee_bps < 0):
            raise UserError(f"The fee {self.fee_bps} bps is negative; fees are zero or more.")
        if self.latency_ns is not None and self.latency_ns < 0:
            raise UserError(f"The latency {self.latency_ns} ns is negative; it is zero or more.")
        if self.hold_ns is not None and self.hold_ns <= 0:
            raise UserError(f"The holding time {self.hold_ns} ns is not positive.")
        if self.size is not None and not self.size > 0:
            raise UserError(f"The order size {self.size} is not positive.")
        if self.size is None and not self.notional > 0:
            raise UserError(f"The order notional {self.notional} is not positive.")


@dataclass
class StrategyResult:
    """One strategy's priced round trips and its equity curves."""

    trades: pl.DataFrame
    equity: pl.DataFrame | None  # the model's only: a comparison row's is not kept
    stats: dict[str, Any]
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class BacktestResult:
    config: dict[str, Any]
    trades: pl.DataFrame  # ROUND_TRIP_COLUMNS, one row per round trip of the model
    equity: pl.DataFrame  # EQUITY_COLUMNS
    stats: dict[str, Any]  # STATS_KEYS, curves, baselines
    baselines: dict[str, StrategyResult]


@dataclass
class Fills:
    """Decisions priced against the book (`fill_round_trips`), per decision."""

    decisions: signals.Decisions
    status: np.ndarray
    entry_row: np.ndarray
    exit_row: np.ndarray
    qty: np.ndarray
    entry_px: np.ndarray
    exit_px: np.ndarray
    exit_beyond: np.ndarray
    entry_fee_rate: float
    exit_fee_rate: float

    @property
    def ok(self) -> np.ndarray:
        return self.status == FILLED


def price_decisions(book: Book, decisions: signals.Decisions, config: BacktestConfig,
                    latency_ns: int) -> Fills:
    """Where each decision fills under config's execution, sizing and latency; the fee
    rates ride along but fills never depend on them."""
    taker = config.fee_bps * 1e-4
    maker = (config.fee_bps if config.maker_fee_bps is None else config.maker_fee_bps) * 1e-4
    book.check_reach(config.notional, config.size)
    if book.levels_released:
        raise ValueError("This book's levels were released (`Book.release_levels`); load it "
                         "again to price more orders.")
    out = fill_round_trips(book.ts, book.gap, book.mid, book.bid_px, book.bid_sz, book.bid_off,
                           book.ask_px, book.ask_sz, book.ask_off, decisions.entry_ts,
                           decisions.exit_ts, decisions.side, np.int64(latency_ns),
                           float(config.notional), float(config.size or 0.0), config.maker)
    return Fills(decisions, *out, entry_fee_rate=maker if config.maker else taker,
                  exit_fee_rate=taker)


def _maker_fee(config: BacktestConfig) -> float:
    return config.fee_bps if config.maker_fee_bps is None else config.maker_fee_bps


def _subset(decisions: signals.Decisions, keep: np.ndarray) -> signals.Decisions:
    keep = np.sort(keep)
    return signals.Decisions(decisions.entry_ts[keep], decisions.exit_ts[keep],
                             decisions.side[keep])


def matched_random(book: Book, ts: np.ndarray, n_long: int, n_short: int, hold_ns: int,
                    rng: np.random.Generator, config: BacktestConfig,
                    latency_ns: int) -> Fills:
    """Random entries that *fill* as often as the model's did, with its side mix.

    Passive entries fill only sometimes, so matching decisions would not match trades:
    candidates are drawn at random times with the model's side mix (more of them each
    round), priced, and a random subset of the filled ones kept, n_long longs and n_short
    shorts. Fewer only if the span cannot hold that many.
    """
    target = n_long + n_short
    empty = signals.schedule(ts[:0], np.zeros(0, np.int8), hold_ns)
    if target == 0:
        return price_decisions(book, empty, config, latency_ns)
    for scale in (1, 2, 4, 8, 16):
        sides = np.repeat(np.array([1, -1], np.int8), [n_long * scale, n_short * scale])
        pool = signals.random_decisions(ts, target * scale, hold_ns, rng, sides)
        priced = price_decisions(book, pool, config, latency_ns)
        longs = np.flatnonzero(priced.ok & (pool.side > 0))
        shorts = np.flatnonzero(priced.ok & (pool.side < 0))
        if (len(longs) >= n_long and len(shorts) >= n_short) or len(pool) < target * scale:
            break
    keep = np.concatenate([rng.permutation(longs)[:n_long], rng.permutation(shorts)[:n_short]])
    return price_decisions(book, _subset(pool, keep), config, latency_ns)


def matched_imbalance(book: Book, ts: np.ndarray, imbalance: np.ndarray, n_trades: int,
                       hold_ns: int, config: BacktestConfig, latency_ns: int) -> Fills:
    """The L1 imbalance rule thresholded to give the model's number of *filled* trades: the
    strongest non-overlapping imbalances, taken further down the ranking until that many
    have filled."""
    empty = signals.schedule(ts[:0], np.zeros(0, np.int8), hold_ns)
    if n_trades == 0:
        return price_decisions(book, empty, config, latency_ns)
    for scale in (1, 2, 4, 8, 16):
        pool = signals.imbalance_decisions(ts, imbalance, n_trades * scale, hold_ns)
        priced = price_decisions(book, pool, config, latency_ns)
        if priced.ok.sum() >= n_trades or len(pool) < n_trades * scale:
            break
    rows = np.searchsorted(ts, pool.entry_ts)
    filled = np.flatnonzero(priced.ok)
    strength = np.nan_to_num(np.abs(imbalance[rows[filled]]), nan=-1.0)
    keep = filled[np.argsort(-strength, kind="stable")[:n_trades]]
    return price_decisions(book, _subset(pool, keep), config, latency_ns)


def _touch_imbalance(book: Book, ts: np.ndarray) -> np.ndarray:
    """The L1 imbalance of the book each signal saw."""
    bid_sz, ask_sz = book.touch_sizes()
    # Per book row in place, then read at the signals' rows: the same floats as computing
    # at the signals' rows, with three row-sized arrays instead of seven.
    with np.errstate(invalid="ignore", divide="ignore"):
        total = bid_sz + ask_sz
        np.subtract(bid_sz, ask_sz, out=bid_sz)
        np.divide(bid_sz, total, out=bid_sz)
    del total, ask_sz
    return bid_sz[np.clip(book.signal_rows(ts), 0, None)]


def _net_pnl(fills: Fills) -> float:
    ok = fills.ok
    side = fills.decisions.side[ok].astype(np.float64)
    q = fills.qty[ok]
    pnl = side * q * (fills.exit_px[ok] - fills.entry_px[ok])
    fees = q * (fills.entry_px[ok] * fills.entry_fee_rate + fills.exit_px[ok] * fills.exit_fee_rate)
    return float(np.sum(pnl - fees))


def _prediction_arrays(predictions: pl.DataFrame) -> dict[str, np.ndarray]:
    frame = predictions
    if frame["ts"].dtype != pl.Int64:
        frame = frame.with_columns(pl.col("ts").dt.epoch("ns"))
    if not frame["ts"].is_sorted():
        frame = frame.sort("ts")
    return {
        "ts": np.asarray(frame["ts"].to_numpy(), np.int64),
        "p_down": frame["p_down"].cast(pl.Float64).to_numpy(),
        "p_flat": frame["p_flat"].cast(pl.Float64).to_numpy(),
        "p_up": frame["p_up"].cast(pl.Float64).to_numpy(),
        **({"signal": frame["signal"].cast(pl.Float64).fill_null(0.0).to_numpy()}
           if "signal" in frame.columns else {}),
    }


def _check_coverage(pred_ts: np.ndarray, book: Book) -> None:
    first, last = int(book.ts[0]), int(book.ts[-1])
    if pred_ts[0] < first or pred_ts[-1] > last:
        def iso(ns: int) -> str:
            return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat()

        raise UserError(
            f"The predictions from {iso(int(pred_ts[0]))} to {iso(int(pred_ts[-1]))} are not "
            f"covered by the snapshots of {book.venue} {book.symbol}, which run from "
            f"{iso(first)} to {iso(last)}."
        )


def _portfolio(book: Book, strategies: dict[str, Fills], w0: int, w1: int,
               capital: float) -> _Columns:
    """Run every strategy through one vectorbt from_orders call, one column each.

    Orders carry the book-walked prices and the fee of their side; the portfolio is marked
    at the mid. Returns per strategy the net equity, the gross equity and vectorbt's trade
    records, indexed by book rows from w0.

    vectorbt simulates only the rows where some strategy trades: with explicit prices and
    amounts no order reads the mark between them, so the fills, fees and trade records are
    the ones a run over every row gives (tests/backtest/test_equity.py compares the two),
    and the cost grows with the trades, not with the book. The equity between orders is
    cash plus the position marked at the mid (`value_from_orders`). The gross curve (same
    orders at the mid, no fees) needs no simulation: filled at the mark, an order changes
    nothing at once, so equity moves by the position held times the change of the mid.
    """
    import vectorbt as vbt

    n_cols = len(strategies)
    mid = book.mid[w0:w1 + 1]
    close = mid
    if np.isnan(mid).any():  # a side was empty: mark at the last mid that existed
        close = pl.Series(mid).fill_nan(None).fill_null(strategy="forward") \
            .fill_null(strategy="backward").to_numpy()
    legs = []  # per strategy: signed size, entry rows, exit rows (from w0), filled fills
    for fills in strategies.values():
        ok = fills.ok
        legs.append((fills.decisions.side[ok].astype(np.float64) * fills.qty[ok],
                     fills.entry_row[ok] - w0, fills.exit_row[ok] - w0, ok))
    # The rows vectorbt sees; one row when nothing trades, so the simulation still runs.
    order_rows = np.unique(np.concatenate([np.zeros(0, np.int64)]
                                          + [r for leg in legs for r in leg[1:3]]))
    if order_rows.shape[0] == 0:
        order_rows = np.zeros(1, np.int64)
    k = order_rows.shape[0]
    size = np.full((k, n_cols), np.nan)
    price = np.full((k, n_cols), np.nan)
    init_cash = np.full(n_cols, float(capital))
    # One fee rate for every order (taker only) is passed as a scalar: no array to broadcast.
    rates = {r for f in strategies.values() for r in (f.entry_fee_rate, f.exit_fee_rate)}
    fees: float | np.ndarray = rates.pop() if len(rates) == 1 else np.zeros((k, n_cols))
    for c, (fills, (signed, e_rows, x_rows, ok)) in enumerate(zip(strategies.values(), legs,
                                                                  strict=True)):
        e = np.searchsorted(order_rows, e_rows)
        x = np.searchsorted(order_rows, x_rows)
        size[e, c] = signed
        size[x, c] = -signed
        price[e, c] = fills.entry_px[ok]
        price[x, c] = fills.exit_px[ok]
        if isinstance(fees, np.ndarray):
            fees[e, c] = fills.entry_fee_rate
            fees[x, c] = fills.exit_fee_rate
        # Enough cash that no buy is ever cut short: PnL, not cash, is what we measure.
        init_cash[c] += float(np.sum(fills.qty[ok] * fills.entry_px[ok]
                                     * (1.0 + fills.entry_fee_rate)))
    pf = vbt.Portfolio.from_orders(
        np.broadcast_to(close[order_rows][:, None], (k, n_cols)), size, price=price, fees=fees,
        size_type="amount", direction="both", init_cash=init_cash,
    )
    orders = pf.orders.values.copy()
    orders["idx"] = order_rows[orders["idx"]]
    records = pf.trades.values.copy()
    records["entry_idx"] = order_rows[records["entry_idx"]]
    records["exit_idx"] = order_rows[records["exit_idx"]]
    return _Columns(orders, records, close, init_cash, capital, legs, list(strategies))


@dataclass
class _Columns(Mapping):
    """`_portfolio`'s answer: per strategy name, (net equity, gross equity, trade records),
    built when asked for. Each curve is n_rows floats: built one strategy at a time and
    dropped by the caller after its figures, at most one strategy's pair is alive, not
    n_rows x strategies of them."""

    orders: np.ndarray
    records: np.ndarray
    close: np.ndarray
    init_cash: np.ndarray
    capital: float
    legs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    names: list[str]

    def __getitem__(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.column(name, gross=True)

    def column(self, name: str, gross: bool) -> tuple[np.ndarray, np.ndarray | None,
                                                      np.ndarray]:
        """Net equity, gross equity (None unless `gross`: only a written curve needs it)
        and the trade records of one strategy."""
        c = self.names.index(name)
        signed, e_rows, x_rows, _ = self.legs[c]
        n_rows = self.close.shape[0]
        net = _column_value(self.orders, self.close, self.init_cash[c], c)
        np.subtract(net, self.init_cash[c], out=net)
        net += self.capital
        records = self.records[self.records["col"] == c]
        if not gross:
            return net, None, records
        held = _step_sums(np.concatenate([e_rows, x_rows]), np.concatenate([signed, -signed]),
                          n_rows)
        curve = np.empty(n_rows)
        curve[0] = self.capital
        held = held[:-1]
        held *= np.diff(self.close)
        np.cumsum(held, out=curve[1:])
        del held
        curve[1:] += self.capital
        return net, curve, records

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def _step_sums(rows: np.ndarray, deltas: np.ndarray, n_rows: int) -> np.ndarray:
    """The running sum, at every row, of the deltas that happened at or before it: the
    cumulative sum over a dense grid that is zero except at `rows`, without the grid."""
    order = np.argsort(rows, kind="stable")
    running = np.concatenate([[0.0], np.cumsum(deltas[order])])
    # running[j] holds from the j-th delta's row up to the next one's.
    spans = np.diff(np.concatenate([[0], rows[order], [n_rows]]))
    return np.repeat(running, spans)


def value_from_orders(orders: np.ndarray, close: np.ndarray, init_cash: np.ndarray
                      ) -> np.ndarray:
    """Portfolio value per row and column from vectorbt's own order records.

    The same figure as `Portfolio.value()` (cash after every fill and fee, plus the
    position marked at `close`), computed in NumPy from the fills vectorbt simulated,
    without building pandas objects; `tests/backtest` checks the two agree.
    """
    value = np.empty((close.shape[0], init_cash.shape[0]))
    for c in range(init_cash.shape[0]):
        value[:, c] = _column_value(orders, close, init_cash[c], c)
    return value


def _column_value(orders: np.ndarray, close: np.ndarray, init_cash: float, c: int
                  ) -> np.ndarray:
    """Column c of `value_from_orders`."""
    mine = orders[orders["col"] == c]
    signed = np.where(mine["side"] == 0, mine["size"], -mine["size"])  # 0: buy
    flow = -signed * mine["price"] - mine["fees"]
    rows = mine["idx"]
    n_rows = close.shape[0]
    # init_cash + cash flows + position * close, evaluated in that order (the same floats)
    # in place: two n_rows arrays at a time, not five.
    value = _step_sums(rows, flow, n_rows)
    value += init_cash
    marked = _step_sums(rows, signed, n_rows)
    marked *= close
    value += marked
    return value


def _strategy_result(name: str, book: Book, fills: Fills, equity: tuple, w0: int,
                     capital: float, keep_equity: bool = True, drift_bps: float = 0.0,
                     ) -> StrategyResult:
    """Figures, trades and (with `keep_equity`) the equity frame of one strategy."""
    net_equity, gross_equity, records = equity
    ok = fills.ok
    side = fills.decisions.side[ok].astype(np.int8)
    n = int(ok.sum())
    if records.shape[0] != n:
        raise AssertionError(f"vectorbt closed {records.shape[0]} trades of {name}, not {n}")
    # vectorbt's records are the portfolio's own account of each round trip: take its
    # prices and fees, and check them against the fills they were given.
    entry_row = records["entry_idx"] + w0
    exit_row = records["exit_idx"] + w0
    entry_px = records["entry_price"]
    exit_px = records["exit_price"]
    fee_paid = records["entry_fees"] + records["exit_fees"]
    np.testing.assert_array_equal(entry_row, fills.entry_row[ok])
    np.testing.assert_allclose(entry_px, fills.entry_px[ok], rtol=1e-12)
    qty = records["size"]
    entry_mid = book.mid[entry_row]
    exit_mid = book.mid[exit_row]
    figures = stats.summarize(side.astype(np.float64), qty, entry_px, exit_px, entry_mid,
                              exit_mid, fee_paid, net_equity, capital, book.interval_ns,
                              book.ts[entry_row], book.ts[exit_row], drift_bps)
    np.testing.assert_allclose(figures["net_pnl"], float(records["pnl"].sum()),
                               rtol=1e-9, atol=1e-6)
    skipped = {FILL_STATUS_NAMES[s]: int((fills.status == s).sum())
               for s in range(1, len(FILL_STATUS_NAMES)) if (fills.status == s).any()}
    figures["n_decisions"] = len(fills.decisions)
    figures["skipped"] = skipped
    figures["n_exits_beyond_visible_depth"] = int(fills.exit_beyond[ok].sum())
    to_ts = pl.Series(book.ts[entry_row]).cast(pl.Datetime("ns", "UTC"))
    trades = pl.DataFrame({
        "venue": [book.venue] * n,
        "symbol": [book.symbol] * n,
        "side": side,
        "size": qty,
        "entry_ts": to_ts,
        "exit_ts": pl.Series(book.ts[exit_row]).cast(pl.Datetime("ns", "UTC")),
        "entry_px": entry_px,
        "exit_px": exit_px,
        "entry_mid": entry_mid,
        "exit_mid": exit_mid,
        "fees": fee_paid,
        "net_pnl": records["pnl"],
    }).select(ROUND_TRIP_COLUMNS)
    if not keep_equity:
        return StrategyResult(trades, None, figures, skipped)
    equity_frame = pl.DataFrame({
        "ts": pl.Series(book.ts[w0:w0 + net_equity.shape[0]]).cast(pl.Datetime("ns", "UTC")),
        "equity": net_equity,
        "equity_gross": gross_equity,
    }).select(EQUITY_COLUMNS)
    return StrategyResult(trades, equity_frame, figures, skipped)


def run_backtest(predictions: pl.DataFrame, book: Book, config: BacktestConfig,
                 release_levels: bool = False) -> BacktestResult:
    """Backtest predictions (PREDICTION_COLUMNS) against a Book under config.

    With `release_levels` the book's levels are freed once every fill is priced
    (`Book.release_levels`): the accounting after that marks at the mid only, so a caller
    done with the book (`backtest_run`) does not hold the levels and the portfolio at once.
    """
    config.validate()
    arrays = _prediction_arrays(predictions)
    pred_ts = arrays["ts"]
    if pred_ts.shape[0] == 0:
        raise UserError("There are no predictions to backtest.")
    _check_coverage(pred_ts, book)
    latency_ns = book.interval_ns if config.latency_ns is None else int(config.latency_ns)
    if latency_ns < book.interval_ns and not config.allow_latency_below_snapshot:
        raise UserError(
            f"The latency {format_duration_ns(latency_ns)} is shorter than one snapshot "
            f"({format_duration_ns(book.interval_ns)}); orders fill at least one snapshot "
            "after the signal."
        )
    baseline_hold = config.hold_ns if config.hold_ns is not None else config.horizon_ns
    rng = np.random.default_rng(config.seed)

    sides = signals.prediction_sides(arrays["p_down"], arrays["p_flat"], arrays["p_up"],
                                     config.threshold, arrays.get("signal"))
    decisions = {"model": signals.schedule(pred_ts, sides, config.hold_ns)}
    fills = {"model": price_decisions(book, decisions["model"], config, latency_ns)}
    if config.baselines:
        model = fills["model"]
        traded = model.decisions.side[model.ok]
        n_long, n_short = int((traded > 0).sum()), int((traded < 0).sum())
        fills["random"] = matched_random(book, pred_ts, n_long, n_short, baseline_hold, rng,
                                          config, latency_ns)
        # Made inside the call, so its row-sized arrays are freed before the next baseline.
        fills["imbalance_l1"] = matched_imbalance(book, pred_ts, _touch_imbalance(book, pred_ts),
                                                   n_long + n_short, baseline_hold, config,
                                                   latency_ns)
        oracle = signals.oracle_sides(book, pred_ts, config.horizon_ns, latency_ns,
                                      config.fee_bps, _maker_fee(config) if config.maker
                                      else None)
        fills["oracle"] = price_decisions(book, signals.oracle_decisions(pred_ts, oracle,
                                                               config.horizon_ns),
                                config, latency_ns)
    decisions = {name: f.decisions for name, f in fills.items()}
    latency_curve = []
    if config.curves:
        latencies = sorted({k * book.interval_ns for k in config.latency_snapshots} | {latency_ns})
        for lat in latencies:
            f = price_decisions(book, decisions["model"], config, lat)
            latency_curve.append({"latency_ns": int(lat), "latency": format_duration_ns(int(lat)),
                                  "n_trades": int(f.ok.sum()), "net_pnl": _net_pnl(f)})
    if release_levels:
        book.release_levels()  # every fill is priced: from here on, marks at the mid only

    w0 = int(max(book.signal_rows(pred_ts[:1])[0], 0))
    last_exit = max((int(f.exit_row[f.ok].max()) for f in fills.values() if f.ok.any()),
                    default=w0)
    w1 = max(int(book.signal_rows(pred_ts[-1:])[0]), last_exit)
    capital = float(config.notional if config.size is None
                    else config.size * np.nanmean(book.mid[w0:w1 + 1]))
    drift_bps = book.mean_move_bps(pred_ts, baseline_hold)
    equities = _portfolio(book, fills, w0, w1, capital)
    # Only the model's curves are written (equity.parquet); a comparison row's are summed
    # into its figures and dropped before the next one is built.
    results = {name: _strategy_result(name, book, f,
                                      equities.column(name, gross=name == "model"), w0,
                                      capital, keep_equity=name == "model",
                                      drift_bps=drift_bps)
               for name, f in fills.items()}
    del equities

    model = results.pop("model")
    figures = dict(model.stats)
    if config.curves:
        edge = figures["gross_pnl_mid"] - figures["spread_cost"]
        levels = sorted({*config.fee_levels_bps, float(config.fee_bps)})
        figures["fee_curve"] = stats.fee_curve(edge, figures["traded_value"], levels)
        figures["latency_curve"] = latency_curve
    figures["baselines"] = {name: r.stats for name, r in results.items()}

    from vectorbt._engine import is_rust_available

    config_doc = {
        **asdict(config),
        "latency_ns": latency_ns,
        "latency": format_duration_ns(latency_ns),
        "hold": "signal" if config.hold_ns is None else format_duration_ns(config.hold_ns),
        "threshold": "auto" if config.threshold is None else config.threshold,
        "venue": book.venue,
        "symbol": book.symbol,
        "interval_ns": book.interval_ns,
        "capital": capital,
        "first_ts": int(pred_ts[0]),
        "last_ts": int(pred_ts[-1]),
        "n_predictions": int(pred_ts.shape[0]),
        "vectorbt_engine": "rust" if is_rust_available() else "numba",
    }
    return BacktestResult(config_doc, model.trades, model.equity, figures, results)


def backtest_run(root: Path, run: Run | str, config: BacktestConfig,
                 run_dir: Path | None = None) -> BacktestResult:
    """Backtest a run (or runs/<run_id>/) against the matching snapshots under root.

    Under `threshold=None` the decision is the run's trading policy: its stored signal at
    the run's own fee, execution and latency, else re-derived at the charged fee and
    execution (`backtest.decide`), never the run's decision priced at a fee it was not
    made for.
    """
    config.validate()
    # A run's arrays are row-sized: freed, they must leave the process, not stay in the heap.
    map_large_allocations()
    if isinstance(run, str):
        run = load_run(root, run)
    run_dir = run_dir or (runs_dir(root) / run.run_id)
    ts = run.predictions["ts"].to_numpy()
    reach = (config.hold_ns or run.horizon_ns) + (config.latency_ns or 0)
    book = load_book(root, run.venue, run.symbol, int(ts[0]), int(ts[-1]) + reach,
                     notional=None if config.size else config.notional, size=config.size)
    predictions, decision = _decided_predictions(run, run_dir, root, config, book)
    result = run_backtest(predictions, book, config, release_levels=True)
    result.config.update({"run_id": run.run_id, "model": run.info.get("model"),
                          "run_horizon": run.info.get("horizon"),
                          "run_fee_bps": run.info.get("fee_bps"),
                          "feature_set": run.info.get("feature_set"),
                          "decision": decision})
    return result


def _decided_predictions(run: Run, run_dir: Path, root: Path, config: BacktestConfig,
                         book: Book) -> tuple[pl.DataFrame, str]:
    """The predictions with the `signal` this backtest must trade, and how it was made."""
    if config.threshold is not None:
        return run.predictions.drop("signal", strict=False), (
            f"p >= {config.threshold:g} on the more likely side: a fixed threshold without "
            "the trading policy's cost gate")
    run_fee = run.info.get("fee_bps")
    latency = book.interval_ns if config.latency_ns is None else int(config.latency_ns)
    run_latency = int(run.info.get("latency_ns") or book.interval_ns)
    entry_fee = _maker_fee(config) if config.maker else config.fee_bps
    native = (not config.maker and run_fee is not None and float(run_fee) == config.fee_bps
              and latency == run_latency and "signal" in run.predictions.columns)
    if native:
        return run.predictions, (f"the run's trading policy at its own fee ({config.fee_bps:g} "
                                 "bps per side)")
    if "signal" not in run.predictions.columns:
        return run.predictions, ("the model's most likely class: the predictions carry no "
                                 "trading policy's decision to re-derive")
    from backtest.decide import load_context

    context = load_context(run_dir, root)
    execution = "maker" if config.maker else "taker"
    ts, signal = context.decide("model", config.fee_bps, execution, entry_fee_bps=entry_fee,
                                latency_ns=latency)
    frame = run.predictions.drop("signal", strict=False).join(
        pl.DataFrame({"ts": ts, "signal": signal}), on="ts", how="left")
    fees = (f"{entry_fee:g} bps in, {config.fee_bps:g} bps out" if config.maker
            else f"{config.fee_bps:g} bps per side")
    return frame.with_columns(pl.col("signal").fill_null(0)), (
        f"re-derived at {fees}, {execution}, latency {format_duration_ns(latency)}: the run's "
        f"expected moves (trained on labels at {run_fee:g} bps) priced at this fee, its "
        "margin tuned again on the run's validation split")


def _write_parquet(frame: pl.DataFrame, path: Path, venue: str, symbol: str) -> None:
    table: pa.Table = frame.to_arrow()
    pq.write_table(table.replace_schema_metadata(file_metadata(venue, symbol)), path)


def write_backtest(result: BacktestResult, root: Path) -> Path:
    """Write backtests/<id>/ whole, then rename it into place: never overwritten."""
    config_text = json.dumps(result.config, sort_keys=True, default=str)
    digest = hashlib.sha256(config_text.encode()).hexdigest()[:8]
    stamp = dt.datetime.now(tz=dt.UTC).strftime("%Y%m%dT%H%M%S")
    # The id is a name, never a path: a run given as a directory contributes its name only.
    run_id = Path(str(result.config.get("run_id") or "adhoc")).name
    backtest_id = f"{run_id}-{stamp}-{digest}"
    final = backtests_dir(root) / backtest_id
    if final.exists():
        raise UserError(f"The backtest {final} already exists; backtests are immutable.")
    tmp = final.parent / f".{backtest_id}.tmp-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        venue, symbol = result.config["venue"], result.config["symbol"]
        (tmp / "config.json").write_text(json.dumps({"backtest_id": backtest_id,
                                                     **result.config}, indent=2, default=str))
        _write_parquet(result.trades, tmp / "trades.parquet", venue, symbol)
        _write_parquet(result.equity, tmp / "equity.parquet", venue, symbol)
        (tmp / "stats.json").write_text(json.dumps(result.stats, indent=2))
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
