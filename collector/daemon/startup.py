"""Before collecting: one writer per partition (a lock), and the debris of a crash.

Locks. A daemon holds an exclusive `flock` on `.locks/<venue>/<symbol>.lock` under the
data root for every (venue, symbol) it collects, for as long as it runs; the kernel
releases them when the process dies, even by SIGKILL. A second daemon on the same
partitions is refused with a sentence naming the holder. Daemons of one venue with
different symbols share that venue's raw capture directory, so each also holds a
shared lock on `.locks/<venue>/raw.lock`, and only a daemon that can take it
exclusively (no other daemon of the venue is alive) touches raw debris.

Debris. A crash mid-write leaves a hidden `.<name>.tmp`: a Parquet part is removed
(its rows are in the raw capture, and replay rebuilds them); a raw capture segment
keeps whatever complete lines it still decodes, under its final name.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bookcast.errors import UserError
from bookcast.paths import path_safe
from collector.capture import salvage_lines, write_capture_atomic

log = logging.getLogger("bookcast.daemon")

LOCK_DIR = ".locks"


@dataclass
class PartitionLocks:
    """The lock files this daemon holds open (closing them releases the locks)."""

    files: list[IO[str]] = field(default_factory=list)
    raw_exclusive: dict[str, bool] = field(default_factory=dict)  # venue -> may clean raw

    def release(self) -> None:
        for fh in self.files:
            with contextlib.suppress(OSError):
                fh.close()
        self.files.clear()


def lock_partitions(root: Path, streams: list[tuple[str, list[str]]]) -> PartitionLocks:
    """Lock every (venue, symbol) for this process, or raise a UserError naming the holder."""
    locks = PartitionLocks()
    holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                         "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    try:
        for venue, symbols in streams:
            directory = root / LOCK_DIR / venue
            directory.mkdir(parents=True, exist_ok=True)
            for symbol in symbols:
                path = directory / f"{path_safe(symbol)}.lock"
                fh = path.open("a+")
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    fh.seek(0)
                    owner = _holder(fh.read())
                    fh.close()
                    raise UserError(f"The data directory '{root}' is already being written "
                                    f"for {venue} {symbol} by {owner}; stop that collector "
                                    f"or choose another --data-dir.") from None
                fh.seek(0)
                fh.truncate()
                fh.write(holder)
                fh.flush()
                locks.files.append(fh)
            raw = (directory / "raw.lock").open("a+")
            try:
                fcntl.flock(raw, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locks.raw_exclusive[venue] = True
            except BlockingIOError:
                locks.raw_exclusive[venue] = False  # another daemon of this venue is alive
            locks.files.append(raw)
    except BaseException:
        locks.release()
        raise
    return locks


def share_raw_locks(locks: PartitionLocks, root: Path) -> None:
    """After cleaning up, let other daemons of the same venues (other symbols) start."""
    for fh in locks.files:
        if fh.name.endswith("raw.lock"):
            fcntl.flock(fh, fcntl.LOCK_SH)


def _holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"process {info['pid']} on {info['host']} (started {info['started']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


@dataclass
class Debris:
    recovered: int = 0  # partial raw captures whose lines were kept
    lines: int = 0
    removed: int = 0  # temporary files removed
    paths: list[str] = field(default_factory=list)


def clean_up_debris(root: Path, streams: list[tuple[str, list[str]]],
                    locks: PartitionLocks) -> Debris:
    """Recover or remove the temporary files a crash left in this daemon's partitions."""
    debris = Debris()
    for probe in root.glob(".bookcast-probe-*"):
        _remove(probe, debris)
    for venue, symbols in streams:
        for dataset in ("snapshots", "trades"):
            for symbol in symbols:
                base = root / dataset / f"venue={venue}" / f"symbol={path_safe(symbol)}"
                for tmp in base.glob("date=*/.*.tmp"):
                    _remove(tmp, debris)
        if not locks.raw_exclusive.get(venue):
            continue
        for tmp in (root / "raw" / f"venue={venue}").glob("date=*/.*.tmp"):
            final = tmp.with_name(tmp.name[1:-len(".tmp")])
            lines = salvage_lines(tmp)
            if lines and not final.exists():
                # the recovered lines go through the same temporary name: written over
                # the debris, then renamed, so a crash now leaves debris, never a loss
                write_capture_atomic(final, lines)
                debris.recovered += 1
                debris.lines += lines.count(b"\n")
                debris.paths.append(str(final))
            else:
                _remove(tmp, debris)
    if debris.recovered or debris.removed:
        log.warning("cleaned up after a crash", extra={"fields": {
            "recovered_raw_files": debris.recovered, "recovered_lines": debris.lines,
            "removed_temp_files": debris.removed, "recovered": debris.paths[:20]}})
    return debris


def _remove(path: Path, debris: Debris) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        debris.removed += 1
