"""Reading a run's predictions and the snapshots they are backtested against."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from backtest.fills import levels_reached
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
    # Orders of up to this many base units walk the kept levels exactly as the full book
    # (`load_book`); inf when every level is kept.
    reach_qty: float = math.inf

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def signal_rows(self, ts: np.ndarray) -> np.ndarray:
        """The row each signal saw: the last snapshot at or before its time."""
        return np.searchsorted(self.ts, ts, side="right") - 1

    def mean_move_bps(self, ts: np.ndarray, horizon_ns: int) -> float:
        """The mid's mean move over one horizon from the times `ts` (those whose horizon
        ends inside the book), bps: what holding a long for the horizon earned on average
        from the market's drift alone, whatever the forecast."""
        ts = np.asarray(ts, np.int64)
        start = self.signal_rows(ts)
        inside = (start >= 0) & (ts + horizon_ns <= self.ts[-1])
        m0 = self.mid[start[inside]]
        m1 = self.mid[self.signal_rows(ts[inside] + horizon_ns)]
        good = np.isfinite(m0) & np.isfinite(m1) & (m0 > 0)
        if not good.any():
            return 0.0
        return float(np.mean(m1[good] / m0[good] - 1.0) * 1e4)

    def touch_prices(self) -> tuple[np.ndarray, np.ndarray]:
        """Best bid and best ask prices per row (NaN where a side is empty)."""
        return (_first_level(self.bid_px, self.bid_off), _first_level(self.ask_px, self.ask_off))

    def touch_sizes(self) -> tuple[np.ndarray, np.ndarray]:
        """Best bid and best ask sizes per row (NaN where a side is empty)."""
        return (_first_level(self.bid_sz, self.bid_off), _first_level(self.ask_sz, self.ask_off))

    @property
    def levels_released(self) -> bool:
        return self.bid_px.shape[0] == 0 and self.bid_off.shape[0] == 0

    def release_levels(self) -> None:
        """Drop the levels and their offsets (most of the book's memory) once no more
        orders are priced against it; ts, gap and mid stay for marking positions, pricing
        afterwards raises (`levels_released`)."""
        empty_levels, empty_off = np.empty(0), np.empty(0, np.int64)
        for name in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
            object.__setattr__(self, name, empty_levels)  # frozen: replaced, never edited
        for name in ("bid_off", "ask_off"):
            object.__setattr__(self, name, empty_off)

    @cached_property
    def lowest_mid(self) -> float:
        return float(np.nanmin(self.mid)) if np.isfinite(self.mid).any() else math.inf

    def check_reach(self, notional: float, size: float | None) -> None:
        """Refuse orders larger than this book was loaded for: their walks could need
        levels `load_book` did not keep, and the fills would differ from the full book's."""
        if math.isinf(self.reach_qty):
            return
        largest = size if size else notional / self.lowest_mid
        if not largest <= self.reach_qty:
            raise ValueError(f"Orders of up to {largest:g} {self.symbol} may walk levels this "
                             f"book did not load (it holds walks of up to {self.reach_qty:g}); "
                             "load it with this order's notional or size.")


@dataclass(frozen=True)
class Run:
    """A trained model's run: its run.json and its test-split predictions."""

    run_id: str
    info: dict[str, Any]
    predictions: pl.DataFrame  # PREDICTION_COLUMNS (venue, symbol categorical),
    # ts as int64 ns, sorted

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
        columns = pl.read_parquet_schema(pred_path)
    except Exception as exc:  # a corrupt or truncated file is the user's input
        raise UserError(f"The predictions file {pred_path} cannot be read ({exc}).") from None
    missing = [c for c in PREDICTION_COLUMNS if c not in columns]
    if missing:
        raise UserError(f"The predictions file {pred_path} lacks columns {', '.join(missing)}.")
    # The run's own decision (its trading policy at its fee) travels with the probabilities.
    extra = ["signal"] if "signal" in columns else []
    try:
        frame = _read_predictions(pred_path, extra)
    except Exception as exc:
        raise UserError(f"The predictions file {pred_path} cannot be read ({exc}).") from None
    if frame.height == 0:
        raise UserError(f"The predictions file {pred_path} is empty.")
    try:  # both columns' values in one streamed pass over the file
        found = pl.scan_parquet(pred_path).select(
            pl.col(c).unique().cast(pl.String).implode() for c in ("venue", "symbol")
        ).collect(engine="streaming").row(0)
    except Exception as exc:
        raise UserError(f"The predictions file {pred_path} cannot be read ({exc}).") from None
    for column, values in zip(("venue", "symbol"), found, strict=True):
        expected = info[column]
        if values != [expected]:
            raise UserError(f"The predictions file {pred_path} holds {column} {values}, "
                            f"not only run.json's '{expected}'.")
    # Venue and symbol repeat on every row, one value each (checked above): categorical
    # from that value, never the 3M strings decoded.
    frame = frame.with_columns(
        pl.lit(info[c], pl.String).cast(pl.Categorical).alias(c) for c in ("venue", "symbol")
    ).select(*PREDICTION_COLUMNS, *extra)
    if frame["ts"].dtype != pl.Int64:
        frame = frame.with_columns(pl.col("ts").dt.epoch("ns"))
    if not frame["ts"].is_sorted():  # sorting copies every column: only when needed
        frame = frame.sort("ts")
    return Run(run_id, info, frame)


