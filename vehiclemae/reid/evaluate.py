"""Re-ID evaluation: parsed splits (VeRi-776, VehicleID), the eval loader, and the paper metrics of a model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import finetune as ft
from .metrics import evaluate_rank, pairwise_distance, summarize

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VIEW_KEYS = ("cross_view_mAP", "cross_view_queries", "same_view_mAP", "same_view_queries")


def load_split(dataset: str, root: str | Path, vehicleid_test_size: int | None = None) -> dict[str, Any]:
    """``{"train": samples, "query": samples, "gallery": samples}`` (VeRi) or ``{"train", "test"}`` (VehicleID).

    A toy-world VeRi root (one with ``toyworld_meta.json``) also gives ``query_views`` / ``gallery_views``, the
    per-image view bins from which :func:`evaluate_model` adds ``cross_view_mAP`` and ``same_view_mAP``.
    """
    from vehiclemae.reid.data import load_vehicleid, load_veri776
    from vehiclemae.reid.toymeta import load_toy_meta

    if dataset == "veri776":
        split = load_veri776(root)
        logger.info(split.summary())
        out: dict[str, Any] = {"train": split.train, "query": split.query, "gallery": split.gallery}
        meta = load_toy_meta(root)
        if meta is not None:
            out.update(query_views=meta.views_for(split.query), gallery_views=meta.views_for(split.gallery))
            out["train_groups"] = meta.family_groups(split.train)  # validation holds out whole families
        return out
    if dataset == "vehicleid":
        vid = load_vehicleid(root, vehicleid_test_size)
        logger.info(
            "VehicleID at %s: train %d images, test list %d (%d images)",
            root,
            len(vid.train),
            vid.test_size,
            len(vid.test),
        )
        return {"train": vid.train, "test": vid.test, "test_size": vid.test_size}
    raise ValueError(f"unknown dataset {dataset!r}; valid: veri776, vehicleid")


def eval_loader(samples: list, img_size: int, batch_size: int, num_workers: int = 0) -> torch.utils.data.DataLoader:
    from vehiclemae.reid.data import ReIDImageDataset, build_transforms

    dataset = ReIDImageDataset(samples, build_transforms(img_size, False, IMAGENET_MEAN, IMAGENET_STD))
    return ft.make_loader(dataset, batch_size, None, num_workers)


def evaluate_model(
    model: torch.nn.Module,
    dataset: str,
    split: dict[str, Any],
    *,
    img_size: int,
    batch_size: int = 64,
    num_workers: int = 0,
    metric: str = "euclidean",
    rerank: dict[str, float] | None = None,
    num_trials: int = 10,
    max_rank: int = 50,
    seed: int = 0,
    device: str = "cpu",
    with_cmc: bool = False,
    keep: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Paper metrics of ``model`` (eval-mode features) on a parsed split; percentages (0-100).

    VeRi-776: ``mAP``, ``mINP``, ``Rank-1/5/10`` (query vs gallery, same id + same camera removed), plus
    ``cross_view_mAP`` / ``same_view_mAP`` (and their query counts) when ``split`` has ``query_views`` and
    ``gallery_views`` (toy world; :mod:`vehiclemae.reid.views`).
    VehicleID: ``Rank-1``, ``Rank-5``, ``mAP`` averaged over ``num_trials`` seeded splits.
    ``keep``: a dict that receives VeRi's query-gallery distances and ids (``dist``, ``q_pids``, ``g_pids``,
    ``q_cams``, ``g_cams``), e.g. for retrieval pictures without a second feature pass.
    ``with_cmc``: also ``cmc``, the CMC curve (percent at ranks 1..min(max_rank, gallery size); VehicleID: the mean
    over trials).
    """
    if dataset == "veri776":
        qf, q_pids, q_cams = ft.extract_features(
            model, eval_loader(split["query"], img_size, batch_size, num_workers), device, "query"
        )
        gf, g_pids, g_cams = ft.extract_features(
            model, eval_loader(split["gallery"], img_size, batch_size, num_workers), device, "gallery"
        )
        if rerank:
            from .reranking import re_ranking

            dist = re_ranking(qf, gf, metric=metric, **rerank)
        else:
            dist = pairwise_distance(qf, gf, metric=metric).numpy()
        if keep is not None:
            keep.update(dist=dist, q_pids=q_pids, g_pids=g_pids, q_cams=q_cams, g_cams=g_cams)
        res = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank)
        out = summarize(res, ranks=(1, 5, 10))
        out.update(num_query=len(q_pids), num_gallery=len(g_pids), num_valid_queries=res["num_valid_queries"])
        if with_cmc:
            out["cmc"] = (100.0 * np.asarray(res["cmc"], dtype=np.float64)[: len(g_pids)]).tolist()
        if split.get("query_views") is not None:
            from .views import retrieval_metrics

            # The helper recomputes the standard metrics too (cheap at toy-world sizes); only its view keys are new.
            views = retrieval_metrics(
                dist, q_pids, g_pids, q_cams, g_cams, split["query_views"], split["gallery_views"], max_rank=max_rank
            )
            out.update({k: views[k] for k in VIEW_KEYS})
        return out
    if dataset == "vehicleid":
        from .vehicleid import evaluate_vehicleid

        feats, pids, _ = ft.extract_features(
            model, eval_loader(split["test"], img_size, batch_size, num_workers), device, "test"
        )
        res = evaluate_vehicleid(feats, pids, num_trials, seed, metric, max_rank, rerank, with_cmc=with_cmc)
        res.pop("trials")
        res["test_size"] = split.get("test_size")
        return res
    raise ValueError(f"unknown dataset {dataset!r}")
