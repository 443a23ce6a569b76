"""What the dashboard reads from the data root, through duckdb and polars, filtered first.

Every loader that touches Parquet takes a `stamp` of the files it reads (count and
newest modification time): Streamlit's cache keys on it, so new data shows up on the
next rerun while repeat views of the same data cost nothing. Snapshot queries always
name a venue, a symbol and a time window, and prune date partitions before duckdb
opens a file: a day of 100-level snapshots is never loaded whole.

Files written by other packages (runs, backtests, reports) are read defensively: a key
or a column that is missing comes back as None or an empty frame, never an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from bookcast.paths import (
    backtests_dir,
    data_root,
    features_dir,
    finished_ids,
    path_safe,
    runs_dir,
)
from bookcast.timeutil import NS_PER_UNIT, utc_date

CACHE_TTL_S = 600
# Above this many trades in a window the Book page draws them bucketed, not one by one.
MAX_TRADE_MARKERS = 3_000

Stamp = tuple[int, int]


def current_root() -> Path:
    """The data root the server was started on (`bookcast dashboard --data-dir`)."""
    return data_root(None)


def files_stamp(folder: Path, pattern: str = "**/*.parquet") -> Stamp:
    """(number of finished files, newest mtime in ns) under `folder`: a cache key."""
    count, newest = 0, 0
    if folder.is_dir():
        for path in folder.glob(pattern):
            try:
                newest = max(newest, path.stat().st_mtime_ns)
            except OSError:  # renamed away between glob and stat
                continue
            count += 1
    return count, newest


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _connect() -> Any:
    import duckdb

    return duckdb.connect()


def _dataset_files(root: Path, dataset: str) -> list[Path]:
    base = root / dataset
    return sorted(base.glob("venue=*/symbol=*/date=*/*.parquet")) if base.is_dir() else []


# ------------------------------------------------------------------ coverage (Data page)

COVERAGE_COLUMNS = ("venue", "symbol", "date", "rows", "gap_rows", "missing_grid_points",
                    "first_ts", "last_ts", "interval", "depth", "trades", "first_ns",
                    "last_ns", "interval_ns", "tick_size")


def _partition_metadata(folder: Path) -> dict[str, str]:
    import pyarrow.parquet as pq

    for path in sorted(folder.glob("*.parquet")):
        try:
            meta = pq.read_schema(path).metadata or {}
        except Exception:  # a damaged file: the coverage row still shows, without metadata
            continue
        return {k.decode(): v.decode() for k, v in meta.items()}
    return {}


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def coverage(root: str, stamp: Stamp) -> pl.DataFrame:
    """One row per (venue, symbol, date) of snapshots: rows, gaps, time range, trades."""
    base = Path(root)
    snap_files = _dataset_files(base, "snapshots")
    if not snap_files:
        return pl.DataFrame(schema={c: pl.Utf8 for c in COVERAGE_COLUMNS})
    con = _connect()
    # Only ts and gap are read: the level lists are never decoded for coverage.
    snaps = con.sql(
        "SELECT venue, symbol, CAST(date AS VARCHAR) AS date, count(*) AS rows, "
        "sum(CAST(coalesce(gap, false) AS INTEGER)) AS gap_rows, "
        "epoch_ns(min(ts)) AS first_ns, epoch_ns(max(ts)) AS last_ns "
        f"FROM read_parquet({_sql_list(snap_files)}, hive_partitioning = true, "
        "union_by_name = true) GROUP BY ALL ORDER BY ALL"
    ).pl()
    trade_files = _dataset_files(base, "trades")
    if trade_files:
        trades = con.sql(
            "SELECT venue, symbol, CAST(date AS VARCHAR) AS date, count(*) AS trades "
            f"FROM read_parquet({_sql_list(trade_files)}, hive_partitioning = true, "
            "union_by_name = true) GROUP BY ALL"
        ).pl()
        snaps = snaps.join(trades, on=["venue", "symbol", "date"], how="left")
    else:
        snaps = snaps.with_columns(trades=pl.lit(None, pl.Int64))
    intervals, depths, ticks = [], [], []
    for row in snaps.iter_rows(named=True):
        folder = base / "snapshots" / f"venue={row['venue']}" / f"symbol={row['symbol']}" \
            / f"date={row['date']}"
        meta = _partition_metadata(folder)
        interval = meta.get("interval_ns", "")
        intervals.append(int(interval) if interval.isdigit() else None)
        depths.append(meta.get("depth"))
        ticks.append(_positive_float(meta.get("tick_size")))
    return (
        snaps.with_columns(
            interval_ns=pl.Series(intervals, dtype=pl.Int64),
            depth=pl.Series(depths, dtype=pl.Utf8),
            tick_size=pl.Series(ticks, dtype=pl.Float64),
        )
        .with_columns(
            # Grid points between the first and last row that have no row at all.
            missing_grid_points=pl.when(pl.col("interval_ns") > 0).then(
                (pl.col("last_ns") - pl.col("first_ns")) // pl.col("interval_ns") + 1
                - pl.col("rows")),
            first_ts=pl.col("first_ns").cast(pl.Datetime("ns", "UTC")),
            last_ts=pl.col("last_ns").cast(pl.Datetime("ns", "UTC")),
            interval=pl.col("interval_ns").map_elements(_duration_text, return_dtype=pl.Utf8),
        )
    )


def _positive_float(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and value > 0 else None


def _duration_text(ns: int | None) -> str | None:
    from bookcast.timeutil import format_duration_ns

    return None if ns is None else format_duration_ns(int(ns))


# ------------------------------------------------------------------ snapshots and trades


def _partition_files(root: Path, dataset: str, venue: str, symbol: str, start_ns: int,
                     end_ns: int) -> list[Path]:
    """Files of the dates that overlap [start_ns, end_ns]: pruned before any read."""
    base = root / dataset / f"venue={venue}" / f"symbol={path_safe(symbol)}"
    first, last = utc_date(start_ns), utc_date(end_ns)
    files: list[Path] = []
    for folder in sorted(base.glob("date=*")) if base.is_dir() else []:
        date = folder.name.split("=", 1)[1]
        if first <= date <= last:
            files.extend(sorted(folder.glob("*.parquet")))
    return files


def market_stamp(root: str, venue: str, symbol: str) -> Stamp:
    base = Path(root)
    a = files_stamp(base / "snapshots" / f"venue={venue}" / f"symbol={path_safe(symbol)}")
    b = files_stamp(base / "trades" / f"venue={venue}" / f"symbol={path_safe(symbol)}")
    return a[0] + b[0], max(a[1], b[1])


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=32)
def book_window(root: str, venue: str, symbol: str, start_ns: int, end_ns: int,
                levels: int, stamp: Stamp) -> pl.DataFrame:
    """Snapshot rows with start_ns <= ts <= end_ns, the first `levels` levels a side.

    Columns: ts_ns (int64), gap, bid_px, bid_sz, ask_px, ask_sz (lists, best first).
    """
    files = _partition_files(Path(root), "snapshots", venue, symbol, start_ns, end_ns)
    if not files:
        return pl.DataFrame(schema={"ts_ns": pl.Int64, "gap": pl.Boolean,
                                    **{c: pl.List(pl.Float64) for c in
                                       ("bid_px", "bid_sz", "ask_px", "ask_sz")}})
    n = max(1, int(levels))
    return _connect().sql(
        f"SELECT epoch_ns(ts) AS ts_ns, coalesce(gap, false) AS gap, "
        f"bid_px[1:{n}] AS bid_px, bid_sz[1:{n}] AS bid_sz, "
        f"ask_px[1:{n}] AS ask_px, ask_sz[1:{n}] AS ask_sz "
        f"FROM read_parquet({_sql_list(files)}, union_by_name = true) "
        "WHERE ts BETWEEN make_timestamp_ns($lo)::TIMESTAMPTZ_NS "
        "AND make_timestamp_ns($hi)::TIMESTAMPTZ_NS ORDER BY ts",
        params={"lo": int(start_ns), "hi": int(end_ns)},
    ).pl()


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=32)
def book_top(root: str, venue: str, symbol: str, start_ns: int, end_ns: int,
             stamp: Stamp, max_rows: int = 5_000) -> pl.DataFrame:
    """ts_ns, best_bid, best_ask, mid over a window, thinned to about max_rows rows."""
    files = _partition_files(Path(root), "snapshots", venue, symbol, start_ns, end_ns)
    if not files:
        return pl.DataFrame(schema={"ts_ns": pl.Int64, "best_bid": pl.Float64,
                                    "best_ask": pl.Float64, "mid": pl.Float64})
    top = _connect().sql(
        "SELECT epoch_ns(ts) AS ts_ns, bid_px[1] AS best_bid, ask_px[1] AS best_ask "
        f"FROM read_parquet({_sql_list(files)}, union_by_name = true) "
        "WHERE ts BETWEEN make_timestamp_ns($lo)::TIMESTAMPTZ_NS "
        "AND make_timestamp_ns($hi)::TIMESTAMPTZ_NS ORDER BY ts",
        params={"lo": int(start_ns), "hi": int(end_ns)},
    ).pl().with_columns(mid=(pl.col("best_bid") + pl.col("best_ask")) / 2)
    step = max(1, top.height // max_rows)
    return top.gather_every(step) if step > 1 else top


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=32)
def trades_window(root: str, venue: str, symbol: str, start_ns: int, end_ns: int,
                  stamp: Stamp) -> pl.DataFrame:
    """ts_ns, price, size, side of the trades received in the window."""
    files = _partition_files(Path(root), "trades", venue, symbol, start_ns, end_ns)
    if not files:
        return pl.DataFrame(schema={"ts_ns": pl.Int64, "price": pl.Float64,
                                    "size": pl.Float64, "side": pl.Int8})
    return _connect().sql(
        "SELECT epoch_ns(ts_recv) AS ts_ns, price, size, side "
        f"FROM read_parquet({_sql_list(files)}, union_by_name = true) "
        "WHERE ts_recv BETWEEN make_timestamp_ns($lo)::TIMESTAMPTZ_NS "
        "AND make_timestamp_ns($hi)::TIMESTAMPTZ_NS ORDER BY ts_recv",
        params={"lo": int(start_ns), "hi": int(end_ns)},
    ).pl()


# ------------------------------------------------------------------ features (Features page)


def feature_sets(root: str) -> list[str]:
    base = Path(root) / "features"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir()
                  if p.is_dir() and any(p.glob("venue=*/symbol=*/date=*/*.parquet")))


def feature_markets(root: str, feature_set: str) -> list[tuple[str, str]]:
    base = features_dir(Path(root), feature_set)
    return sorted({(v.name.split("=", 1)[1], s.name.split("=", 1)[1])
                   for v in base.glob("venue=*") for s in v.glob("symbol=*")
                   if any(s.glob("date=*/*.parquet"))})


def _feature_files(root: str, feature_set: str, venue: str, symbol: str) -> list[Path]:
    base = features_dir(Path(root), feature_set) / f"venue={venue}" / f"symbol={path_safe(symbol)}"
    return sorted(base.glob("date=*/*.parquet"))


def feature_columns(root: str, feature_set: str, venue: str, symbol: str) -> list[str]:
    files = _feature_files(root, feature_set, venue, symbol)
    return list(pl.read_parquet_schema(files[0])) if files else []


def horizons_of(columns: list[str]) -> list[str]:
    """Horizons with a forward return column, in the order of their length."""
    from bookcast.timeutil import parse_duration_ns

    found = [c.removeprefix("fwd_ret_") for c in columns if c.startswith("fwd_ret_")]
    return sorted(found, key=lambda h: parse_duration_ns(h, what="horizon"))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def imbalance_response(root: str, feature_set: str, venue: str, symbol: str,
                       imbalance: str, horizons: tuple[str, ...], n_bins: int,
                       stamp: Stamp) -> pl.DataFrame:
    """Mean forward mid return (bps) per imbalance bin and horizon, with its standard error.

    Imbalances live in [-1, 1], so the bins are equal-width there; rows where either
    the imbalance or the forward return is null (data end, gaps) are left out.
    """
    files = _feature_files(root, feature_set, venue, symbol)
    wanted = [f"fwd_ret_{h}" for h in horizons]
    schema = {"horizon": pl.Utf8, "bin": pl.Int64, "imbalance": pl.Float64, "n": pl.UInt32,
              "mean_bps": pl.Float64, "se_bps": pl.Float64}
    if not files or not wanted:
        return pl.DataFrame(schema=schema)
    present = set(pl.read_parquet_schema(files[0]))
    wanted = [c for c in wanted if c in present]
    if imbalance not in present or not wanted:
        return pl.DataFrame(schema=schema)
    width = 2.0 / n_bins
    frame = (
        pl.scan_parquet(files)
        .select(pl.col(imbalance).alias("x"), *wanted)
        .unpivot(index="x", on=wanted, variable_name="horizon", value_name="ret")
        .drop_nulls()
        .filter(pl.col("x").is_finite() & pl.col("ret").is_finite())
        .with_columns(
            horizon=pl.col("horizon").str.strip_prefix("fwd_ret_"),
            bin=((pl.col("x") + 1.0) / width).floor().cast(pl.Int64).clip(0, n_bins - 1),
        )
        .group_by("horizon", "bin")
        .agg(n=pl.len(), mean_bps=pl.col("ret").mean() * 1e4,
             se_bps=pl.col("ret").std() * 1e4 / pl.len().cast(pl.Float64).sqrt())
        .with_columns(imbalance=-1.0 + (pl.col("bin") + 0.5) * width)
        .collect()
    )
    order = {h: i for i, h in enumerate(horizons)}
    return (frame.with_columns(_o=pl.col("horizon").replace_strict(order, default=99))
            .sort("_o", "bin").drop("_o").select(list(schema)))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def opportunity_report(root: str, stamp: Stamp) -> pl.DataFrame | None:
    """reports/opportunities.parquet as `bookcast opportunities` wrote it, or None."""
    path = Path(root) / "reports" / "opportunities.parquet"
    if not path.is_file():
        return None
    try:
        return pl.read_parquet(path)
    except Exception:  # a damaged report reads as missing; the page says how to rebuild it
        return None


# ------------------------------------------------------------------ runs (Models page)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def get(mapping: Any, *keys: str) -> Any:
    """mapping[k1][k2]... or None where any level is missing."""
    for key in keys:
        if not isinstance(mapping, dict) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


def run_ids(root: str) -> list[str]:
    """Finished runs (a run.json), newest first."""
    return finished_ids(runs_dir(Path(root)), "run.json")


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def run_summaries(root: str, stamp: Stamp) -> pl.DataFrame:
    """One row per run: what it is and the model's and best baseline's test macro-F1."""
    rows = []
    for run_id in run_ids(root):
        run_dir = runs_dir(Path(root)) / run_id
        run = read_json(run_dir / "run.json") or {}
        metrics = read_json(run_dir / "metrics.json") or {}
        baselines = metrics.get("baselines") if isinstance(metrics.get("baselines"), dict) else {}
        scored = [(n, get(b, "macro_f1")) for n, b in baselines.items()
                  if isinstance(get(b, "macro_f1"), int | float)]
        best = max(scored, key=lambda kv: kv[1], default=(None, None))
        rows.append({
            "run_id": run_id, "model": run.get("model"), "horizon": run.get("horizon"),
            "venue": run.get("venue"), "symbol": run.get("symbol"),
            "fee_bps": _float(run.get("fee_bps")), "macro_f1": _float(metrics.get("macro_f1")),
            "best_baseline": best[0], "best_baseline_macro_f1": _float(best[1]),
            "n_trades": _float(metrics.get("n_trades")),
            "net_pnl_bps": _float(metrics.get("net_pnl_bps")),
            "created_at": run.get("created_at"),
        })
    return pl.DataFrame(rows, schema={
        "run_id": pl.Utf8, "model": pl.Utf8, "horizon": pl.Utf8, "venue": pl.Utf8,
        "symbol": pl.Utf8, "fee_bps": pl.Float64, "macro_f1": pl.Float64,
        "best_baseline": pl.Utf8, "best_baseline_macro_f1": pl.Float64,
        "n_trades": pl.Float64, "net_pnl_bps": pl.Float64, "created_at": pl.Utf8})


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass
class RunFiles:
    run_id: str
    run: dict[str, Any]
    metrics: dict[str, Any]
    predictions: pl.DataFrame | None  # ts, p_down, p_flat, p_up, y (+ signal)
    baseline_predictions: pl.DataFrame | None  # the same with a `baseline` column
    behavioural: Any  # whatever the run stored under that name, or None


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=16)
def load_run(root: str, run_id: str) -> RunFiles:
    run_dir = runs_dir(Path(root)) / run_id
    metrics = read_json(run_dir / "metrics.json") or {}
    behavioural = None
    for name in ("behavioural", "behavioral", "behavioural_tests", "behavioral_tests"):
        behavioural = behavioural or metrics.get(name)
        behavioural = behavioural or read_json(run_dir / f"{name}.json")
    return RunFiles(run_id, read_json(run_dir / "run.json") or {}, metrics,
                    _read_parquet(run_dir / "predictions.parquet"),
                    _read_parquet(run_dir / "baseline_predictions.parquet"), behavioural)


def _read_parquet(path: Path) -> pl.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pl.read_parquet(path)
    except Exception:  # damaged or half-written elsewhere: shown as missing
        return None


def estimator_metrics(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{'model': ..., '<baseline>': ...}: the test figures of each estimator of a run."""
    out = {"model": metrics}
    baselines = metrics.get("baselines")
    if isinstance(baselines, dict):
        out.update({k: v for k, v in baselines.items() if isinstance(v, dict)})
    return out


