"""The venue's raw capture under raw/venue=<v>/date=<d>/, one segment per flush interval.

On the event loop a record costs one append of its encoded line; compression, the
write, fsync and the rename happen when the disk writer calls `RawSegment.write()`
on its own thread. Segments are named by their first receive time, so sorting the
names sorts the records; each is a complete zstd capture once it has its final name.
"""

from __future__ import annotations

from pathlib import Path

from bookcast.paths import raw_dir
from bookcast.timeutil import NS_PER_UNIT, utc_date, utc_day_start_ns
from collector.capture import encode_record, write_capture_atomic

RAW_SUFFIX = ".jsonl.zst"
# the url of the `connect` record that marks where dropped records are missing: a replay
# then rebuilds the connection's books from their next snapshot, as after a reconnection
RECORDS_DROPPED_URL = "bookcast:raw-records-dropped"


class RawSegment:
    """Encoded capture lines not yet on disk; `write()` may run on any thread, and again."""

    __slots__ = ("data", "first_ts", "path", "records")

    def __init__(self, path: Path, data: bytes, records: int, first_ts: int) -> None:
        self.path, self.data, self.records, self.first_ts = path, data, records, first_ts

    @property
    def rows(self) -> int:  # what the disk writer counts, as for Parquet parts
        return self.records

    @property
    def size(self) -> int:
        return len(self.data)

    def write(self) -> Path:
        return write_capture_atomic(self.path, self.data)


class RawCaptureLog:
    """Collects one venue's capture lines between flushes, cut at UTC midnight."""

    def __init__(self, root: Path, venue: str) -> None:
        self.root, self.venue = root, venue
        self.records = 0  # every record logged (written or waiting to be)
        self._chunks: list[bytes] = []
        self._count = 0
        self._first_ts = 0
        self._day_end = 0
        self._pending: list[RawSegment] = []
        self._lost_conns: list[str] = []

    def mark_lost(self, conns: list[str]) -> None:
        """Records of these connections were dropped: say so before the next record."""
        self._lost_conns = list(conns)

    def write(self, line: bytes, ts_ns: int) -> None:
        if self._lost_conns:
            conns, self._lost_conns = self._lost_conns, []
            for conn in conns:
                self.write(encode_record(ts_ns, "connect", conn, None, RECORDS_DROPPED_URL),
                           ts_ns)
        if not self._count or ts_ns >= self._day_end:
            if self._count:
                self._pending.append(self._cut())
            self._first_ts = ts_ns
            self._day_end = utc_day_start_ns(ts_ns) + NS_PER_UNIT["d"]
        self._chunks.append(line)
        self._count += 1
        self.records += 1

    def detach(self) -> list[RawSegment]:
        """Every segment cut so far, oldest first, and a fresh buffer."""
        segments, self._pending = self._pending, []
        if self._count:
            segments.append(self._cut())
        return segments

    def _cut(self) -> RawSegment:
        directory = raw_dir(self.root, self.venue, utc_date(self._first_ts))
        segment = RawSegment(directory / f"capture-{self._first_ts}{RAW_SUFFIX}",
                             b"".join(self._chunks), self._count, self._first_ts)
        self._chunks = []
        self._count = 0
        return segment
