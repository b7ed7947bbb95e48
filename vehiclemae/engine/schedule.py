"""Pre-training's optimiser: AdamW over the shared parameter groups (:mod:`data_manifests.schedule`, which also holds
the learning-rate schedule)."""

from __future__ import annotations

import torch
from torch import nn

from data_manifests.schedule import param_groups


def build_optimizer(
    model: nn.Module, *, lr: float, weight_decay: float, betas: tuple[float, float]
) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (norms, biases, tokens and position embeddings excluded)."""
    return torch.optim.AdamW(param_groups(model, weight_decay=weight_decay), lr=lr, betas=tuple(betas))
