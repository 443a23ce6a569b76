"""The raw capture format (DESIGN.md): gzip or zstd JSON Lines, one record per line.

Each record: ts_ns (local receive time, int ns), kind (recv|send|http|connect),
conn (connection name), url (for connect/send/http), data (raw text as received,
or b64 for binary frames). Readers detect the compression from the file's magic
bytes, so a misnamed file still reads.
"""

from __future__ import annotations

import contextlib
import gzip
import heapq
import io
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import zstandard

from bookcast.errors import UserError

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
RECORD_KINDS = frozenset({"recv", "send", "http", "connect"})


@dataclass
class CaptureRecord:
    ts_ns: int
    kind: str
    conn: str
    data: str | None
    url: str | None = None
    b64: str | None = None
    source: str = ""
    line: int = 0


@dataclass
class ReadStats:
    """What reading a capture met: records read and malformed lines skipped."""

    records: int = 0
    malformed: int = 0
    malformed_where: list[str] = field(default_factory=list)


class _CountingFile(io.RawIOBase):
    """A read-only file that counts the (compressed) bytes read, for progress bars."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open("rb")
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = self._fh.readinto(buffer)
        self.consumed += n or 0
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


def open_capture_text(path: str | os.PathLike[str]) -> IO[str]:
    """Open a capture for reading text, whatever its compression (gzip, zstd or none).

    The returned stream has a `counted` attribute whose `consumed` is the number of
    bytes of the file read so far.
    """
    p = Path(path)
    if not p.exists():
        raise UserError(f"The capture file '{p}' does not exist.")
    if p.is_dir():
        raise UserError(f"'{p}' is a directory, not a capture file.")
    try:
        with p.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise UserError(f"The capture file '{p}' cannot be read: {exc.strerror}.") from None
    if not magic:
        raise UserError(f"The capture file '{p}' is empty.")
    counted = _CountingFile(p)
    raw: IO[bytes]
    if magic[:2] == GZIP_MAGIC:
        raw = gzip.GzipFile(fileobj=io.BufferedReader(counted), mode="rb")
    elif magic == ZSTD_MAGIC:
        raw = zstandard.ZstdDecompressor().stream_reader(counted, read_across_frames=True)
    else:
        raw = counted
    text = io.TextIOWrapper(io.BufferedReader(raw, buffer_size=1 << 20),  # type: ignore[arg-type]
                            encoding="utf-8", newline="\n")
    text.counted = counted  # type: ignore[attr-defined]
    return text


def iter_capture(path: str | os.PathLike[str], stats: ReadStats | None = None,
                 warn: bool = True, on_bytes: Callable[[int], None] | None = None
                 ) -> Iterator[CaptureRecord]:
    """Yield a capture's records in file order.

    A malformed line is counted, skipped and warned about once, naming the file and
    line number; a truncated or corrupt compressed stream ends in a UserError.
    """
    stats = stats if stats is not None else ReadStats()
    name = str(path)
    fh = open_capture_text(path)
    lineno = 0
    reported = 0
    try:
        with fh:
            for lineno, line in enumerate(fh, start=1):
                if on_bytes is not None and not lineno & 0xFFF:
                    consumed = fh.counted.consumed  # type: ignore[attr-defined]
                    on_bytes(consumed - reported)
                    reported = consumed
                if not line.strip():
                    continue
                record = _parse_record(line, name, lineno)
                if record is None:
                    stats.malformed += 1
                    where = f"{name}:{lineno}"
                    stats.malformed_where.append(where)
                    if warn:
                        log.warning("skipped malformed capture line %s", where)
                    continue
                stats.records += 1
                yield record
            if on_bytes is not None:
                on_bytes(fh.counted.consumed - reported)  # type: ignore[attr-defined]
    except (EOFError, gzip.BadGzipFile, zstandard.ZstdError, UnicodeDecodeError) as exc:
        raise UserError(
            f"The capture file '{name}' is corrupt or truncated after line {lineno} ({exc})."
        ) from None
    except OSError as exc:
        raise UserError(f"The capture file '{name}' cannot be read after line {lineno}: "
                        f"{exc}.") from None


def _parse_record(line: str, source: str, lineno: int) -> CaptureRecord | None:
    try:
        obj: Any = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    ts_ns, kind, conn = obj.get("ts_ns"), obj.get("kind"), obj.get("conn")
    if not isinstance(ts_ns, int) or kind not in RECORD_KINDS or not isinstance(conn, str):
        return None
    data = obj.get("data")
    if data is not None and not isinstance(data, str):
        return None
    return CaptureRecord(ts_ns, kind, conn, data, obj.get("url"), obj.get("b64"), source, lineno)


def merge_captures(paths: Iterable[str | os.PathLike[str]], stats: ReadStats | None = None,
                   on_bytes: Callable[[int], None] | None = None) -> Iterator[CaptureRecord]:
    """Records of several capture files merged in receive-time order (stable per file)."""
    iters = [iter_capture(p, stats, on_bytes=on_bytes) for p in paths]
    if len(iters) == 1:
        return iters[0]
    return heapq.merge(*iters, key=lambda r: r.ts_ns)


def encode_record(ts_ns: int, kind: str, conn: str, data: str | None = None,
                  url: str | None = None) -> bytes:
    """One capture line (with its newline) in the DESIGN.md format."""
    obj: dict[str, Any] = {"ts_ns": ts_ns, "kind": kind, "conn": conn}
    if url is not None:
        obj["url"] = url
    if data is not None:
        obj["data"] = data
    return orjson.dumps(obj) + b"\n"


class CaptureWriter:
    """Writes a capture file: gzip or zstd chosen by the suffix, temp name then rename.

    The file appears under its final name only once `close()` has completed, so a
    reader never sees a partial capture.
    """

    def __init__(self, path: str | os.PathLike[str], level: int = 3) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_path = self.path.with_name("." + self.path.name + ".tmp")
        self._raw = self.tmp_path.open("wb")
        self._stream: IO[bytes]
        if self.path.suffix == ".zst":
            self._zctx = zstandard.ZstdCompressor(level=level)
            self._stream = self._zctx.stream_writer(self._raw, closefd=False)
        elif self.path.suffix == ".gz":
            # mtime=0: the same records give byte-identical files (deterministic simulations)
            self._stream = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=min(level, 9),
                                         mtime=0)
        else:
            self._stream = self._raw
        self.records = 0
        self.closed = False

    def write(self, ts_ns: int, kind: str, conn: str, data: str | None = None,
              url: str | None = None) -> None:
        self._stream.write(encode_record(ts_ns, kind, conn, data, url))
        self.records += 1

    def write_line(self, line: bytes) -> None:
        self._stream.write(line)
        self.records += 1

    def close(self) -> Path:
        if self.closed:
            return self.path
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.replace(self.tmp_path, self.path)
        self.closed = True
        return self.path

    def abort(self) -> None:
        """Give up the capture: the temporary file goes, nothing takes the final name."""
        if self.closed:
            return
        with contextlib.suppress(Exception):
            if self._stream is not self._raw:
                self._stream.close()
        self._raw.close()
        self.tmp_path.unlink(missing_ok=True)
        self.closed = True

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # an exception or an interrupt leaves a partial capture: it must not look finished
        if exc_type is None:
            self.close()
        else:
            self.abort()
