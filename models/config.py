"""Training configuration: one plain dataclass, stored whole in every run's run.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bookcast.errors import UserError

MODELS = ("logistic", "lightgbm", "mlp", "deeplob")
LOSSES = ("ce", "weighted-ce", "focal")
SAMPLERS = ("none", "balanced")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    model: str = "lightgbm"
    horizon_ns: int = 10_000_000_000
    feature_set: str = "default"
    venue: str | None = None
    symbol: str | None = None
    fee_bps: float | None = None          # labels, rules and scores; None: the features' fee
    latency_ns: int | None = None         # the trading policy's order latency; None: a snapshot
    loss: str = "weighted-ce"             # PyTorch models; LightGBM uses class weights
    sampler: str = "none"
    device: str = "auto"
    epochs: int = 20
    seed: int = 0
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    patience: int = 4                     # epochs without a better validation log-loss
    focal_gamma: float = 2.0
    window: int = 100                     # DeepLOB: snapshots per input window
    levels: int = 10                      # DeepLOB: book levels per side (40 values)
    hidden: int = 128                     # MLP width
    lgbm_rounds: int = 500
    lgbm_leaves: int = 15
    lgbm_learning_rate: float = 0.05
    lgbm_early_stopping: int = 30
    monotone: bool = False                # LightGBM: p_up non-decreasing in bid pressure
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    max_train_rows: int | None = None     # cap for quick runs; keeps the latest rows
    deterministic: bool = False           # CUDA: fixed cuDNN algorithms instead of autotuning
    compile: bool = False                 # PyTorch models: torch.compile the network
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> TrainConfig:
        for name, value, allowed in (("model", self.model, MODELS), ("loss", self.loss, LOSSES),
                                     ("sampler", self.sampler, SAMPLERS),
                                     ("device", self.device, DEVICES)):
            if value not in allowed:
                raise UserError(
                    f"Unknown {name} '{value}'; choose one of: {', '.join(allowed)}."
                )
        if self.epochs < 1:
            raise UserError(f"--epochs must be at least 1, not {self.epochs}.")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, not {self.batch_size}.")
        if self.horizon_ns <= 0:
            raise UserError("The horizon must be positive.")
        if self.fee_bps is not None and self.fee_bps < 0:
            raise UserError(f"The fee {self.fee_bps} bps is negative; fees are zero or more.")
        if self.latency_ns is not None and self.latency_ns < 0:
            raise UserError(f"The latency {self.latency_ns} ns is negative; it is zero or more.")
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fractions"] = list(self.fractions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "fractions" in known:
            known["fractions"] = tuple(known["fractions"])
        return cls(**known)
