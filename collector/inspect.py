"""`bookcast inspect`: what a data directory holds, read with duckdb from the Parquet files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bookcast import terminal
from bookcast.errors import UserError


@dataclass
class Coverage:
    dataset: str
    venue: str
    symbol: str
    date: str
    files: int
    rows: int
    gaps: int | None
    first: str
    last: str


def inspect_data_dir(root: Path) -> list[Coverage]:
    """Rows, gaps and time range per (dataset, venue, symbol, date)."""
    import duckdb

    if not root.exists():
        raise UserError(f"The data directory '{root}' does not exist.")
    if not root.is_dir():
        raise UserError(f"'{root}' is not a directory.")
    out: list[Coverage] = []
    con = duckdb.connect()
    for dataset, ts_col, gap_expr in (("snapshots", "ts", "count_if(gap)"),
                                      ("trades", "ts_recv", "NULL")):
        base = root / dataset
        if not any(base.glob("venue=*/symbol=*/date=*/*.parquet")):
            continue
        pattern = str(base / "venue=*" / "symbol=*" / "date=*" / "*.parquet")
        try:
            rows = con.execute(
                f"""SELECT venue, symbol, CAST(date AS VARCHAR), count(DISTINCT filename),
                           count(*), {gap_expr},
                           strftime(min({ts_col}), '%Y-%m-%d %H:%M:%S'),
                           strftime(max({ts_col}), '%Y-%m-%d %H:%M:%S')
                    FROM read_parquet(?, hive_partitioning=true, filename=true,
                                      hive_types_autocast=false)
                    GROUP BY ALL ORDER BY ALL""", [pattern]).fetchall()
        except duckdb.Error as exc:
            raise UserError(f"The {dataset} under '{root}' cannot be read: "
                            f"{str(exc).splitlines()[0]}") from None
        out += [Coverage(dataset, *r) for r in rows]
    return out


def print_inventory(coverage: list[Coverage]) -> None:
    from rich.table import Table

    console = terminal.console()
    if not coverage:
        console.print("This data directory holds no snapshots or trades yet. Start with "
                      "`bookcast simulate`, `bookcast replay CAPTURE` or `bookcast collect`.")
        return
    table = Table(title="bookcast data")
    for col in ("dataset", "venue", "symbol", "date", "files", "rows", "gaps", "first (UTC)",
                "last (UTC)"):
        table.add_column(col)
    for c in coverage:
        table.add_row(c.dataset, c.venue, c.symbol, c.date, str(c.files), f"{c.rows:,}",
                      "" if c.gaps is None else str(c.gaps), c.first, c.last)
    console.print(table)
