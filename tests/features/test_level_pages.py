"""The page reader of features.level_pages gives exactly what pyarrow's reader gives.

pyarrow is the independent decoder here: every list column of every row group is held
to `list_levels` over pyarrow's own Arrow lists, on the real captures as the collector
replays them (depth 100 and full depth) and on files written every other way a Parquet
writer may lay them out. Layouts the page reader leaves to pyarrow must come back the
same, and a damaged page must end in one sentence naming the file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bookcast.cli import main as cli_main
from bookcast.schema import LEVEL_COLUMNS
from features.build import build_features
from features.definitions import SNAPSHOT_COLUMNS, list_levels
from features.level_pages import (
    ChunkBuffers,
    DecodedRowGroup,
    LevelList,
    UnsupportedPagesError,
    column_layouts,
    read_level_list,
)
from features.partitions import read_snapshot_books, snapshot_partitions

ONLY_INPUTS = shutil.ignore_patterns("features", "models", "reports")  # other tests' outputs
S = 1_000_000_000


def assert_same_levels(decoded, column: pa.Array | pa.ChunkedArray, fill: float) -> None:
    offsets, values, null_rows = list_levels(column, fill)
    assert np.array_equal(decoded.offsets, offsets)
    assert np.array_equal(decoded.values, values, equal_nan=True)
    if null_rows is None:
        assert decoded.null_rows is None
    else:
        assert np.array_equal(decoded.null_rows, null_rows)


def assert_file_decodes_as_pyarrow_reads_it(path: Path) -> int:
    """Every row group and list column of `path` through the page reader; returns the
    number of levels compared."""
    file = pq.ParquetFile(path)
    layouts = column_layouts(file, LEVEL_COLUMNS)
    buffers = ChunkBuffers()
    levels = 0
    for group in range(file.metadata.num_row_groups):
        table = file.read_row_group(group, columns=list(LEVEL_COLUMNS))
        for name in LEVEL_COLUMNS:
            decoded = read_level_list(path, file, group, layouts[name], buffers)
            assert_same_levels(decoded, table.column(name), np.nan if "px" in name else 0.0)
            levels += decoded.values.size
    return levels


def snapshot_files(root: Path) -> list[Path]:
    return sorted((root / "snapshots").rglob("*.parquet"))


def test_real_binance_snapshots_decode_as_pyarrow_reads_them(binance_btc_100ms):
    files = snapshot_files(binance_btc_100ms)
    assert files
    levels = sum(assert_file_decodes_as_pyarrow_reads_it(path) for path in files)
    assert levels > 1_000_000  # a day boundary, 100 levels a side, every row group


@pytest.fixture(scope="module")
def kraken_full_depth(tmp_path_factory, captures_dir) -> Path:
    """Kraken's 1000-level books (ten pairs) replayed at full depth: row groups of a few
    hundred rows, books of different depths on every row."""
    from collector.replay import replay_captures

    root = tmp_path_factory.mktemp("kraken_full")
    replay_captures([captures_dir / "kraken/book1000_10pairs_20210417.jsonl.gz"], root,
                    interval_ns=S, depth=None, symbols=["XBT/CHF", "ETH/CHF"])
    return root


def test_real_full_depth_books_decode_as_pyarrow_reads_them(kraken_full_depth):
    files = snapshot_files(kraken_full_depth)
    assert len(files) >= 2
    for path in files:
        assert pq.ParquetFile(path).metadata.num_row_groups >= 1
        assert assert_file_decodes_as_pyarrow_reads_it(path) > 0


def ragged_table(rows: int = 3000, seed: int = 1, *, nullable: bool = True,
                 holes: bool = True) -> pa.Table:
    """Books of 0-120 levels a side, with empty and null sides when `holes` (else 1-120
    levels, the pages' every level a value), and a stretch of one-level books (repetition
    levels in runs of 0s); in the snapshot schema (nullable lists and elements) or with
    both required."""
    rng = np.random.default_rng(seed)
    depths = rng.integers(0 if holes else 1, 121, size=(rows, 2))
    depths[100:200] = 1
    columns: dict[str, list] = {c: [] for c in LEVEL_COLUMNS}
    for i in range(rows):
        for side, (px, sz) in enumerate((("bid_px", "bid_sz"), ("ask_px", "ask_sz"))):
            n = int(depths[i, side])
            if holes and i % 97 == side:
                columns[px].append(None)
                columns[sz].append(None)
                continue
            sign = -1 if side == 0 else 1
            columns[px].append(list(60_000 + sign * (0.01 + 0.01 * np.arange(n))))
            columns[sz].append(list(np.round(rng.exponential(0.5, n), 6)))
    element = pa.field("element", pa.float64(), nullable=nullable)
    list_type = pa.list_(element)
    return pa.table({
        "ts": pa.array(np.arange(rows, dtype=np.int64) * S, pa.timestamp("ns", tz="UTC")),
        "gap": pa.array(np.arange(rows) % 500 == 0),
        **{c: pa.array(columns[c], list_type) for c in LEVEL_COLUMNS},
    }, schema=pa.schema([
        ("ts", pa.timestamp("ns", tz="UTC")), ("gap", pa.bool_()),
        *((c, list_type) for c in LEVEL_COLUMNS)]) if nullable else pa.schema([
            pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),
            pa.field("gap", pa.bool_(), nullable=False),
            *(pa.field(c, list_type, nullable=False) for c in LEVEL_COLUMNS)]))


WRITER_LAYOUTS = {
    "lz4 HC 3 (the collector's snapshots)": {"compression": "lz4_raw", "compression_level": 3},
    "lz4": {"compression": "lz4"},
    "v2 lz4": {"compression": "lz4", "data_page_version": "2.0"},
    "zstd 1 (the collector's trades)": {"compression": "zstd", "compression_level": 1},
    "uncompressed": {"compression": "none"},
    "snappy": {"compression": "snappy"},
    "gzip": {"compression": "gzip"},
    "brotli": {"compression": "brotli"},
    "data pages v2": {"compression": "zstd", "data_page_version": "2.0"},
    "v2 uncompressed": {"compression": "none", "data_page_version": "2.0"},
    "small pages (rows across pages)": {"compression": "zstd", "data_page_size": 3000},
    "v2 small pages": {"compression": "snappy", "data_page_version": "2.0",
                       "data_page_size": 3000},
    "page checksums": {"compression": "zstd", "write_page_checksum": True},
    "no statistics": {"compression": "zstd", "write_statistics": False},
}


@pytest.mark.parametrize("layout", list(WRITER_LAYOUTS))
@pytest.mark.parametrize("nullable", [True, False], ids=["nullable", "required"])
def test_every_writer_layout_decodes_as_pyarrow_reads_it(tmp_path, layout, nullable):
    table = ragged_table(nullable=nullable, holes=nullable)
    path = tmp_path / "part.parquet"
    pq.write_table(table, path, use_dictionary=False, row_group_size=700,
                   **WRITER_LAYOUTS[layout])
    assert pq.ParquetFile(path).metadata.num_row_groups == 5
    assert assert_file_decodes_as_pyarrow_reads_it(path) > 100_000


def partition_of(tmp_path: Path, table: pa.Table, **write_options) -> Path:
    """`table` as a one-file snapshots partition of a data root."""
    from bookcast.schema import file_metadata

    folder = tmp_path / "snapshots/venue=binance-spot/symbol=BTCUSDT/date=1970-01-01"
    folder.mkdir(parents=True)
    meta = file_metadata("binance-spot", "BTCUSDT", depth=120, interval_ns=S, tick_size=0.01)
    pq.write_table(table.replace_schema_metadata(meta), folder / "part-0.parquet",
                   row_group_size=700, **write_options)
    return tmp_path


LEFT_TO_PYARROW = {
    "dictionary pages": {"use_dictionary": True},
    "byte stream split": {"use_dictionary": False, "column_encoding": {
        f"{c}.list.element": "BYTE_STREAM_SPLIT" for c in LEVEL_COLUMNS}},
    "Hadoop LZ4": {"use_dictionary": False, "compression": "lz4"},  # its footer relabelled
    "null elements": {"use_dictionary": False},
}


@pytest.mark.parametrize("layout", list(LEFT_TO_PYARROW))
def test_layouts_left_to_pyarrow_come_back_the_same(tmp_path, layout):
    table = ragged_table()
    if layout == "null elements":
        bids = table.column("bid_sz").to_pylist()
        bids[5] = [None, *bids[5][1:]] if bids[5] else [None]
        table = table.set_column(table.schema.get_field_index("bid_sz"), "bid_sz",
                                 pa.array(bids, table.schema.field("bid_sz").type))
    root = partition_of(tmp_path, table, **LEFT_TO_PYARROW[layout])
    (partition,) = snapshot_partitions(root)
    if layout == "Hadoop LZ4":
        as_hadoop_lz4(partition.files[0])
    batches = list_each(read_snapshot_books(partition, SNAPSHOT_COLUMNS), partition.files[0])
    reference = pq.read_table(partition.files[0])
    assert sum(n for n, _ in batches) == reference.num_rows
    # what the page reader leaves, a row group at a time, pyarrow reads (record batches);
    # a null element sends only its own row group there
    decoded = [was_decoded for _, was_decoded in batches]
    assert decoded == ([False, True, True, True, True] if layout == "null elements"
                       else [False] * 5)


def as_hadoop_lz4(path: Path) -> None:
    """Relabel a file's LZ4_RAW column chunks as Parquet's older LZ4 (Hadoop's framing),
    which pyarrow no longer writes: the codec field of each chunk's metadata (Thrift
    compact: a field-delta-1 i32 holding zigzag 7) becomes 5. pyarrow still reads the raw
    blocks behind it (its Hadoop decoder falls back to them) and names the codec UNKNOWN."""
    data = bytearray(path.read_bytes())
    length = int.from_bytes(data[-8:-4], "little")
    footer = bytes(data[-8 - length:-8])
    chunks = pq.ParquetFile(path).metadata
    expected = chunks.num_row_groups * chunks.num_columns
    assert footer.count(b"\x15\x0e") == expected  # one codec field a column chunk, no other
    data[-8 - length:-8] = footer.replace(b"\x15\x0e", b"\x15\x0a")
    path.write_bytes(bytes(data))
    file = pq.ParquetFile(path)
    assert {file.metadata.row_group(g).column(c).compression
            for g in range(file.metadata.num_row_groups)
            for c in range(file.metadata.num_columns)} == {"UNKNOWN"}


def list_each(batches, path: Path) -> list[tuple[int, bool]]:
    """(rows, decoded by the page reader) of each batch, its lists checked against
    pyarrow's as it comes (its values are reused two batches later)."""
    reference = pq.read_table(path)
    seen, start = [], 0
    for batch in batches:
        for name in LEVEL_COLUMNS:
            expected = reference.column(name).slice(start, batch.num_rows)
            fill = np.nan if "px" in name else 0.0
            column = batch.column(name)
            assert_same_levels(column if isinstance(batch, DecodedRowGroup)
                               else LevelList(*list_levels(column, fill)), expected, fill)
        seen.append((batch.num_rows, isinstance(batch, DecodedRowGroup)))
        start += batch.num_rows
    return seen


