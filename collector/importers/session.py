"""One import into a data root: staged beside it, moved into place only when complete.

An import writes through the collector's own Pipeline and writers, but into a hidden
staging directory under the data root. Only when every input has been read does
`commit()` move the files into their partitions (a rename each, on the same file
system). So a bad line, a Ctrl-C or a full disk halfway through a multi-GB file leaves
the data root exactly as it was, and a reader never sees half an import.

Before moving anything, `commit()` refuses to add rows that overlap in time the rows an
existing file of the same partition already holds (re-importing the same data replaces
its files, which have the same names).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path
from types import TracebackType

import pyarrow.parquet as pq

from bookcast.errors import UserError
from collector.pipeline import DEFAULT_ROTATE_ROWS, Pipeline
from collector.venues import VENUES, Venue
from collector.writers import fsync_dir

log = logging.getLogger("bookcast.collector")

STAGING_PREFIX = ".import-"
# Rows wait in the writers until their file is cut; a file is cut before its rows hold more
# than this many book levels (5,000 rows at depth 100), so a month-long file imports in the
# same memory as a minute-long one. Replay's files are cut only by rows (1,000,000).
MAX_LEVELS_PER_FILE = 1_000_000
FULL_DEPTH_LEVELS = 5_000  # what a full-depth row is assumed to hold, a side
MAX_TRADES_PER_FILE = 250_000


class ImportSession:
    """Pipelines writing into a staging directory, committed or discarded as a whole."""

    def __init__(self, data_dir: Path | str, source: str) -> None:
        self.root = Path(data_dir)
        self.source = source
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"The data directory '{self.root}' is not a directory.")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"The data directory '{self.root}' cannot be created: "
                            f"{exc.strerror}.") from None
        remove_abandoned_staging(self.root)
        self.staging = self.root / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self.staging.mkdir()
        self.pipelines: list[Pipeline] = []

    def pipeline(self, venue: str, interval_ns: int, depth: int | None,
                 symbols: list[str] | None = None, rotate_rows: int = DEFAULT_ROTATE_ROWS,
                 rotate_ns: int | None = None, trades: bool = False,
                 checked: bool = False) -> Pipeline:
        """A Pipeline for `venue` writing into the staging directory, its files cut small
        enough to keep memory flat (for `trades`, or the book at `depth`). A venue bookcast
        has no module for (an exchange only tardis covers) imports under its own name.

        `checked`: the file carries the venue's update ids and the importer checks them by
        the venue's rule, so its rows are as verified as a capture's; otherwise no lost
        update could be seen and the files say `verified_depth` 0."""
        if trades:
            rotate_rows = min(rotate_rows, MAX_TRADES_PER_FILE)
        else:
            levels_per_row = 2 * (FULL_DEPTH_LEVELS if depth is None else depth)
            rotate_rows = min(rotate_rows, max(1, MAX_LEVELS_PER_FILE // levels_per_row))
        protocol = VENUES.get(venue, Venue)
        if not checked:
            protocol = type(f"Unchecked{protocol.__name__}", (protocol,), {"verified_depth": 0})
        pipeline = Pipeline(venue, self.staging, interval_ns=interval_ns, depth=depth,
                            symbols=symbols, rotate_rows=rotate_rows, rotate_ns=rotate_ns,
                            source=self.source, protocol=protocol)
        self.pipelines.append(pipeline)
        return pipeline

    def commit(self) -> list[Path]:
        """Move every staged file into the data root; returns their final paths."""
        staged = sorted(p for p in self.staging.rglob("*.parquet") if not p.name.startswith("."))
        moves = [(src, self.root / src.relative_to(self.staging)) for src in staged]
        for src, dest in moves:
            _refuse_overlap(src, dest)
        directories = set()
        for src, dest in moves:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
            directories.add(dest.parent)
        for directory in directories:
            fsync_dir(directory)
        self.discard()
        return [dest for _, dest in moves]

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> ImportSession:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # committed sessions have no staging left; anything else (an error, an
        # interrupt) leaves the data root as it was
        self.discard()


def time_range(path: Path) -> tuple[int, int] | None:
    """First and last time (ns) a snapshots or trades file holds, from its statistics."""
    meta = pq.ParquetFile(path).metadata
    lo, hi = None, None
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(0).statistics  # ts / ts_recv: the first column
        if stats is None or not stats.has_min_max:
            return None
        lo = stats.min_raw if lo is None else min(lo, stats.min_raw)
        hi = stats.max_raw if hi is None else max(hi, stats.max_raw)
    return None if lo is None else (int(lo), int(hi))


def _refuse_overlap(src: Path, dest: Path) -> None:
    if not dest.parent.is_dir():
        return
    new = time_range(src)
    if new is None:
        return
    for existing in sorted(dest.parent.glob("*.parquet")):
        if existing.name == dest.name or existing.name.startswith("."):
            continue
        try:
            old = time_range(existing)
        except (OSError, ValueError):
            continue  # an unreadable file is the reader's to report, not the import's
        if old is not None and new[0] <= old[1] and old[0] <= new[1]:
            from bookcast.timeutil import format_ts

            raise UserError(f"'{existing}' already holds rows from {format_ts(old[0])} to "
                            f"{format_ts(old[1])}, which this import overlaps; remove it or "
                            f"import into another --data-dir (nothing was written).")


def remove_abandoned_staging(root: Path) -> None:
    """Staging directories of imports that died (SIGKILL, power loss) are removed."""
    for path in root.glob(f"{STAGING_PREFIX}*"):
        pid_text = path.name[len(STAGING_PREFIX):].split("-", 1)[0]
        if pid_text.isdigit() and _alive(int(pid_text)):
            continue
        log.info("removing %s, left by an import that did not finish", path)
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
