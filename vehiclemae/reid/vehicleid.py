"""The VehicleID test protocol: one random image per identity forms the gallery, the rest are queries.

For each test size (800 / 1600 / 2400 identities; smaller for the toy world) the split is drawn ``num_trials``
times (10 in the literature) with seeds ``(seed, trial)`` and Rank-1, Rank-5 and mAP are averaged. VehicleID has no
cameras, so nothing is removed as junk (queries get camera 0, the gallery camera 1).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from data_manifests import seeds

from .metrics import evaluate_rank, pairwise_distance

logger = logging.getLogger(__name__)


def vehicleid_trial_split(pids: np.ndarray, seed: int, trial: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(query_idx, gallery_idx)`` of one trial: one random image per identity to the gallery.

    Deterministic in ``(seed, trial)``; identities with a single image only contribute a gallery image.
    """
    pids = np.asarray(pids)
    rng = seeds.rng(seed, "reid.vehicleid.trial", trial)
    order = np.argsort(pids, kind="stable")
    uniques, starts, counts = np.unique(pids[order], return_index=True, return_counts=True)
    picks = starts + (rng.random(len(uniques)) * counts).astype(np.int64)
    gallery = np.sort(order[picks])
    is_gallery = np.zeros(len(pids), dtype=bool)
    is_gallery[gallery] = True
    return np.flatnonzero(~is_gallery), gallery


def evaluate_vehicleid(
    features: torch.Tensor,
    pids: np.ndarray,
    num_trials: int = 10,
    seed: int = 0,
    metric: str = "euclidean",
    max_rank: int = 50,
    rerank: dict[str, float] | None = None,
    with_cmc: bool = False,
) -> dict[str, Any]:
    """Average Rank-1 / Rank-5 / mAP (percent) over ``num_trials`` seeded VehicleID splits.

    Args:
        features: ``(N, D)`` features of the test list's images.
        pids: ``(N,)`` vehicle ids.
        rerank: ``{"k1", "k2", "lambda_value"}`` to apply k-reciprocal re-ranking, or ``None``.

    Returns:
        ``{"Rank-1", "Rank-5", "mAP", "mINP"}`` means (0-100), ``*_std`` standard deviations, ``trials`` (per-trial
        dicts), ``num_trials``, ``num_query`` / ``num_gallery`` (of the first trial); with ``with_cmc`` also ``cmc``,
        the mean CMC curve (percent at ranks 1..min(max_rank, gallery size)).
    """
    pids = np.asarray(pids)
    if features.shape[0] != len(pids):
        raise ValueError(f"{features.shape[0]} features for {len(pids)} ids")
    if num_trials < 1:
        raise ValueError(f"num_trials must be >= 1, got {num_trials}")
    trials, curves = [], []
    for trial in range(num_trials):
        q_idx, g_idx = vehicleid_trial_split(pids, seed, trial)
        if len(q_idx) == 0:
            raise ValueError("every identity of the test list has a single image: no queries are left")
        qf, gf = features[torch.from_numpy(q_idx)], features[torch.from_numpy(g_idx)]
        if rerank:
            from .reranking import re_ranking

            dist = re_ranking(qf, gf, metric=metric, **rerank)
        else:
            dist = pairwise_distance(qf, gf, metric=metric).numpy()
        res = evaluate_rank(
            dist, pids[q_idx], pids[g_idx], np.zeros(len(q_idx)), np.ones(len(g_idx)), max_rank=max_rank
        )
        curves.append(np.asarray(res["cmc"], dtype=np.float64))
        trials.append(
            {
                "Rank-1": 100.0 * float(res["cmc"][0]),
                "Rank-5": 100.0 * float(res["cmc"][min(4, len(res["cmc"]) - 1)]),
                "mAP": 100.0 * res["mAP"],
                "mINP": 100.0 * res["mINP"],
            }
        )
    out: dict[str, Any] = {}
    for key in ("Rank-1", "Rank-5", "mAP", "mINP"):
        values = np.array([t[key] for t in trials])
        out[key], out[f"{key}_std"] = float(values.mean()), float(values.std())
    q_idx, g_idx = vehicleid_trial_split(pids, seed, 0)
    out.update(trials=trials, num_trials=num_trials, num_query=len(q_idx), num_gallery=len(g_idx))
    if with_cmc:
        length = min(min(len(c) for c in curves), len(g_idx))  # galleries: one image per identity, equal sizes
        out["cmc"] = (100.0 * np.mean([c[:length] for c in curves], axis=0)).tolist()
    return out
