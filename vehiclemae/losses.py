"""Reconstruction and distillation losses of VehicleMAE.

Identity-related region reconstruction: losses count only on masked patches, each weighted by its vehicle
(foreground) fraction, floored at ``fg_floor`` so background patches count little (``fg_floor=1`` gives plain MAE).
Losses are normalised per image and then averaged over the batch, so the loss of a batch split over processes
(DDP averages gradients) equals the loss of the whole batch on one process.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def patch_weights(fg_fraction: torch.Tensor, fg_floor: float) -> torch.Tensor:
    """Per-patch weight ``max(fg_fraction, fg_floor)``: ``(N, L)`` -> ``(N, L)``."""
    if not 0.0 <= fg_floor <= 1.0:
        raise ValueError(f"fg_floor must be in [0, 1], got {fg_floor}")
    return fg_fraction.clamp(min=fg_floor)


def weighted_masked_mean(per_patch: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum(l * m * w) / sum(m * w)`` per image, then the mean over images. All inputs ``(N, L)``; returns ``()``."""
    w = mask * weight
    return ((per_patch * w).sum(1) / w.sum(1).clamp(min=1e-6)).mean()


def rgb_per_patch(pred: torch.Tensor, target: torch.Tensor, norm_pix: bool = True) -> torch.Tensor:
    """Mean squared error per patch. ``pred``, ``target``: ``(N, L, p*p*3)`` -> ``(N, L)``.

    With ``norm_pix`` every target patch is normalised by its own mean and variance (MAE's better-performing target).
    """
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6) ** 0.5
    return ((pred.float() - target.float()) ** 2).mean(dim=-1)


def view_per_patch(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Pixel cross-entropy averaged per patch. ``logits (N, L, p*p*C)``, ``labels (N, L, p*p)`` -> ``(N, L)``.

    Logits are laid out like :func:`~vehiclemae.models.mae.patchify` output: ``(p, p, C)`` per patch.
    """
    n, length, pp = labels.shape
    # Classes on dim 1 of a (patches, C, pixels) view: PyTorch's class-dim log-softmax then runs over the pixels
    # in vector lanes, about 4x faster than one 5-7-wide softmax per pixel row of an (N*L*p*p, C) matrix.
    logits = logits.float().reshape(n * length, pp, num_classes).transpose(1, 2)
    ce = F.cross_entropy(logits, labels.reshape(n * length, pp), reduction="none")
    return ce.reshape(n, length, pp).mean(dim=-1)


def distill_cosine(student: torch.Tensor, teacher: torch.Tensor, center: bool = True) -> torch.Tensor:
    """``1 - cos(student, stopgrad(teacher))`` averaged over tokens and images. ``(N, K, D)`` each -> ``()``.

    ``center`` subtracts each image's mean token from both sides first, so that only the tokens' structure relative
    to each other is matched. Without it the loss has a trivial minimum — every token of both encoders pointing in
    one shared direction (a final-LayerNorm bias suffices) — and on the toy world the encoders collapse to it.
    """
    student, teacher = student.float(), teacher.detach().float()
    if center:
        student = student - student.mean(dim=1, keepdim=True)
        teacher = teacher - teacher.mean(dim=1, keepdim=True)
    return (1.0 - F.cosine_similarity(student, teacher, dim=-1, eps=1e-6)).mean()
