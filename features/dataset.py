"""Datasets for models: the features table joined to the raw book, split by time.

What a model trains on, in one place:

- `load_model_data` reads `features/<set>/venue=/symbol=/date=/part-*.parquet` for one
  (venue, symbol), sorts it by `ts`, and aligns the raw book of the snapshots dataset on
  `ts` (DeepLOB's input and the imbalance baselines), plus the net return a long or a
  short would have earned over the horizon after the round-trip fee (DESIGN.md labels).
- `chronological_splits` cuts train / validation / test in time order with a purge and
  embargo of horizon + input window between them, so no training label or input window
  reaches into the next split.
- `FeatureScaler` and `BookScaler` hold normalisation statistics fitted on training
  rows only; they serialise to JSON and are stored with the run that used them.
- `SequenceView` serves windows of T snapshots x (levels x 4) book values as a strided
  view over one (N, levels x 4) array (in memory or memory-mapped): nothing is copied
  until a batch is indexed.

Book layout (FI-2010 / DeepLOB order): for each level 1..L, `ask_px, ask_sz, bid_px,
bid_sz`; column `4*(l-1) + k`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bookcast.errors import UserError
from bookcast.paths import features_dir, partition_dir, path_safe
from bookcast.timeutil import format_duration_ns

NON_FEATURE_COLUMNS = frozenset({"ts", "venue", "symbol", "date"})
CLASSES = (-1, 0, 1)  # class index = label + 1: 0 down, 1 flat, 2 up
ASK_PX, ASK_SZ, BID_PX, BID_SZ = 0, 1, 2, 3


def is_feature_column(name: str) -> bool:
    """Every column that is not a key, a forward return or a label is a model input."""
    return not (name in NON_FEATURE_COLUMNS or name.startswith(("fwd_ret_", "y_")))


@dataclass
class ModelData:
    """One (venue, symbol) of a features dataset, time-ordered, as NumPy arrays.

    Row i of every array is the same `ts`. `y` is -1/0/+1 where labelled, `labelled`
    says where; `book` is (N, levels*4) raw values aligned on `ts` (NaN where the
    snapshot is missing); `long_net`/`short_net` are fractions after both fees.
    """

    venue: str
    symbol: str
    feature_set: str
    horizon_ns: int
    fee_bps: float
    ts: np.ndarray
    feature_names: list[str]
    features: np.ndarray
    y: np.ndarray
    labelled: np.ndarray
    book: np.ndarray
    gap: np.ndarray
    long_net: np.ndarray
    short_net: np.ndarray
    interval_ns: int
    levels: int
    config: dict[str, Any] = field(default_factory=dict)
    price_columns: list[str] = field(default_factory=list)
    fingerprint: str = ""

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def horizon(self) -> str:
        return format_duration_ns(self.horizon_ns)


def _pairs(root: Path) -> list[tuple[str, str]]:
    return sorted(
        (v.name.removeprefix("venue="), s.name.removeprefix("symbol="))
        for v in root.glob("venue=*") for s in v.glob("symbol=*")
    )


def feature_files(data_dir: Path, feature_set: str, venue: str, symbol: str) -> list[Path]:
    base = features_dir(data_dir, feature_set) / f"venue={venue}" / f"symbol={path_safe(symbol)}"
    return sorted(base.glob("date=*/*.parquet"))


def resolve_pair(data_dir: Path, feature_set: str, venue: str | None,
                 symbol: str | None) -> tuple[str, str]:
    """The one (venue, symbol) to model; ambiguous or missing choices are user errors."""
    root = features_dir(data_dir, feature_set)
    if not root.is_dir():
        raise UserError(
            f"No features dataset '{feature_set}' under {data_dir}; "
            f"run `bookcast features --data-dir {data_dir}` first."
        )
    pairs = [p for p in _pairs(root)
             if (venue is None or p[0] == venue)
             and (symbol is None or p[1] == path_safe(symbol))]
    if not pairs:
        have = ", ".join(f"{v}/{s}" for v, s in _pairs(root)) or "none"
        raise UserError(
            f"The features dataset {root} has no venue/symbol matching "
            f"{venue or '*'}/{symbol or '*'}; it has: {have}."
        )
    if len(pairs) > 1:
        have = ", ".join(f"{v}/{s}" for v, s in pairs)
        raise UserError(
            f"The features dataset {root} holds several venue/symbol pairs ({have}); "
            "choose one with --venue and --symbol."
        )
    return pairs[0]


def dataset_fingerprint(files: Sequence[Path]) -> str:
    """sha256 over the files' names and bytes: equal fingerprints mean equal data."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def load_features_config(data_dir: Path, feature_set: str) -> dict[str, Any]:
    path = features_dir(data_dir, feature_set) / "config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"The feature-set configuration {path} is not valid JSON: {exc}.") from None


