"""Patch masks for masked image modeling: paired asymmetric (VMIM), symmetric (same mask) and single (MAE).

A mask is given by the indices of the *visible* patches, ``keep: LongTensor (N, K)``, sorted ascending so that the
encoder sees its tokens in raster order. ``K = round(num_patches * (1 - mask_ratio))``.
"""

from __future__ import annotations

import torch

MASK_MODES = ("asymmetric", "symmetric", "single")


def num_visible(num_patches: int, mask_ratio: float) -> int:
    """Visible patches per image: ``round(num_patches * (1 - mask_ratio))`` (at least 1)."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return max(1, round(num_patches * (1.0 - mask_ratio)))


def _permutations(n: int, num_patches: int, generator: torch.Generator | None) -> torch.Tensor:
    # argsort of uniform noise = one uniform random permutation per row (the MAE trick, batched).
    return torch.argsort(torch.rand(n, num_patches, generator=generator), dim=1)


def random_masks(n: int, num_patches: int, mask_ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random visible set per image (MAE). Returns ``keep: LongTensor (n, K)``, rows sorted."""
    k = num_visible(num_patches, mask_ratio)
    return _permutations(n, num_patches, generator)[:, :k].sort(dim=1).values


def paired_asymmetric_masks(
    n: int,
    num_patches: int,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    mask_ratio_b: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint visible sets per image: ``π[:Ka]`` for branch A (RGB) and ``π[Ka:Ka+Kb]`` for branch B (view).

    Returns ``(keep_a, keep_b)``, LongTensors ``(n, Ka)`` and ``(n, Kb)`` with ``Ka = round(L * (1 - mask_ratio))``
    and ``Kb`` the same for ``mask_ratio_b`` (default: ``mask_ratio``), each row sorted ascending; row ``i`` of
    ``keep_a`` and row ``i`` of ``keep_b`` share no index. Disjoint sets need ``Ka + Kb <= L``, i.e.
    ``mask_ratio + mask_ratio_b >= 1`` (``mask_ratio >= 0.5`` with one ratio).
    """
    ratio_b = mask_ratio if mask_ratio_b is None else mask_ratio_b
    if mask_ratio + ratio_b < 1.0:
        raise ValueError(
            "paired asymmetric masks need mask ratios that sum to at least 1 so the two visible sets can be disjoint "
            f"(mask_ratio >= 0.5 with one ratio), got {mask_ratio} and {ratio_b}"
        )
    k_a, k_b = num_visible(num_patches, mask_ratio), num_visible(num_patches, ratio_b)
    if k_a + k_b > num_patches:  # rounding at exactly 0.5 with an odd patch count
        raise ValueError(f"cannot draw disjoint sets of {k_a} and {k_b} visible patches out of {num_patches}")
    perm = _permutations(n, num_patches, generator)
    return perm[:, :k_a].sort(dim=1).values, perm[:, k_a : k_a + k_b].sort(dim=1).values


def make_masks(
    mode: str,
    n: int,
    num_patches: int,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    mask_ratio_b: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks for one of :data:`MASK_MODES`; ``single`` and ``symmetric`` return the same mask twice.

    ``mask_ratio_b`` (asymmetric only): the view branch's own ratio; ``None`` = ``mask_ratio``.
    """
    if mode == "asymmetric":
        return paired_asymmetric_masks(n, num_patches, mask_ratio, generator, mask_ratio_b)
    if mask_ratio_b is not None and mask_ratio_b != mask_ratio:
        raise ValueError(f"a separate view-branch mask ratio needs mask mode asymmetric, got {mode!r}")
    if mode in ("symmetric", "single"):
        keep = random_masks(n, num_patches, mask_ratio, generator)
        return keep, keep.clone()
    raise ValueError(f"unknown mask mode {mode!r}; valid modes: {MASK_MODES}")


def keep_to_mask(keep: torch.Tensor, num_patches: int) -> torch.Tensor:
    """Visible indices ``(N, K)`` -> float mask ``(N, L)`` with 1 on *masked* (hidden) patches, 0 on visible ones."""
    mask = torch.ones(keep.shape[0], num_patches, device=keep.device)
    mask.scatter_(1, keep, 0.0)
    return mask
