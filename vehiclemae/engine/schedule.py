"""Learning-rate schedule and optimiser parameter groups."""

from __future__ import annotations

import math

import torch
from timm.optim import param_groups_weight_decay
from torch import nn

# Never decayed besides norms and biases (1-D): learned tokens and position embeddings.
NO_DECAY_PATTERNS = ("*cls_token", "*mask_token", "*pos_embed")


def cosine_lr(epoch: float, *, lr: float, min_lr: float, warmup_epochs: float, epochs: int) -> float:
    """Per-iteration schedule at fractional ``epoch``: linear warmup, then half-cosine from ``lr`` to ``min_lr``."""
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    span = max(epochs - warmup_epochs, 1e-8)
    progress = min(1.0, (epoch - warmup_epochs) / span)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(
    model: nn.Module, *, lr: float, weight_decay: float, betas: tuple[float, float]
) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (norms, biases, tokens and position embeddings excluded)."""
    groups = param_groups_weight_decay(model, weight_decay, no_weight_decay_list=NO_DECAY_PATTERNS)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