def config_fee_bps(config: dict[str, Any]) -> float | None:
    """The taker fee per side the labels were built with, as the features config names it."""
    for key in ("fee_bps", "taker_fee_bps", "fee_bps_per_side"):
        if isinstance(config.get(key), int | float):
            return float(config[key])
    labels = config.get("labels")
    if isinstance(labels, dict):
        return config_fee_bps(labels)
    return None


def book_matrix(frame: Any, levels: int) -> np.ndarray:
    """(N, levels*4) array from a polars frame with `bid_px, bid_sz, ask_px, ask_sz` lists.

    Missing levels repeat the last present price with size 0, so a thin book reads as
    'nothing there' rather than NaN; a row with an empty side stays NaN on that side.
    """
    import polars as pl

    exprs = []
    for level in range(levels):
        for col in ("ask_px", "ask_sz", "bid_px", "bid_sz"):
            exprs.append(pl.col(col).list.get(level, null_on_oob=True).alias(f"{col}{level}"))
    out = frame.select(exprs).cast(pl.Float64).to_numpy().astype(np.float64)
    for level in range(1, levels):
        for px_col, sz_col in ((ASK_PX, ASK_SZ), (BID_PX, BID_SZ)):
            here, prev = 4 * level, 4 * (level - 1)
            missing = np.isnan(out[:, here + px_col])
            out[missing, here + px_col] = out[missing, prev + px_col]
            out[missing & ~np.isnan(out[:, prev + px_col]), here + sz_col] = 0.0
    return out


