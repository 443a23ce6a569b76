"""The PyTorch training loop (one function, top to bottom) and the estimator wrapper
that gives the networks the same fit / predict_proba surface as LightGBM.

The weights kept are those of the epoch with the lowest validation log-loss of its
probabilities after the prior correction and a calibration fitted on validation (the
probabilities the rules will read): a proper score, which moves as soon as the network
ranks moves better, where the argmax's macro-F1 stays flat while every argmax is 'flat',
and which a weighted loss's growing over-confidence does not mistake for getting worse.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    WeightedRandomSampler,
)

from models.config import TrainConfig
from models.forecaster import (
    CLASSES,
    Calibration,
    correct_priors,
    to_index,
    training_prior_ratio,
)
from models.losses import loss_class_weights, make_loss
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


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed every generator. cuDNN autotunes its convolution algorithms (fastest on a GPU,
    not bit-reproducible) unless `deterministic`; the CPU path is deterministic either way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic


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


class DeviceBatches:
    """The inputs held on the device once, batches cut there: no host copy per step.

    X is an ndarray (n, F) or a SequenceView; for a view only its (N, F) rows travel and
    each batch's windows are gathered on the device, with the same float32 arithmetic as
    `SequenceView.__getitem__` (offset columns relative to the window's last row, missing
    values 0), so a batch equals the host's to the bit.
    """

    def __init__(self, X: Any, device: torch.device) -> None:
        from models.dataset import SequenceView

        self.view = isinstance(X, SequenceView)
        values = X.values if self.view else X
        self.values = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).to(device)
        if self.view:
            self.ends = torch.from_numpy(np.asarray(X.ends, dtype=np.int64)).to(device)
            self.steps = torch.arange(-(X.window - 1), 1, device=device)
            self.offset = self.columns = None
            if X.offset is not None and X.offset_columns is not None:
                self.offset = torch.from_numpy(
                    np.asarray(X.offset, dtype=np.float32)).to(device)
                self.columns = torch.from_numpy(np.asarray(X.offset_columns, bool)).to(device)

    @staticmethod
    def nbytes(X: Any) -> int:
        """Device bytes the inputs take: the rows of a view, not its windows."""
        from models.dataset import SequenceView

        values = X.values if isinstance(X, SequenceView) else X
        return int(np.prod(values.shape)) * 4 + (len(X) * 12 if isinstance(X, SequenceView)
                                                 else 0)

    @classmethod
    def fitting(cls, X: Any, device: torch.device) -> DeviceBatches | None:
        """Device-resident inputs when on CUDA and they take at most a quarter of the free
        memory (the rest is the network's activations); None: batches come from the host."""
        if device.type != "cuda" or not hasattr(X, "shape"):
            return None
        free, _ = torch.cuda.mem_get_info(device)
        return cls(X, device) if cls.nbytes(X) <= free // 4 else None

    def __len__(self) -> int:
        return len(self.ends) if self.view else len(self.values)

    def __getitem__(self, rows: torch.Tensor) -> torch.Tensor:
        if not self.view:
            return self.values[rows]
        ends = self.ends[rows]
        batch = self.values[ends[:, None] + self.steps]  # (B, T, F)
        if self.offset is not None:
            shift = torch.where(self.columns, self.offset[ends][:, None, None], 0.0)
            batch = batch - shift
        return torch.nan_to_num(batch, nan=0.0, posinf=0.0, neginf=0.0)


@dataclass
class TrainHistory:
    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_log_loss: float = float("inf")
    resumed_from_epoch: int | None = None
    samples_per_second: float = 0.0
    # the validation logits of the kept weights (not stored with the model)
    best_val_logits: np.ndarray | None = field(default=None, repr=False)


CPU_INFERENCE_BATCH = 64


def predict_logits(net: nn.Module, X: Any, device: torch.device, batch_size: int = 1024,
                   on_device: DeviceBatches | None = None) -> np.ndarray:
    """Logits of X in batches. On CUDA the inputs come from `on_device` when given, else
    from pinned host memory without blocking; the logits stay on the device until one copy
    at the end, so the loop never waits for the GPU."""
    net.eval()
    out = []
    cuda = device.type == "cuda"
    if not cuda and len(getattr(X, "shape", ())) >= 3:
        # CPU, book windows: DeepLOB's forward pass ran 2-2.7x faster per sample in batches
        # of 64 than of 256-1024 (its activations stay in cache): 756 against 385 and 284
        # samples/s on 2 cores. The logits agree to float rounding whatever the batching.
        batch_size = min(batch_size, CPU_INFERENCE_BATCH)
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                                         enabled=cuda):
        for start in range(0, len(X), batch_size):
            if on_device is not None:
                rows = torch.arange(start, min(start + batch_size, len(X)), device=device)
                xb = on_device[rows]
            else:
                xb = torch.from_numpy(np.asarray(X[start:start + batch_size],
                                                 dtype=np.float32))
                xb = (xb.pin_memory() if cuda else xb).to(device, non_blocking=True)
            out.append(net(xb).float())
    if not out:
        return np.zeros((0, 3), dtype=np.float32)
    return torch.cat(out).cpu().numpy()


