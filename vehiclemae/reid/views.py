"""View-aware retrieval metrics: same-view and cross-view mAP, and the one-call metric set of every Re-ID protocol.

Definitions (``docs/benchmarks.md``, "Frozen protocols and training-free baselines"):

* Every image has a view bin from ``data_manifests.INTENDED_VIEWS`` (or ``None``: unknown). The eight side bins
  have azimuths ``front`` 0, ``front_left`` 45, ``left`` 90, ``rear_left`` 135, ``rear`` 180, ``rear_right`` 225,
  ``right`` 270, ``front_right`` 315 (degrees); ``top`` is a bin of its own.
* Two views are **same-view** if both are side bins whose circular azimuth difference is <= 45 degrees; they are
  **cross-view** if both are side bins with a difference >= 90 degrees, or if exactly one of them is ``top``.
  Two ``top`` images, and any pair with an unknown view, are neither.
* For each query the standard VeRi-776 protocol applies (gallery images with the same id *and* camera are junk).
  For ``same_view_mAP`` the positives are the remaining same-id gallery images in a same-view relation to the
  query; every other same-id gallery image becomes junk too (removed from the ranking, neither positive nor
  negative). ``cross_view_mAP`` likewise with cross-view positives. Images of other identities stay negatives.
  Queries without such a positive are skipped; the mAP is over the remaining queries (their number is reported).
* AP is non-interpolated (mean precision at each positive), ranking by ascending distance with ties broken by
  gallery index (a stable sort): the same conventions as :func:`vehiclemae.reid.metrics.evaluate_rank`, to
  which :func:`masked_average_precision` is equal when the positives are all same-id images (tested).

Cross-view retrieval is the hard case a view-invariant pre-training should improve; same-view retrieval is what
colour and shape statistics already solve.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from data_manifests import INTENDED_VIEWS

from .metrics import evaluate_rank

SIDE_AZIMUTHS: dict[str, float] = {
    "front": 0.0,
    "front_left": 45.0,
    "left": 90.0,
    "rear_left": 135.0,
    "rear": 180.0,
    "rear_right": 225.0,
    "right": 270.0,
    "front_right": 315.0,
}
TOP_VIEW = "top"
RELATIONS = ("same", "cross")
# Relation codes in the (view, view) table.
_NEITHER, _SAME, _CROSS = 0, 1, 2
_CHUNK_ELEMENTS = 2_000_000


def _relation_table() -> np.ndarray:
    """``(V + 1, V + 1)`` int8 relation codes over ``INTENDED_VIEWS`` plus a last row/column for unknown views."""
    n = len(INTENDED_VIEWS)
    table = np.full((n + 1, n + 1), _NEITHER, dtype=np.int8)
    for i, a in enumerate(INTENDED_VIEWS):
        for j, b in enumerate(INTENDED_VIEWS):
            if (a == TOP_VIEW) != (b == TOP_VIEW):
                table[i, j] = _CROSS
            elif a != TOP_VIEW:
                diff = abs(SIDE_AZIMUTHS[a] - SIDE_AZIMUTHS[b]) % 360.0
                diff = min(diff, 360.0 - diff)
                if diff <= 45.0:
                    table[i, j] = _SAME
                elif diff >= 90.0:
                    table[i, j] = _CROSS
    return table


_RELATION = _relation_table()
_VIEW_INDEX = {v: i for i, v in enumerate(INTENDED_VIEWS)}


def view_codes(views: Sequence[str | None], name: str = "views") -> np.ndarray:
    """``(N,)`` int indices into ``INTENDED_VIEWS`` (``len(INTENDED_VIEWS)`` for ``None`` = unknown)."""
    codes = np.empty(len(views), dtype=np.int64)
    for i, view in enumerate(views):
        if view is None:
            codes[i] = len(INTENDED_VIEWS)
        elif view in _VIEW_INDEX:
            codes[i] = _VIEW_INDEX[view]
        else:
            raise ValueError(f"{name}[{i}] = {view!r} is not a view bin; valid: {', '.join(INTENDED_VIEWS)}")
    return codes


def view_relation(a: str, b: str) -> str | None:
    """``"same"``, ``"cross"`` or ``None`` (neither) for two view bins, per the module's definition."""
    code = int(_RELATION[view_codes([a])[0], view_codes([b])[0]])
    return {_SAME: "same", _CROSS: "cross"}.get(code)


