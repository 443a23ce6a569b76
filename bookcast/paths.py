"""Where each dataset lives under the data root (DESIGN.md, "Parquet datasets")."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "BOOKCAST_DATA_DIR"


def data_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """--data-dir, else $BOOKCAST_DATA_DIR, else ./data."""
    if data_dir is not None:
        return Path(data_dir)
    return Path(os.environ.get(DATA_DIR_ENV, "data"))


def partition_dir(root: Path, dataset: str, venue: str, symbol: str, date: str) -> Path:
    """snapshots|trades/venue=<v>/symbol=<s>/date=<d>; symbols are made path-safe."""
    return root / dataset / f"venue={venue}" / f"symbol={path_safe(symbol)}" / f"date={date}"


def path_safe(symbol: str) -> str:
    """Kraken's 'XBT/USD' cannot be a directory name; store it as 'XBT-USD'."""
    return symbol.replace("/", "-")


def raw_dir(root: Path, venue: str, date: str) -> Path:
    return root / "raw" / f"venue={venue}" / f"date={date}"


def runs_dir(root: Path) -> Path:
    return root / "runs"


def backtests_dir(root: Path) -> Path:
    return root / "backtests"


def features_dir(root: Path, feature_set: str) -> Path:
    return root / "features" / feature_set


def finished_ids(folder: Path, marker: str) -> list[str]:
    """Folders holding `marker` (written last), newest first; hidden temporary ones skipped."""
    if not folder.is_dir():
        return []
    found = [p.parent.name for p in folder.glob(f"*/{marker}")
             if not p.parent.name.startswith(".")]
    return sorted(found, reverse=True)
