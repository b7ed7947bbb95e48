from __future__ import annotations

import pytest
import torch

from vehiclemae.masking import keep_to_mask, make_masks, num_visible, paired_asymmetric_masks


@pytest.mark.parametrize("num_patches,ratio", [(64, 0.75), (196, 0.75), (49, 0.5), (256, 0.9), (10, 0.6)])
def test_paired_masks_disjoint_sorted_right_size(num_patches: int, ratio: float) -> None:
    g = torch.Generator().manual_seed(0)
    keep_a, keep_b = paired_asymmetric_masks(16, num_patches, ratio, generator=g)
    k = round(num_patches * (1 - ratio))
    assert keep_a.shape == keep_b.shape == (16, k)
    assert keep_a.dtype == keep_b.dtype == torch.long
    for a, b in zip(keep_a.tolist(), keep_b.tolist()):
        assert not set(a) & set(b)
        assert a == sorted(a) and b == sorted(b)
        assert len(set(a)) == len(set(b)) == k
        assert 0 <= min(a + b) and max(a + b) < num_patches


def test_paired_masks_reproducible_and_varied() -> None:
    a1, b1 = paired_asymmetric_masks(4, 64, 0.75, torch.Generator().manual_seed(3))
    a2, b2 = paired_asymmetric_masks(4, 64, 0.75, torch.Generator().manual_seed(3))
    assert torch.equal(a1, a2) and torch.equal(b1, b2)
    assert not torch.equal(a1[0], a1[1])  # each image gets its own permutation


def test_paired_masks_reject_low_ratio() -> None:
    with pytest.raises(ValueError, match="mask_ratio >= 0.5"):
        paired_asymmetric_masks(2, 64, 0.4)


def test_symmetric_and_single_modes_share_the_mask() -> None:
    for mode in ("symmetric", "single"):
        a, b = make_masks(mode, 3, 64, 0.3)
        assert torch.equal(a, b) and a.shape == (3, num_visible(64, 0.3))
    with pytest.raises(ValueError, match="valid modes"):
        make_masks("bogus", 1, 4, 0.5)


def test_keep_to_mask_marks_hidden_patches() -> None:
    keep = torch.tensor([[0, 2], [1, 3]])
    assert keep_to_mask(keep, 4).tolist() == [[0, 1, 0, 1], [1, 0, 1, 0]]