def metrics_table(runs: dict[str, dict[str, Any]]) -> pl.DataFrame:
    """Runs side by side: one row per (run, estimator) with macro-F1 and per-class figures."""
    rows = []
    for run_id, metrics in runs.items():
        for name, m in estimator_metrics(metrics).items():
            row: dict[str, Any] = {"run_id": run_id,
                                   "estimator": metrics.get("model") if name == "model" else name,
                                   "is_model": name == "model",
                                   "macro_f1": _float(m.get("macro_f1"))}
            for cls in ("down", "flat", "up"):
                for k in ("precision", "recall", "f1"):
                    row[f"{cls}_{k}"] = _float(get(m, "per_class", cls, k))
            # ranking skill beside the trading rule: average precision vs the base rate
            for side in ("up", "down"):
                row[f"ap_{side}"] = _float(get(m, "probability_skill", f"average_precision_{side}"))
                row[f"base_rate_{side}"] = _float(get(m, "probability_skill", f"prevalence_{side}"))
            row["n_trades"] = _float(m.get("n_trades"))
            row["net_pnl_bps"] = _float(m.get("net_pnl_bps"))
            rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


# ------------------------------------------------------------------ backtests (Backtest page)


def backtest_ids(root: str) -> list[str]:
    """Finished backtests (a stats.json), newest first."""
    return finished_ids(backtests_dir(Path(root)), "stats.json")