def test_a_streamed_row_group_refuses_its_lists_once_the_next_is_asked_for(tmp_path):
    """The reader decodes the next row group into the buffers of the one before the
    current: a batch's lists equal pyarrow's until the caller asks for the next batch, and
    are refused after it, never handed over as another row group's values."""
    root = partition_of(tmp_path, ragged_table(rows=5000, seed=3), use_dictionary=False,
                        compression="zstd")
    (partition,) = snapshot_partitions(root)
    reference = pq.read_table(partition.files[0]).column("bid_sz")
    books = read_snapshot_books(partition, SNAPSHOT_COLUMNS)
    assert books.num_rows == 5000  # from the footers, before any row group is decoded
    stream = iter(books)
    first = next(stream)
    assert isinstance(first, DecodedRowGroup)
    assert_same_levels(first.column("bid_sz"), reference.slice(0, 700), 0.0)
    second = next(stream)  # the third row group now decodes into the first's buffers
    assert_same_levels(second.column("bid_sz"), reference.slice(700, 700), 0.0)
    with pytest.raises(RuntimeError, match="overwritten"):
        first.column("bid_sz")
    assert first.column("ts").to_pylist()[0] is not None  # its plain columns are its own
    rows = first.num_rows + second.num_rows + sum(b.num_rows for b in stream)
    assert rows == 5000


