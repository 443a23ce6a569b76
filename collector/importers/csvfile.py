"""Reading other tools' CSV files as a stream of Arrow record batches, in constant memory.

A file may be gzip, zstd or plain (told by its magic bytes, as captures are). Batches come
from pyarrow's streaming CSV reader over pyarrow's own decompressor, so a multi-GB file
is never held whole; the compressed bytes read so far drive the progress bar.

Decimal columns are read as `decimal128(38, 10)`: an Arrow decimal of scale 10 stores
exactly the integer units of `collector.book` (1e-10), so prices and sizes reach the
book without ever being floats.

Errors name the file and the line. Blank lines are kept as all-null rows (callers drop
them), so data row i of the file is always line i + 2. pyarrow's own conversion errors
carry no line number: the line is found afterwards by re-reading the failing batch's
lines with Python's csv module (only ever on the error path).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import zstandard

from bookcast.errors import UserError
from collector.capture import GZIP_MAGIC, ZSTD_MAGIC

UNITS = pa.decimal128(38, 10)  # collector.book.UNIT_DECIMALS fixed decimals
# the same few strings on every row (exchange, symbol, side): decoded once a batch
WORDS = pa.dictionary(pa.int32(), pa.string())
BLOCK_SIZE = 1 << 20
_INT64_MAX = np.iinfo(np.int64).max


def _compression(path: Path) -> str | None:
    with path.open("rb") as fh:
        magic = fh.read(4)
    if not magic:
        raise UserError(f"The file '{path}' is empty.")
    if magic[:2] == GZIP_MAGIC:
        return "gzip"
    if magic == ZSTD_MAGIC:
        return "zstd"
    return None


def check_readable(path: Path) -> None:
    if not path.exists():
        raise UserError(f"The file '{path}' does not exist.")
    if path.is_dir():
        raise UserError(f"'{path}' is a directory, not a CSV file.")
    try:
        path.open("rb").close()
    except OSError as exc:
        raise UserError(f"The file '{path}' cannot be read: {exc.strerror}.") from None


def open_text(path: Path) -> IO[str]:
    """The decompressed text of a file, for reading its header or locating a bad line."""
    compression = _compression(path)
    raw: IO[bytes]
    if compression == "gzip":
        raw = gzip.open(path, "rb")  # noqa: SIM115 (closed with the returned text stream)
    elif compression == "zstd":
        raw = zstandard.ZstdDecompressor().stream_reader(path.open("rb"),
                                                         read_across_frames=True)
    else:
        raw = path.open("rb")
    return io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8", newline="")  # type: ignore[arg-type]


def read_header(path: Path) -> list[str]:
    """The column names on the file's first line."""
    check_readable(path)
    try:
        with open_text(path) as fh:
            first = fh.readline()
    except (OSError, EOFError, zstandard.ZstdError, UnicodeDecodeError) as exc:
        raise UserError(f"The file '{path}' is corrupt or truncated at line 1 ({exc}).") from None
    if not first.strip():
        raise UserError(f"The file '{path}' has no header line (line 1 is empty).")
    return next(csv.reader([first]))


@dataclass
class Batch:
    """One record batch and where its rows are in the file."""

    data: pa.RecordBatch
    first_row: int  # index of the batch's first data row in the file (0-based)


