"""Ranking metrics for vehicle Re-ID: CMC, non-interpolated mAP and mINP under the VeRi-776 protocol.

Protocol (as in the VeRi-776 / Market-1501 evaluation code used by the literature):

* for each query, gallery samples with the **same id and the same camera** are junk and removed from its ranking;
* queries with no remaining true match are skipped (counted in ``num_valid_queries``);
* the gallery is ranked by ascending distance; ties are broken by gallery index (a stable sort), so results do not
  depend on the sorting algorithm;
* AP is non-interpolated: the mean over true matches of precision at each match's position;
* CMC[k] is the fraction of valid queries whose first true match is within the top ``k + 1``; when ``max_rank``
  is larger than a query's ranking, the curve stays at its last value (every valid query has a match somewhere);
* INP (Ye et al., 2021) is ``num_matches / (position of the hardest match + 1)``; mINP is its mean.

:func:`evaluate_rank` never argsorts. Only the ranks of same-identity samples matter, so it sorts the distance
*values* of a cache-sized block of rows (numpy's SIMD sort, several times faster than argsort, in a reused buffer)
and finds each true match's rank by one binary search per row (``O(k log G)`` for ``k`` matches). Everything else is
vectorised over the block: the same-identity (row, column) pairs come from a CSR index of the gallery by identity
(no ``(Q, G)`` boolean masks), a lexsort puts them in ranking order, and junk ranked before each match is an
exclusive cumulative sum per row. A match whose distance ties another sample's is resolved with one comparison pass
over the row (stable tie-break by gallery index). Results equal :func:`evaluate_rank_loop` up to floating-point
summation order; memory is bounded by ``chunk_elements``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_ELEMENTS = 8_000_000
SORT_BLOCK_BYTES = 1 << 21


def _as_1d_int(name: str, values: Any, length: int | None = None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name} has {arr.shape[0]} entries but the distance matrix needs {length}")
    return arr.astype(np.int64, copy=False)


def _check_inputs(
    distmat: Any, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any, max_rank: int
) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if len(getattr(distmat, "shape", ())) != 2:
        raise ValueError(
            f"distmat must be a 2-D (num_query, num_gallery) array, got shape {getattr(distmat, 'shape', None)}"
        )
    num_q, num_g = int(distmat.shape[0]), int(distmat.shape[1])
    if num_q == 0 or num_g == 0:
        raise ValueError(f"distmat is empty (shape {num_q} x {num_g}); nothing to evaluate")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    return (
        num_q,
        num_g,
        _as_1d_int("q_pids", q_pids, num_q),
        _as_1d_int("g_pids", g_pids, num_g),
        _as_1d_int("q_camids", q_camids, num_q),
        _as_1d_int("g_camids", g_camids, num_g),
    )


def _finalise(ap: np.ndarray, inp: np.ndarray, first: np.ndarray, num_q: int, max_rank: int) -> dict[str, Any]:
    """Aggregate per-valid-query AP, INP and first-match rank (0-based) into the result dict."""
    num_valid = int(ap.shape[0])
    if num_valid == 0:
        raise ValueError(
            f"none of the {num_q} queries has a true match left in the gallery after removing same-id same-camera "
            "samples; check that query and gallery ids overlap and that camera ids are parsed correctly"
        )
    hist = np.bincount(np.minimum(first, max_rank), minlength=max_rank + 1)[:max_rank]
    cmc = np.cumsum(hist).astype(np.float64) / num_valid
    return {
        "mAP": float(np.mean(ap)),
        "cmc": cmc,
        "mINP": float(np.mean(inp)),
        "num_valid_queries": num_valid,
        "num_queries": num_q,
    }


def evaluate_rank_loop(
    distmat: Any, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any, max_rank: int = 50
) -> dict[str, Any]:
    """The straightforward per-query reference implementation of :func:`evaluate_rank` (slow; tests and bench).

    Args:
        distmat: ``(num_query, num_gallery)`` distances, smaller = more similar.
        q_pids, q_camids: ``(num_query,)`` identity and camera of each query.
        g_pids, g_camids: ``(num_gallery,)`` identity and camera of each gallery sample.
        max_rank: length of the returned CMC curve.
    """
    num_q, _, q_pids, g_pids, q_camids, g_camids = _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids, max_rank)
    aps: list[float] = []
    inps: list[float] = []
    firsts: list[int] = []
    for q in range(num_q):
        row = np.asarray(distmat[q])
        if np.isnan(row).any():
            raise ValueError(f"distmat row {q} contains NaN")
        order = np.argsort(row, kind="stable")
        remove = (g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q])
        raw = (g_pids[order] == q_pids[q])[~remove]
        if not raw.any():
            continue
        positions = np.flatnonzero(raw)
        precision = np.arange(1, positions.size + 1) / (positions + 1.0)
        aps.append(float(precision.mean()))
        inps.append(positions.size / (positions[-1] + 1.0))
        firsts.append(int(positions[0]))
    return _finalise(np.asarray(aps), np.asarray(inps), np.asarray(firsts, dtype=np.int64), num_q, max_rank)


class _GalleryIndex:
    """Gallery columns grouped by identity, and each query's slice of them (a CSR layout, built once per call).

    ``order`` lists gallery columns sorted by identity (stable, so ascending within an identity); query ``q``'s
    same-identity columns are ``order[start[q] : start[q] + count[q]]``.
    """

    def __init__(self, q_pids: np.ndarray, g_pids: np.ndarray):
        self.order = np.argsort(g_pids, kind="stable")
        pids, starts, counts = np.unique(g_pids[self.order], return_index=True, return_counts=True)
        pos = np.minimum(np.searchsorted(pids, q_pids), pids.size - 1)
        present = pids[pos] == q_pids
        self.start = np.where(present, starts[pos], 0)
        self.count = np.where(present, counts[pos], 0)

    def pairs(self, queries: slice) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, cols)``: every (query row relative to ``queries.start``, same-identity gallery column) pair."""
        counts = self.count[queries]
        rows = np.repeat(np.arange(counts.size), counts)
        first = np.cumsum(counts) - counts
        within = np.arange(rows.size) - first[rows]
        return rows, self.order[self.start[queries][rows] + within]


