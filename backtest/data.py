"""Reading a run's predictions and the snapshots they are backtested against."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from bookcast.errors import UserError
from bookcast.paths import partition_dir, runs_dir
from bookcast.schema import PREDICTION_COLUMNS
from bookcast.timeutil import NS_PER_UNIT, utc_date

_BOOK_COLUMNS = ("ts", "gap", "bid_px", "bid_sz", "ask_px", "ask_sz")


@dataclass(frozen=True)
class Book:
    """Snapshots of one venue and symbol in the flat layout of `backtest.fills`."""

    venue: str
    symbol: str
    ts: np.ndarray
    gap: np.ndarray
    mid: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    bid_off: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray
    ask_off: np.ndarray
    interval_ns: int

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def signal_rows(self, ts: np.ndarray) -> np.ndarray:
        """The row each signal saw: the last snapshot at or before its time."""
        return np.searchsorted(self.ts, ts, side="right") - 1

    def touch_prices(self) -> tuple[np.ndarray, np.ndarray]:
        """Best bid and best ask prices per row (NaN where a side is empty)."""
        return (_first_level(self.bid_px, self.bid_off), _first_level(self.ask_px, self.ask_off))

    def touch_sizes(self) -> tuple[np.ndarray, np.ndarray]:
        """Best bid and best ask sizes per row (NaN where a side is empty)."""
        return (_first_level(self.bid_sz, self.bid_off), _first_level(self.ask_sz, self.ask_off))


@dataclass(frozen=True)
class Run:
    """A trained model's run: its run.json and its test-split predictions."""

    run_id: str
    info: dict[str, Any]
    predictions: pl.DataFrame  # PREDICTION_COLUMNS, ts as int64 ns, sorted

    @property
    def venue(self) -> str:
        return str(self.info["venue"])

    @property
    def symbol(self) -> str:
        return str(self.info["symbol"])

    @property
    def horizon_ns(self) -> int:
        return int(self.info["horizon_ns"])


def _first_level(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    start = offsets[:-1]
    present = offsets[1:] > start
    out = np.full(start.shape[0], np.nan)
    out[present] = values[start[present]]
    return out


def load_run(root: Path, run_id: str) -> Run:
    """Read runs/<run_id>/run.json and predictions.parquet, checking the contract."""
    run_dir = runs_dir(root) / run_id
    if not run_id or "/" in run_id or not run_dir.is_dir():
        known = sorted(p.name for p in runs_dir(root).glob("*") if p.is_dir()
                       and not p.name.startswith("."))[-10:]
        hint = f" known runs: {', '.join(known)}" if known else " there are no runs yet"
        raise UserError(f"Unknown run '{run_id}' under {runs_dir(root)};{hint}.")
    return load_run_dir(run_dir)


def load_run_dir(run_dir: Path) -> Run:
    """A run directory's run.json and predictions.parquet, checking the contract; the run
    id is the directory's name wherever it lies."""
    run_id = run_dir.name
    info_path = run_dir / "run.json"
    pred_path = run_dir / "predictions.parquet"
    for path in (info_path, pred_path):
        if not path.is_file():
            raise UserError(f"The run '{run_id}' has no {path.name} at {path}.")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"The file {info_path} is not valid JSON ({exc.msg}).") from None
    missing = [k for k in ("venue", "symbol", "horizon_ns") if k not in info]
    if missing:
        raise UserError(f"The file {info_path} lacks {', '.join(missing)}.")
    try:
        frame = pl.read_parquet(pred_path)
    except Exception as exc:  # a corrupt or truncated file is the user's input
        raise UserError(f"The predictions file {pred_path} cannot be read ({exc}).") from None
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"The predictions file {pred_path} lacks columns {', '.join(missing)}.")
    if frame.height == 0:
        raise UserError(f"The predictions file {pred_path} is empty.")
    # The run's own decision (its trading policy at its fee) travels with the probabilities.
    frame = frame.select(*PREDICTION_COLUMNS, *(["signal"] if "signal" in frame.columns else []))
    for column, expected in (("venue", info["venue"]), ("symbol", info["symbol"])):
        values = frame[column].unique().to_list()
        if values != [expected]:
            raise UserError(f"The predictions file {pred_path} holds {column} {values}, "
                            f"not only run.json's '{expected}'.")
    frame = frame.with_columns(
        pl.col("ts").dt.epoch("ns") if frame["ts"].dtype != pl.Int64 else pl.col("ts")
    ).sort("ts")
    return Run(run_id, info, frame)


