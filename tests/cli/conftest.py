"""The real `bookcast` script run as a subprocess, the way a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BOOKCAST = str(Path(sys.executable).parent / "bookcast")


def run_bookcast(*args: str | Path, cwd: Path | None = None, timeout: float = 300,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`bookcast ARGS` to completion, output captured, never at a terminal."""
    full_env = {**os.environ, "COLUMNS": "100", **(env or {})}
    return subprocess.run([BOOKCAST, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL)


def assert_one_sentence(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, no traceback, and one `error:` line holding every fragment."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]
