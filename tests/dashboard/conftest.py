"""Fixtures of the dashboard tests; the data root itself (`pipeline_root`) is built once
per session in tests/conftest.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


@pytest.fixture
def data_root_env(monkeypatch: pytest.MonkeyPatch):
    """Point the app at a data root and at a metrics address nobody listens on."""
    def use(root: Path, metrics_url: str = "http://127.0.0.1:9/metrics") -> Path:
        monkeypatch.setenv("BOOKCAST_DATA_DIR", str(root))
        monkeypatch.setenv("BOOKCAST_METRICS_URL", metrics_url)
        import streamlit as st

        st.cache_data.clear()  # every test sees its own root's files
        return root
    return use


@pytest.fixture
def copy_of(tmp_path: Path):
    """A private copy of a data root a test may damage."""
    def make(root: Path) -> Path:
        target = tmp_path / "copy"
        shutil.copytree(root, target)
        return target
    return make

