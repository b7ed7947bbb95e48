"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal Encoding", CVPR 2017).

The paper's algorithm, on the joint (query + gallery) set of N samples with pairwise distances ``d``:

1. ``d`` is normalised column-wise by its maximum (as in the authors' code) and every sample's ranking computed.
2. ``R(p, k)``: the k-reciprocal neighbours of ``p`` — samples in ``p``'s top-(k+1) whose own top-(k+1) contains
   ``p``.
3. Expansion ``R*(p, k1)``: ``R(p, k1)`` plus ``R(q, k1/2)`` for every ``q`` in ``R(p, k1)`` whose half set shares
   more than 2/3 of its members with ``R(p, k1)``.
4. ``V[p, q] = exp(-d(p, q))`` on ``R*(p, k1)``, normalised to sum 1 (a sparse vector per sample).
5. Local query expansion: ``V[p] = mean of V over p's top-k2``.
6. Jaccard distance ``d_J(p, g) = 1 - sum_j min(V[p,j], V[g,j]) / sum_j max(V[p,j], V[g,j])`` — with rows summing
   to 1 this equals ``1 - m / (2 - m)`` for ``m = sum_j min``.
7. Final distance ``(1 - lambda) d_J + lambda d``.

Here steps 2-5 are sparse-matrix products (scipy.sparse) instead of per-sample loops, and step 6 walks the inverted
index once per column with numpy outer minima. Ties in the ranking are broken by index (stable sort). Memory is
dominated by the dense ``N x N`` distance matrix (float32): about 0.7 GB for VeRi-776's 13,257 test images.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch

from .metrics import pairwise_distance

logger = logging.getLogger(__name__)


def _neighbour_matrix(initial_rank: np.ndarray, k: int) -> sp.csr_matrix:
    """``(N, N)`` 0/1 matrix with ``M[i, j] = 1`` iff ``j`` is in the top-(k+1) of ``i``."""
    n = initial_rank.shape[0]
    cols = initial_rank[:, : k + 1]
    rows = np.repeat(np.arange(n), cols.shape[1])
    return sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, cols.ravel())), shape=(n, n))


def k_reciprocal_weights(dist: np.ndarray, k1: int = 20, k2: int = 6) -> tuple[sp.csr_matrix, np.ndarray]:
    """Steps 1-5: the sparse k-reciprocal encodings ``V`` ``(N, N)`` and the normalised distance ``(N, N)``.

    Args:
        dist: ``(N, N)`` distances among all samples (query and gallery), smaller = closer.
    """
    n = dist.shape[0]
    if dist.shape != (n, n):
        raise ValueError(f"dist must be square, got {dist.shape}")
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    # 1. Column-wise normalisation, then transpose (the authors' convention).
    col_max = dist.max(axis=0)
    norm = np.ascontiguousarray((dist / np.where(col_max > 0, col_max, 1.0)).T.astype(np.float32))
    depth = min(n, max(k1 + 1, k2))
    initial_rank = np.argsort(norm, axis=1, kind="stable")[:, :depth]
    # 2. k-reciprocal sets as elementwise products of "j in top(i)" and its transpose.
    k_half = int(np.around(k1 / 2.0))
    forward = _neighbour_matrix(initial_rank, k1)
    recip = forward.multiply(forward.T).tocsr()
    forward_half = _neighbour_matrix(initial_rank, k_half)
    recip_half = forward_half.multiply(forward_half.T).tocsr()
    # 3. overlap[i, j] = |R(j, k1/2) ∩ R(i, k1)|, kept only where j ∈ R(i, k1); accept when > 2/3 |R(j, k1/2)|.
    overlap = (recip @ recip_half.T).multiply(recip).tocoo()
    half_size = np.asarray(recip_half.sum(axis=1)).ravel()
    accepted = overlap.data > (2.0 / 3.0) * half_size[overlap.col]
    accept = sp.csr_matrix(
        (np.ones(int(accepted.sum()), dtype=np.float32), (overlap.row[accepted], overlap.col[accepted])), shape=(n, n)
    )
    expansion = ((recip + accept @ recip_half) > 0).tocoo()
    # 4. Gaussian weights on the expanded set, each row normalised to sum 1.
    weights = np.exp(-norm[expansion.row, expansion.col]).astype(np.float32)
    v = sp.csr_matrix((weights, (expansion.row, expansion.col)), shape=(n, n))
    sums = np.asarray(v.sum(axis=1)).ravel()
    v = sp.diags((1.0 / np.where(sums > 0, sums, 1.0)).astype(np.float32)) @ v
    # 5. Local query expansion over the top-k2 of each sample.
    if k2 != 1:
        rows = np.repeat(np.arange(n), k2)
        qe = sp.csr_matrix(
            (np.full(rows.size, 1.0 / k2, dtype=np.float32), (rows, initial_rank[:, :k2].ravel())), shape=(n, n)
        )
        v = (qe @ v).tocsr()
    v.eliminate_zeros()
    return v.astype(np.float32), norm


