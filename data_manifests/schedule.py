"""One learning-rate schedule and one way to build optimiser parameter groups, for every trainer.

- :func:`warmup_cosine`: linear warmup, then a half-cosine down to ``min_lr``, at a position ``t`` counted in optimizer
  steps (SAM fine-tuning, DreamBooth) or in fractional epochs (pre-training, Re-ID fine-tuning), as in
  facebookresearch/mae ``util/lr_sched.py``. ``warmup_start=0`` starts the warmup at 0 (MAE, pre-training);
  ``warmup_start=1`` at ``1 / (warmup + 1)``, so the first step already learns (the fine-tuners).
  ``min_lr == lr`` makes it constant after the warmup (DreamBooth's ``constant_with_warmup``).
- :func:`lambda_schedule`: the same multiplier as a ``torch`` ``LambdaLR`` for loops that step a scheduler.
- :func:`param_groups`: timm's helpers (``param_groups_weight_decay``; ``param_groups_layer_decay`` with a layer
  decay), no weight decay on norms, biases, tokens and position embeddings; groups carry ``lr_scale``, which
  :func:`set_lr` applies.

torch and timm are imported when used, not with the package.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# Never decayed besides 1-D parameters (norms, biases): learned tokens and position embeddings.
NO_DECAY_PATTERNS = ("*cls_token", "*mask_token", "*pos_embed")


def warmup_cosine(
    t: float, *, total: float, warmup: float, lr: float = 1.0, min_lr: float = 0.0, warmup_start: float = 0.0
) -> float:
    """The learning rate at position ``t`` (steps or fractional epochs) of a run of ``total``.

    ``t < warmup``: ``lr * (t + warmup_start) / (warmup + warmup_start)``; then a half-cosine from ``lr`` at ``warmup``
    to ``min_lr`` at ``total`` (and ``min_lr`` after it). With the default ``lr=1`` it is a multiplier.
    """
    if t < warmup:
        return lr * (t + warmup_start) / (warmup + warmup_start)
    progress = min(1.0, (t - warmup) / max(total - warmup, 1e-8))
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lambda_schedule(
    optimizer: torch.optim.Optimizer, *, total: int, warmup: int, min_ratio: float = 0.0, warmup_start: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """:func:`warmup_cosine` per optimizer step as a ``LambdaLR`` (its state saves with the optimizer's)."""
    import torch

    def multiplier(step: int) -> float:
        return warmup_cosine(step, total=total, warmup=warmup, min_lr=min_ratio, warmup_start=warmup_start)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr to ``lr`` times its ``lr_scale`` (layer decay; 1 without)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def param_groups(
    model: torch.nn.Module,
    *,
    weight_decay: float,
    layer_decay: float | None = None,
    no_decay: Collection[str] = NO_DECAY_PATTERNS,
) -> list[dict[str, Any]]:
    """Optimiser parameter groups of ``model``'s trainable parameters (timm's helpers).

    No weight decay on 1-D parameters (norms, biases) and on names matching ``no_decay`` (fnmatch patterns).
    ``layer_decay``: layer-wise lr decay (BEiT / MAE fine-tuning): the parameters of layer ``i`` of ``L + 1`` (0 = the
    embeddings, the last = the final norm and the head) get ``lr_scale = layer_decay ** (L + 1 - i)``; the layers come
    from ``model.group_matcher`` (timm models; see :func:`prefixed_group_matcher` for a wrapper). ``None``: two groups.
    """
    from timm.optim import param_groups_layer_decay, param_groups_weight_decay

    if layer_decay is None:
        return param_groups_weight_decay(model, weight_decay, no_weight_decay_list=tuple(no_decay))
    return param_groups_layer_decay(
        model, weight_decay=weight_decay, no_weight_decay_list=tuple(no_decay), layer_decay=layer_decay
    )


MERGE_WITH_PREVIOUS = (99999,)  # timm's ordinal for "join the previous group" (a ViT's final norm -> the last block)


def prefixed_group_matcher(matcher: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A timm ``group_matcher`` dict of a sub-module, for its parent (parameter names start with ``prefix``), with
    MAE's layers (``util/lr_decay.py``): embeddings 0, block ``i`` ``i + 1``, and everything else (the final norm and
    the parent's head) one last layer, whose lr is not decayed. (timm itself puts a ViT's final norm with the last
    block.)

    ``{"stem": r"^cls_token|pos_embed", "blocks": [(r"^blocks\\.(\\d+)", None), (r"^norm", (99999,))]}`` with prefix
    ``"backbone."`` matches ``backbone.cls_token`` and ``backbone.blocks.3.*``; ``backbone.norm`` and names outside
    the sub-module match nothing, which puts them in the last group.
    """

    def wrap(pattern: str) -> str:
        body = pattern[1:] if pattern.startswith("^") else pattern
        return f"^{re.escape(prefix)}(?:{body})"

    out: dict[str, Any] = {}
    for key, value in matcher.items():
        if isinstance(value, str):
            out[key] = wrap(value)
        else:
            out[key] = [(wrap(pattern), order) for pattern, order in value if order != MERGE_WITH_PREVIOUS]
    return out
