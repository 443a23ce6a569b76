"""The one exception type for mistakes a user can make.

The CLI prints its message as a single sentence and exits with status 2;
anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class UserError(Exception):
    """A bad input the user can fix: a wrong path, unknown venue, corrupt file."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def unreadable_parquet(paths: Iterable[Path]) -> tuple[Path, str] | None:
    """The first file that is not a readable Parquet file, and why; None if all are.

    Readers (duckdb, polars) report a damaged file without naming it; this names it. Only
    the footer and the schema are read, so checking many files stays cheap.
    """
    import pyarrow.parquet as pq

    for path in paths:
        try:
            pq.ParquetFile(path).schema_arrow  # noqa: B018 - reading it is the check
        except Exception as exc:  # pyarrow raises several types for one cause: a bad file
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return Path(path), reason
    return None


def parquet_error(paths: Iterable[Path], exc: BaseException, what: str) -> UserError:
    """One sentence for a failed Parquet read: the damaged file when one can be found,
    else `what` followed by the reader's own first line."""
    bad = unreadable_parquet(paths)
    if bad is not None:
        return UserError(damaged_file(*bad))
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UserError(f"{what}: {first}")


def damaged_file(path: Path, reason: str) -> str:
    return (f"The file '{path}' is not a readable Parquet file ({reason}); delete it, or "
            f"write it again with the command that made it.")
