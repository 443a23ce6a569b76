"""Data that cannot train a model ends in one sentence naming the cause and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from book_fixture import NS, build_dataset

from bookcast.errors import UserError
from models.config import TrainConfig
from models.runs import train_run

BOOKCAST = str(Path(sys.executable).parent / "bookcast")


def test_a_fee_no_move_pays_is_one_sentence_and_exit_2(book_data_dir):
    # 50 bps per side: no 10 s move of the fixture pays, so 'up' and 'down' are empty
    # (LightGBM raised KeyError: 0 here, logistic regression a ValueError).
    proc = subprocess.run([BOOKCAST, "train", "--data-dir", str(book_data_dir), "--set",
                           "compact", "--model", "lightgbm", "--fee-bps", "50",
                           "--window", "20"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip()
    assert "at 50 bps per side over 10s" in message and "Lower --fee-bps" in message
    assert not list((book_data_dir / "runs").glob(".tmp-*"))


@pytest.mark.parametrize("model", ["logistic", "mlp"])
def test_a_missing_class_names_the_fee_and_the_fix_for_every_model(book_data_dir, model):
    config = TrainConfig(model=model, feature_set="compact", window=20, fee_bps=50.0, epochs=1)
    with pytest.raises(UserError, match=r"no move in it pays the round trip.*Lower --fee-bps"):
        train_run(book_data_dir, config)


def test_too_little_data_names_the_split_and_what_to_do(tmp_path):
    build_dataset(tmp_path / "short", 200, seed=1, fee_bps=0.0)
    config = TrainConfig(model="lightgbm", feature_set="compact", window=100)
    with pytest.raises(UserError, match=r"split is empty after an embargo of 110s.*record or "
                                        r"simulate more, or shorten --horizon or --window"):
        train_run(tmp_path / "short", config)
    build_dataset(tmp_path / "tiny", 25, seed=1, fee_bps=0.0, horizons_ns=(2 * NS,))
    with pytest.raises(UserError, match=r"too few to split.*collect or simulate more data"):
        train_run(tmp_path / "tiny", TrainConfig(model="lightgbm", feature_set="compact",
                                                 window=2, horizon_ns=2 * NS))
