"""CMAE's two views of one item: the online view and a pixel-shifted, colour-augmented target view.

As in CMAE's reference data pipeline, each item is first rendered as a *master* image ``shift`` pixels larger than the
model size (the same random resized crop and flip as every mode, just rendered at ``S + shift``); the online view is
its top-left ``S x S`` window (with the labels and foreground cut alike) and the target view the window moved by
``(dy, dx)``, each uniform in ``0..shift``. The target alone then gets the reference's colour augmentation: colour
jitter (brightness, contrast, saturation 0.4, hue 0.1, random order) with probability 0.8, grayscale 0.2, Gaussian
blur 0.5 (sigma 0.1-2.0 at 224 px, scaled with the image size). The shift and colour draws come from their own
generator ``(seed, epoch, index, 1)``, so items stay a pure function of ``(seed, epoch, index)``. Without
augmentation (the collapse probe, ``viz-recon``) items are those of :class:`~vehiclemae.data.DiffVERIDataset`.

Extra item key: ``image_t float32 (3, S, S)``, normalised like ``image``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from data_manifests import seeds

from .diffveri import DiffVERIDataset


def color_augment(img: torch.Tensor, rng: np.random.Generator, blur_scale: float = 1.0) -> torch.Tensor:
    """The reference's target-view colour augmentation on ``img (3, S, S)`` in [0, 1], drawn from ``rng``."""
    if rng.random() < 0.8:
        ops = [
            (TF.adjust_brightness, rng.uniform(0.6, 1.4)),
            (TF.adjust_contrast, rng.uniform(0.6, 1.4)),
            (TF.adjust_saturation, rng.uniform(0.6, 1.4)),
            (TF.adjust_hue, rng.uniform(-0.1, 0.1)),
        ]
        for k in rng.permutation(len(ops)):
            fn, factor = ops[int(k)]
            img = fn(img, float(factor))
    if rng.random() < 0.2:
        img = TF.rgb_to_grayscale(img, num_output_channels=3)
    if rng.random() < 0.5:
        sigma = float(rng.uniform(0.1, 2.0)) * blur_scale
        kernel = min(2 * math.ceil(3 * sigma) + 1, img.shape[-1] - (1 - img.shape[-1] % 2))
        img = TF.gaussian_blur(img, [kernel, kernel], [sigma, sigma])
    return img.clamp(0.0, 1.0)


class ShiftedViewDataset(DiffVERIDataset):
    """:class:`DiffVERIDataset` whose augmented items also hold CMAE's target view ``image_t``.

    ``shift``: the largest shift in pixels at the model size (CMAE: 31 at 224); ``color``: colour-augment the target.
    """

    def __init__(self, *args: Any, shift: int, color: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if shift < 0:
            raise ValueError(f"shift must be >= 0 pixels, got {shift}")
        self.shift, self.color = int(shift), color
        self.size = self.img_size

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not self.augment:
            return super().__getitem__(i)
        # 1. The master item: the parent's crop and flip rendered `shift` pixels larger (its masks use the model grid).
        self.img_size = self.size + self.shift
        try:
            master = super().__getitem__(i)
        finally:
            self.img_size = self.size
        s = self.size
        # 2. Online view: the top-left window; target view: the window shifted by (dy, dx).
        rng = seeds.rng(self.seed, "pretrain.shifted.item", self.epoch, i)
        dy, dx = (int(v) for v in rng.integers(0, self.shift + 1, size=2))
        item = {**master, "image": master["image"][:, :s, :s].contiguous()}
        item["labels"], item["fg"] = master["labels"][:s, :s].contiguous(), master["fg"][:s, :s].contiguous()
        target = master["image"][:, dy : dy + s, dx : dx + s]
        if self.color:
            mean, std = torch.from_numpy(self.mean), torch.from_numpy(self.std)
            target = (color_augment(target * std + mean, rng, blur_scale=s / 224) - mean) / std
        item["image_t"] = target.contiguous()
        return item