class CsvFile:
    """A CSV file read in record batches of the given column types."""

    def __init__(self, path: Path, header: Sequence[str], column_types: dict[str, pa.DataType],
                 on_bytes: Callable[[int], None] | None = None, has_header: bool = True) -> None:
        self.path = path
        self.header_lines = 1 if has_header else 0
        self.header = list(header)
        self.column_types = column_types
        self.on_bytes = on_bytes
        self.rows_read = 0

    def batches(self) -> Iterator[Batch]:
        compression = _compression(self.path)
        raw = pa.OSFile(str(self.path), "rb")
        size = raw.size()
        stream = raw if compression is None else pa.CompressedInputStream(raw, compression)
        reported = 0
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE, use_threads=True,
                                               skip_rows=self.header_lines,
                                               column_names=self.header),
                parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
                convert_options=pacsv.ConvertOptions(column_types=self.column_types,
                                                     include_columns=list(self.column_types),
                                                     strings_can_be_null=False,
                                                     quoted_strings_can_be_null=False))
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                yield Batch(batch, self.rows_read)
                self.rows_read += batch.num_rows
                if self.on_bytes is not None:
                    now = raw.tell()
                    self.on_bytes(now - reported)
                    reported = now
        except pa.ArrowInvalid as exc:
            raise self.error_after(self.rows_read, str(exc)) from None
        except (OSError, EOFError) as exc:
            raise UserError(f"The file '{self.path}' is corrupt or truncated after line "
                            f"{self.line_of(self.rows_read)} ({exc}).") from None
        finally:
            raw.close()
        if self.on_bytes is not None:
            self.on_bytes(size - reported)

    def line_of(self, row: int) -> int:
        """The file line of data row `row` (0-based), blank lines included."""
        return row + self.header_lines + 1

    def error_after(self, first_row: int, arrow_message: str) -> UserError:
        """A UserError naming the first line at or after data row `first_row` that breaks
        the column types (pyarrow said only `arrow_message`)."""
        check = _row_checker(self.header, self.column_types)
        first_line = self.line_of(first_row)
        try:
            with open_text(self.path) as fh:
                for lineno, line in enumerate(fh, start=1):
                    if lineno < first_line or not line.strip():
                        continue
                    reason = check(line)
                    if reason is not None:
                        return UserError(f"'{self.path}' line {lineno}: {reason}.")
        except (OSError, EOFError, zstandard.ZstdError) as exc:
            return UserError(f"The file '{self.path}' is corrupt or truncated after line "
                             f"{first_line - 1} ({exc}).")
        except UnicodeDecodeError:
            return UserError(f"'{self.path}' is not UTF-8 text after line {first_line - 1}.")
        detail = arrow_message.split(": ", 1)[-1]
        return UserError(f"'{self.path}' cannot be read after line {first_line - 1}: {detail}.")


def _row_checker(header: list[str], types: dict[str, pa.DataType]) -> Callable[[str], str | None]:
    """A function saying what is wrong with one CSV line, or None if it fits the types."""

    def check(line: str) -> str | None:
        fields = next(csv.reader([line]), [])
        if len(fields) != len(header):
            return f"expected {len(header)} columns ({','.join(header)}), found {len(fields)}"
        for name, value in zip(header, fields, strict=True):
            kind = types.get(name)
            if kind is None:
                continue
            if value == "" and not _textual(kind):
                if pa.types.is_decimal(kind):
                    continue  # an empty level: the caller decides whether that is allowed
                return f"the {name} field is empty"
            if pa.types.is_integer(kind):
                if not value.lstrip("-").isdigit():
                    return f"{name} '{value}' is not an integer"
            elif pa.types.is_boolean(kind):
                if value.lower() not in ("true", "false", "1", "0"):
                    return f"{name} '{value}' is not true or false"
            elif pa.types.is_decimal(kind):
                reason = _decimal_problem(value)
                if reason is not None:
                    return f"{name} '{value}' {reason}"
            elif pa.types.is_floating(kind):
                try:
                    float(value)
                except ValueError:
                    return f"{name} '{value}' is not a number"
        return None

    return check


def _textual(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_dictionary(kind)


def _decimal_problem(value: str) -> str | None:
    from decimal import Decimal, InvalidOperation

    try:
        number = Decimal(value)
    except InvalidOperation:
        return "is not a number"
    if not number.is_finite():
        return "is not a finite number"
    if number != number.quantize(Decimal("1e-10")):
        return "has more than 10 decimals"
    return None


def units(column: pa.Array) -> tuple[list[int], np.ndarray, int | None]:
    """A decimal128(38, 10) column as integer units (Python ints, exact), a mask of its
    null entries, and the index of its first negative value (None if there is none).

    Values beyond int64 (a size of a billion units and more) take a slower exact path.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    n = len(column)
    words = np.frombuffer(column.buffers()[1], dtype=np.int64,
                          count=2 * (column.offset + n))[2 * column.offset:]
    low, high = words[0::2], words[1::2]
    if column.null_count:
        from collector.importers.feed import mask_of

        nulls = mask_of(column.is_null())
    else:
        nulls = np.zeros(n, dtype=bool)
    if not high.any() and not (low < 0).any():
        return low.tolist(), nulls, None
    negative = np.flatnonzero((high < 0) & ~nulls)
    # two's complement 128-bit integers, put together exactly in Python
    lows = low.view(np.uint64).tolist()
    values = [(h << 64) + lo for h, lo in zip(high.tolist(), lows, strict=True)]
    return values, nulls, int(negative[0]) if len(negative) else None


__all__ = ["UNITS", "WORDS", "Batch", "CsvFile", "check_readable", "read_header", "units"]