def jaccard_distance(v: sp.csr_matrix, rows: int | None = None) -> np.ndarray:
    """Step 6: ``(rows, N)`` Jaccard distances between the first ``rows`` samples and all (default: all rows)."""
    n = v.shape[0]
    rows = n if rows is None else int(rows)
    overlap = np.zeros((rows, n), dtype=np.float32)
    csc = v.tocsc()
    for col in range(n):
        members = csc.indices[csc.indptr[col] : csc.indptr[col + 1]]
        if members.size == 0:
            continue
        values = csc.data[csc.indptr[col] : csc.indptr[col + 1]]
        in_rows = members < rows
        if not in_rows.any():
            continue
        # Samples sharing column ``col`` each add min(V[i, col], V[j, col]) to their overlap; indices are unique.
        overlap[np.ix_(members[in_rows], members)] += np.minimum(values[in_rows][:, None], values[None, :])
    return 1.0 - overlap / (2.0 - overlap)


def re_ranking_from_distances(
    q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
) -> np.ndarray:
    """Re-ranked ``(Q, G)`` distances from the three blocks of the joint distance matrix (the authors' signature)."""
    q_g, q_q, g_g = (np.asarray(x, dtype=np.float32) for x in (q_g, q_q, g_g))
    num_q = q_g.shape[0]
    if q_q.shape != (num_q, num_q) or g_g.shape != (q_g.shape[1], q_g.shape[1]):
        raise ValueError(f"block shapes disagree: q_g {q_g.shape}, q_q {q_q.shape}, g_g {g_g.shape}")
    full = np.block([[q_q, q_g], [q_g.T, g_g]])
    v, norm = k_reciprocal_weights(full, k1, k2)
    jaccard = jaccard_distance(v, rows=num_q)
    final = jaccard * (1.0 - lambda_value) + norm[:num_q] * lambda_value
    return final[:, num_q:]


def re_ranking(
    qf: torch.Tensor,
    gf: torch.Tensor,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    metric: str = "euclidean",
) -> np.ndarray:
    """k-reciprocal re-ranked ``(Q, G)`` distances for query features ``(Q, D)`` and gallery features ``(G, D)``."""
    feats = torch.cat([qf, gf]).float()
    full = pairwise_distance(feats, feats, metric=metric).numpy()
    num_q = qf.shape[0]
    return re_ranking_from_distances(
        full[:num_q, num_q:], full[:num_q, :num_q], full[num_q:, num_q:], k1, k2, lambda_value
    )


def compute_jaccard_distance(
    features: torch.Tensor, k1: int = 20, k2: int = 6, metric: str = "euclidean"
) -> np.ndarray:
    """``(N, N)`` k-reciprocal Jaccard distances among ``features (N, D)`` (for clustering pseudo labels)."""
    full = pairwise_distance(features, features, metric=metric).numpy()
    v, _ = k_reciprocal_weights(full, k1, k2)
    jaccard = jaccard_distance(v)
    np.fill_diagonal(jaccard, 0.0)
    return np.clip(jaccard, 0.0, 1.0)
