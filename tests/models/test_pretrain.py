"""Pre-train checks: shapes and probabilities, one step lowers the loss, a tiny batch can be
overfit, the losses behave, and training resumes from its checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.baselines import AlwaysFlat, ImbalanceRule, LogisticForecaster
from models.config import TrainConfig
from models.dataset import SequenceView
from models.lightgbm_model import LightGBMForecaster
from models.losses import FocalLoss, make_loss
from models.nets import MLP, DeepLOB, count_parameters
from models.train import TorchForecaster, train_network

RNG = np.random.default_rng(0)


def toy_features(n: int = 400, f: int = 6) -> tuple[np.ndarray, np.ndarray]:
    X = RNG.normal(size=(n, f)).astype(np.float32)
    y = np.where(X[:, 0] > 0.8, 1, np.where(X[:, 0] < -0.8, -1, 0)).astype(np.int8)
    return X, y


def toy_book(n: int = 400, levels: int = 10) -> np.ndarray:
    book = np.empty((n, levels * 4))
    book[:, 0::4] = 100.0 + 0.01 * np.arange(1, levels + 1)
    book[:, 2::4] = 100.0 - 0.01 * np.arange(levels)
    book[:, 1::4] = RNG.lognormal(size=(n, levels))
    book[:, 3::4] = RNG.lognormal(size=(n, levels))
    return book


def test_deeplob_has_the_published_parameter_count():
    assert count_parameters(DeepLOB(levels=10)) == 143_907  # "about 144k"


@pytest.mark.parametrize("make", [
    lambda: LightGBMForecaster(TrainConfig(lgbm_rounds=20)),
    lambda: LogisticForecaster("features"),
    lambda: TorchForecaster(TrainConfig(model="mlp", epochs=1, batch_size=64)),
])
def test_feature_models_give_one_probability_row_per_label(make):
    X, y = toy_features()
    proba = make().fit(X[:300], y[:300], X[300:], y[300:]).predict_proba(X[300:])
    assert proba.shape == (100, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert (proba >= 0).all()


@pytest.mark.parametrize("make", [AlwaysFlat, ImbalanceRule, lambda: LogisticForecaster("book")])
def test_baselines_give_one_probability_row_per_label(make):
    book = toy_book()
    y = RNG.integers(-1, 2, 400)
    proba = make().fit(book[:300], y[:300], book[300:], y[300:]).predict_proba(book[300:])
    assert proba.shape == (100, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)


def test_deeplob_gives_probabilities_for_each_window():
    values = RNG.normal(size=(80, 40)).astype(np.float32)
    view = SequenceView(values, np.arange(19, 80), window=20)
    y = RNG.integers(-1, 2, len(view))
    model = TorchForecaster(TrainConfig(model="deeplob", epochs=1, batch_size=16, window=20))
    proba = model.fit(view, y, view.subset(np.arange(10)), y[:10]).predict_proba(view)
    assert proba.shape == (len(view), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("loss", ["ce", "weighted-ce", "focal"])
@pytest.mark.parametrize("net_name", ["mlp", "deeplob"])
def test_one_gradient_step_lowers_the_loss(net_name, loss):
    torch.manual_seed(0)
    if net_name == "mlp":
        net, x = MLP(6), torch.randn(32, 6)
    else:
        net, x = DeepLOB(levels=10), torch.randn(16, 1, 20, 40)
    y = torch.randint(0, 3, (len(x),))
    loss_fn = make_loss(loss, np.array([2.0, 0.5, 2.0]))
    net.eval()  # batch-norm statistics fixed, so the two losses see the same function
    before = loss_fn(net(x), y)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        assert loss_fn(net(x), y) < before


@pytest.mark.parametrize("net_name", ["mlp", "deeplob"])
def test_a_tiny_batch_can_be_overfit(net_name):
    torch.manual_seed(0)
    if net_name == "mlp":
        net, x, steps = MLP(6), torch.randn(24, 6), 300
    else:
        net, x, steps = DeepLOB(levels=10), torch.randn(6, 1, 20, 40), 150
    y = torch.arange(len(x)) % 3
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(steps):
        net.train()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        if step % 10 == 9:
            net.eval()
            with torch.no_grad():
                if (net(x).argmax(dim=1) == y).all():
                    break
    net.eval()
    assert (net(x).argmax(dim=1) == y).all()


def test_focal_loss_with_gamma_zero_is_cross_entropy():
    logits, target = torch.randn(50, 3), torch.randint(0, 3, (50,))
    ce = torch.nn.functional.cross_entropy(logits, target)
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, target), ce)
    # and down-weights easy rows: confident correct rows lose almost all their loss
    easy = torch.tensor([[10.0, 0.0, 0.0]])
    assert FocalLoss(2.0)(easy, torch.tensor([0])) < 1e-6 * torch.nn.functional.cross_entropy(
        easy, torch.tensor([0])) + 1e-12


def test_training_resumes_from_its_checkpoint(tmp_path):
    X, y = toy_features(300)
    ckpt = tmp_path / "mlp.pt"
    first = TrainConfig(model="mlp", epochs=2, batch_size=64, patience=99)
    train_network(MLP(6), X, y, X, y, first, checkpoint_path=ckpt)
    assert ckpt.exists()
    more = TrainConfig(model="mlp", epochs=4, batch_size=64, patience=99)
    history = train_network(MLP(6), X, y, X, y, more, checkpoint_path=ckpt)
    assert history.resumed_from_epoch == 1
    assert [e["epoch"] for e in history.epochs] == [0, 1, 2, 3]


def test_training_is_deterministic_for_a_seed():
    X, y = toy_features(300)
    config = TrainConfig(model="mlp", epochs=2, batch_size=64, sampler="balanced")
    a = TorchForecaster(config).fit(X, y, X, y).predict_proba(X)
    b = TorchForecaster(config).fit(X, y, X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [
    lambda: LightGBMForecaster(TrainConfig(lgbm_rounds=5)),
    lambda: LogisticForecaster("features"),
    lambda: TorchForecaster(TrainConfig(model="mlp", epochs=1)),
    lambda: TorchForecaster(TrainConfig(model="deeplob", epochs=1)),
    AlwaysFlat, ImbalanceRule, lambda: LogisticForecaster("book"),
])
def test_every_model_and_baseline_is_a_forecaster(make):
    from models.forecaster import Forecaster

    estimator = make()
    assert isinstance(estimator, Forecaster)
    assert estimator.input_kind in ("book", "features", "raw_features", "sequence")