def load_book(root: Path, venue: str, symbol: str, first_ts: int, last_ts: int) -> Book:
    """Snapshots of venue/symbol on the dates from first_ts to last_ts (plus a day)."""
    base = partition_dir(root, "snapshots", venue, symbol, "x").parent
    if not base.is_dir():
        raise UserError(f"There are no snapshots for {venue} {symbol} under {base}.")
    first_date = utc_date(first_ts)
    last_date = utc_date(last_ts + NS_PER_UNIT["d"])
    dirs = sorted(d for d in base.glob("date=*")
                  if first_date <= d.name.removeprefix("date=") <= last_date)
    files = [f for d in dirs for f in sorted(d.glob("part-*.parquet"))]
    if not files:
        raise UserError(f"There are no snapshots for {venue} {symbol} from {first_date} "
                        f"to {last_date} under {base}.")
    tables = []
    interval_ns = None
    for path in files:
        try:
            table = pq.read_table(path, columns=list(_BOOK_COLUMNS))
            meta = pq.read_schema(path).metadata or {}
        except Exception as exc:
            raise UserError(f"The snapshot file {path} cannot be read ({exc}).") from None
        if b"interval_ns" in meta and interval_ns is None:
            interval_ns = int(meta[b"interval_ns"])
        tables.append(table)
    table = pa.concat_tables(tables).combine_chunks()
    ts = table["ts"].chunk(0).cast(pa.int64()).to_numpy() if table.num_rows else np.empty(0)
    if table.num_rows == 0:
        raise UserError(f"The snapshots of {venue} {symbol} under {base} hold no rows.")
    if np.any(np.diff(ts) <= 0):
        order = np.argsort(ts, kind="stable")
        table = table.take(pa.array(order)).combine_chunks()
        ts = ts[order]
        if np.any(np.diff(ts) == 0):
            raise UserError(f"The snapshots of {venue} {symbol} under {base} repeat timestamps.")
    if interval_ns is None:
        interval_ns = int(np.median(np.diff(ts))) if ts.shape[0] > 1 else NS_PER_UNIT["s"]
    gap = table["gap"].chunk(0).fill_null(False).to_numpy(zero_copy_only=False)
    sides = {}
    for side in ("bid", "ask"):
        px = table[f"{side}_px"].chunk(0)
        sz = table[f"{side}_sz"].chunk(0)
        px_off = px.offsets.to_numpy().astype(np.int64)
        sz_off = sz.offsets.to_numpy().astype(np.int64)
        if not np.array_equal(px_off - px_off[0], sz_off - sz_off[0]):
            raise UserError(f"The snapshots of {venue} {symbol} under {base} have {side} "
                            "prices and sizes of different lengths.")
        # Offsets index the list's child array; rebase to a flat copy of the used span.
        values_px = px.values.to_numpy(zero_copy_only=False)[px_off[0]:px_off[-1]]
        values_sz = sz.values.to_numpy(zero_copy_only=False)[sz_off[0]:sz_off[-1]]
        sides[side] = (np.ascontiguousarray(values_px, np.float64),
                       np.ascontiguousarray(values_sz, np.float64), px_off - px_off[0])
    best_bid = _first_level(sides["bid"][0], sides["bid"][2])
    best_ask = _first_level(sides["ask"][0], sides["ask"][2])
    return Book(venue, symbol, np.ascontiguousarray(ts, np.int64), np.ascontiguousarray(gap),
                (best_bid + best_ask) / 2.0, *sides["bid"], *sides["ask"], interval_ns)


def book_from_levels(venue: str, symbol: str, ts: np.ndarray, bids: list[list[tuple]],
                     asks: list[list[tuple]], gap: np.ndarray | None = None,
                     interval_ns: int | None = None) -> Book:
    """A Book from per-row (price, size) lists, best first: for demos and studies in memory."""
    def flat(levels: list[list[tuple]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        off = np.zeros(len(levels) + 1, np.int64)
        off[1:] = np.cumsum([len(row) for row in levels])
        px = np.array([p for row in levels for p, _ in row], np.float64)
        sz = np.array([s for row in levels for _, s in row], np.float64)
        return px, sz, off

    ts = np.asarray(ts, np.int64)
    bid = flat(bids)
    ask = flat(asks)
    mid = (_first_level(bid[0], bid[2]) + _first_level(ask[0], ask[2])) / 2.0
    if interval_ns is None:
        interval_ns = int(np.median(np.diff(ts))) if ts.shape[0] > 1 else NS_PER_UNIT["s"]
    gap = np.zeros(ts.shape[0], np.bool_) if gap is None else np.asarray(gap, np.bool_)
    return Book(venue, symbol, ts, gap, mid, *bid, *ask, interval_ns)
