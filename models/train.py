"""The PyTorch training loop (one function, top to bottom) and the estimator wrapper
that gives the networks the same fit / predict_proba surface as LightGBM."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, WeightedRandomSampler

from models.baselines import CLASSES, correct_priors, to_index
from models.config import TrainConfig
from models.losses import balanced_class_weights, make_loss
from models.nets import MLP, DeepLOB


def choose_device(name: str = "auto") -> torch.device:
    """'auto' takes CUDA when present; asking for CUDA without one is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from bookcast.errors import UserError

        raise UserError("--device cuda was asked for, but PyTorch sees no CUDA device here.")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


class ArrayBatches(Dataset):
    """Inputs X (an ndarray, or a SequenceView of book windows) and labels, fetched a whole
    batch at a time (`__getitems__`), so a batch is one fancy-index, not B Python calls."""

    def __init__(self, X: Any, y_index: np.ndarray) -> None:
        self.X, self.y = X, torch.as_tensor(np.asarray(y_index, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.asarray(self.X[i], dtype=np.float32)), self.y[i]

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.asarray(idx, dtype=np.int64)
        return torch.from_numpy(np.asarray(self.X[rows], dtype=np.float32)), self.y[rows]


def _whole_batch(batch: Any) -> Any:
    return batch  # __getitems__ already built the batch


@dataclass
class TrainHistory:
    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_macro_f1: float = -1.0
    resumed_from_epoch: int | None = None
    samples_per_second: float = 0.0


def predict_logits(net: nn.Module, X: Any, device: torch.device, batch_size: int = 1024,
                   ) -> np.ndarray:
    net.eval()
    out = []
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                                         enabled=device.type == "cuda"):
        for start in range(0, len(X), batch_size):
            xb = torch.from_numpy(np.asarray(X[start:start + batch_size], dtype=np.float32))
            out.append(net(xb.to(device, non_blocking=True)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 3), dtype=np.float32)


