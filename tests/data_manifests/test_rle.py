from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from data_manifests import rle


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (31, 17), (64, 65), (129, 3)])
@pytest.mark.parametrize("density", [0.0, 0.1, 0.5, 1.0])
def test_parity_with_pycocotools(shape: tuple[int, int], density: float) -> None:
    rng = np.random.default_rng(hash((shape, density)) % 2**32)
    mask = rng.random(shape) < density
    ours = rle.encode(mask)
    theirs = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert ours["size"] == list(shape)
    assert ours["counts"].encode() == theirs["counts"]
    assert np.array_equal(rle.decode(ours), mask)
    assert rle.area(ours) == int(mask.sum())


def test_label_map_round_trip() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=(23, 41))
    rles = rle.label_map_to_rles(labels, ("background", "front", "rear", "side", "top"))
    assert len(rles) == 5
    assert np.array_equal(rle.rles_to_label_map(rles), labels)
    assert np.array_equal(rle.decode_many(rles).sum(0), np.ones_like(labels))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        rle.encode(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="size"):
        rle.decode({"counts": "0"})
