"""A model trained on the realistic simulation ranks the moves it was trained for above
their base rate: the signal the simulator's default preset carries (the book's imbalance
before the next move, as in the real captures) reaches the model through the whole chain,
simulator -> capture -> replay -> features -> labels -> LightGBM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bookcast.timeutil import parse_duration_ns

BOOKCAST = str(Path(sys.executable).parent / "bookcast")
NS = 1_000_000_000


@pytest.fixture(scope="module")
def simulated_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from collector.replay import replay_captures
    from features.build import build_features
    from models.config import TrainConfig
    from models.runs import train_run

    root = tmp_path_factory.mktemp("simulated")
    subprocess.run([BOOKCAST, "simulate", "--hours", "0.5", "--symbols", "BTCUSDT", "--seed",
                    "11", "--out", str(root / "captures")], check=True, capture_output=True,
                   timeout=600)
    replay_captures(sorted((root / "captures").rglob("*.jsonl.gz")), root,
                    interval_ns=parse_duration_ns("1s"), depth=100)
    build_features(root, "compact", [NS], fee_bps=1.0)
    run = train_run(root, TrainConfig(model="lightgbm", horizon_ns=NS, feature_set="compact",
                                      window=20))
    return json.loads((run / "metrics.json").read_text())


def test_lightgbm_on_the_realistic_simulation_ranks_moves_above_their_base_rate(
        simulated_run):
    skill = simulated_run["probability_skill"]
    for side in ("up", "down"):
        base = skill[f"prevalence_{side}"]
        assert 0.01 < base < 0.2  # moves that pay 1 bps a side within 1 s are rare
        assert skill[f"average_precision_{side}"] > 1.3 * base, (side, skill)
    assert simulated_run["training"]["best_iteration"] >= 5
