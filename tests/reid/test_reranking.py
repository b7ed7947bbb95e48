"""k-reciprocal re-ranking: parity with the direct transcription of the authors' loops, and that it helps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.reid.rerank_reference import re_ranking_direct
from vehiclemae.reid.metrics import evaluate_rank, pairwise_distance
from vehiclemae.reid.reranking import compute_jaccard_distance, re_ranking, re_ranking_from_distances


def _clustered(seed: int, ids: int, per_id: int, dim: int = 16, noise: float = 0.6):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(ids, dim, generator=gen)
    pids = torch.arange(ids).repeat_interleave(per_id)
    return centres[pids] + noise * torch.randn(len(pids), dim, generator=gen), pids.numpy()


@pytest.mark.parametrize("seed,k1,k2,lam", [(0, 20, 6, 0.3), (1, 5, 3, 0.5), (2, 7, 1, 0.0), (3, 3, 2, 1.0)])
def test_parity_with_direct_implementation(seed: int, k1: int, k2: int, lam: float) -> None:
    feats, _ = _clustered(seed, ids=9, per_id=6)
    qf, gf = feats[:14], feats[14:]
    q_g, q_q, g_g = (pairwise_distance(a, b).numpy() for a, b in ((qf, gf), (qf, qf), (gf, gf)))
    ours = re_ranking_from_distances(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
    ref = re_ranking_direct(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
    assert ours.shape == (14, 40)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6)
    np.testing.assert_allclose(re_ranking(qf, gf, k1=k1, k2=k2, lambda_value=lam), ref, rtol=0, atol=2e-6)


def test_reranking_improves_map_on_clustered_features() -> None:
    feats, pids = _clustered(5, ids=20, per_id=8, noise=1.2)
    rng = np.random.default_rng(0)
    is_q = np.zeros(len(pids), dtype=bool)
    is_q[rng.choice(len(pids), 40, replace=False)] = True
    qf, gf = feats[torch.from_numpy(is_q)], feats[torch.from_numpy(~is_q)]
    cams_q, cams_g = np.zeros(is_q.sum()), np.ones((~is_q).sum())
    base = evaluate_rank(pairwise_distance(qf, gf).numpy(), pids[is_q], pids[~is_q], cams_q, cams_g)
    rr = evaluate_rank(re_ranking(qf, gf, k1=8, k2=3), pids[is_q], pids[~is_q], cams_q, cams_g)
    assert rr["mAP"] > base["mAP"]


def test_jaccard_distance_properties() -> None:
    feats, _ = _clustered(7, ids=5, per_id=5)
    jac = compute_jaccard_distance(feats, k1=6, k2=2)
    assert jac.shape == (25, 25)
    assert np.all(np.diag(jac) == 0)
    assert jac.min() >= 0 and jac.max() <= 1
    np.testing.assert_allclose(jac, jac.T, atol=1e-6)  # min/max overlap is symmetric


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match="block shapes disagree"):
        re_ranking_from_distances(np.ones((2, 3)), np.ones((2, 2)), np.ones((2, 2)))
