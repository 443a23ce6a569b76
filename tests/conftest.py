"""Shared test fixtures: the real captures live in ../shared/data/captures/."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CAPTURES = (PROJECT_ROOT.parent / "shared" / "data" / "captures").resolve()


@pytest.fixture(scope="session")
def captures_dir() -> Path:
    if not CAPTURES.is_dir():
        pytest.fail(f"the shared captures are missing: expected them at {CAPTURES}")
    return CAPTURES