def _block(
    dist: np.ndarray,
    sorted_rows: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AP, INP and first-match rank (0-based) of the valid queries in a block of rows, in row order.

    Args:
        dist: ``(S, G)`` distances of S queries; ``sorted_rows`` the same rows sorted ascending.
        q_camids: ``(S,)`` the queries' cameras; ``g_camids`` ``(G,)`` the gallery's.
        rows, cols: ``(P,)`` every (row, gallery column) pair with the same identity (true matches and junk).
    """
    # 1. Order each row's pairs as the ranking would: by distance, ties by gallery index.
    vals = dist[rows, cols]
    junk = g_camids[cols] == q_camids[rows]
    order = np.lexsort((cols, vals, rows))
    rows, cols, vals, junk = rows[order], cols[order], vals[order], junk[order]
    # Junk ranked before each pair in its row: an exclusive cumulative sum restarted at every row.
    before = np.cumsum(junk) - junk
    row_first = np.searchsorted(rows, rows, side="left")
    junk_before = before - before[row_first]
    match = ~junk
    rows, cols, vals, junk_before = rows[match], cols[match], vals[match], junk_before[match]
    if rows.size == 0:
        empty = np.zeros(0)
        return empty, empty, np.zeros(0, dtype=np.int64)
    # 2. A match's rank = samples strictly closer (binary search in the sorted row) + equal distances at a smaller
    #    gallery index (the stable tie-break) - junk among those.
    valid, starts, counts = np.unique(rows, return_index=True, return_counts=True)
    left = np.empty(rows.size, dtype=np.int64)
    for r, a, n in zip(valid.tolist(), starts.tolist(), counts.tolist()):
        left[a : a + n] = np.searchsorted(sorted_rows[r], vals[a : a + n], side="left")
    num_g = dist.shape[1]
    tied = np.flatnonzero((left + 1 < num_g) & (sorted_rows[rows, np.minimum(left + 1, num_g - 1)] == vals))
    for t in tied:  # rare with real-valued distances; one pass over part of the row per tied match
        left[t] += int(np.count_nonzero(dist[rows[t], : cols[t]] == vals[t]))
    rank = left - junk_before
    # 3. Per-row aggregates: matches are in rank order within each row.
    within = np.arange(rows.size) - np.repeat(starts, counts)
    precision = (within + 1.0) / (rank + 1.0)
    ap = np.add.reduceat(precision, starts) / counts
    inp = counts / (rank[starts + counts - 1] + 1.0)
    return ap, inp, rank[starts]


def evaluate_rank(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> dict[str, Any]:
    """CMC / mAP / mINP under the VeRi-776 protocol, vectorised and chunked over queries.

    Args:
        distmat: ``(num_query, num_gallery)`` distances (numpy array, ``np.memmap`` or torch tensor; only
            ``chunk_elements`` entries are materialised at a time), smaller = more similar.
        q_pids, q_camids: ``(num_query,)`` integer identity and camera of each query.
        g_pids, g_camids: ``(num_gallery,)`` integer identity and camera of each gallery sample.
        max_rank: length of the CMC curve (may exceed the gallery size; the curve then stays at its last value).
        chunk_elements: query rows per chunk are ``max(1, chunk_elements // num_gallery)``.

    Returns:
        ``{"mAP": float in [0, 1], "cmc": np.ndarray (max_rank,) in [0, 1], "mINP": float,
        "num_valid_queries": int, "num_queries": int}``.

    Raises:
        ValueError: shapes disagree, the matrix has NaN, or no query has a valid match.
    """
    num_q, num_g, q_pids, g_pids, q_camids, g_camids = _check_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids, max_rank
    )
    rows = max(1, int(chunk_elements) // num_g)
    index = _GalleryIndex(q_pids, g_pids)
    sort_buffer: np.ndarray | None = None
    chunk_buffer: np.ndarray | None = None
    aps: list[np.ndarray] = []
    inps: list[np.ndarray] = []
    firsts: list[np.ndarray] = []
    for start in range(0, num_q, rows):
        stop = min(num_q, start + rows)
        if isinstance(distmat, FeatureDistances):
            if chunk_buffer is None:
                chunk_buffer = np.empty((rows, num_g), dtype=np.float32)
            dist = distmat.fill(slice(start, stop), chunk_buffer[: stop - start])
        else:
            block = distmat[start:stop]
            dist = block.detach().cpu().numpy() if isinstance(block, torch.Tensor) else np.asarray(block)
        if not np.issubdtype(dist.dtype, np.floating):
            dist = dist.astype(np.float64)
        if sort_buffer is None or sort_buffer.dtype != dist.dtype:
            # About 2 MB of rows at a time: each block is sorted and searched while it is in cache.
            sort_rows = max(1, min(rows, SORT_BLOCK_BYTES // (num_g * dist.dtype.itemsize)))
            sort_buffer = np.empty((sort_rows, num_g), dtype=dist.dtype)
        for b0 in range(0, stop - start, sort_buffer.shape[0]):
            b1 = min(stop - start, b0 + sort_buffer.shape[0])
            # Sorting the values (numpy's SIMD sort) is several times faster than an argsort, and only the ranks of
            # the same-identity samples are needed.
            sorted_rows = sort_buffer[: b1 - b0]
            np.copyto(sorted_rows, dist[b0:b1])
            sorted_rows.sort(axis=1)
            nan_rows = np.isnan(sorted_rows[:, -1])  # numpy sorts NaN last, so one column tells
            if nan_rows.any():
                bad = start + b0 + int(np.argmax(nan_rows))
                raise ValueError(f"distmat row {bad} contains NaN; check the features")
            queries = slice(start + b0, start + b1)
            pair_rows, pair_cols = index.pairs(queries)
            ap, inp, first = _block(dist[b0:b1], sorted_rows, q_camids[queries], g_camids, pair_rows, pair_cols)
            aps.append(ap)
            inps.append(inp)
            firsts.append(first)
    return _finalise(np.concatenate(aps), np.concatenate(inps), np.concatenate(firsts), num_q, max_rank)


def _prepare(features: torch.Tensor, metric: str, normalize: bool) -> torch.Tensor:
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"unknown distance metric {metric!r}; choose 'euclidean' or 'cosine'")
    features = features.float()
    if normalize or metric == "cosine":
        features = torch.nn.functional.normalize(features, dim=1)
    return features


def _distances_into(
    qf: torch.Tensor, gf: torch.Tensor, g_sq: torch.Tensor | None, metric: str, out: torch.Tensor
) -> torch.Tensor:
    """Fill ``out (Q, G)`` with distances between prepared features, with no ``(Q, G)`` temporaries."""
    torch.mm(qf, gf.T, out=out)
    if metric == "cosine":
        return out.neg_().add_(1.0)
    assert g_sq is not None
    return out.mul_(-2.0).add_((qf * qf).sum(1, keepdim=True)).add_(g_sq[None, :]).clamp_min_(0.0)


def pairwise_distance(
    qf: torch.Tensor, gf: torch.Tensor, metric: str = "euclidean", normalize: bool = False
) -> torch.Tensor:
    """Distances between ``qf (Q, D)`` and ``gf (G, D)`` → ``(Q, G)`` float32.

    ``euclidean`` is the squared L2 distance (as in torchreid; monotone in L2, so rankings are identical);
    ``cosine`` is ``1 - cos``. ``normalize`` L2-normalises the features first.
    """
    qf, gf = _prepare(qf, metric, normalize), _prepare(gf, metric, normalize)
    out = torch.empty(qf.shape[0], gf.shape[0], dtype=torch.float32, device=qf.device)
    return _distances_into(qf, gf, (gf * gf).sum(1) if metric == "euclidean" else None, metric, out)


class FeatureDistances:
    """A lazy ``(Q, G)`` distance matrix over features: row slices are computed on demand.

    Lets :func:`evaluate_rank` run a 10k x 100k problem without ever holding the full matrix; it fills one reused
    buffer chunk by chunk (:meth:`fill`), so no per-chunk ``(rows, G)`` arrays are allocated (freshly allocated
    tens-of-MB arrays per chunk fragment the C heap and grow the resident size chunk after chunk). Only slicing
    rows with ``[start:stop]`` is supported.
    """

    def __init__(self, qf: torch.Tensor, gf: torch.Tensor, metric: str = "euclidean", normalize: bool = False):
        self.qf, self.gf = _prepare(qf, metric, normalize), _prepare(gf, metric, normalize)
        self.metric = metric
        self.g_sq = (self.gf * self.gf).sum(1) if metric == "euclidean" else None
        self.shape = (int(qf.shape[0]), int(gf.shape[0]))

    def __getitem__(self, rows: slice) -> torch.Tensor:
        if not isinstance(rows, slice):
            raise TypeError("FeatureDistances supports row slices only, e.g. d[0:128]")
        qf = self.qf[rows]
        out = torch.empty(qf.shape[0], self.shape[1], dtype=torch.float32, device=qf.device)
        return _distances_into(qf, self.gf, self.g_sq, self.metric, out)

    def fill(self, rows: slice, out: np.ndarray) -> np.ndarray:
        """Write the distances of ``rows`` into ``out`` (a float32 ``(len(rows), G)`` array) and return it."""
        qf = self.qf[rows]
        if self.qf.device.type == "cpu":
            _distances_into(qf, self.gf, self.g_sq, self.metric, torch.from_numpy(out))
        else:
            out[...] = self[rows].cpu().numpy()
        return out


def summarize(result: dict[str, Any], ranks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """A flat JSON-friendly view: ``{"mAP": %, "mINP": %, "Rank-1": %, ...}`` (percentages, 0-100)."""
    cmc = np.asarray(result["cmc"])
    out = {"mAP": 100.0 * float(result["mAP"]), "mINP": 100.0 * float(result["mINP"])}
    for r in ranks:
        if r <= cmc.shape[0]:
            out[f"Rank-{r}"] = 100.0 * float(cmc[r - 1])
    return out
