"""Tiny order books written as real snapshots/trades Parquet, the way the collector writes them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bookcast.paths import partition_dir
from bookcast.schema import SNAPSHOT_SCHEMA, TRADE_SCHEMA, file_metadata
from bookcast.timeutil import utc_date

SECOND = 1_000_000_000
# 2024-08-09 00:00:00 UTC: the date of the real Binance capture.
T0 = 1_723_161_600 * SECOND

Level = tuple[float, float]


def book_table(
    rows: Sequence[tuple[int, Sequence[Level], Sequence[Level], bool]],
) -> pa.Table:
    """rows of (ts_ns, bids best first, asks best first, gap) -> a SNAPSHOT_SCHEMA table."""
    return pa.table(
        {
            "ts": [r[0] for r in rows],
            "ts_event": [r[0] for r in rows],
            "ts_recv": [r[0] for r in rows],
            "seq": list(range(len(rows))),
            "bid_px": [[px for px, _ in r[1]] for r in rows],
            "bid_sz": [[sz for _, sz in r[1]] for r in rows],
            "ask_px": [[px for px, _ in r[2]] for r in rows],
            "ask_sz": [[sz for _, sz in r[2]] for r in rows],
            "n_updates": [1] * len(rows),
            "gap": [r[3] for r in rows],
        },
        schema=SNAPSHOT_SCHEMA,
    )


def book_frame(rows: Sequence[tuple[int, Sequence[Level], Sequence[Level], bool]]) -> pl.LazyFrame:
    return pl.from_arrow(book_table(rows)).lazy()  # type: ignore[union-attr]


def write_snapshots(
    root: Path,
    rows: Sequence[tuple[int, Sequence[Level], Sequence[Level], bool]],
    *,
    venue: str = "binance-spot",
    symbol: str = "BTCUSDT",
    interval_ns: int = SECOND,
    tick_size: float = 0.01,
) -> Path:
    table = book_table(rows)
    date = utc_date(rows[0][0])
    folder = partition_dir(root, "snapshots", venue, symbol, date)
    folder.mkdir(parents=True, exist_ok=True)
    meta = file_metadata(venue, symbol, depth=max(len(r[1]) for r in rows),
                         interval_ns=interval_ns, tick_size=tick_size)
    path = folder / f"part-{rows[0][0]}.parquet"
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def trades_table(trades: Sequence[tuple[int, float, float, int]]) -> pa.Table:
    """trades of (ts_recv_ns, price, size, side) -> a TRADE_SCHEMA table."""
    return pa.table(
        {
            "ts_recv": [t[0] for t in trades],
            "ts_event": [t[0] for t in trades],
            "trade_id": [str(i) for i in range(len(trades))],
            "price": [t[1] for t in trades],
            "size": [t[2] for t in trades],
            "side": [t[3] for t in trades],
        },
        schema=TRADE_SCHEMA,
    )


def write_trades(root: Path, trades: Sequence[tuple[int, float, float, int]], *,
                 venue: str = "binance-spot", symbol: str = "BTCUSDT") -> Path:
    folder = partition_dir(root, "trades", venue, symbol, utc_date(trades[0][0]))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{trades[0][0]}.parquet"
    pq.write_table(trades_table(trades).replace_schema_metadata(file_metadata(venue, symbol)), path)
    return path


def flat_rows(n: int, *, gaps: Sequence[int] = (0,), mids: Sequence[float] | None = None,
              interval_ns: int = SECOND) -> list[tuple[int, list[Level], list[Level], bool]]:
    """n rows of a 3-level book around the given mids (1.0 spread), gap on the listed rows."""
    mids = mids if mids is not None else [100.0 + (i % 7) - 3 for i in range(n)]
    return [
        (T0 + i * interval_ns,
         [(m - 0.5, 1.0 + i % 3), (m - 1.5, 2.0), (m - 2.5, 3.0)],
         [(m + 0.5, 2.0 - i % 2), (m + 1.5, 1.0), (m + 2.5, 4.0)],
         i in gaps)
        for i, m in enumerate(mids)
    ]


@pytest.fixture(scope="session")
def books() -> SimpleNamespace:
    """The helpers above, for tests (a session fixture so hypothesis tests may use it)."""
    return SimpleNamespace(
        T0=T0, SECOND=SECOND, book_table=book_table, book_frame=book_frame,
        write_snapshots=write_snapshots, trades_table=trades_table, write_trades=write_trades,
        flat_rows=flat_rows,
    )


@pytest.fixture(scope="session")
def binance_btc(tmp_path_factory, captures_dir) -> Path:
    """The BTCUSDT capture replayed at 1 s, 100 levels (the collector's own replay)."""
    from collector.replay import replay_captures

    root = tmp_path_factory.mktemp("binance")
    replay_captures([captures_dir / "binance-spot" / "btcusdt_20240808-09.jsonl.gz"], root,
                    interval_ns=SECOND, depth=100)
    return root


@pytest.fixture(scope="session")
def binance_btc_100ms(tmp_path_factory, captures_dir) -> Path:
    """The BTCUSDT spot capture replayed at 100 ms, 100 levels: the grid where windows hold
    many rows with no trade and an unchanged mid."""
    from collector.replay import replay_captures

    root = tmp_path_factory.mktemp("binance_100ms")
    replay_captures([captures_dir / "binance-spot/btcusdt_20240808-09.jsonl.gz"], root,
                    interval_ns=100_000_000, depth=100)
    return root
