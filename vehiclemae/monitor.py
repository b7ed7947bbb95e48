"""Collapse monitoring during pre-training: feature spread of the encoders on a fixed probe set of training images.

After every epoch each encoder (``rgb``, and ``view`` in ``vmim``/``vehiclemae`` modes) is run in eval mode, without
masking, on the same probe images (chosen once from ``(seed, "probe")``; the dataset's image resized to the model
size, no crop, no flip). From its final normed tokens ``(N, T, D)`` (``forward_features``, class token included):

* ``token_std``: per token position and channel the std across the N images, averaged over positions and channels;
* ``pooled_std``: the same for the mean-pooled patch-token feature ``(N, D)`` (prefix tokens excluded), averaged
  over channels;
* ``effective_rank`` of the mean-pooled features: ``exp(H(p))`` with ``p`` the singular values of the centred
  ``(N, D)`` matrix normalised to sum 1 (Roy & Vetterli, 2007); 1 for rank-1 features, up to ``min(N - 1, D)``.
  Singular values below the float32 rounding level of the features count as zero; all-zero gives 0.

A collapse is flagged (a ``logging`` warning; ``probe_<branch>_collapse`` in the epoch record) when the effective rank
is below ``min_effective_rank`` (2: the images spread along at most about one direction) or ``token_std`` fell below
``min_std_ratio`` (0.1) times its value at the first probed epoch (the reference, kept in the checkpoint).

Nothing here draws from the global python/numpy/torch random streams, the forward runs under ``inference_mode`` and
the encoders' train/eval mode is restored, so training with the monitor on is bit-identical to training with it off.
Cost and the values seen on the toy world: ``docs/vehiclemae.md``, "Collapse monitoring".
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from data_manifests import seeds

log = logging.getLogger(__name__)


def select_probe(n_items: int, size: int, seed: int) -> np.ndarray:
    """Sorted indices of ``min(size, n_items)`` distinct items, a pure function of ``(n_items, size, seed)``."""
    rng = seeds.rng(seed, "monitor.probe")
    return np.sort(rng.choice(n_items, size=min(size, n_items), replace=False))


def effective_rank(features: torch.Tensor) -> float:
    """Roy & Vetterli's effective rank of ``features (N, D)`` after centring over the N rows (see module docstring)."""
    x = features.detach().double()
    scale = float(x.abs().max()) if x.numel() else 0.0
    s = torch.linalg.svdvals(x - x.mean(0, keepdim=True))
    s = s[s > max(x.shape) * torch.finfo(torch.float32).eps * scale]
    if s.numel() == 0:
        return 0.0
    p = s / s.sum()
    return float(math.exp(-(p * p.log()).sum()))


@torch.inference_mode()
def encoder_stats(encoder: nn.Module, images: torch.Tensor, batch_size: int = 128) -> dict[str, float]:
    """``token_std``, ``pooled_std``, ``effective_rank`` of a timm ViT on ``images (N, 3, H, W)`` (eval, no mask)."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    try:
        tokens = torch.cat(
            [
                encoder.forward_features(images[i : i + batch_size].to(device)).float().cpu()
                for i in range(0, len(images), batch_size)
            ]
        )  # (N, T, D)
    finally:
        encoder.train(was_training)
    pooled = tokens[:, getattr(encoder, "num_prefix_tokens", 1) :].mean(1)  # (N, D)
    return {
        "token_std": float(tokens.std(0).mean()),
        "pooled_std": float(pooled.std(0).mean()),
        "effective_rank": effective_rank(pooled),
    }


class CollapseMonitor:
    """Probe statistics per epoch and the collapse rule; ``state_dict`` holds the reference (first probed epoch)."""

    def __init__(
        self,
        images: torch.Tensor,
        *,
        min_effective_rank: float = 2.0,
        min_std_ratio: float = 0.1,
        batch_size: int = 128,
    ) -> None:
        if len(images) < 2:
            raise ValueError(f"the collapse probe needs at least 2 images, got {len(images)}")
        self.images = images
        self.min_effective_rank = min_effective_rank
        self.min_std_ratio = min_std_ratio
        self.batch_size = batch_size
        self.reference: dict[str, float] = {}  # branch -> token_std at the first probed epoch

    def measure(self, encoders: dict[str, nn.Module], epoch: int) -> dict[str, Any]:
        """``probe_<branch>_<stat>`` for every encoder, ``probe_<branch>_collapse`` flags and ``probe_seconds``;
        logs a warning per collapsed encoder."""
        t0 = time.perf_counter()
        record: dict[str, Any] = {}
        for branch, encoder in encoders.items():
            stats = encoder_stats(encoder, self.images, self.batch_size)
            reference = self.reference.setdefault(branch, stats["token_std"])
            reasons = []
            if stats["effective_rank"] < self.min_effective_rank:
                reasons.append(f"effective rank {stats['effective_rank']:.3g} < {self.min_effective_rank:g}")
            if stats["token_std"] < self.min_std_ratio * reference:
                reasons.append(
                    f"token_std {stats['token_std']:.3g} < {self.min_std_ratio:g} x its first-epoch value "
                    f"{reference:.3g}"
                )
            if reasons:
                log.warning(
                    "epoch %d: the %s encoder looks collapsed on the %d probe images (%s): its features hardly "
                    "differ between images. See docs/vehiclemae.md, 'Collapse monitoring' (e.g. lower "
                    "method.ppmd_weight or optim.blr).",
                    epoch,
                    branch,
                    len(self.images),
                    "; ".join(reasons),
                )
            record.update({f"probe_{branch}_{k}": v for k, v in stats.items()})
            record[f"probe_{branch}_collapse"] = bool(reasons)
        record["probe_seconds"] = time.perf_counter() - t0
        return record

    def state_dict(self) -> dict[str, Any]:
        return {"reference": dict(self.reference)}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        self.reference = dict((state or {}).get("reference", {}))
