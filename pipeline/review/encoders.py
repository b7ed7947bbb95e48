"""Image encoders for the identity-consistency check, chosen by name (:data:`ENCODERS`).

Every encoder maps RGB uint8 images to L2-normalised embeddings, so a dot product is a cosine similarity.

- ``clip`` (paper profile): the vision tower of a CLIP model loaded from a local folder with transformers
  (``CLIPVisionModelWithProjection`` + ``CLIPImageProcessor``, ``local_files_only``; never downloaded). The
  folder is what ``save_pretrained`` writes, e.g. a local copy of ``openai/clip-vit-base-patch16``.
- ``colour_histogram`` (toy profile): a deterministic, weight-free encoder: a joint RGB histogram (``bins``\\ ³ cells)
  weighted towards the image centre (the vehicle; the background is at the border), square-rooted so that the
  cosine of two embeddings is the Bhattacharyya coefficient of the two colour distributions. The toy world's
  identities differ by colour and parts, and a random tiny CLIP would score noise, so the toy profile uses this.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np


class ImageEncoder(Protocol):
    """``embed(images) -> (N, D)`` float32, rows L2-normalised. ``ref`` names the encoder in ``checks_ref``."""

    ref: str

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray: ...


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class ColourHistogramEncoder:
    """Centre-weighted joint RGB histogram, square-rooted and L2-normalised: ``(N, bins**3)``."""

    def __init__(self, bins: int = 8, sigma: float = 0.12) -> None:
        if bins < 2:
            raise ValueError(f"colour_histogram needs bins >= 2, got {bins}")
        self.bins, self.sigma = bins, sigma
        self.ref = f"colour_histogram:{bins}"

    def _one(self, image: np.ndarray) -> np.ndarray:
        img = np.asarray(image)[..., :3]
        h, w = img.shape[:2]
        # A Gaussian weight over the image (sigma as a fraction of each side): the vehicle is in the middle.
        yy = np.exp(-0.5 * ((np.arange(h) - (h - 1) / 2) / (self.sigma * h)) ** 2)
        xx = np.exp(-0.5 * ((np.arange(w) - (w - 1) / 2) / (self.sigma * w)) ** 2)
        weight = (yy[:, None] * xx[None, :]).ravel()
        q = (img.reshape(-1, 3).astype(np.int64) * self.bins) // 256
        cell = (q[:, 0] * self.bins + q[:, 1]) * self.bins + q[:, 2]
        return np.sqrt(np.bincount(cell, weights=weight, minlength=self.bins**3))

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if not len(images):
            return np.zeros((0, self.bins**3), np.float32)
        return _normalise(np.stack([self._one(img) for img in images]))


class ClipVisionEncoder:
    """The projected image embedding of a local CLIP vision tower (``CLIPVisionModelWithProjection``)."""

    def __init__(self, path: str | Path, device: str = "cpu", batch_size: int = 32) -> None:
        import torch
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"no CLIP model folder at {path} (config.json missing); set review.checks.encoder_path to a local "
                "folder written by save_pretrained (models are never downloaded), or use encoder: colour_histogram"
            )
        self.torch = torch
        self.device, self.batch_size = device, batch_size
        self.model = CLIPVisionModelWithProjection.from_pretrained(path, local_files_only=True).to(device).eval()
        self.processor = CLIPImageProcessor.from_pretrained(path, local_files_only=True)
        digest = hashlib.sha256((path / "config.json").read_bytes()).hexdigest()[:12]
        self.ref = f"clip:{path.name}@{digest}"

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        dim = int(self.model.config.projection_dim)
        out = [np.zeros((0, dim), np.float32)]
        with self.torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = [np.asarray(img)[..., :3] for img in images[start : start + self.batch_size]]
                pixels = self.processor(images=chunk, return_tensors="pt")["pixel_values"].to(self.device)
                out.append(self.model(pixel_values=pixels).image_embeds.float().cpu().numpy())
        return _normalise(np.concatenate(out))


ENCODERS: dict[str, Callable[..., ImageEncoder]] = {
    "colour_histogram": lambda path=None, device="cpu", batch_size=32: ColourHistogramEncoder(),
    "clip": lambda path=None, device="cpu", batch_size=32: ClipVisionEncoder(_required(path), device, batch_size),
}


def _required(path: str | Path | None) -> str | Path:
    if not path:
        raise ValueError("review.checks.encoder 'clip' needs review.checks.encoder_path (a local CLIP model folder)")
    return path


def build_encoder(name: str, path: str | Path | None = None, device: str = "cpu", batch_size: int = 32) -> ImageEncoder:
    """The encoder registered as ``name``; the error lists the valid names."""
    try:
        factory = ENCODERS[name]
    except KeyError:
        raise KeyError(f"unknown review.checks.encoder {name!r}; valid encoders: {', '.join(ENCODERS)}") from None
    return factory(path=path, device=device, batch_size=batch_size)
