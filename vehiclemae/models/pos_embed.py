"""Fixed 2-D sine-cosine position embeddings (as in MAE), used to initialise encoders and for decoders."""

from __future__ import annotations

import numpy as np
import torch


def _1d(dim: int, pos: np.ndarray) -> np.ndarray:
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim: int, grid: int, cls_token: bool = True) -> torch.Tensor:
    """``(1, grid*grid [+1], dim)`` float32 embedding; the class token (first row) gets zeros."""
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs an embedding width divisible by 4, got {dim}")
    gh, gw = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64), indexing="ij")
    emb = np.concatenate([_1d(dim // 2, gh), _1d(dim // 2, gw)], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros((1, dim)), emb], axis=0)
    return torch.from_numpy(emb).float().unsqueeze(0)
