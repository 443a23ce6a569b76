"""`bookcast sql`: the Parquet datasets as duckdb views (`snapshots`, `trades`, `features`).

Views read the Hive partitions in place, so `venue`, `symbol` and `date` are
columns; nothing is copied. A dataset that was not written yet has no view, and
a query that names it gets one sentence saying what to run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from bookcast.errors import UserError, parquet_error
from bookcast.paths import data_root, features_dir

READ_ONLY_STATEMENTS = {"SELECT", "EXPLAIN"}
HOW_TO_MAKE = {
    "snapshots": "bookcast replay CAPTURE --data-dir {root}",
    "trades": "bookcast replay CAPTURE --data-dir {root}",
    "features": "bookcast features --data-dir {root}",
}


def dataset_globs(root: Path, feature_set: str = "default") -> dict[str, Path]:
    """Where each view's files live: <dataset>/venue=*/symbol=*/date=*/*.parquet."""
    return {
        "snapshots": root / "snapshots",
        "trades": root / "trades",
        "features": features_dir(root, feature_set),
    }


def connect(data_dir: str | os.PathLike[str] | None, feature_set: str = "default") -> Any:
    """A duckdb connection with a view per dataset present under the data root."""
    import duckdb

    root = data_root(data_dir)
    if not root.is_dir():
        raise UserError(f"The data directory '{root}' does not exist or is not a directory.")
    con = duckdb.connect()
    for view, folder in dataset_globs(root, feature_set).items():
        files = sorted(folder.glob("venue=*/symbol=*/date=*/*.parquet"))
        if not files:
            continue
        pattern = str(folder / "venue=*" / "symbol=*" / "date=*" / "*.parquet").replace("'", "''")
        try:
            con.execute(
                f"CREATE VIEW {view} AS SELECT * FROM "
                f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"
            )
        except duckdb.Error as exc:
            con.close()
            raise parquet_error(files, exc, f"The {view} under '{root}' cannot be read") from None
    # Nothing outside the data root is read or written, whatever the query says.
    con.execute("SET allowed_directories = ?", [[str(root.resolve()) + os.sep]])
    con.execute("SET enable_external_access = false")
    return con


def require_read_only(query: str) -> None:
    """Only queries: `bookcast sql` reads the datasets and never writes (no COPY, CREATE,
    ATTACH, INSERT or SET)."""
    import duckdb

    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise UserError(f"The query cannot be parsed: {str(exc).splitlines()[0]}") from None
    for statement in statements:
        kind = statement.type.name
        if kind not in READ_ONLY_STATEMENTS:
            raise UserError(f"`bookcast sql` only reads: a {kind} statement is refused; "
                            f"write SELECT (or EXPLAIN) queries.")


def run_sql(query: str, data_dir: str | os.PathLike[str] | None,
            feature_set: str = "default") -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of a query over the views."""
    import duckdb

    root = data_root(data_dir)
    if not query.strip():
        raise UserError("The SQL query is empty; pass one like \"SELECT count(*) FROM snapshots\".")
    require_read_only(query)
    con = connect(root, feature_set)
    try:
        result = con.execute(query)
        columns = [d[0] for d in result.description] if result.description else []
        return columns, result.fetchall()
    except duckdb.CatalogException as exc:
        missing = re.search(r"Table with name (\w+) does not exist", str(exc))
        name = missing.group(1).lower() if missing else None
        if name in HOW_TO_MAKE:
            where = dataset_globs(root, feature_set)[name]
            raise UserError(
                f"The {name} dataset does not exist under {where}; create it with "
                f"`{HOW_TO_MAKE[name].format(root=root)}` first."
            ) from None
        raise UserError(f"The query failed: {str(exc).splitlines()[0]}") from None
    except duckdb.Error as exc:
        files = [f for folder in dataset_globs(root, feature_set).values()
                 for f in folder.glob("venue=*/symbol=*/date=*/*.parquet")]
        raise parquet_error(files, exc, "The query failed") from None
    finally:
        con.close()