def load_snapshot_book(data_dir: Path, venue: str, symbol: str,
                       levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts, gap, book) of every snapshot of a venue/symbol in time order."""
    import polars as pl

    base = partition_dir(data_dir, "snapshots", venue, symbol, "x").parent
    files = sorted(base.glob("date=*/*.parquet"))
    if not files:
        raise UserError(
            f"No snapshots for {venue}/{symbol} under {data_dir / 'snapshots'}; the raw book "
            "is needed beside the features (run `bookcast replay` or `bookcast collect`)."
        )
    cols = ["ts", "gap", "bid_px", "bid_sz", "ask_px", "ask_sz"]
    frame = pl.concat([pl.read_parquet(f, columns=cols) for f in files]).sort("ts")
    book = book_matrix(frame, levels)
    ts = frame["ts"].dt.epoch("ns").to_numpy().astype(np.int64)
    return ts, frame["gap"].fill_null(False).to_numpy().astype(bool), book


def net_trade_returns(snap_ts: np.ndarray, snap_gap: np.ndarray, snap_book: np.ndarray,
                      ts: np.ndarray, horizon_ns: int,
                      fee_bps: float) -> tuple[np.ndarray, np.ndarray]:
    """Net return of a long (buy ask now, sell bid at t+h) and a short, after both fees.

    Exactly the quantities the fee-aware label compares with zero (DESIGN.md); NaN past
    the data, across a gap, or where `ts` has no snapshot.
    """
    now = np.searchsorted(snap_ts, ts)
    now_c = np.minimum(now, len(snap_ts) - 1)
    exact = snap_ts[now_c] == ts
    later = np.searchsorted(snap_ts, ts + horizon_ns, side="right") - 1
    gaps_so_far = np.cumsum(snap_gap)
    later_c = np.clip(later, 0, len(snap_ts) - 1)
    crosses_gap = gaps_so_far[later_c] != gaps_so_far[now_c]
    inside = (ts + horizon_ns) <= snap_ts[-1]
    ok = exact & inside & ~crosses_gap
    cost = 2.0 * fee_bps / 1e4
    ask0, bid0 = snap_book[now_c, ASK_PX], snap_book[now_c, BID_PX]
    ask1, bid1 = snap_book[later_c, ASK_PX], snap_book[later_c, BID_PX]
    long_net = np.where(ok, bid1 / ask0 - 1.0 - cost, np.nan)
    short_net = np.where(ok, 1.0 - ask1 / bid0 - cost, np.nan)
    return long_net, short_net


def price_level_columns(features: np.ndarray, names: list[str], mid: np.ndarray) -> list[str]:
    """Features that are prices (mid, best bid, microprice...): their median sits within
    5% of the mid. Found by value, not name, so new price features are caught too."""
    found = []
    with np.errstate(all="ignore"):
        for j, name in enumerate(names):
            rel = np.abs(features[:, j] / mid - 1.0)
            rel = rel[np.isfinite(rel)]
            if len(rel) and np.median(rel) < 0.05:
                found.append(name)
    return found


def relative_to_mid(features: np.ndarray, names: list[str], mid: np.ndarray,
                    price_columns: list[str]) -> tuple[np.ndarray, list[str]]:
    """Price-level features become bps from the row's mid (`<name>_vs_mid_bps`).

    A model fed raw price levels learns the price range of its training period, which
    says nothing about the next hour; the distance from the mid is what carries signal.
    """
    out, out_names = features.copy(), list(names)
    for name in price_columns:
        j = names.index(name)
        with np.errstate(all="ignore"):
            out[:, j] = (features[:, j] / mid - 1.0) * 1e4
        out_names[j] = f"{name}_vs_mid_bps"
    return out, out_names


def load_model_data(data_dir: str | Path, horizon_ns: int, *, feature_set: str = "default",
                    venue: str | None = None, symbol: str | None = None, levels: int = 10,
                    fee_bps: float | None = None, require_labels: bool = True,
                    price_columns: list[str] | None = None) -> ModelData:
    """Read one venue/symbol of a features dataset with its aligned raw book.

    Price-level feature columns (detected, or `price_columns` as a stored run names them)
    are turned into bps from the mid; see `relative_to_mid`.
    """
    import polars as pl

    data_dir = Path(data_dir)
    venue, symbol_dir = resolve_pair(data_dir, feature_set, venue, symbol)
    files = feature_files(data_dir, feature_set, venue, symbol_dir)
    if not files:
        raise UserError(f"The features dataset for {venue}/{symbol_dir} has no Parquet files.")
    frame = pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in files],
                      how="diagonal_relaxed").sort("ts")
    if frame.height == 0:
        raise UserError(f"The features dataset for {venue}/{symbol_dir} is empty.")
    horizon = format_duration_ns(horizon_ns)
    label = f"y_{horizon}"
    if label not in frame.columns:
        have = sorted(c.removeprefix("y_") for c in frame.columns if c.startswith("y_"))
        raise UserError(
            f"The features dataset has no labels for horizon {horizon}; it has: "
            f"{', '.join(have) or 'none'} (rebuild it with --horizons including {horizon})."
        )
    symbol_name = _symbol_from_metadata(files[0]) or symbol_dir
    config = load_features_config(data_dir, feature_set)
    if fee_bps is None:
        fee_bps = config_fee_bps(config)
    if fee_bps is None:
        raise UserError(
            f"The feature-set configuration under {features_dir(data_dir, feature_set)} does "
            "not say which fee the labels use; pass --fee-bps."
        )
    names = [c for c in frame.columns if is_feature_column(c)]
    ts = frame["ts"].dt.epoch("ns").to_numpy().astype(np.int64)
    y_col = frame[label]
    labelled = y_col.is_not_null().to_numpy()
    if require_labels and not labelled.any():
        raise UserError(f"The features dataset has no labelled rows for horizon {horizon}.")
    y = y_col.fill_null(0).to_numpy().astype(np.int8)
    feats = frame.select(names).cast(pl.Float64).to_numpy() if names else np.zeros((len(ts), 0))

    snap_ts, snap_gap, snap_book = load_snapshot_book(data_dir, venue, symbol_name, levels)
    pos = np.clip(np.searchsorted(snap_ts, ts), 0, len(snap_ts) - 1)
    found = snap_ts[pos] == ts
    book = np.where(found[:, None], snap_book[pos], np.nan)
    gap = np.where(found, snap_gap[pos], True)
    long_net, short_net = net_trade_returns(snap_ts, snap_gap, snap_book, ts, horizon_ns,
                                            fee_bps)
    mid = (book[:, ASK_PX] + book[:, BID_PX]) / 2.0
    if price_columns is None:
        price_columns = price_level_columns(feats, names, mid)
    feats, names = relative_to_mid(feats, names, mid, price_columns)
    diffs = np.diff(snap_ts)
    interval_ns = int(np.median(diffs)) if len(diffs) else 1_000_000_000
    snap_files = sorted((partition_dir(data_dir, "snapshots", venue, symbol_name, "x").parent)
                        .glob("date=*/*.parquet"))
    return ModelData(
        venue=venue, symbol=symbol_name, feature_set=feature_set, horizon_ns=horizon_ns,
        fee_bps=float(fee_bps), ts=ts, feature_names=names, features=feats, y=y,
        labelled=labelled, book=book, gap=gap, long_net=long_net, short_net=short_net,
        interval_ns=interval_ns, levels=levels, config=config, price_columns=price_columns,
        fingerprint=dataset_fingerprint([*files, *snap_files]),
    )


def _symbol_from_metadata(path: Path) -> str | None:
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    value = meta.get(b"symbol")
    return value.decode() if value else None


# ---------------------------------------------------------------- splits


@dataclass(frozen=True)
class Splits:
    """Row indices of each split (labelled rows only) and the embargo between them."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    embargo_ns: int

    def ranges(self, ts: np.ndarray) -> dict[str, dict[str, int]]:
        """First/last ts (ns) and row count of each split."""
        return {name: {"first_ts": int(ts[idx[0]]), "last_ts": int(ts[idx[-1]]),
                       "rows": len(idx)}
                for name, idx in (("train", self.train), ("val", self.val),
                                  ("test", self.test))}


