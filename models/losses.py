"""Losses for heavy class imbalance: weighted cross-entropy and focal loss.

Cross-entropy, weighted or not, is a proper scoring rule: the prior correction of
`models.forecaster.training_prior_ratio` undoes its weights exactly. Focal loss is not
(it rewards under-confidence on easy rows); its probabilities rest on the calibration
fitted on validation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from models.forecaster import balanced_class_weights


class FocalLoss(nn.Module):
    """Lin et al. (2017): cross-entropy scaled by (1 - p_true)^gamma, so the many easy
    'flat' rows stop dominating the gradient; `alpha` are optional class weights."""

    def __init__(self, gamma: float = 2.0, alpha: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("alpha", alpha if alpha is not None else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = functional.log_softmax(logits.float(), dim=1)
        log_p_true = log_p.gather(1, target[:, None]).squeeze(1)
        loss = -((1.0 - log_p_true.exp()) ** self.gamma) * log_p_true
        if self.alpha is not None:
            loss = loss * self.alpha[target]
        return loss.mean()


def loss_class_weights(name: str, y_index: np.ndarray) -> np.ndarray | None:
    """The class weights loss `name` applies: balanced ones for 'weighted-ce' and 'focal'
    (its alpha), none for plain 'ce'."""
    return None if name == "ce" else balanced_class_weights(y_index)


def make_loss(name: str, class_weights: np.ndarray | None, gamma: float = 2.0) -> nn.Module:
    """'ce', 'weighted-ce' (balanced class weights) or 'focal' (with the same weights)."""
    weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
    if name == "ce":
        return nn.CrossEntropyLoss()
    if name == "weighted-ce":
        return nn.CrossEntropyLoss(weight=weight)
    if name == "focal":
        return FocalLoss(gamma=gamma, alpha=weight)
    raise ValueError(f"unknown loss {name}")