def train_network(net: nn.Module, X: Any, y: np.ndarray, X_val: Any, y_val: np.ndarray,
                  config: TrainConfig, checkpoint_path: Path | None = None,
                  progress: bool = False) -> TrainHistory:
    """Train `net` on labels y (-1/0/+1); keep the weights with the best validation macro-F1.

    Imbalance: the loss is CE, class-weighted CE or focal (config.loss), and the sampler
    may draw training rows class-balanced (config.sampler); neither touches validation.
    A checkpoint is written after every epoch; if `checkpoint_path` exists the loop
    resumes from it (same config), so an interrupted run loses at most one epoch.
    """
    seed_everything(config.seed)
    device = choose_device(config.device)
    net.to(device)
    y_idx = to_index(y)
    weights = balanced_class_weights(y_idx)
    loss_fn = make_loss(config.loss, weights, config.focal_gamma).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    if config.sampler == "balanced":  # rows drawn with probability 1/count(class)
        sampler = WeightedRandomSampler(torch.as_tensor(weights[y_idx]), num_samples=len(y_idx),
                                        replacement=True, generator=generator)
    else:
        sampler = RandomSampler(range(len(y_idx)), generator=generator)
    loader = DataLoader(ArrayBatches(X, y_idx), batch_size=config.batch_size, sampler=sampler,
                        collate_fn=_whole_batch, pin_memory=device.type == "cuda",
                        drop_last=len(y_idx) > config.batch_size)

    history, start_epoch, best_state, stale = TrainHistory(), 0, None, 0
    if checkpoint_path is not None and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, best_state, stale = state["history"], state["best_state"], state["stale"]
        start_epoch = state["epoch"] + 1
        history.resumed_from_epoch = state["epoch"]

    seen, busy = 0, 0.0
    epochs = range(start_epoch, config.epochs)
    if progress:
        from bookcast.terminal import progress as progress_bar

        epochs = progress_bar(epochs, f"training {type(net).__name__}", unit="epochs")
    for epoch in epochs:
        net.train()
        started, total_loss, batches = time.perf_counter(), 0.0, 0
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                                enabled=device.type == "cuda"):
                loss = loss_fn(net(xb).float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            total_loss, batches, seen = total_loss + loss.item(), batches + 1, seen + len(yb)
        busy += time.perf_counter() - started

        val_pred = predict_logits(net, X_val, device).argmax(axis=1) - 1
        val_f1 = float(f1_score(y_val, val_pred, labels=CLASSES, average="macro",
                                zero_division=0))
        history.epochs.append({"epoch": epoch, "train_loss": total_loss / max(batches, 1),
                               "val_macro_f1": val_f1})
        if val_f1 > history.best_val_macro_f1:
            history.best_epoch, history.best_val_macro_f1, stale = epoch, val_f1, 0
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
        if checkpoint_path is not None:
            torch.save({"net": net.state_dict(), "optimizer": optimizer.state_dict(),
                        "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                        "history": history, "best_state": best_state, "stale": stale,
                        "epoch": epoch}, checkpoint_path)
        if stale >= config.patience:
            break

    if best_state is not None:
        net.load_state_dict(best_state)
    history.samples_per_second = seen / busy if busy > 0 else 0.0
    return history


class TorchForecaster:
    """DeepLOB (input: book windows, (n, T, levels*4)) or MLP (input: scaled features)
    behind fit / predict_proba. Probabilities are corrected back to the true class
    frequencies when a weighted loss or the balanced sampler skewed them in training."""

    own_decision_rule = False

    def __init__(self, config: TrainConfig, checkpoint_path: Path | None = None,
                 progress: bool = False) -> None:
        self.config = config
        self.input_kind = "sequence" if config.model == "deeplob" else "features"
        self.checkpoint_path = checkpoint_path
        self.progress = progress

    def build_net(self, n_features: int) -> nn.Module:
        if self.config.model == "deeplob":
            return DeepLOB(levels=n_features // 4)
        return MLP(n_features, hidden=self.config.hidden)

    def fit(self, X: Any, y: np.ndarray, X_val: Any = None,
            y_val: np.ndarray | None = None) -> TorchForecaster:
        seed_everything(self.config.seed)
        self.n_features_ = int(X.shape[-1])
        self.net_ = self.build_net(self.n_features_)
        if X_val is None or y_val is None:
            X_val, y_val = X, y
        self.history_ = train_network(self.net_, X, y, X_val, y_val, self.config,
                                      self.checkpoint_path, self.progress)
        self.net_.to("cpu")
        counts = np.bincount(to_index(y), minlength=3).astype(float)
        prior = counts / max(counts.sum(), 1.0)
        if self.config.sampler == "balanced":
            self.prior_ratio_ = prior * 3.0
        elif self.config.loss in ("weighted-ce", "focal"):
            self.prior_ratio_ = 1.0 / balanced_class_weights(to_index(y))
        else:
            self.prior_ratio_ = np.ones(3)
        self.classes_ = CLASSES
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        device = choose_device(self.config.device if self.config.device != "cuda" else "auto")
        self.net_.to(device)
        logits = predict_logits(self.net_, X, device, batch_size=max(self.config.batch_size,
                                                                       256))
        self.net_.to("cpu")
        proba = torch.softmax(torch.from_numpy(logits), dim=1).numpy().astype(np.float64)
        return correct_priors(proba, self.prior_ratio_)

    def state(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "n_features": self.n_features_,
                "net": self.net_.state_dict(), "prior_ratio": self.prior_ratio_.tolist(),
                "history": self.history_.__dict__}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TorchForecaster:
        self = cls(TrainConfig.from_dict(state["config"]))
        self.n_features_ = state["n_features"]
        self.net_ = self.build_net(self.n_features_)
        self.net_.load_state_dict(state["net"])
        self.prior_ratio_ = np.asarray(state["prior_ratio"])
        self.history_ = TrainHistory(**state["history"])
        self.classes_ = CLASSES
        return self