def test_a_damaged_page_ends_in_one_sentence_naming_the_file(tmp_path, binance_btc, capsys):
    root = tmp_path / "data"
    shutil.copytree(binance_btc, root, ignore=ONLY_INPUTS)
    path = snapshot_files(root)[0]
    file = pq.ParquetFile(path)
    bid_sz = column_layouts(file, LEVEL_COLUMNS)["bid_sz"]
    chunk = file.metadata.row_group(0).column(bid_sz.index)
    with open(path, "r+b") as fh:  # the footer stays intact: a page header is overwritten
        fh.seek(chunk.data_page_offset)
        fh.write(b"\xff" * 16)
    with pytest.raises(UnsupportedPagesError):
        read_level_list(path, file, 0, bid_sz, ChunkBuffers())
    with pytest.raises(SystemExit) as exited:
        cli_main(["features", "--data-dir", str(root)])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert str(path) in err.replace("\n", "") and "damaged" in err
    assert "Traceback" not in err
    assert not (root / "features" / "default" / "config.json").exists()


def test_build_from_pages_equals_build_from_pyarrow(tmp_path, binance_btc, monkeypatch):
    """The whole feature build, page reader against pyarrow's lists: equal frames."""
    import polars as pl

    import features.partitions

    roots = [tmp_path / "pages", tmp_path / "pyarrow"]
    for root in roots:
        shutil.copytree(binance_btc, root, ignore=ONLY_INPUTS)
    horizons = [h * S for h in (1, 10)]
    build_features(roots[0], "default", horizons, fee_bps=1.0)

    def refuse(*args, **kwargs):
        raise UnsupportedPagesError("read with pyarrow")

    monkeypatch.setattr(features.partitions, "column_layouts", refuse)
    build_features(roots[1], "default", horizons, fee_bps=1.0)
    built = [sorted((root / "features/default").rglob("*.parquet")) for root in roots]
    assert len(built[0]) == len(built[1]) == 2
    for ours, theirs in zip(*built, strict=True):
        assert pl.read_parquet(ours).equals(pl.read_parquet(theirs))


