"""Joint geometric augmentation of an image, its view label map and its foreground mask.

The same random resized crop and horizontal flip are applied to all three; a flip swaps the ``left``/``right``
labels when the class set distinguishes them (a mirrored left side looks like a right side).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CropParams:
    """A crop box ``(x0, y0, x1, y1)`` in source pixels and whether to flip the result horizontally."""

    box: tuple[float, float, float, float]
    flip: bool


def sample_crop(
    rng: np.random.Generator,
    width: int,
    height: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    hflip: float,
) -> CropParams:
    """torchvision's RandomResizedCrop box sampling (10 tries, then a centre crop), driven by a numpy generator."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    box = None
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = math.sqrt(target * aspect)
        h = math.sqrt(target / aspect)
        if 0 < w <= width and 0 < h <= height:
            x0 = rng.uniform(0, width - w)
            y0 = rng.uniform(0, height - h)
            box = (x0, y0, x0 + w, y0 + h)
            break
    if box is None:  # fall back to the largest centred crop within the ratio range
        in_ratio = width / height
        if in_ratio < ratio[0]:
            w, h = width, width / ratio[0]
        elif in_ratio > ratio[1]:
            w, h = height * ratio[1], height
        else:
            w, h = width, height
        box = ((width - w) / 2, (height - h) / 2, (width + w) / 2, (height + h) / 2)
    return CropParams(box=box, flip=bool(rng.random() < hflip))


def apply_joint(
    image: Image.Image,
    labels: np.ndarray,
    fg: np.ndarray,
    params: CropParams | None,
    size: int,
    flip_lut: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop+resize (one PIL call each), then flip; ``params=None`` resizes the whole image.

    Returns image ``(size, size, 3) uint8``, labels ``(size, size) int64``, fg ``(size, size) float32``.
    """
    box = params.box if params is not None else (0.0, 0.0, float(image.width), float(image.height))
    img = np.asarray(image.resize((size, size), Image.BICUBIC, box=box))
    # Labels and masks: nearest neighbour so classes never blend.
    lab = np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((size, size), Image.NEAREST, box=box))
    fgm = np.asarray(Image.fromarray(fg.astype(np.uint8) * 255).resize((size, size), Image.NEAREST, box=box)) > 127
    lab = lab.astype(np.int64)
    if params is not None and params.flip:
        img, lab, fgm = img[:, ::-1], lab[:, ::-1], fgm[:, ::-1]
        if flip_lut is not None:
            lab = flip_lut[lab]
    return np.ascontiguousarray(img), np.ascontiguousarray(lab), np.ascontiguousarray(fgm, dtype=np.float32)


def flip_lut_for(classes: tuple[str, ...]) -> np.ndarray | None:
    """Label permutation applied on a horizontal flip (``left`` <-> ``right``), or None when nothing swaps."""
    if "left" in classes and "right" in classes:
        lut = np.arange(len(classes), dtype=np.int64)
        i, j = classes.index("left"), classes.index("right")
        lut[i], lut[j] = j, i
        return lut
    return None
