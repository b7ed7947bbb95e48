"""evaluate_rank: parity with the per-query loop, protocol edge cases, and a hand-computed example."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vehiclemae.reid.metrics import (
    FeatureDistances,
    evaluate_rank,
    evaluate_rank_loop,
    pairwise_distance,
    summarize,
)


def _assert_same(a: dict, b: dict) -> None:
    assert a["num_valid_queries"] == b["num_valid_queries"]
    assert a["num_queries"] == b["num_queries"]
    np.testing.assert_allclose(a["mAP"], b["mAP"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(a["mINP"], b["mINP"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(a["cmc"], b["cmc"], rtol=0, atol=1e-12)
    assert a["cmc"].shape == b["cmc"].shape


def _problem(seed: int, q: int, g: int, ids: int, cams: int, integer: bool = False):
    rng = np.random.default_rng(seed)
    if integer:  # many exact ties: exercises the stable tie-break path
        dist = rng.integers(0, 5, size=(q, g)).astype(np.float32)
    else:
        dist = rng.random((q, g))
    return dist, rng.integers(0, ids, q), rng.integers(0, ids, g), rng.integers(0, cams, q), rng.integers(0, cams, g)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("integer", [False, True])
def test_parity_with_loop_random(seed: int, integer: bool) -> None:
    dist, qp, gp, qc, gc = _problem(seed, q=37, g=113, ids=12, cams=4, integer=integer)
    # Small chunks so several chunks (and a ragged last one) are exercised.
    _assert_same(
        evaluate_rank(dist, qp, gp, qc, gc, max_rank=20, chunk_elements=500),
        evaluate_rank_loop(dist, qp, gp, qc, gc, max_rank=20),
    )


@pytest.mark.parametrize("integer", [False, True])
def test_parity_when_rows_are_sorted_in_several_blocks_per_chunk(monkeypatch, integer: bool) -> None:
    from vehiclemae.reid import metrics

    dist, qp, gp, qc, gc = _problem(7, q=41, g=113, ids=9, cams=3, integer=integer)
    monkeypatch.setattr(metrics, "SORT_BLOCK_BYTES", 3 * 113 * dist.dtype.itemsize)  # 3 rows per sort block
    _assert_same(
        evaluate_rank(dist, qp, gp, qc, gc, max_rank=15, chunk_elements=113 * 10),
        evaluate_rank_loop(dist, qp, gp, qc, gc, max_rank=15),
    )


def test_queries_without_valid_match_are_skipped_and_counted() -> None:
    dist, qp, gp, qc, gc = _problem(1, q=20, g=60, ids=6, cams=3)
    qp[:5] = 999  # ids absent from the gallery
    gp[gp == qp[5]] = qp[5]
    gc[gp == qp[5]] = qc[5]  # every sample of query 5's id is on its camera -> all junk
    res = evaluate_rank(dist, qp, gp, qc, gc, max_rank=10)
    _assert_same(res, evaluate_rank_loop(dist, qp, gp, qc, gc, max_rank=10))
    assert res["num_valid_queries"] <= 14
    assert res["num_queries"] == 20


def test_all_junk_gallery_raises_a_clear_error() -> None:
    dist = np.random.default_rng(0).random((3, 5))
    pids = np.array([1, 1, 1])
    with pytest.raises(ValueError, match="none of the 3 queries has a true match"):
        evaluate_rank(dist, pids, np.ones(5), np.zeros(3), np.zeros(5))
    with pytest.raises(ValueError, match="none of the 3 queries"):
        evaluate_rank_loop(dist, pids, np.ones(5), np.zeros(3), np.zeros(5))


def test_max_rank_larger_than_gallery() -> None:
    dist, qp, gp, qc, gc = _problem(3, q=9, g=7, ids=3, cams=2)
    res = evaluate_rank(dist, qp, gp, qc, gc, max_rank=50)
    _assert_same(res, evaluate_rank_loop(dist, qp, gp, qc, gc, max_rank=50))
    assert res["cmc"].shape == (50,)
    assert res["cmc"][-1] == 1.0  # every valid query has its match somewhere in the short gallery
    assert np.all(np.diff(res["cmc"]) >= 0)


def test_hand_computed_example() -> None:
    # Query id 1 cam 0. Gallery (ascending distance): g0 id1 cam0 (junk), g1 id2, g2 id1 cam1, g3 id3, g4 id1 cam2.
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    res = evaluate_rank(dist, [1], [1, 2, 1, 3, 1], [0], [0, 1, 1, 1, 2], max_rank=4)
    # Kept ranking: g1 (miss), g2 (hit @2), g3 (miss), g4 (hit @4): AP = (1/2 + 2/4) / 2, INP = 2/4.
    assert res["mAP"] == pytest.approx(0.5)
    assert res["mINP"] == pytest.approx(0.5)
    np.testing.assert_allclose(res["cmc"], [0, 1, 1, 1])
    assert summarize(res)["Rank-1"] == 0.0


def test_ties_are_broken_by_gallery_index() -> None:
    dist = np.zeros((1, 3))
    res = evaluate_rank(dist, [5], [7, 5, 5], [0], [1, 1, 2], max_rank=3)
    np.testing.assert_allclose(res["cmc"], [0, 1, 1])  # the miss at index 0 comes first
    assert res["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_tensor_memmap_and_lazy_feature_inputs(tmp_path) -> None:
    rng = np.random.default_rng(4)
    qf, gf = torch.from_numpy(rng.normal(size=(15, 8))).float(), torch.from_numpy(rng.normal(size=(40, 8))).float()
    qp, gp, qc, gc = rng.integers(0, 5, 15), rng.integers(0, 5, 40), rng.integers(0, 3, 15), rng.integers(0, 3, 40)
    dist = pairwise_distance(qf, gf)
    ref = evaluate_rank_loop(dist.numpy(), qp, gp, qc, gc, max_rank=10)
    _assert_same(evaluate_rank(dist, qp, gp, qc, gc, max_rank=10), ref)
    _assert_same(evaluate_rank(FeatureDistances(qf, gf), qp, gp, qc, gc, max_rank=10, chunk_elements=100), ref)
    mm = np.memmap(tmp_path / "d.f32", dtype=np.float32, mode="w+", shape=(15, 40))
    mm[:] = dist.numpy()
    mm.flush()
    ro = np.memmap(tmp_path / "d.f32", dtype=np.float32, mode="r", shape=(15, 40))
    _assert_same(evaluate_rank(ro, qp, gp, qc, gc, max_rank=10, chunk_elements=90), ref)


def test_squared_euclidean_matches_cdist() -> None:
    rng = np.random.default_rng(5)
    a, b = torch.from_numpy(rng.normal(size=(6, 4))).float(), torch.from_numpy(rng.normal(size=(9, 4))).float()
    torch.testing.assert_close(pairwise_distance(a, b), torch.cdist(a, b) ** 2, atol=1e-4, rtol=1e-4)
    cos = pairwise_distance(a, b, metric="cosine")
    assert float(cos.min()) >= -1e-6 and float(cos.max()) <= 2 + 1e-6
    torch.testing.assert_close(cos, 1 - torch.nn.functional.cosine_similarity(a[:, None], b[None], dim=2))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("normalize", [False, True])
def test_lazy_distances_equal_the_full_matrix(metric: str, normalize: bool) -> None:
    rng = np.random.default_rng(6)
    a, b = torch.from_numpy(rng.normal(size=(7, 5))).float(), torch.from_numpy(rng.normal(size=(11, 5))).float()
    full = pairwise_distance(a, b, metric=metric, normalize=normalize)
    lazy = FeatureDistances(a, b, metric=metric, normalize=normalize)
    torch.testing.assert_close(lazy[2:6], full[2:6])
    out = np.full((4, 11), np.nan, dtype=np.float32)
    np.testing.assert_allclose(lazy.fill(slice(2, 6), out), full[2:6].numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="unknown distance metric"):
        FeatureDistances(a, b, metric="manhattan")


def test_input_errors() -> None:
    dist = np.ones((2, 3))
    with pytest.raises(ValueError, match="g_pids has 2 entries"):
        evaluate_rank(dist, [1, 2], [1, 2], [0, 0], [0, 0, 0])
    bad = dist.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="row 1 contains NaN"):
        evaluate_rank(bad, [1, 2], [1, 2, 2], [0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="max_rank"):
        evaluate_rank(dist, [1, 2], [1, 2, 2], [0, 0], [1, 1, 1], max_rank=0)
