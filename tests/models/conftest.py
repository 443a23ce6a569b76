"""Fixtures for the model tests: one small dataset built by the real features pipeline,
and one LightGBM run trained on it, shared by the whole session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from book_fixture import NS, build_dataset

N_ROWS = 3000
GAP_AT = 1500


@pytest.fixture(scope="session")
def book_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("models") / "data"
    build_dataset(data_dir, N_ROWS, seed=0, gap_at=GAP_AT)
    return data_dir


@pytest.fixture(scope="session")
def lightgbm_run(book_data_dir: Path) -> Path:
    from models.config import TrainConfig
    from models.runs import train_run

    config = TrainConfig(model="lightgbm", horizon_ns=10 * NS, feature_set="compact", window=20,
                         lgbm_rounds=60, monotone=True)
    return train_run(book_data_dir, config, run_id="lightgbm-fixture")
