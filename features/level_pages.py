"""The level lists of a snapshot file read straight from its Parquet pages.

Decoding the four 100-level `list<float64>` columns is most of a feature build, and
pyarrow spends about half of it assembling Arrow lists: definition levels into validity
bitmaps, repetition levels into offsets, then a copy of every value. A feature build
needs none of that: only each row's first value index and the values themselves. This
reader takes the pages of one row group's column chunk, decompresses them (Arrow's
codecs; python-lz4 for LZ4 raw blocks, the collector's), decodes the repetition and
definition levels (RLE / bit-packed hybrid) with Numba, and copies the PLAIN-encoded
doubles into a buffer that is reused for the next row group: 2.4 times less CPU than
pyarrow's reader on zstd files, one thread each (0.26 against 0.62 s for 200,000 rows of
100 levels; bench/features.py --codecs), and about half that again on the collector's
LZ4 files.

It reads the layout the collector writes and the common variants of it (any of
Arrow's codecs but Hadoop LZ4, data pages v1 and v2, nullable or required lists and
elements, null and empty lists). Anything else (dictionary or BYTE_STREAM_SPLIT
pages, null elements, a value count that disagrees with the footer, values that do not
fill their page exactly, an LZ4 block shorter than its page) raises
`UnsupportedPagesError`, and the caller reads that row group with pyarrow instead, so every
file pyarrow reads is still read, and with the same values.

Page layout (parquet-format's PageHeader, Thrift compact protocol; encodings):
a data page v1 body, decompressed, is [u32 length][repetition levels][u32
length][definition levels][values]; a v2 body is [repetition levels][definition
levels] uncompressed, with their byte lengths in the header, then the values,
compressed when `is_compressed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import lz4.block
import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


class LevelList(NamedTuple):
    """One list column of a batch of rows, as `features.definitions.list_levels` gives it:
    row r holds values[offsets[r]:offsets[r + 1]]; `null_rows` marks null lists (None
    when there are none)."""

    offsets: np.ndarray
    values: np.ndarray
    null_rows: np.ndarray | None


class UnsupportedPagesError(Exception):
    """This column chunk is not in a layout this reader decodes; read it with pyarrow."""


# parquet-format's enums
_DATA_PAGE, _DATA_PAGE_V2 = 0, 3
_PLAIN, _RLE = 0, 3
# pyarrow names a chunk's codec after Arrow's: "LZ4" is Parquet's LZ4_RAW (raw blocks, the
# snapshot writer's), while Hadoop-framed LZ4 is Arrow's LZ4_HADOOP, a name pyarrow does not
# print ("UNKNOWN"), so it is never taken here. Were a Hadoop frame handed to the raw block
# decoder anyway, it would fail: its first bytes (a big-endian length under 16 MB) read as a
# match before any output, which LZ4 refuses. Raw blocks are decoded by python-lz4, which
# says how many bytes a block gave: Arrow's decoder pads a block that gives fewer than the
# page header claims (LZ4 carries no checksum) with whatever the memory held.
_LZ4_RAW = "lz4_raw"
_CODECS = {"UNCOMPRESSED": None, "SNAPPY": "snappy", "GZIP": "gzip", "BROTLI": "brotli",
           "ZSTD": "zstd", "LZ4": _LZ4_RAW}


class ColumnLayout(NamedTuple):
    """Where a list<float64> column's leaf sits in a file and what its levels mean."""

    index: int  # the leaf's column index in the row groups
    max_def: int  # definition level of a present value
    empty_def: int  # definition level of an empty list (below it: a null list)


def column_layouts(file: pq.ParquetFile, names: Sequence[str]) -> dict[str, ColumnLayout]:
    """The layouts of `names` (list<float64> columns), or raise UnsupportedPagesError."""
    schema = file.schema_arrow
    leaves = {file.schema.column(i).path.split(".")[0]: i
              for i in range(file.metadata.num_columns)}
    out = {}
    for name in names:
        field = schema.field(name) if name in schema.names else None
        if (field is None or not pa.types.is_list(field.type)
                or field.type.value_type != pa.float64() or name not in leaves):
            raise UnsupportedPagesError(f"{name} is not a list<float64> column")
        leaf = file.schema.column(leaves[name])
        list_def = int(field.nullable)
        elem_def = int(field.type.value_field.nullable)
        if (leaf.max_repetition_level != 1 or leaf.physical_type != "DOUBLE"
                or leaf.max_definition_level != list_def + 1 + elem_def):
            raise UnsupportedPagesError(f"{name} is nested otherwise")
        out[name] = ColumnLayout(leaves[name], leaf.max_definition_level, list_def)
    return out


