"""Edits of the independent tardis files, written as text so the importer under test has no
say in them: copies shifted in time, lines removed, swapped or inserted."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl
import zstandard

TIMESTAMP, LOCAL_TIMESTAMP = 2, 3  # columns of every tardis data type
INTERVAL = 100_000_000
DEPTH = 25
# tardis exchange id -> (bookcast venue, capture the tardis files were made from)
SOURCES = {"binance": ("binance-spot", "binance-spot/btcusdt_20240808-09.jsonl.gz"),
           "binance-futures": ("binance-usdm", "binance-usdm/btcusdt_20240808.jsonl.gz")}


def tardis_file(tardis_dir: Path, exchange: str, data_type: str) -> Path:
    return tardis_dir / f"{exchange}_{data_type}_2024-08-08_BTCUSDT.csv.gz"


def snapshots(root: Path) -> pl.DataFrame:
    return pl.read_parquet(root / "snapshots", hive_partitioning=True).sort("symbol", "ts")


def trades(root: Path) -> pl.DataFrame:
    return pl.read_parquet(root / "trades", hive_partitioning=True).sort("symbol", "ts_recv")


def tree(root: Path) -> dict[str, bytes]:
    """Every file under a root and its bytes: to prove nothing was touched."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def read_lines(path: Path) -> tuple[str, list[str]]:
    """The header and data lines of a (gzip) tardis file, without newlines."""
    with gzip.open(path, "rt", newline="") as fh:
        lines = fh.read().splitlines()
    return lines[0], lines[1:]


def write_csv(path: Path, header: str, lines: Iterable[str]) -> Path:
    """Write a CSV, gzip, zstd or plain by the file's suffix."""
    text = "\n".join([header, *lines]) + "\n"
    data = text.encode()
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=1)
    elif path.suffix == ".zst":
        data = zstandard.ZstdCompressor(level=1).compress(data)
    path.write_bytes(data)
    return path


def shift(line: str, by_us: int) -> str:
    fields = line.split(",")
    fields[TIMESTAMP] = str(int(fields[TIMESTAMP]) + by_us)
    fields[LOCAL_TIMESTAMP] = str(int(fields[LOCAL_TIMESTAMP]) + by_us)
    return ",".join(fields)


def shifted_copies(lines: list[str], copies: int) -> Iterator[str]:
    """The rows `copies` times, each copy starting a second after the one before ended:
    a longer history of the same market, each copy opening with its own snapshot."""
    first = int(lines[0].split(",")[LOCAL_TIMESTAMP])
    span = int(lines[-1].split(",")[LOCAL_TIMESTAMP]) - first + 1_000_000
    for k in range(copies):
        for line in lines:
            yield shift(line, k * span) if k else line


def copy_span_us(src: Path) -> int:
    """How far `write_shifted_copies` moves each copy on: the file's span and a second."""
    with gzip.open(src, "rt", newline="") as fh:
        fh.readline()
        first = last = local_us(fh.readline())
        for line in fh:
            last = local_us(line)
    return last - first + 1_000_000


def write_shifted_copies(src: Path, copies: int, out: Path) -> Path:
    """`shifted_copies` of a gzip tardis file, streamed to a gzip file in constant memory."""
    with gzip.open(src, "rt", newline="") as fh:
        header = fh.readline().rstrip("\n")
    span = copy_span_us(src)
    with gzip.open(out, "wt", compresslevel=1, newline="") as dst:
        dst.write(header + "\n")
        for k in range(copies):
            with gzip.open(src, "rt", newline="") as fh:
                fh.readline()
                for line in fh:
                    dst.write((shift(line.rstrip("\n"), k * span) if k else line.rstrip("\n"))
                              + "\n")
    return out


def local_us(line: str) -> int:
    return int(line.split(",")[LOCAL_TIMESTAMP])