def _epoch_batches(sampler: Any, batch_size: int, drop_last: bool,
                   device: torch.device) -> list[torch.Tensor]:
    """One epoch's batches of row indices, drawn as the DataLoader draws them (the same
    sampler through a BatchSampler), sent to the device in one copy."""
    rows = [i for batch in BatchSampler(sampler, batch_size, drop_last) for i in batch]
    order = torch.as_tensor(rows, dtype=torch.int64).to(device, non_blocking=True)
    return list(torch.split(order, batch_size))


def train_network(net: nn.Module, X: Any, y: np.ndarray, X_val: Any, y_val: np.ndarray,
                  config: TrainConfig, checkpoint_path: Path | None = None,
                  progress: bool = False) -> TrainHistory:
    """Train `net` on labels y (-1/0/+1); keep the weights with the lowest validation
    log-loss of the probabilities after `prior_ratio` (the undo of the run's reweighting).

    Imbalance: the loss is CE, class-weighted CE or focal (config.loss), and the sampler
    may draw training rows class-balanced (config.sampler); neither touches validation.
    A checkpoint is written after every epoch; if `checkpoint_path` exists the loop
    resumes from it (same config), so an interrupted run loses at most one epoch.

    On CUDA (the CPU path is the plain loop): inputs live on the device when they fit
    (`DeviceBatches`), else pinned batches copy without blocking; the losses add up on the
    device and are read once per epoch, so no step waits for the GPU; cuDNN autotunes
    unless `config.deterministic`; `config.compile` runs the network through
    torch.compile (state and checkpoints stay those of the plain module).
    """
    seed_everything(config.seed, config.deterministic)
    device = choose_device(config.device)
    net.to(device)
    model = torch.compile(net) if config.compile else net
    y_idx = to_index(y)
    weights = loss_class_weights(config.loss, y_idx)
    ratio = training_prior_ratio(y, weights, config.sampler == "balanced")
    loss_fn = make_loss(config.loss, weights, config.focal_gamma).to(device)
    # CUDA: one fused kernel for the whole update instead of one launch per tensor.
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay,
                                  fused=True if device.type == "cuda" else None)
    generator = torch.Generator().manual_seed(config.seed)
    if config.sampler == "balanced":  # rows drawn with probability 1/count(class)
        counts = np.bincount(y_idx, minlength=3).astype(float)
        sampler = WeightedRandomSampler(torch.as_tensor(1.0 / counts[y_idx]),
                                        num_samples=len(y_idx), replacement=True,
                                        generator=generator)
    else:
        sampler = RandomSampler(range(len(y_idx)), generator=generator)
    drop_last = len(y_idx) > config.batch_size
    loader = DataLoader(ArrayBatches(X, y_idx), batch_size=config.batch_size, sampler=sampler,
                        collate_fn=_whole_batch, pin_memory=device.type == "cuda",
                        drop_last=drop_last)
    train_on_device = DeviceBatches.fitting(X, device)
    val_on_device = DeviceBatches.fitting(X_val, device)
    y_on_device = torch.as_tensor(y_idx).to(device)

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
        model.train()
        started, seen_before = time.perf_counter(), seen
        # float64 on the device: the same sum as adding each step's loss as a Python float.
        total_loss, batches = torch.zeros((), dtype=torch.float64, device=device), 0
        if train_on_device is not None:
            steps = ((train_on_device[rows], y_on_device[rows]) for rows in
                     _epoch_batches(sampler, config.batch_size, drop_last, device))
        else:
            steps = loader
        for xb, yb in steps:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                                enabled=device.type == "cuda"):
                loss = loss_fn(model(xb).float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            total_loss += loss.detach()
            batches, seen = batches + 1, seen + len(yb)
        total_loss = float(total_loss.item())  # the epoch's one wait for the device
        took = time.perf_counter() - started
        busy += took

        val_logits = predict_logits(model, X_val, device, on_device=val_on_device)
        raw_loss, val_loss = validation_log_loss(val_logits, y_val, ratio)
        history.epochs.append({"epoch": epoch, "train_loss": total_loss / max(batches, 1),
                               "train_seconds": took, "train_samples": seen - seen_before,
                               "val_log_loss_uncalibrated": raw_loss,
                               "val_log_loss": val_loss})
        if val_loss < history.best_val_log_loss - 1e-9:
            history.best_epoch, history.best_val_log_loss, stale = epoch, val_loss, 0
            history.best_val_logits = val_logits
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


def probabilities(logits: np.ndarray, prior_ratio: np.ndarray) -> np.ndarray:
    """Softmax of the network's logits, mapped back to the true class frequencies."""
    proba = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
    return correct_priors(proba, prior_ratio)


def log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    p = proba[np.arange(len(y)), to_index(y)]
    return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0)))) if len(y) else 0.0


