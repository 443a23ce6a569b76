"""Datasets for models: the features table joined to the raw book, split by time.

What a model trains on, in one place (its only callers are in `models/`):

- `load_model_data` reads `features/<set>/venue=/symbol=/date=/part-*.parquet` for one
  (venue, symbol), sorts it by `ts`, and aligns the raw book of the snapshots dataset on
  `ts` (DeepLOB's input and the imbalance baselines). The labels and the net returns of a
  long and a short come from `features.labels.round_trips` on the snapshots, at the run's
  fee: the same definition the features were labelled with (checked row for row where
  the fees agree), re-derived exactly at any other fee.
- `chronological_splits` cuts train / validation / test in time order with a purge and
  embargo of horizon + input window between them, so no training label or input window
  reaches into the next split.
- `FeatureScaler` and `BookScaler` hold normalisation statistics fitted on training
  rows only; they serialise to JSON and are stored with the run that used them.
- `SequenceView` serves windows of T snapshots x (levels x 4) book values as a strided
  view over one (N, levels x 4) array (in memory or memory-mapped): nothing is copied
  until a batch is indexed. DeepLOB's prices are bps from the window's last mid.

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

from bookcast.errors import UserError, parquet_error
from bookcast.paths import features_dir, partition_dir, path_safe
from bookcast.timeutil import format_duration_ns
from features.labels import RoundTrips, round_trips

NON_FEATURE_COLUMNS = frozenset({"ts", "venue", "symbol", "date"})
CLASSES = (-1, 0, 1)  # class index = label + 1: 0 down, 1 flat, 2 up
ASK_PX, ASK_SZ, BID_PX, BID_SZ = 0, 1, 2, 3


def is_feature_column(name: str) -> bool:
    """Every column of the features dataset that is not a key, a forward return or a label
    is a model input."""
    return not (name in NON_FEATURE_COLUMNS or name.startswith(("fwd_ret_", "y_")))


@dataclass(frozen=True)
class Touch:
    """Every snapshot of a venue/symbol in time order: the best prices, for round trips
    entered at any row (a later entry under latency, the oracle)."""

    ts: np.ndarray
    gap: np.ndarray
    bid: np.ndarray
    ask: np.ndarray

    def round_trips(self, horizon_ns: int, entry: np.ndarray) -> RoundTrips:
        return round_trips(self.ts, self.gap, self.bid, self.ask, horizon_ns, entry)

    def rows_at_or_after(self, ts: np.ndarray) -> np.ndarray:
        """The snapshot an order sent at `ts` executes at (len(ts) past the data)."""
        return np.searchsorted(self.ts, ts, side="left")


@dataclass
class ModelData:
    """One (venue, symbol) of a features dataset, time-ordered, as NumPy arrays.

    Row i of every array is the same `ts`. `y` is -1/0/+1 at `fee_bps` where labelled,
    `labelled` says where; `book` is (N, levels*4) raw values aligned on `ts` (NaN where
    the snapshot is missing); `trips` are the rows' round trips over the horizon (gross),
    `long_net`/`short_net` the same after both fees at `fee_bps`.
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
    trips: RoundTrips
    touch: Touch
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

    @property
    def long_net(self) -> np.ndarray:
        return self.trips.net(self.fee_bps)[0]

    @property
    def short_net(self) -> np.ndarray:
        return self.trips.net(self.fee_bps)[1]

    def at_fee(self, fee_bps: float) -> ModelData:
        """The same rows with labels and net returns at another fee (exact: fees only
        shift the round trips' net returns)."""
        from dataclasses import replace

        y = self.trips.labels(fee_bps)
        return replace(self, fee_bps=float(fee_bps),
                       y=np.nan_to_num(y, nan=0.0).astype(np.int8),
                       labelled=np.isfinite(y))


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


