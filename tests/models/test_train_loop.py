"""The GPU path of the training loop, run on the CPU: batches cut from device-resident
inputs equal the host's to the bit, come in the DataLoader's order, and train the same
network; the cuDNN switches follow --deterministic."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from book_fixture import NS
from torch.utils.data import DataLoader, RandomSampler

from models import train as train_module
from models.config import TrainConfig
from models.dataset import SequenceView, load_model_data
from models.nets import DeepLOB
from models.pipeline import InputBuilder, Scalers
from models.train import ArrayBatches, DeviceBatches, _epoch_batches, _whole_batch, train_network

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def book_windows(book_data_dir) -> tuple[SequenceView, np.ndarray]:
    """DeepLOB's inputs on the models' book: scaled levels, prices from the decision mid."""
    data = load_model_data(book_data_dir, 10 * NS, feature_set="compact")
    rows = np.flatnonzero(data.labelled)
    inputs = InputBuilder(data, Scalers.fit(data, rows[: len(rows) // 2]), 20)
    ends = inputs.window_rows(rows)[-256:]
    view = inputs("sequence", ends)
    assert view.offset is not None and view.offset_columns.any()
    return view, data.y[ends]


def test_device_batches_equal_the_host_windows(book_windows):
    view, _ = book_windows
    values = np.array(view.values, dtype=np.float64)
    values[::7, 3] = np.nan  # missing levels become 0 on both sides
    values[5, :] = np.inf
    holed = SequenceView(values, view.ends, view.window, view.offset, view.offset_columns)
    rows = np.random.default_rng(0).permutation(len(holed))[:100]
    on_device = DeviceBatches(holed, CPU)
    expected = torch.from_numpy(holed[rows])
    got = on_device[torch.as_tensor(rows)]
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert torch.equal(got, expected)
    plain = np.random.default_rng(1).normal(size=(50, 6)).astype(np.float32)
    assert torch.equal(DeviceBatches(plain, CPU)[torch.as_tensor(rows[:10] % 50)],
                       torch.from_numpy(plain[rows[:10] % 50]))


def test_epoch_batches_come_in_the_data_loaders_order():
    y = np.arange(1000) % 3
    loader_gen, device_gen = (torch.Generator().manual_seed(7) for _ in range(2))
    loader = DataLoader(ArrayBatches(np.zeros((1000, 2)), y), batch_size=64,
                        sampler=RandomSampler(range(1000), generator=loader_gen),
                        collate_fn=_whole_batch, drop_last=True)
    sampler = RandomSampler(range(1000), generator=device_gen)
    for _ in range(2):  # a second epoch continues the same random stream
        theirs = [yb for _, yb in loader]
        ours = _epoch_batches(sampler, 64, True, CPU)
        assert len(ours) == len(theirs) == 1000 // 64
        for rows, yb in zip(ours, theirs, strict=True):
            assert torch.equal(torch.as_tensor(y)[rows], yb)


def test_training_from_device_batches_trains_the_same_network(book_windows, monkeypatch):
    view, y = book_windows
    config = TrainConfig(model="deeplob", epochs=2, batch_size=64, window=20, seed=3,
                         patience=5)

    def trained() -> tuple[dict, list]:
        torch.manual_seed(0)
        net = DeepLOB(levels=view.values.shape[1] // 4)
        history = train_network(net, view, y, view, y, config)
        times = ("train_seconds",)
        return net.state_dict(), [{k: v for k, v in e.items() if k not in times}
                                  for e in history.epochs]

    host_state, host_epochs = trained()
    monkeypatch.setattr(DeviceBatches, "fitting", classmethod(lambda cls, X, d: cls(X, d)))
    device_state, device_epochs = trained()
    assert host_epochs == device_epochs
    assert host_epochs[0]["train_loss"] != host_epochs[1]["train_loss"]
    for name, tensor in host_state.items():
        assert torch.equal(tensor, device_state[name]), name


def test_cudnn_autotunes_unless_determinism_is_asked_for():
    train_module.seed_everything(0, deterministic=False)
    assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
    train_module.seed_everything(0, deterministic=True)
    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    assert replace(TrainConfig(), deterministic=True).to_dict()["deterministic"] is True


def test_the_kept_weights_validation_pass_is_what_predicting_validation_gives(book_windows):
    """Scoring reuses the validation probabilities of the epoch whose weights were kept:
    they must be the probabilities those weights give now, row for row (a pass kept from
    the last epoch instead of the best one, or rows out of order, would differ)."""
    from models.train import TorchForecaster

    view, y = book_windows
    half = len(y) // 2
    # 12 epochs on 128 rows at a high learning rate: the validation loss rises after its best
    config = replace(TrainConfig(model="deeplob", horizon_ns=10 * NS), epochs=12, patience=12,
                     batch_size=32, window=view.window, learning_rate=0.05, device="cpu")
    est = TorchForecaster(config).fit(view[np.arange(half)], y[:half],
                                      view[np.arange(half, len(y))], y[half:])
    assert est.validation_proba_ is not None and est.history_.best_val_logits is None
    again = est.predict_proba(view[np.arange(half, len(y))])
    np.testing.assert_allclose(est.validation_proba_, again, rtol=1e-4, atol=1e-6)
    assert est.history_.best_epoch < len(est.history_.epochs) - 1  # not the last epoch