@dataclass
class BacktestFiles:
    backtest_id: str
    config: dict[str, Any]
    stats: dict[str, Any]
    equity: pl.DataFrame | None
    trades: pl.DataFrame | None


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=16)
def load_backtest(root: str, backtest_id: str) -> BacktestFiles:
    folder = backtests_dir(Path(root)) / backtest_id
    return BacktestFiles(backtest_id, read_json(folder / "config.json") or {},
                         read_json(folder / "stats.json") or {},
                         _read_parquet(folder / "equity.parquet"),
                         _read_parquet(folder / "trades.parquet"))


def net_pnl_at_fee(stats: dict[str, Any], fee_bps: float) -> float | None:
    """Net PnL had every fill paid `fee_bps` per side instead (fills do not depend on fees)."""
    from backtest.stats import fee_curve

    gross, spread, traded = (_float(stats.get(k)) for k in
                             ("gross_pnl_mid", "spread_cost", "traded_value"))
    if gross is None or spread is None or traded is None:
        return None
    return fee_curve(gross - spread, traded, [fee_bps])[0]["net_pnl"]


def strategies(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The model's figures and each comparison row's, by name."""
    out = {"model": stats}
    baselines = stats.get("baselines")
    if isinstance(baselines, dict):
        out.update({k: v for k, v in baselines.items() if isinstance(v, dict)})
    return out


def seconds_in(ns: int) -> float:
    return ns / NS_PER_UNIT["s"]