def _read_predictions(path: Path, extra: list[str]) -> pl.DataFrame:
    """The numeric prediction columns (and `extra`), each in one chunk so the backtest's
    NumPy views are not copies; read and rechunked one column at a time, so the transient
    is one column's, not the frame's."""
    names = [c for c in PREDICTION_COLUMNS if c not in ("venue", "symbol")] + extra
    series = []
    for name in names:
        series.append(pl.scan_parquet(path).select(name).collect().to_series().rechunk())
    return pl.DataFrame(series)


def load_book(root: Path, venue: str, symbol: str, first_ts: int, last_ts: int, *,
              notional: float | None = None, size: float | None = None) -> Book:
    """Snapshots of venue/symbol on the dates from first_ts to last_ts (plus a day).

    The files are decoded batch by batch. Given the orders' `notional` (quote currency,
    sized at the entry's mid) or `size` (base units), each row keeps only the levels such
    an order can walk (`backtest.fills.levels_reached`, docs/backtest.md "Loading the
    book"), so the fills are those of the full book; with neither, every level is kept.
    """
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
    footers = {path: _footer(path) for path in files}  # each file's footer read once
    reach_qty = _reach_qty(footers, notional, size)
    rows = _Rows(sum(meta.num_rows for meta in footers.values()))
    interval_ns = None
    # Decoded batches from the system allocator: their buffers (under the mmap threshold
    # `backtest_run` sets) reuse the heap's pages batch after batch, where Arrow's own pool
    # would keep some after the load, adding to the peak of everything after it.
    pool = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        interval_ns = _read_levels(footers, rows, reach_qty)
    finally:
        pa.set_memory_pool(pool)
    if rows.n == 0:
        raise UserError(f"The snapshots of {venue} {symbol} under {base} hold no rows.")
    ts, gap = rows.ts[:rows.n], rows.gap[:rows.n]
    sides = {side: levels.arrays(rows.n) for side, levels in rows.sides.items()}
    del rows
    if np.any(np.diff(ts) <= 0):
        order = np.argsort(ts, kind="stable")
        ts, gap = ts[order], gap[order]
        if np.any(np.diff(ts) == 0):
            raise UserError(f"The snapshots of {venue} {symbol} under {base} repeat timestamps.")
        for side, (px, sz, off) in sides.items():
            rows, off = _rows_taken(off[:-1][order], np.diff(off)[order])
            sides[side] = (px[rows], sz[rows], off)
    if interval_ns is None:
        interval_ns = int(np.median(np.diff(ts))) if ts.shape[0] > 1 else NS_PER_UNIT["s"]
    best_bid = _first_level(sides["bid"][0], sides["bid"][2])
    best_ask = _first_level(sides["ask"][0], sides["ask"][2])
    return Book(venue, symbol, ts, gap, (best_bid + best_ask) / 2.0, *sides["bid"],
                *sides["ask"], interval_ns, reach_qty)


def _read_levels(footers: dict[Path, pq.FileMetaData], rows: _Rows, reach_qty: float
                 ) -> int | None:
    """Every file's batches into `rows`; the grid interval of the first file that says."""
    interval_ns = None
    for path, footer in footers.items():
        try:
            # A reader per file, dropped after it: a reader kept alive keeps what it decoded.
            snapshots = pq.ParquetFile(path, metadata=footer)
            meta = snapshots.schema_arrow.metadata or {}
            for batch in snapshots.iter_batches(batch_size=_batch_rows(snapshots),
                                                columns=list(_BOOK_COLUMNS)):
                rows.add(batch, reach_qty, path)
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"The snapshot file {path} cannot be read ({exc}).") from None
        if b"interval_ns" in meta and interval_ns is None:
            interval_ns = int(meta[b"interval_ns"])
        del snapshots
    return interval_ns


# Rows per decoded batch: about this many levels per list column, 512 KiB of float64, under
# the 1 MiB from which `backtest_run` maps allocations (`map_large_allocations`): a batch's
# buffers reuse the heap's pages, not a fresh mapping each (page faults: twice the load time).
_BATCH_LEVELS = 1 << 16


def _batch_rows(snapshots: pq.ParquetFile) -> int:
    meta = snapshots.metadata
    column = next(j for j in range(meta.num_columns)
                  if meta.schema.column(j).path.split(".")[0] == "bid_px")
    levels = sum(meta.row_group(g).column(column).num_values for g in range(meta.num_row_groups))
    return max(256, int(_BATCH_LEVELS * meta.num_rows / max(levels, 1)))


def _footer(path: Path) -> pq.FileMetaData:
    try:
        return pq.read_metadata(path)
    except Exception as exc:
        raise UserError(f"The snapshot file {path} cannot be read ({exc}).") from None