@pytest.mark.parametrize("layout", ["lz4 HC 3 (the collector's snapshots)", "zstd 1 (the collector's trades)",
                                    "uncompressed", "v2 uncompressed"])
def test_corrupted_pages_are_refused_or_read_as_pyarrow_reads_them(tmp_path, layout):
    """Bytes overwritten at random in page headers, levels and values (200 times): the
    page reader refuses the page (its row group then comes from pyarrow) or gives exactly
    what pyarrow gives; it never accepts a page pyarrow refuses, never crashes or hangs."""
    clean = tmp_path / "clean.parquet"
    pq.write_table(ragged_table(rows=400, seed=5, nullable=False, holes=False), clean,
                   use_dictionary=False, row_group_size=200, **WRITER_LAYOUTS[layout])
    data = clean.read_bytes()
    file = pq.ParquetFile(clean)
    layouts = column_layouts(file, LEVEL_COLUMNS)
    chunks = [file.metadata.row_group(g).column(column.index)
              for g in range(file.metadata.num_row_groups) for column in layouts.values()]
    rng = np.random.default_rng(11)
    outcomes = {"equal": 0, "refused": 0}
    for trial in range(200):
        damaged = bytearray(data)
        chunk = chunks[rng.integers(len(chunks))]
        span = 64 if trial % 2 else chunk.total_compressed_size  # headers, or anywhere
        start = chunk.data_page_offset + int(rng.integers(0, span))
        for k in range(int(rng.integers(1, 9))):
            at = min(start + k, chunk.data_page_offset + chunk.total_compressed_size - 1)
            damaged[at] = int(rng.integers(0, 256))
        # one file rewritten in place: the page cache absorbs it, so the suite's daemons
        # running beside this test are not kept waiting on the disk
        path = tmp_path / "damaged.parquet"
        path.write_bytes(damaged)
        file = pq.ParquetFile(path)
        for group in range(file.metadata.num_row_groups):
            for name in LEVEL_COLUMNS:
                try:
                    theirs = file.read_row_group(group, columns=[name]).column(name)
                except Exception:  # pyarrow's types for a damaged page vary
                    theirs = None
                try:
                    ours = read_level_list(path, file, group, layouts[name], ChunkBuffers())
                except UnsupportedPagesError:
                    outcomes["refused"] += 1
                    continue
                assert theirs is not None, f"trial {trial}: a page pyarrow refuses was read"
                assert_same_levels(ours, theirs, np.nan)
                outcomes["equal"] += 1
    assert outcomes["refused"] > 50 and outcomes["equal"] > 500


