"""The disk writer: one thread that writes Parquet parts and raw segments, in order.

The event loop only cuts rows into parts (`detach`, cheap) and submits them; encoding,
compression, fsync and rename happen here, so a slow or full disk never stalls the
sockets, the books or `/metrics`.

A write that fails with an OSError (disk full, EIO, a read-only remount) is retried
with back-off, the same part again, until it succeeds: nothing after it is written
first, and nothing already on disk is touched. One error is logged per episode,
naming the path and the OS error; `bookcast_write_errors_total{dataset}` counts every
failed attempt and `/healthz` answers 503 while it lasts. Parts wait in memory up to
`backlog_bytes`; past it a new part is dropped, counted in
`bookcast_rows_dropped_total{dataset}`, and the book's next row carries gap = true.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from collector.daemon.counters import WriteCounters

log = logging.getLogger("bookcast.daemon")

RETRY_INITIAL_S = 0.25
RETRY_MAX_S = 5.0


class Writable(Protocol):
    """A Parquet `PendingPart` or a `RawSegment`: rows (or records) and a retryable write."""

    path: Path
    rows: int

    def write(self) -> Path: ...


@dataclass
class WriteJob:
    dataset: str  # snapshots, trades or raw
    venue: str
    symbol: str  # "" for the raw capture
    part: Writable
    size: int  # bytes of memory the part holds until written
    cut_at: float = 0.0  # monotonic time the flush that cut it began


@dataclass
class Unwritten:
    """What the writer still held when it had to give up (at shutdown)."""

    rows: dict[str, int]
    error: str

    def sentence(self, root: Path) -> str:
        held = ", ".join(f"{n:,} {name}" for name, n in (
            ("snapshot rows", self.rows.get("snapshots", 0)),
            ("trade rows", self.rows.get("trades", 0)),
            ("raw capture records", self.rows.get("raw", 0))) if n)
        return (f"Could not write {held} to '{root}' before stopping"
                f"{f' ({self.error})' if self.error else ''}; they are lost.")


class DiskWriter:
    """Writes submitted parts on one thread, in submission order, retrying failures."""

    def __init__(self, counters: WriteCounters, backlog_bytes: int,
                 on_drop: Callable[[WriteJob], None]) -> None:
        self.counters = counters
        self.backlog_bytes = backlog_bytes
        self.on_drop = on_drop
        self._jobs: deque[WriteJob] = deque()
        self._wake = threading.Condition()
        self._closing = False
        self._dropping = False  # in an episode of dropped parts (until a write succeeds)
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bookcast-disk-writer",
                                        daemon=True)
        self._thread.start()

    # -- the event loop's side -----------------------------------------------------------
    def submit(self, jobs: list[WriteJob]) -> None:
        """Queue parts to write (never blocks); past the memory bound a part is dropped."""
        counters = self.counters
        dropped = []
        with self._wake:
            for job in jobs:
                if counters.backlog_parts and \
                        counters.backlog_bytes + job.size > self.backlog_bytes:
                    counters.dropped[job.dataset] += job.part.rows
                    dropped.append(job)
                    continue
                counters.backlog_bytes += job.size
                counters.backlog_parts += 1
                self._jobs.append(job)
            self._wake.notify()
        for job in dropped:
            self.on_drop(job)
        if dropped and not self._dropping:
            self._dropping = True  # once per episode, not once per part
            log.error("the rows waiting for the disk reached their memory bound; dropping new "
                      "ones (counted, and flagged gap = true)", extra={"fields": {
                          "backlog_bytes": counters.backlog_bytes,
                          "error": counters.last_error}})

    def close(self, deadline: float) -> Unwritten | None:
        """Write what is queued until `deadline` (monotonic); what could not be, if any."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if not self._thread.is_alive():
            return None
        self._abandon.set()
        self._thread.join(0.2)  # it is retrying (sleeping) or inside one write
        with self._wake:
            left = list(self._jobs)
        rows: dict[str, int] = {}
        for job in left:
            rows[job.dataset] = rows.get(job.dataset, 0) + job.part.rows
        return Unwritten(rows, self.counters.last_error) if left else None

    # -- the writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._jobs and not self._closing:
                    self._wake.wait()
                if not self._jobs:
                    return
                job = self._jobs[0]
            outcome = self._write(job)
            if outcome is None:
                return  # abandoned at shutdown
            counters = self.counters
            with self._wake:
                self._jobs.popleft()
                counters.backlog_bytes -= job.size
                counters.backlog_parts -= 1
            if outcome:
                counters.parts[job.dataset] += 1
                counters.rows_written[(job.dataset, job.venue, job.symbol)] += job.part.rows

    def _write(self, job: WriteJob) -> bool | None:
        """Write one part, retrying OSErrors with back-off: written (True), dropped for a
        bug (False), or abandoned at shutdown (None)."""
        counters = self.counters
        delay = RETRY_INITIAL_S
        first_try = True
        while True:
            try:
                job.part.write()
            except OSError as exc:
                first_try = False
                counters.errors[job.dataset] += 1
                reason = f"{exc.strerror or exc}" + (f" [errno {exc.errno}]" if exc.errno else "")
                counters.last_error = reason
                if counters.failing_since is None:
                    counters.failing_since = time.monotonic()
                    log.error("cannot write; keeping the rows in memory and retrying",
                              extra={"fields": {"path": str(job.part.path),
                                                "dataset": job.dataset, "error": reason}})
                if self._abandon.wait(delay):
                    return None
                delay = min(RETRY_MAX_S, delay * 2)
                continue
            except Exception:  # a bug, not the disk: keep the rest flowing, say it loudly
                log.exception("a part could not be encoded; dropped",
                              extra={"fields": {"path": str(job.part.path),
                                                "dataset": job.dataset}})
                counters.dropped[job.dataset] += job.part.rows
                return False
            if job.cut_at and first_try:  # from the flush to the file on disk, waits included
                counters.write_seconds_max = max(counters.write_seconds_max,
                                                 time.monotonic() - job.cut_at)
            with self._wake:
                caught_up = len(self._jobs) <= 1
            # the episode ends when everything that waited is written: a nearly full disk
            # that takes one small part and refuses the next is still one episode
            if counters.failing_since is not None and caught_up:
                log.info("writing again", extra={"fields": {
                    "path": str(job.part.path), "dataset": job.dataset,
                    "failed_for_s": round(time.monotonic() - counters.failing_since, 2),
                    "parts_waiting": counters.backlog_parts - 1}})
                counters.failing_since = None
                counters.last_error = ""
                self._dropping = False
            return True


def warm_up_writers() -> None:
    """Import and exercise Parquet encoding, its codecs and zstd now, before the sockets open,
    so the first flush does not pay for it (a second of imports would stall the disk writer)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from bookcast.schema import SNAPSHOT_SCHEMA, TRADE_SCHEMA
    from collector.capture import compress_capture
    from collector.writers import parquet_compression

    for schema in (SNAPSHOT_SCHEMA, TRADE_SCHEMA):  # each dataset's codec
        codec, level = parquet_compression(schema)
        # from_batches: from_pylist and Schema.empty_table import pandas (a second, 60 MB)
        pq.write_table(pa.Table.from_batches([], schema=schema), io.BytesIO(),
                       compression=codec, compression_level=level, use_dictionary=False)
    compress_capture(b"{}\n", ".zst")