def _as_numpy(dist: Any) -> np.ndarray:
    if isinstance(dist, torch.Tensor):
        return dist.detach().cpu().numpy()
    return np.asarray(dist)


def masked_average_precision(dist: Any, positive: np.ndarray, junk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-query non-interpolated AP and first-positive rank with explicit positive and junk masks.

    Args:
        dist: ``(Q, G)`` distances (numpy or torch), smaller = more similar.
        positive: ``(Q, G)`` bool, the true matches of each query.
        junk: ``(Q, G)`` bool, gallery items removed from the query's ranking (junk wins over positive).

    Returns:
        ``ap (Q,)`` float64 and ``first (Q,)`` int64 (0-based rank of the first positive among the non-junk
        items); queries without a positive get ``ap = nan`` and ``first = -1``. Ties are broken by gallery index.
    """
    dist = _as_numpy(dist)
    if dist.ndim != 2 or positive.shape != dist.shape or junk.shape != dist.shape:
        raise ValueError(
            f"dist, positive and junk must share one (Q, G) shape, got {dist.shape}, {positive.shape}, {junk.shape}"
        )
    num_q, num_g = dist.shape
    ap = np.full(num_q, np.nan)
    first = np.full(num_q, -1, dtype=np.int64)
    rows = max(1, _CHUNK_ELEMENTS // max(num_g, 1))
    for s in range(0, num_q, rows):
        e = min(num_q, s + rows)
        d = dist[s:e]
        if np.isnan(d).any():
            raise ValueError(f"dist rows {s}-{e - 1} contain NaN; check the features")
        order = np.argsort(d, axis=1, kind="stable")
        keep = ~np.take_along_axis(junk[s:e], order, axis=1)
        pos = np.take_along_axis(positive[s:e], order, axis=1) & keep
        rank = np.cumsum(keep, axis=1) - 1  # rank among the kept items
        hits = np.cumsum(pos, axis=1)
        npos = hits[:, -1]
        valid = npos > 0
        # Junk items before the first kept one have rank -1; they are never positive, so clamp before dividing.
        precision = np.where(pos, hits / (np.maximum(rank, 0) + 1.0), 0.0)
        ap[s:e][valid] = precision.sum(axis=1)[valid] / npos[valid]
        first_col = np.argmax(pos, axis=1)
        first[s:e][valid] = rank[np.arange(e - s), first_col][valid]
    return ap, first


def view_mAP(
    dist: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    q_views: Sequence[str | None],
    g_views: Sequence[str | None],
    relation: str,
) -> dict[str, Any]:
    """mAP restricted to ``relation`` (``"same"`` or ``"cross"``) positives; see the module docstring.

    Returns:
        ``{"mAP": fraction in [0, 1] or None (no valid query), "num_valid_queries": int, "num_queries": int}``.
    """
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    dist = _as_numpy(dist)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    num_q, num_g = dist.shape
    for name, arr, n in (
        ("q_pids", q_pids, num_q),
        ("g_pids", g_pids, num_g),
        ("q_camids", q_camids, num_q),
        ("g_camids", g_camids, num_g),
        ("q_views", q_views, num_q),
        ("g_views", g_views, num_g),
    ):
        if len(arr) != n:
            raise ValueError(f"{name} has {len(arr)} entries but the distance matrix needs {n}")
    same_id = q_pids[:, None] == g_pids[None, :]
    standard_junk = same_id & (q_camids[:, None] == g_camids[None, :])
    rel = _RELATION[view_codes(q_views, "q_views")[:, None], view_codes(g_views, "g_views")[None, :]]
    wanted = rel == (_SAME if relation == "same" else _CROSS)
    positive = same_id & wanted & ~standard_junk
    junk = standard_junk | (same_id & ~wanted)
    ap, _ = masked_average_precision(dist, positive, junk)
    valid = ~np.isnan(ap)
    n_valid = int(valid.sum())
    return {
        "mAP": float(ap[valid].mean()) if n_valid else None,
        "num_valid_queries": n_valid,
        "num_queries": int(num_q),
    }


def same_view_mAP(dist, q_pids, g_pids, q_camids, g_camids, q_views, g_views) -> dict[str, Any]:  # noqa: N802
    """:func:`view_mAP` with same-view positives (both side bins, azimuths within 45 degrees)."""
    return view_mAP(dist, q_pids, g_pids, q_camids, g_camids, q_views, g_views, "same")


def cross_view_mAP(dist, q_pids, g_pids, q_camids, g_camids, q_views, g_views) -> dict[str, Any]:  # noqa: N802
    """:func:`view_mAP` with cross-view positives (azimuths >= 90 degrees apart, or exactly one ``top``)."""
    return view_mAP(dist, q_pids, g_pids, q_camids, g_camids, q_views, g_views, "cross")


def retrieval_metrics(
    dist: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    q_views: Sequence[str | None] | None = None,
    g_views: Sequence[str | None] | None = None,
    *,
    max_rank: int = 50,
) -> dict[str, Any]:
    """All retrieval metrics of one query-to-gallery problem, as percentages (0-100).

    Args:
        dist: ``(Q, G)`` distances (numpy, torch or a lazy ``FeatureDistances``), smaller = more similar.
        q_pids, q_camids: ``(Q,)`` integer identity and camera of each query; ``g_pids``, ``g_camids`` ``(G,)``.
        q_views, g_views: per-image view bins (``INTENDED_VIEWS`` names, ``None`` entries = unknown), or ``None``
            when the dataset has no view annotation (real VeRi-776): the two view metrics are then ``None``.
        max_rank: CMC length passed to ``evaluate_rank``.

    Returns:
        ``{"mAP", "rank1", "rank5", "mINP"`` (standard VeRi-776 protocol), ``"num_queries"``,
        ``"num_valid_queries"``, ``"cross_view_mAP"``, ``"cross_view_queries"``, ``"same_view_mAP"``,
        ``"same_view_queries"}``; a view mAP is ``None`` when views are not given or no query has such a positive,
        its query count is then 0 (or ``None`` without views).
    """
    if (q_views is None) != (g_views is None):
        raise ValueError("give both q_views and g_views, or neither")
    res = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank)
    cmc = np.asarray(res["cmc"])
    out: dict[str, Any] = {
        "mAP": 100.0 * float(res["mAP"]),
        "rank1": 100.0 * float(cmc[0]),
        "rank5": 100.0 * float(cmc[min(4, cmc.shape[0] - 1)]),
        "mINP": 100.0 * float(res["mINP"]),
        "num_queries": int(res["num_queries"]),
        "num_valid_queries": int(res["num_valid_queries"]),
        "cross_view_mAP": None,
        "cross_view_queries": None,
        "same_view_mAP": None,
        "same_view_queries": None,
    }
    if q_views is None:
        return out
    if not isinstance(dist, (np.ndarray, torch.Tensor)):
        dist = np.asarray(dist[0 : dist.shape[0]])  # a lazy FeatureDistances: the view masks need the full matrix
    for relation in RELATIONS:
        v = view_mAP(dist, q_pids, g_pids, q_camids, g_camids, q_views, g_views, relation)
        out[f"{relation}_view_mAP"] = None if v["mAP"] is None else 100.0 * v["mAP"]
        out[f"{relation}_view_queries"] = v["num_valid_queries"]
    return out


def format_retrieval_table(rows: dict[str, dict[str, Any]], first_column: str = "protocol") -> str:
    """A Markdown table of :func:`retrieval_metrics` results, one row per name (view columns show their query
    counts; ``-`` when not available)."""

    def view(res: dict[str, Any], relation: str) -> str:
        value = res.get(f"{relation}_view_mAP")
        return "-" if value is None else f"{value:.1f} ({res[f'{relation}_view_queries']})"

    lines = [
        f"| {first_column} | mAP | Rank-1 | mINP | same-view mAP (queries) | cross-view mAP (queries) |",
        "|---|---|---|---|---|---|",
    ]
    for name, res in rows.items():
        lines.append(
            f"| {name} | {res['mAP']:.1f} | {res['rank1']:.1f} | {res['mINP']:.1f} | {view(res, 'same')} | "
            f"{view(res, 'cross')} |"
        )
    return "\n".join(lines)


__all__ = [
    "RELATIONS",
    "format_retrieval_table",
    "SIDE_AZIMUTHS",
    "cross_view_mAP",
    "masked_average_precision",
    "retrieval_metrics",
    "same_view_mAP",
    "view_codes",
    "view_mAP",
    "view_relation",
]