def chronological_splits(ts: np.ndarray, labelled: np.ndarray, horizon_ns: int,
                         window_ns: int, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
                         min_val_start_ns: int | None = None) -> Splits:
    """Train / validation / test in time order, with a purge + embargo between them.

    Boundaries are placed by labelled-row count. A row of an earlier split is kept only if
    its label horizon and the next split's first input window both end before the next
    split starts: ts + horizon + window < boundary, so the embargo is horizon + window.
    `min_val_start_ns` pushes validation after anything the features fitted on (the
    microprice table), so no fitted statistic has seen validation or test rows.
    """
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) <= 0:
        raise UserError(f"Split fractions {fractions} must be positive and sum to 1.")
    rows = np.flatnonzero(labelled)
    if len(rows) < 30:
        raise UserError(
            f"Only {len(rows)} labelled rows: too few to split into train, validation "
            "and test; collect or simulate more data."
        )
    embargo = int(horizon_ns + window_ns)
    cut1 = ts[rows[int(len(rows) * fractions[0])]]
    cut2 = ts[rows[int(len(rows) * (fractions[0] + fractions[1]))]]
    if min_val_start_ns is not None and min_val_start_ns > cut1:
        cut1 = min_val_start_ns
        cut2 = max(cut2, ts[rows[min(np.searchsorted(ts[rows], cut1) + int(len(rows) * fractions[1]),
                                    len(rows) - 1)]])
    t = ts[rows]
    train = rows[t < cut1 - embargo]
    val = rows[(t >= cut1) & (t < cut2 - embargo)]
    test = rows[t >= cut2]
    for name, idx in (("train", train), ("validation", val), ("test", test)):
        if len(idx) == 0:
            span = format_duration_ns(int(ts[rows[-1]] - ts[rows[0]]))
            raise UserError(
                f"The {name} split is empty after an embargo of "
                f"{format_duration_ns(embargo)}; the data spans only {span}."
            )
    return Splits(train=train, val=val, test=test, embargo_ns=embargo)


def window_splits(ts: np.ndarray, labelled: np.ndarray, start_ns: int, train_ns: int,
                  step_ns: int, horizon_ns: int, window_ns: int,
                  val_fraction: float = 0.2) -> Splits | None:
    """One walk-forward block: train on [start, start+train) (its last part is the
    validation split) and test on the next `step` after the embargo; None if empty."""
    embargo = int(horizon_ns + window_ns)
    t_end = start_ns + train_ns
    val_start = start_ns + int(train_ns * (1 - val_fraction))
    train = np.flatnonzero(labelled & (ts >= start_ns) & (ts < val_start - embargo))
    val = np.flatnonzero(labelled & (ts >= val_start) & (ts < t_end - embargo))
    test = np.flatnonzero(labelled & (ts >= t_end) & (ts < t_end + step_ns))
    if min(len(train), len(val), len(test)) == 0:
        return None
    return Splits(train=train, val=val, test=test, embargo_ns=embargo)


# ---------------------------------------------------------------- normalisation