def _reach_qty(footers: dict[Path, pq.FileMetaData], notional: float | None,
               size: float | None) -> float:
    """The largest order, in base units, any fill of this load can walk: `size`, or the
    notional bought at the lowest mid, which is no lower than the lowest price of any level
    in the files (their Parquet statistics, else read). inf: keep every level."""
    if size is not None:
        return float(size)
    if notional is None:
        return math.inf
    lowest = min(_lowest_price(path, meta) for path, meta in footers.items())
    return float(notional) / lowest if lowest > 0 else math.inf


def _lowest_price(path: Path, meta: pq.FileMetaData) -> float:
    columns = [j for j in range(meta.num_columns)
               if meta.schema.column(j).path.split(".")[0] in ("bid_px", "ask_px")]
    stats = [meta.row_group(g).column(j).statistics
             for g in range(meta.num_row_groups) for j in columns]
    if all(s is not None and s.has_min_max for s in stats):
        return min((float(s.min) for s in stats), default=math.inf)
    try:
        lows = [pc.min(batch.column(c).flatten()).as_py()
                for batch in pq.ParquetFile(path).iter_batches(columns=["bid_px", "ask_px"])
                for c in ("bid_px", "ask_px")]
    except Exception as exc:
        raise UserError(f"The snapshot file {path} cannot be read ({exc}).") from None
    return min((low for low in lows if low is not None), default=math.inf)


class _Rows:
    """The book being loaded, batch after batch, into arrays sized for the files' row
    count, so that no batch's copy outlives it."""

    def __init__(self, n_rows: int) -> None:
        self.n = 0
        self.ts = np.empty(n_rows, np.int64)
        self.gap = np.empty(n_rows, np.bool_)
        self.sides = {side: _Levels(n_rows) for side in ("bid", "ask")}

    def add(self, batch: pa.RecordBatch, reach_qty: float, path: Path) -> None:
        n, stop = self.n, self.n + batch.num_rows
        if stop > self.ts.shape[0]:
            raise UserError(f"The snapshot file {path} holds more rows than its footer says.")
        self.ts[n:stop] = batch.column("ts").cast(pa.int64()).to_numpy()
        self.gap[n:stop] = batch.column("gap").fill_null(False).to_numpy(zero_copy_only=False)
        for side, levels in self.sides.items():
            levels.add(batch, side, n, reach_qty, path)
        self.n = stop


class _Levels:
    """One side's kept levels, back to back: the offsets are sized for every row, the
    levels grow as they come, by the share of levels kept so far (rarely more than once)."""

    def __init__(self, n_rows: int) -> None:
        self.off = np.zeros(n_rows + 1, np.int64)
        self.px = self.sz = np.empty(0)
        self.m = 0

    def add(self, batch: pa.RecordBatch, side: str, row: int, reach_qty: float,
            path: Path) -> None:
        px, sz = batch.column(f"{side}_px"), batch.column(f"{side}_sz")
        px_off = px.offsets.to_numpy().astype(np.int64)
        sz_off = sz.offsets.to_numpy().astype(np.int64)
        if not np.array_equal(px_off - px_off[0], sz_off - sz_off[0]):
            raise UserError(f"The snapshot file {path} has {side} prices and sizes of "
                            "different lengths.")
        # Offsets index the list's child array, which may start before this batch's rows.
        values_px = px.values.to_numpy(zero_copy_only=False)[px_off[0]:px_off[-1]]
        values_sz = sz.values.to_numpy(zero_copy_only=False)[sz_off[0]:sz_off[-1]]
        off = px_off - px_off[0]
        if math.isinf(reach_qty):
            counts, taken = np.diff(off), slice(None)
        else:
            counts = levels_reached(np.ascontiguousarray(values_sz, np.float64), off, reach_qty)
            taken, _ = _rows_taken(off[:-1], counts)
        stop = row + counts.shape[0]
        np.cumsum(counts, out=self.off[row + 1:stop + 1])
        self.off[row + 1:stop + 1] += self.m
        end = int(self.off[stop])
        if end > self.px.shape[0]:
            self._grow(end, stop)
        self.px[self.m:end] = values_px[taken]
        self.sz[self.m:end] = values_sz[taken]
        self.m = end

    def _grow(self, needed: int, rows_done: int) -> None:
        expected = int(needed / rows_done * (self.off.shape[0] - 1) * 1.05) + 1024
        capacity = max(needed, expected, int(self.px.shape[0] * 1.25))
        for name in ("px", "sz"):
            grown = np.empty(capacity)
            grown[:self.m] = getattr(self, name)[:self.m]
            setattr(self, name, grown)

    def arrays(self, n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prices, sizes and offsets of the first n_rows rows (the buffers' unused tail
        stays allocated: at most the last growth's 5 % margin)."""
        return self.px[:self.m], self.sz[:self.m], self.off[:n_rows + 1]


def _rows_taken(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of `counts[i]` levels from `starts[i]`, row after row, and the offsets
    of the rows they make."""
    off = np.zeros(counts.shape[0] + 1, np.int64)
    np.cumsum(counts, out=off[1:])
    return np.repeat(starts - off[:-1], counts) + np.arange(off[-1]), off


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
