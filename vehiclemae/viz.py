"""Reconstruction grids: input, both masks, RGB reconstruction, view-map reconstruction (and ground truth)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from data_manifests import atomic_write_bytes

from .data import DiffVERIDataset
from .engine.checkpoint import load_checkpoint
from .engine.pretrain import build_model_from_meta
from .masking import keep_to_mask
from .models.mae import patchify, unpatchify

# Colours of view classes (index 0 = background), enough for every class set.
PALETTE = np.array(
    [[20, 20, 20], [230, 60, 60], [60, 120, 230], [60, 200, 90], [240, 200, 40], [200, 90, 220], [120, 220, 220]],
    dtype=np.uint8,
)


def _to_uint8(chw: torch.Tensor, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    img = chw.float().numpy() * std + mean
    return (np.clip(img.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)


def _masked(img: np.ndarray, visible: np.ndarray, p: int) -> np.ndarray:
    """Grey out hidden patches; ``visible`` is ``(g, g)`` bool."""
    pix = np.kron(visible, np.ones((p, p), dtype=bool))
    out = img.copy()
    out[~pix] = (out[~pix] * 0.25 + 96).astype(np.uint8)
    return out


def probe_batch(dataset: DiffVERIDataset, n: int = 4) -> dict[str, torch.Tensor]:
    """``n`` evenly spaced items of ``dataset`` (as it is configured), stacked into a batch."""
    items = [dataset[int(i)] for i in np.linspace(0, len(dataset) - 1, min(n, len(dataset))).astype(int)]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


@torch.no_grad()
def render_reconstructions(
    model: torch.nn.Module,
    meta: dict,
    batch: dict[str, torch.Tensor],
    mean: np.ndarray,
    std: np.ndarray,
    title: str,
) -> bytes:
    """PNG bytes with one row per image: input | RGB mask | view mask | RGB recon | view recon | view target.

    ``batch``: items of a dataset with masks (``image``, ``labels``, ``fg``, ``keep_a``, ``keep_b``). The model is put
    in eval mode and back in its previous mode; nothing random is drawn here.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        inputs = [batch[k].to(device) for k in ("image", "labels", "fg", "keep_a", "keep_b")]
        _, parts = model(*inputs)
    finally:
        model.train(was_training)
    parts = {k: v.detach().cpu() for k, v in parts.items() if isinstance(v, torch.Tensor)}
    batch = dict(batch)
    if "keep_a" in parts:  # clmae: the masking module's mask (one branch: shown in both mask columns)
        batch["keep_a"] = batch["keep_b"] = parts["keep_a"]
    imgs = batch["image"]
    p = model.patch_size

    # RGB: undo the per-patch normalisation with the true patch statistics (as MAE's demo does), paste visible ones.
    target = patchify(imgs, p)
    pred = parts["pred_rgb"].float()
    if meta["norm_pix_loss"]:
        pred = pred * (target.var(-1, keepdim=True) + 1e-6) ** 0.5 + target.mean(-1, keepdim=True)
    mask_a = keep_to_mask(batch["keep_a"], model.num_patches)[..., None]
    recon = unpatchify(pred * mask_a + target * (1 - mask_a), p)
    g = model.rgb.grid
    n = len(imgs)
    columns = ["input", "RGB visible", "view visible", "RGB recon", "view recon", "view target"]
    fig, axes = plt.subplots(n, len(columns), figsize=(2 * len(columns), 2 * n), squeeze=False)
    for r in range(n):
        img = _to_uint8(imgs[r], mean, std)
        vis_a = (1 - keep_to_mask(batch["keep_a"][r : r + 1], g * g)[0]).bool().reshape(g, g).numpy()
        vis_b = (1 - keep_to_mask(batch["keep_b"][r : r + 1], g * g)[0]).bool().reshape(g, g).numpy()
        panels = [img, _masked(img, vis_a, p), _masked(img, vis_b, p), _to_uint8(recon[r], mean, std)]
        if "pred_view" in parts:
            c = meta["num_view_classes"]
            logits = parts["pred_view"][r : r + 1].float().reshape(1, g * g, p * p, c)
            classes = logits.argmax(-1).reshape(1, g * g, p * p).float()
            view_map = unpatchify(classes, p, channels=1)[0, 0].long().numpy()
            panels.append(PALETTE[view_map % len(PALETTE)])
        else:
            panels.append(np.zeros_like(img))
        panels.append(PALETTE[batch["labels"][r].numpy() % len(PALETTE)])
        for c_idx, panel in enumerate(panels):
            ax = axes[r, c_idx]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c_idx], fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def png_to_array(png: bytes) -> np.ndarray:
    """``(H, W, 3) uint8`` pixels of PNG bytes (what trackers take)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def reconstruction_grid(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    n: int = 4,
    seed: int = 0,
) -> Path:
    """Write a PNG with one row per image: input | RGB mask | view mask | RGB recon | view recon | view target."""
    ck = load_checkpoint(checkpoint)
    meta, cfg = ck["model_meta"], ck["config"]
    model = build_model_from_meta(meta)
    model.load_state_dict(ck["model"])
    data = cfg["data"]
    dataset = DiffVERIDataset(
        root or data["root"],
        table=data["table"],
        splits=data["splits"],
        img_size=meta["img_size"],
        view_classes=data["view_classes"],
        augment=False,
        seed=seed,
        patch_size=model.patch_size,
        mask_ratio=cfg["method"]["mask_ratio"],
        mask_mode="single" if meta["mode"] in ("mae", "cmae", "clmae") else cfg["method"]["mask_mode"],
    )
    batch = probe_batch(dataset, n)
    png = render_reconstructions(model, meta, batch, dataset.mean, dataset.std, f"{meta['mode']} — epoch {ck['epoch']}")
    out = Path(out)
    atomic_write_bytes(out, png)
    return out