class ChunkBuffers:
    """Memory one column reuses from row group to row group: the compressed bytes, the
    levels of a page and the values (fresh pages for every row group cost more to fault in
    than the decoding itself)."""

    def __init__(self) -> None:
        self.raw = bytearray(0)
        self.rep = np.empty(0, np.uint8)
        self.defs = np.empty(0, np.uint8)
        self.values = np.empty(0, np.float64)

    def levels(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        if self.rep.size < count:
            self.rep, self.defs = np.empty(count, np.uint8), np.empty(count, np.uint8)
        return self.rep, self.defs

    def value_space(self, count: int) -> np.ndarray:
        if self.values.size < count:
            self.values = np.empty(count, np.float64)
        return self.values


def read_level_list(path: Path, file: pq.ParquetFile, row_group: int, layout: ColumnLayout,
                    buffers: ChunkBuffers) -> LevelList:
    """One row group of one list column. The values are a view of `buffers` (valid until
    they decode another chunk). Raises UnsupportedPagesError for a layout this reader
    leaves to pyarrow and for damage (which pyarrow then reports in its own words)."""
    chunk = file.metadata.row_group(row_group).column(layout.index)
    rows = file.metadata.row_group(row_group).num_rows
    if chunk.compression not in _CODECS or chunk.has_dictionary_page:
        raise UnsupportedPagesError(f"codec {chunk.compression} or a dictionary")
    name = _CODECS[chunk.compression]
    codec = name if name in (None, _LZ4_RAW) else pa.Codec(name)
    size = chunk.total_compressed_size
    if len(buffers.raw) < size:
        buffers.raw = bytearray(size)
    raw = memoryview(buffers.raw)[:size]
    with open(path, "rb", buffering=0) as fh:
        fh.seek(chunk.data_page_offset)
        if fh.readinto(raw) != size:
            raise UnsupportedPagesError("the column chunk is cut short")
    levels_total = chunk.num_values
    values = buffers.value_space(levels_total)
    offsets = np.empty(rows + 1, np.int64)
    null_rows = np.zeros(rows, np.bool_)
    pos = row = n_values = seen = 0
    try:
        while seen < levels_total:
            header, pos = _struct(raw, pos)
            page, pos = _data_page(header, raw, pos, codec, chunk.total_uncompressed_size)
            if page.count <= 0 or seen + page.count > levels_total:
                raise UnsupportedPagesError("page level counts disagree with the footer")
            row, page_values = _page_rows_and_values(page, layout, buffers, offsets, null_rows,
                                                     row, rows, n_values)
            end = page.values_at + 8 * page_values
            if end != page.bytes.size:
                # PLAIN doubles fill the page exactly: a header that claims more bytes than
                # the page holds would otherwise have its last values made up (Arrow's
                # decoders pad their output up to the claimed size).
                raise UnsupportedPagesError("the values do not fill their page")
            values.view(np.uint8)[8 * n_values:8 * (n_values + page_values)] = \
                page.bytes[page.values_at:end]
            n_values += page_values
            seen += page.count
    except (IndexError, TypeError, ValueError, OSError, pa.ArrowException,
            lz4.block.LZ4BlockError) as exc:
        raise UnsupportedPagesError(f"damaged pages ({exc})") from None
    if row != rows:
        raise UnsupportedPagesError("row count disagrees with the footer")
    offsets[rows] = n_values
    return LevelList(offsets, values[:n_values], null_rows if null_rows.any() else None)


class _DataPage(NamedTuple):
    """A data page's bytes, decompressed, and where its parts lie in them."""

    bytes: np.ndarray  # uint8
    count: int  # levels
    rep_at: int
    rep_len: int
    def_at: int
    def_len: int
    values_at: int


def _data_page(header: dict, raw: memoryview, pos: int, codec: pa.Codec | str | None,
               chunk_bytes: int) -> tuple[_DataPage, int]:
    """The page whose header was read up to `pos`, and where the next one starts."""
    kind, body_size, page_bytes = header.get(1), header.get(3, -1), header.get(2, -1)
    if not 0 <= body_size <= len(raw) - pos or not 0 <= page_bytes <= chunk_bytes:
        raise UnsupportedPagesError("a page's sizes do not fit its column chunk")
    body = raw[pos:pos + body_size]
    if kind == _DATA_PAGE and isinstance(header.get(5), dict):
        fields = header[5]
        if fields.get(2) != _PLAIN or fields.get(3) != _RLE or fields.get(4) != _RLE:
            raise UnsupportedPagesError("page encodings")
        data = _decompress(codec, body, page_bytes)
        rep_len = _u32(data, 0)
        def_len = _u32(data, 4 + rep_len)
        page = _DataPage(data, fields.get(1, 0), 4, rep_len, 8 + rep_len, def_len,
                         8 + rep_len + def_len)
    elif kind == _DATA_PAGE_V2 and isinstance(header.get(8), dict):
        fields = header[8]
        if fields.get(4) != _PLAIN:
            raise UnsupportedPagesError("page encoding")
        def_len, rep_len = fields.get(5, 0), fields.get(6, 0)
        levels = rep_len + def_len
        if not (rep_len >= 0 and def_len >= 0 and levels <= min(body_size, page_bytes)):
            raise UnsupportedPagesError("level lengths")
        data = body[levels:]
        if fields.get(7, True):
            data = _decompress(codec, data, page_bytes - levels)
        page = _DataPage(np.concatenate([np.frombuffer(body[:levels], np.uint8),
                                         np.frombuffer(data, np.uint8)]),
                         fields.get(1, 0), 0, rep_len, rep_len, def_len, levels)
    else:
        raise UnsupportedPagesError(f"page type {kind}")
    if page.values_at > page.bytes.size:
        raise UnsupportedPagesError("levels longer than their page")
    return page, pos + body_size


def _page_rows_and_values(page: _DataPage, layout: ColumnLayout, buffers: ChunkBuffers,
                          offsets: np.ndarray, null_rows: np.ndarray, row: int, rows: int,
                          n_values: int) -> tuple[int, int]:
    """Rows started in one page (their offsets and null marks written) and its values:
    (rows so far, values in this page)."""
    data, count = page.bytes, page.count
    rep_end, def_end = page.rep_at + page.rep_len, page.def_at + page.def_len
    if _all_values(data, page.def_at, def_end, count, layout.max_def):
        # every level a value (no empty or null list): rows from the repetition runs alone
        row, total = _rows_of_values(data, page.rep_at, rep_end, count, offsets, row, rows,
                                     n_values)
    else:
        rep, defs = buffers.levels(count)
        if (_rle_levels(data, page.rep_at, rep_end, 1, rep, count) != count
                or _rle_levels(data, page.def_at, def_end, layout.max_def.bit_length(), defs,
                               count) != count):
            raise UnsupportedPagesError("levels cut short")
        row, total, null_elements = _page_rows(rep, defs, count, layout.max_def,
                                               layout.empty_def, offsets, null_rows, row,
                                               rows, n_values)
        if null_elements:
            raise UnsupportedPagesError("null elements")
    if row < 0:
        raise UnsupportedPagesError("levels cut short, or more rows than the footer says")
    return row, total - n_values


def _decompress(codec: pa.Codec | str | None, body: memoryview, size: int) -> np.ndarray:
    if codec is None:
        return np.frombuffer(body, np.uint8)
    if codec == _LZ4_RAW:
        data = lz4.block.decompress(body, uncompressed_size=size)
        if len(data) != size:
            raise UnsupportedPagesError("an LZ4 block shorter than its page")
        return np.frombuffer(data, np.uint8)
    return np.frombuffer(codec.decompress(body, size), np.uint8)


def _u32(page: np.ndarray, at: int) -> int:
    return int.from_bytes(page[at:at + 4].tobytes(), "little")


# ---------------------------------------------------------------- Thrift compact protocol

_STRUCT, _LIST, _SET, _MAP = 12, 9, 10, 11


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    shift = result = 0
    while shift <= 63:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise ValueError("a Thrift varint longer than 64 bits")


def _struct(buf: memoryview, pos: int, depth: int = 0) -> tuple[dict[int, object], int]:
    """A struct's integer and boolean fields by id, nested structs as dicts; the rest
    (binary statistics, lists) skipped."""
    if depth > 8:  # a page header nests three deep: this is damage
        raise ValueError("Thrift structs nested too deep")
    out: dict[int, object] = {}
    field = 0
    while True:
        head = buf[pos]
        pos += 1
        if head == 0:
            return out, pos
        kind, delta = head & 0x0F, head >> 4
        if delta:
            field += delta
        else:
            raw_id, pos = _varint(buf, pos)
            field = (raw_id >> 1) ^ -(raw_id & 1)
        if kind in (1, 2):
            out[field] = kind == 1
        elif kind in (4, 5, 6):
            value, pos = _varint(buf, pos)
            out[field] = (value >> 1) ^ -(value & 1)
        elif kind == _STRUCT:
            out[field], pos = _struct(buf, pos, depth + 1)
        else:
            pos = _skip(buf, pos, kind, depth)


def _skip(buf: memoryview, pos: int, kind: int, depth: int, in_list: bool = False) -> int:
    """Past one value of Thrift type `kind` (a boolean in a list takes a byte)."""
    if kind in (1, 2):
        return pos + 1 if in_list else pos
    if kind == 3:
        return pos + 1
    if kind in (4, 5, 6):
        return _varint(buf, pos)[1]
    if kind == 7:
        return pos + 8
    if kind == 8:
        length, pos = _varint(buf, pos)
        return pos + length
    if kind in (_LIST, _SET):
        head = buf[pos]
        pos += 1
        count = head >> 4
        if count == 15:
            count, pos = _varint(buf, pos)
        if count > len(buf) - pos:
            raise ValueError("a Thrift list longer than its bytes")
        for _ in range(count):
            pos = _skip(buf, pos, head & 0x0F, depth, in_list=True)
        return pos
    if kind == _MAP:
        count, pos = _varint(buf, pos)
        if count > len(buf) - pos:
            raise ValueError("a Thrift map longer than its bytes")
        if count:
            types = buf[pos]
            pos += 1
            for _ in range(count):
                pos = _skip(buf, _skip(buf, pos, types >> 4, depth, True), types & 0x0F,
                            depth, True)
        return pos
    if kind == _STRUCT:
        return _struct(buf, pos, depth + 1)[1]
    raise ValueError(f"unknown Thrift type {kind}")


# ---------------------------------------------------------------- levels


@numba.njit(cache=True, nogil=True)
def _run_header(buf, pos, end):  # pragma: no cover - compiled
    """The ULEB128 header of a hybrid run at buf[pos:end] and the position after it; -1
    for the position when the bytes run out or the header is over 64 bits."""
    header = 0
    shift = 0
    while pos < end and shift <= 56:
        byte = buf[pos]
        pos += 1
        header |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return header, pos
        shift += 7
    return 0, -1


@numba.njit(cache=True, nogil=True)
def _rle_levels(buf, pos, end, bit_width, out, count):  # pragma: no cover - compiled
    """RLE / bit-packed hybrid levels from buf[pos:end] into out[:count]; how many were
    decoded (fewer than `count` when the bytes run out)."""
    n = 0
    byte_width = (bit_width + 7) // 8
    mask = (1 << bit_width) - 1
    while n < count and pos < end:
        header, pos = _run_header(buf, pos, end)
        if pos < 0:
            return n
        if header & 1:  # bit-packed: groups of 8 values, bit_width bits each
            total = (header >> 1) * 8
            if pos + (total * bit_width + 7) // 8 > end:
                return n
            acc = 0
            bits = 0
            for _ in range(total):
                while bits < bit_width:
                    acc |= np.int64(buf[pos]) << bits
                    pos += 1
                    bits += 8
                if n < count:
                    out[n] = acc & mask
                    n += 1
                acc >>= bit_width
                bits -= bit_width
        else:  # a run of one value
            if pos + byte_width > end:
                return n
            value = 0
            for i in range(byte_width):
                value |= np.int64(buf[pos + i]) << (8 * i)
            pos += byte_width
            run = min(header >> 1, count - n)
            out[n:n + run] = value
            n += run
    return n


@numba.njit(cache=True, nogil=True)
def _page_rows(rep, defs, count, max_def, empty_def, offsets, null_rows, row, rows,
               n_values):  # pragma: no cover - compiled
    """Rows and values of one page's levels: repetition 0 starts a row (at value index
    `n_values`); a definition level of `max_def` is a value, below `empty_def` a null list.
    Returns (rows so far, or -1 past `rows`; values so far; null elements seen)."""
    null_elements = 0
    for i in range(count):
        if rep[i] == 0:
            if row >= rows:
                return -1, n_values, null_elements
            offsets[row] = n_values
            null_rows[row] = defs[i] < empty_def
            row += 1
        elif row == 0:
            return -1, n_values, null_elements  # a page that continues no row
        if defs[i] == max_def:
            n_values += 1
        elif defs[i] > empty_def:
            null_elements += 1
    return row, n_values, null_elements


class DecodedRowGroup:
    """One row group of snapshots: its level lists as `LevelList`s and its other columns as
    Arrow arrays, read like a record batch (`column(name)`, `num_rows`).

    The level values live in buffers the reader reuses: once it starts decoding into them
    again it calls `release()`, and `column()` then refuses the lists instead of handing
    over another row group's values.
    """

    def __init__(self, columns: dict[str, pa.Array | LevelList], num_rows: int) -> None:
        self._columns, self.num_rows = columns, num_rows
        self.released = False

    def column(self, name: str) -> pa.Array | LevelList:
        value = self._columns[name]
        if self.released and isinstance(value, LevelList):
            raise RuntimeError(f"the {name} levels of this row group were overwritten by a "
                               "later one: read each batch before asking for the next")
        return value

    def release(self) -> None:
        self.released = True


@numba.njit(cache=True, nogil=True)
def _all_values(buf, pos, end, count, max_def):  # pragma: no cover - compiled
    """Whether the definition levels at buf[pos:end] are one run of `max_def` covering
    `count` levels (how a page without empty or null lists encodes them)."""
    header, pos = _run_header(buf, pos, end)
    return (pos >= 0 and (header & 1) == 0 and (header >> 1) >= count and pos < end
            and buf[pos] == max_def)


@numba.njit(cache=True, nogil=True)
def _rows_of_values(buf, pos, end, count, offsets, row, rows,
                    n_values):  # pragma: no cover - compiled
    """Row starts of a page whose every level is a value, from its repetition levels
    (bit width 1) without writing them out: a run of 1s continues the row, each 0 starts
    one. Returns (rows so far, or -1 when the levels run out or pass `rows`; values so
    far)."""
    i = 0
    while i < count:
        header, pos = _run_header(buf, pos, end)
        if pos < 0:
            return -1, n_values
        if header & 1:  # bit-packed: 8 levels a byte
            groups = header >> 1
            if pos + groups > end:
                return -1, n_values
            for g in range(groups):
                byte = buf[pos + g]
                for bit in range(8):
                    if i >= count:
                        break
                    if not (byte >> bit) & 1:
                        if row >= rows:
                            return -1, n_values
                        offsets[row] = n_values + i
                        row += 1
                    elif row == 0:
                        return -1, n_values
                    i += 1
            pos += groups
        else:  # a run of one level
            if pos >= end:
                return -1, n_values
            level = buf[pos]
            pos += 1
            run = min(header >> 1, count - i)
            if level == 0:
                if row + run > rows:
                    return -1, n_values
                for k in range(run):
                    offsets[row + k] = n_values + i + k
                row += run
            elif row == 0:
                return -1, n_values
            i += run
    return row, n_values + count