def validation_log_loss(logits: np.ndarray, y: np.ndarray, prior_ratio: np.ndarray
                        ) -> tuple[float, float]:
    """(log-loss after the prior correction, log-loss after calibrating that on y too)."""
    proba = probabilities(logits, prior_ratio)
    return log_loss(proba, y), log_loss(Calibration.fit(proba, y)(proba), y)


class TorchForecaster:
    """DeepLOB (input: book windows, (n, T, levels*4)) or MLP (input: scaled features)
    behind fit / predict_proba. Probabilities are corrected back to the true class
    frequencies when a weighted loss, the balanced sampler or both skewed them in
    training (`training_prior_ratio`)."""

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
        seed_everything(self.config.seed, self.config.deterministic)
        self.n_features_ = int(X.shape[-1])
        self.net_ = self.build_net(self.n_features_)
        if X_val is None or y_val is None:
            X_val, y_val = X, y
        self.history_ = train_network(self.net_, X, y, X_val, y_val, self.config,
                                      self.checkpoint_path, self.progress)
        self.net_.to("cpu")
        self.prior_ratio_ = training_prior_ratio(
            y, loss_class_weights(self.config.loss, to_index(y)),
            self.config.sampler == "balanced")
        self.classes_ = CLASSES
        # The kept weights already scored the validation rows: scoring reuses that pass
        # (on a CPU it was a third of DeepLOB's run time) instead of predicting them again.
        logits, self.history_.best_val_logits = self.history_.best_val_logits, None
        self.validation_proba_ = (None if logits is None
                                  else probabilities(logits, self.prior_ratio_))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        device = choose_device(self.config.device if self.config.device != "cuda" else "auto")
        self.net_.to(device)
        logits = predict_logits(self.net_, X, device, batch_size=max(self.config.batch_size,
                                                                       256))
        self.net_.to("cpu")
        return probabilities(logits, self.prior_ratio_)

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