@pytest.mark.parametrize("layout", ["lz4 HC 3 (the collector's snapshots)",
                                    "zstd 1 (the collector's trades)", "snappy", "gzip",
                                    "brotli"])
def test_a_page_header_claiming_more_bytes_than_its_page_holds_is_refused(tmp_path, layout):
    """Arrow's decoders (snappy, gzip, brotli; LZ4 too, which python-lz4 decodes instead)
    pad a page up to the size its header claims with whatever the memory held, so the
    values must fill the page exactly: a header that claims 8 bytes more is refused (and
    pyarrow refuses it too), never read with a made-up last value. Each codec here fails
    without that check."""
    path = tmp_path / "part.parquet"
    pq.write_table(ragged_table(rows=300, seed=7, nullable=False, holes=False), path,
                   use_dictionary=False, row_group_size=300, **WRITER_LAYOUTS[layout])
    file = pq.ParquetFile(path)
    layout_of = column_layouts(file, LEVEL_COLUMNS)["ask_px"]
    chunk = file.metadata.row_group(0).column(layout_of.index)
    data = bytearray(path.read_bytes())
    at = chunk.data_page_offset
    # PageHeader: field 1 (i32 type) = DATA_PAGE, then field 2 (i32 uncompressed size)
    assert data[at:at + 3] == b"\x15\x00\x15"
    size, end, shift = 0, at + 3, 0
    while True:
        size |= (data[end] & 0x7F) << shift
        shift += 7
        end += 1
        if not data[end - 1] & 0x80:
            break
    claimed = size // 2 + 8  # zigzag
    varint, value = bytearray(), claimed * 2
    while value >= 0x80:
        varint.append(value & 0x7F | 0x80)
        value >>= 7
    varint.append(value)
    assert len(varint) == end - at - 3  # the header keeps its length
    data[at + 3:end] = varint
    path.write_bytes(bytes(data))
    file = pq.ParquetFile(path)
    with pytest.raises(UnsupportedPagesError):
        read_level_list(path, file, 0, layout_of, ChunkBuffers())
    with pytest.raises(Exception):  # pyarrow's type for it varies  # noqa: B017
        file.read_row_group(0, columns=["ask_px"])
