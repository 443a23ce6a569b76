"""What the benchmarks share: the baseline's code beside this tree, paired medians, load.

A benchmark that claims "N times faster than main" runs main's code in the same session:
`baseline_tree` exports a commit with `git archive` into a temporary directory (or takes a
checkout given with --baseline-dir), so no copy of old code is ever committed here.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def baseline_tree(rev: str, directory: str | None = None) -> Iterator[Path]:
    """The baseline's code: `directory` as given, else `git archive rev` in a temp dir."""
    if directory is not None:
        yield Path(directory).resolve()
        return
    with tempfile.TemporaryDirectory(prefix="bookcast-baseline-") as tmp:
        archive = Path(tmp) / "tree.tar"
        subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), rev], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(Path(tmp) / "tree", filter="data")
        yield Path(tmp) / "tree"


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a run in a fresh process: the tree under test comes first on
    sys.path by itself, so no PYTHONPATH may point elsewhere."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra)
    return env


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of the per-round ratios (runs interleaved, so each pair shared a moment)."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"