@dataclass
class FeatureScaler:
    """z-score per feature with training statistics; nulls become 0 (the training mean)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> FeatureScaler:
        import warnings

        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-null columns -> 0 / 1
            mean = np.nanmean(features, axis=0) if len(features) else np.zeros(features.shape[1])
            std = np.nanstd(features, axis=0) if len(features) else np.ones(features.shape[1])
        mean = np.nan_to_num(mean, nan=0.0, posinf=0.0, neginf=0.0)
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        return cls(mean=mean, std=std)

    def transform(self, features: np.ndarray) -> np.ndarray:
        z = (features - self.mean) / self.std
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> FeatureScaler:
        return cls(mean=np.asarray(data["mean"]), std=np.asarray(data["std"]))


@dataclass
class BookScaler:
    """z-score of raw book values with one mean/std for all prices and one for all sizes
    (as DeepLOB does), so the ordering across levels survives normalisation."""

    price_mean: float
    price_std: float
    size_mean: float
    size_std: float

    @classmethod
    def fit(cls, book: np.ndarray) -> BookScaler:
        px = book[:, np.r_[ASK_PX::4, BID_PX::4]] if book.size else np.zeros((1, 1))
        sz = book[:, np.r_[ASK_SZ::4, BID_SZ::4]] if book.size else np.ones((1, 1))
        ps, ss = float(np.nanstd(px)), float(np.nanstd(sz))
        return cls(float(np.nanmean(px)), ps if ps > 1e-12 else 1.0,
                   float(np.nanmean(sz)), ss if ss > 1e-12 else 1.0)

    def transform(self, book: np.ndarray) -> np.ndarray:
        out = np.empty(book.shape, dtype=np.float32)
        is_price = np.zeros(book.shape[1], dtype=bool)
        is_price[ASK_PX::4] = is_price[BID_PX::4] = True
        out[:, is_price] = (book[:, is_price] - self.price_mean) / self.price_std
        out[:, ~is_price] = (book[:, ~is_price] - self.size_mean) / self.size_std
        return np.nan_to_num(out, nan=0.0)

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> BookScaler:
        return cls(**data)


# ---------------------------------------------------------------- sequence view


def valid_window_ends(ts: np.ndarray, gap: np.ndarray, window: int,
                      interval_ns: int) -> np.ndarray:
    """Rows i whose window [i-window+1, i] is complete: no gap after its first row and no
    missing grid time inside it (a row flagged `gap` starts a new, valid stretch)."""
    n = len(ts)
    ok = np.zeros(n, dtype=bool)
    if n < window:
        return ok
    gaps = np.cumsum(gap.astype(np.int64))
    first = np.arange(window - 1, n) - (window - 1)
    last = np.arange(window - 1, n)
    no_gap = gaps[last] - gaps[first] == 0
    span_ok = ts[last] - ts[first] <= (window - 1) * interval_ns * 1.5
    ok[window - 1:] = no_gap & span_ok
    return ok


class SequenceView:
    """Windows of `window` rows x F columns over one (N, F) array, without copies.

    `view[k]` / `view[idx_array]` returns windows ending at `ends[k]`, shape (T, F) or
    (B, T, F). The underlying array may be an `np.memmap`; only indexed batches are
    materialised, so a dataset of N rows costs N x F floats, not N x T x F.
    """

    def __init__(self, values: np.ndarray, ends: np.ndarray, window: int) -> None:
        if values.ndim != 2:
            raise ValueError("values must be (rows, columns)")
        ends = np.asarray(ends, dtype=np.int64)
        if len(ends) and (ends.min() < window - 1 or ends.max() >= len(values)):
            raise ValueError("every window must lie inside the array")
        self.values = values
        self.ends = ends
        self.window = window
        # (N-T+1, F, T) strided view; transposed to (N-T+1, T, F): still no copy.
        self.windows = np.lib.stride_tricks.sliding_window_view(
            values, window, axis=0).transpose(0, 2, 1) if len(values) >= window else None

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.ends), self.window, self.values.shape[1])

    def __getitem__(self, key: int | slice | np.ndarray) -> np.ndarray:
        starts = self.ends[key] - (self.window - 1)
        if self.windows is None:
            raise IndexError("the array is shorter than one window")
        return np.ascontiguousarray(self.windows[starts])

    def subset(self, positions: np.ndarray) -> SequenceView:
        return SequenceView(self.values, self.ends[positions], self.window)

    @classmethod
    def memory_mapped(cls, values: np.ndarray, path: Path, ends: np.ndarray,
                      window: int) -> SequenceView:
        """Write `values` once to `path` (.npy) and serve windows from a read-only memmap."""
        np.save(path, np.ascontiguousarray(values, dtype=np.float32))
        return cls(np.load(path, mmap_mode="r"), ends, window)
