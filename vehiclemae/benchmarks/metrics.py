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

:func:`evaluate_rank` never argsorts. Only the ranks of true matches matter, so for a chunk of queries it sorts
the distance *values* of each row (numpy's SIMD sort, several times faster than argsort, in a reused buffer) and
finds each match's rank by binary search (``O(k log G)`` for ``k`` matches), subtracting the junk ranked before it;
a match whose distance ties another sample's is resolved with one comparison pass over the row (stable tie-break by
gallery index). Identity -> gallery-column lists replace ``(Q, G)`` boolean masks. Results equal
:func:`evaluate_rank_loop` up to floating-point summation order; memory is bounded by ``chunk_elements``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_ELEMENTS = 8_000_000


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


def _gallery_index(g_pids: np.ndarray) -> dict[int, np.ndarray]:
    """Gallery columns of every identity, ascending: ``{pid: (n_pid,) int64}``."""
    order = np.argsort(g_pids, kind="stable")
    pids, starts = np.unique(g_pids[order], return_index=True)
    return {int(p): cols for p, cols in zip(pids, np.split(order, starts[1:]))}


def _chunk(
    dist: np.ndarray,
    q_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    by_pid: dict[int, np.ndarray],
    sort_buffer: np.ndarray,
    row_offset: int = 0,
) -> tuple[list[float], list[float], list[int]]:
    """AP, INP and first-match rank (0-based) of every valid query in a chunk.

    Args:
        dist: ``(B, G)`` distances of B queries.
        q_pids, q_camids: ``(B,)`` the chunk's query ids and cameras.
        g_camids: ``(G,)`` gallery cameras; ``by_pid`` maps an id to its gallery columns.
        sort_buffer: ``(>=B, G)`` scratch array of ``dist``'s dtype (reused so the pages are not faulted per chunk).
        row_offset: index of the chunk's first query (for error messages).
    """
    # 1. Sort every row's values in a reused buffer (numpy's SIMD sort is several times faster than argsort).
    #    Junk stays in: its few entries per row are subtracted below instead of a masked full pass.
    sorted_all = sort_buffer[: dist.shape[0]]
    np.copyto(sorted_all, dist)
    sorted_all.sort(axis=1)
    nan_rows = np.isnan(sorted_all[:, -1])  # numpy sorts NaN last, so one column tells
    if nan_rows.any():
        raise ValueError(f"distmat row {row_offset + int(np.argmax(nan_rows))} contains NaN; check the features")
    empty = np.zeros(0, dtype=np.int64)
    aps: list[float] = []
    inps: list[float] = []
    firsts: list[int] = []
    for r in range(dist.shape[0]):
        cols = by_pid.get(int(q_pids[r]), empty)
        is_junk = g_camids[cols] == q_camids[r]
        if cols.size == 0 or is_junk.all():
            continue  # no true match left: skipped and not counted as valid
        row = dist[r]
        # 2. A match's rank = kept samples ranked before it: strictly smaller distances (binary search in the sorted
        #    row) minus the junk among them, plus equal distances at a smaller gallery index (the stable tie-break).
        m_cols, j_cols = cols[~is_junk], cols[is_junk]
        m_vals = row[m_cols]
        order = np.lexsort((m_cols, m_vals))
        m_cols, m_vals = m_cols[order], m_vals[order]
        left = np.searchsorted(sorted_all[r], m_vals, side="left")
        right = np.searchsorted(sorted_all[r], m_vals, side="right")
        tied = np.flatnonzero(right - left != 1)
        if j_cols.size:
            left = left - np.searchsorted(np.sort(row[j_cols]), m_vals, side="left")
        for t in tied:  # rare with real-valued distances; one pass over the row per tied match
            equal = np.flatnonzero(row[: m_cols[t]] == m_vals[t])
            left[t] += equal.size - int(np.isin(equal, j_cols).sum())
        precision = np.arange(1, m_vals.size + 1) / (left + 1.0)
        ap, inp, first = float(precision.mean()), m_vals.size / (left[-1] + 1.0), int(left[0])
        aps.append(ap)
        inps.append(inp)
        firsts.append(first)
    return aps, inps, firsts


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
    by_pid = _gallery_index(g_pids)
    sort_buffer: np.ndarray | None = None
    aps: list[float] = []
    inps: list[float] = []
    firsts: list[int] = []
    for start in range(0, num_q, rows):
        stop = min(num_q, start + rows)
        block = distmat[start:stop]
        dist = block.detach().cpu().numpy() if isinstance(block, torch.Tensor) else np.asarray(block)
        if not np.issubdtype(dist.dtype, np.floating):
            dist = dist.astype(np.float64)
        if sort_buffer is None or sort_buffer.dtype != dist.dtype:
            sort_buffer = np.empty((rows, num_g), dtype=dist.dtype)
        c_ap, c_inp, c_first = _chunk(
            dist, q_pids[start:stop], q_camids[start:stop], g_camids, by_pid, sort_buffer, start
        )
        aps += c_ap
        inps += c_inp
        firsts += c_first
    return _finalise(np.asarray(aps), np.asarray(inps), np.asarray(firsts, dtype=np.int64), num_q, max_rank)


def pairwise_distance(
    qf: torch.Tensor, gf: torch.Tensor, metric: str = "euclidean", normalize: bool = False
) -> torch.Tensor:
    """Distances between ``qf (Q, D)`` and ``gf (G, D)`` → ``(Q, G)`` float32.

    ``euclidean`` is the squared L2 distance (as in torchreid; monotone in L2, so rankings are identical);
    ``cosine`` is ``1 - cos``. ``normalize`` L2-normalises the features first.
    """
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"unknown distance metric {metric!r}; choose 'euclidean' or 'cosine'")
    qf, gf = qf.float(), gf.float()
    if normalize or metric == "cosine":
        qf = torch.nn.functional.normalize(qf, dim=1)
        gf = torch.nn.functional.normalize(gf, dim=1)
    if metric == "cosine":
        return 1.0 - qf @ gf.T
    dist = (qf * qf).sum(1, keepdim=True) + (gf * gf).sum(1)[None, :] - 2.0 * (qf @ gf.T)
    return dist.clamp_min_(0.0)


class FeatureDistances:
    """A lazy ``(Q, G)`` distance matrix over features: row slices are computed on demand.

    Lets :func:`evaluate_rank` run a 10k x 100k problem without ever holding the full matrix. Only slicing rows
    with ``[start:stop]`` is supported.
    """

    def __init__(self, qf: torch.Tensor, gf: torch.Tensor, metric: str = "euclidean", normalize: bool = False):
        self.qf, self.gf, self.metric, self.normalize = qf, gf, metric, normalize
        self.shape = (int(qf.shape[0]), int(gf.shape[0]))

    def __getitem__(self, rows: slice) -> torch.Tensor:
        if not isinstance(rows, slice):
            raise TypeError("FeatureDistances supports row slices only, e.g. d[0:128]")
        return pairwise_distance(self.qf[rows], self.gf, self.metric, self.normalize)


def summarize(result: dict[str, Any], ranks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """A flat JSON-friendly view: ``{"mAP": %, "mINP": %, "Rank-1": %, ...}`` (percentages, 0-100)."""
    cmc = np.asarray(result["cmc"])
    out = {"mAP": 100.0 * float(result["mAP"]), "mINP": 100.0 * float(result["mINP"])}
    for r in ranks:
        if r <= cmc.shape[0]:
            out[f"Rank-{r}"] = 100.0 * float(cmc[r - 1])
    return out
