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


# Every model family fitted once, beside the baselines, on the fixture's splits at fee 0:
# what the policy, calibration and direction tests read. DeepLOB stays tiny on a CPU.
FAMILY_CONFIGS = {
    "logistic": {},
    "lightgbm": {"lgbm_rounds": 200},
    "mlp": {"epochs": 3, "batch_size": 128},
    "deeplob": {"epochs": 1, "batch_size": 64, "max_train_rows": 192},
}


@pytest.fixture(scope="session")
def scored_families(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """model -> (data, splits used, {estimator: Scored}) from `fit_and_score`, on a shorter
    book of the same kind (2,000 s) so that DeepLOB's windows stay few on a CPU."""
    from models.config import TrainConfig
    from models.dataset import load_model_data
    from models.pipeline import fit_and_score
    from models.runs import model_splits

    data_dir = tmp_path_factory.mktemp("families") / "data"
    build_dataset(data_dir, 2000, seed=2)
    data = load_model_data(data_dir, 10 * NS, feature_set="compact")
    out = {}
    for model, extra in FAMILY_CONFIGS.items():
        config = TrainConfig(model=model, horizon_ns=10 * NS, feature_set="compact", window=20,
                             **extra)
        used, _, results = fit_and_score(data, model_splits(data, config), config)
        out[model] = (data, used, results)
    return out


@pytest.fixture(scope="session")
def real_spot_features(tmp_path_factory: pytest.TempPathFactory, captures_dir: Path) -> Path:
    """The real Binance spot BTCUSDT capture (23:54 -> 00:05 UTC) replayed at 1 s, with the
    default features and labels at 1 s and 10 s, fee 0."""
    from collector.replay import replay_captures
    from features.build import build_features

    root = tmp_path_factory.mktemp("real-spot")
    replay_captures([captures_dir / "binance-spot" / "btcusdt_20240808-09.jsonl.gz"], root,
                    interval_ns=NS, depth=100)
    build_features(root, "default", [NS, 10 * NS], fee_bps=0.0)
    return root