def config_fee_bps(config: dict[str, Any], venue: str | None = None) -> float | None:
    """The taker fee per side the labels were built with, as the features config names it
    (one figure for the whole set, else the venue's)."""
    for key in ("fee_bps", "taker_fee_bps", "fee_bps_per_side"):
        if isinstance(config.get(key), int | float):
            return float(config[key])
    by_venue = (config.get("fee") or {}).get("taker_bps_by_venue") or {}
    if venue is not None and isinstance(by_venue.get(venue), int | float):
        return float(by_venue[venue])
    labels = config.get("labels")
    if isinstance(labels, dict):
        return config_fee_bps(labels, venue)
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
    parts = []
    for path in files:
        try:
            parts.append(pl.read_parquet(path, columns=cols))
        except Exception as exc:  # polars raises several types for a damaged file
            raise UserError(f"The snapshot file {path} cannot be read ({exc}).") from None
    frame = pl.concat(parts).sort("ts")
    book = book_matrix(frame, levels)
    ts = frame["ts"].dt.epoch("ns").to_numpy().astype(np.int64)
    return ts, frame["gap"].fill_null(False).to_numpy().astype(bool), book


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

    Labels are at `fee_bps` (default: the fee the features were labelled with), from the
    one round-trip function on the snapshots. Price-level feature columns (detected, or
    `price_columns` as a stored run names them) become bps from the mid; see
    `relative_to_mid`.
    """
    import polars as pl

    data_dir = Path(data_dir)
    venue, symbol_dir = resolve_pair(data_dir, feature_set, venue, symbol)
    files = feature_files(data_dir, feature_set, venue, symbol_dir)
    if not files:
        raise UserError(f"The features dataset for {venue}/{symbol_dir} has no Parquet files.")
    try:
        frame = pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in files],
                          how="diagonal_relaxed").sort("ts")
    except Exception as exc:  # polars raises several types for a damaged file
        raise parquet_error(files, exc, f"The features under {files[0].parent.parent} cannot "
                            f"be read; rebuild them with `bookcast features`") from None
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
    features_fee = config_fee_bps(config, venue)
    if fee_bps is None:
        fee_bps = features_fee
    if fee_bps is None:
        raise UserError(
            f"The feature-set configuration under {features_dir(data_dir, feature_set)} does "
            "not say which fee the labels use; pass --fee-bps."
        )
    if fee_bps < 0:
        raise UserError(f"The fee {fee_bps} bps is negative; fees are zero or more.")
    names = [c for c in frame.columns if is_feature_column(c)]
    ts = frame["ts"].dt.epoch("ns").to_numpy().astype(np.int64)
    feats = frame.select(names).cast(pl.Float64).to_numpy() if names else np.zeros((len(ts), 0))

    snap_ts, snap_gap, snap_book = load_snapshot_book(data_dir, venue, symbol_name, levels)
    touch = Touch(snap_ts, snap_gap, snap_book[:, BID_PX], snap_book[:, ASK_PX])
    pos = np.clip(np.searchsorted(snap_ts, ts), 0, len(snap_ts) - 1)
    found = snap_ts[pos] == ts
    book = np.where(found[:, None], snap_book[pos], np.nan)
    gap = np.where(found, snap_gap[pos], True)
    trips = touch.round_trips(horizon_ns, np.where(found, pos, len(snap_ts)))
    y = trips.labels(fee_bps)
    labelled = np.isfinite(y)
    _check_labels_match(frame[label], y, features_fee, fee_bps, data_dir, feature_set)
    if require_labels and not labelled.any():
        raise UserError(f"The features dataset has no labelled rows for horizon {horizon}.")
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
        fee_bps=float(fee_bps), ts=ts, feature_names=names, features=feats,
        y=np.nan_to_num(y, nan=0.0).astype(np.int8), labelled=labelled, book=book, gap=gap,
        trips=trips, touch=touch, interval_ns=interval_ns, levels=levels, config=config,
        price_columns=price_columns, fingerprint=dataset_fingerprint([*files, *snap_files]),
    )


def _check_labels_match(stored: Any, derived: np.ndarray, features_fee: float | None,
                        fee_bps: float, data_dir: Path, feature_set: str) -> None:
    """The features' labels and the snapshots' round trips are one definition: where the
    fees agree they are equal row for row, and which rows have a label never depends on
    the fee. A difference means the snapshots changed after the features were built."""
    stored_labelled = stored.is_not_null().to_numpy()
    same = np.array_equal(stored_labelled, np.isfinite(derived))
    if same and features_fee is not None and features_fee == fee_bps:
        same = np.array_equal(stored.fill_null(0).to_numpy(),
                              np.nan_to_num(derived, nan=0.0).astype(np.int8))
    if not same:
        raise UserError(
            f"The labels of the features under {features_dir(data_dir, feature_set)} do not "
            "match the round trips of the snapshots beside them (the snapshots changed, or "
            "an older bookcast built the features); rebuild them with "
            f"`bookcast features --data-dir {data_dir}`.")


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
                f"{format_duration_ns(embargo)} (horizon plus input window); the data spans "
                f"only {span}: record or simulate more, or shorten --horizon or --window."
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


def price_column_mask(n_columns: int) -> np.ndarray:
    """True for the price columns of the book layout (ask_px, bid_px of every level)."""
    mask = np.zeros(n_columns, dtype=bool)
    mask[ASK_PX::4] = mask[BID_PX::4] = True
    return mask


@dataclass
class BookScaler:
    """DeepLOB's inputs: prices in bps from the mid, sizes log-scaled, fitted on training
    rows only.

    Absolute prices z-scored once leave a tick at about 1e-4 of a unit and let drift shift
    every input; the distance from the mid in bps is what the book's shape says. Each
    row stores 1e4 * log(price / anchor) / price_scale (anchor: the first training mid),
    and `mid_offset` gives the same for its mid, so a window can subtract the mid of its
    last row (`SequenceView`): every price in a window is then bps from the mid at the
    decision time, and the mid's path inside the window stays visible. Sizes are
    log1p(size) z-scored with one mean and std for every level, so level order survives.
    """

    anchor: float
    price_scale: float
    size_mean: float
    size_std: float

    @classmethod
    def fit(cls, book: np.ndarray) -> BookScaler:
        if not book.size:
            return cls(1.0, 1.0, 0.0, 1.0)
        mid = (book[:, ASK_PX] + book[:, BID_PX]) / 2.0
        finite = mid[np.isfinite(mid)]
        anchor = float(finite[0]) if len(finite) else 1.0
        is_price = price_column_mask(book.shape[1])
        with np.errstate(all="ignore"):
            rel = 1e4 * np.log(book[:, is_price] / mid[:, None])
            log_sz = np.log1p(book[:, ~is_price])
        scale = float(np.nanstd(rel)) if np.isfinite(rel).any() else 1.0
        size_mean = float(np.nanmean(log_sz)) if np.isfinite(log_sz).any() else 0.0
        size_std = float(np.nanstd(log_sz)) if np.isfinite(log_sz).any() else 1.0
        return cls(anchor, scale if scale > 1e-12 else 1.0, size_mean,
                   size_std if size_std > 1e-12 else 1.0)

    def transform(self, book: np.ndarray) -> np.ndarray:
        """(N, levels*4) float32 rows; prices still relative to the anchor (see class doc)."""
        out = np.empty(book.shape, dtype=np.float32)
        is_price = price_column_mask(book.shape[1])
        with np.errstate(all="ignore"):
            out[:, is_price] = 1e4 * np.log(book[:, is_price] / self.anchor) / self.price_scale
            out[:, ~is_price] = (np.log1p(book[:, ~is_price]) - self.size_mean) / self.size_std
        return out

    def mid_offset(self, book: np.ndarray) -> np.ndarray:
        """Each row's mid in the units of `transform`'s prices (float64)."""
        mid = (book[:, ASK_PX] + book[:, BID_PX]) / 2.0
        with np.errstate(all="ignore"):
            return 1e4 * np.log(mid / self.anchor) / self.price_scale

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> BookScaler:
        if "anchor" not in data:
            raise UserError("This run was trained by an older bookcast whose DeepLOB read "
                            "absolute prices; retrain it with `bookcast train`.")
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
    materialised, so a dataset of N rows costs N x F floats, not N x T x F. With `offset`
    (N,) and `offset_columns` (F,) bool, each window's offset columns are taken relative
    to the offset of its last row (DeepLOB: prices relative to the mid at decision time).
    Missing values (an empty level, a missing row) become 0 in the returned batch.
    """

    def __init__(self, values: np.ndarray, ends: np.ndarray, window: int,
                 offset: np.ndarray | None = None,
                 offset_columns: np.ndarray | None = None) -> None:
        if values.ndim != 2:
            raise ValueError("values must be (rows, columns)")
        ends = np.asarray(ends, dtype=np.int64)
        if len(ends) and (ends.min() < window - 1 or ends.max() >= len(values)):
            raise ValueError("every window must lie inside the array")
        self.values = values
        self.ends = ends
        self.window = window
        self.offset = offset
        self.offset_columns = offset_columns
        # (N-T+1, F, T) strided view; transposed to (N-T+1, T, F): still no copy.
        self.windows = np.lib.stride_tricks.sliding_window_view(
            values, window, axis=0).transpose(0, 2, 1) if len(values) >= window else None

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.ends), self.window, self.values.shape[1])

    def __getitem__(self, key: int | slice | np.ndarray) -> np.ndarray:
        ends = self.ends[key]
        starts = ends - (self.window - 1)
        if self.windows is None:
            raise IndexError("the array is shorter than one window")
        batch = np.array(self.windows[starts], dtype=np.float32)
        if self.offset is not None and self.offset_columns is not None:
            ref = np.asarray(self.offset[ends], dtype=np.float32)
            batch[..., self.offset_columns] -= ref[..., None, None]
        return np.nan_to_num(batch, nan=0.0, posinf=0.0, neginf=0.0)

    def subset(self, positions: np.ndarray) -> SequenceView:
        return SequenceView(self.values, self.ends[positions], self.window, self.offset,
                            self.offset_columns)

    @classmethod
    def memory_mapped(cls, values: np.ndarray, path: Path, ends: np.ndarray,
                      window: int, offset: np.ndarray | None = None,
                      offset_columns: np.ndarray | None = None) -> SequenceView:
        """Write `values` once to `path` (.npy) and serve windows from a read-only memmap."""
        np.save(path, np.ascontiguousarray(values, dtype=np.float32))
        return cls(np.load(path, mmap_mode="r"), ends, window, offset, offset_columns)
