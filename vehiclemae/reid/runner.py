"""A Re-ID fine-tuning run: the epoch loop with validation, model selection, checkpoints and the final test.

The YAML config (``configs/vehiclemae/finetune_*.yaml``) becomes :class:`~vehiclemae.reid.config.FinetuneConfig` in
the CLI; :func:`run` unpacks it into the explicit-argument functions of :mod:`vehiclemae.reid.finetune`. Evaluation is
:mod:`vehiclemae.reid.evaluate`, checkpoints :mod:`vehiclemae.reid.checkpoints`, trackers
:mod:`vehiclemae.reid.tracking`.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_manifests import atomic_write_bytes
from data_manifests.checkpoints import best_path
from data_manifests.checkpoints import last_path as ckpt_last_path
from data_manifests.seeds import derive_seed

from . import finetune as ft
from .checkpoints import find_resume_point, load_model, restore, save_reid_checkpoint
from .config import FinetuneConfig
from .evaluate import IMAGENET_MEAN, IMAGENET_STD, eval_loader, evaluate_model, load_split
from .tracking import FinetuneTracking

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=float) + "\n").encode())


def run(cfg: FinetuneConfig, resume: bool = True, stop_after_epoch: int | None = None) -> dict[str, Any]:
    """Fine-tune (supervised or unsupervised), choosing the model on validation identities; writes into
    ``cfg.output_dir``: ``config.yaml``, ``checkpoints/checkpoint-best.pt`` (best validation mAP, or Rank-1 for
    VehicleID; the last epoch when ``data.val_identities`` is 0), ``checkpoints/checkpoint-last.pt`` (with optimiser
    and RNG states), ``metrics.jsonl`` and ``result.json`` (test metrics of the best checkpoint and of the last epoch,
    each evaluated once at the end). Returns the result dict.

    The test split never influences training or selection. A run continues after the epoch stored in
    ``checkpoint-last.pt`` when it exists (the validation split is redrawn identically from ``seed`` and checked);
    ``resume=False`` starts over. ``stop_after_epoch=e`` returns after ``e`` epochs are done and checkpointed,
    without the test evaluation (as if the job had been interrupted there).
    """
    from vehiclemae.config import save_run_config
    from vehiclemae.reid.data import ReIDImageDataset, build_transforms, relabel

    from .validation import split_validation

    cfg.validate()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    last_path = find_resume_point(out, resume)
    save_run_config(cfg, out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)

    # 1. Data: the parsed split; validation identities held out of the training identities (a pure function of the
    #    seed); training labels (ground truth or, unsupervised, re-clustered each epoch).
    split = {**load_split(cfg.data.dataset, cfg.data.root, cfg.data.vehicleid_test_size), "name": "test"}
    val = split_validation(
        split["train"], cfg.data.dataset, cfg.data.val_identities, cfg.seed, split.get("train_groups")
    )
    _log_validation(val, len({s.pid for s in split["train"]}), cfg)
    train_samples = val.train
    gt_labels, _ = relabel(train_samples)
    size = cfg.model.img_size
    transform = build_transforms(size, True, IMAGENET_MEAN, IMAGENET_STD, hflip=cfg.data.hflip)
    train_set = ReIDImageDataset(train_samples, transform, gt_labels)

    # 2. Model: backbone from the chosen initialisation + BNNeck (+ classifier when supervised).
    backbone, spec = ft.build_backbone(
        cfg.model.init, cfg.model.model_name, size, cfg.model.init_path, cfg.model.drop_path_rate
    )
    num_classes = int(gt_labels.max()) + 1 if cfg.mode == "supervised" else 0
    model = ft.ReIDModel(backbone, num_classes, spec).to(cfg.device)
    optimizer = ft.build_optimizer(
        model, cfg.optim.optimizer, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.layer_decay
    )
    weights = ft.LossWeights(
        cfg.optim.id_weight, cfg.optim.triplet_weight, cfg.optim.label_smoothing, cfg.optim.triplet_margin
    )
    key_metric = "mAP" if cfg.data.dataset == "veri776" else "Rank-1"
    history_path = out / "metrics.jsonl"
    # best: the validation result that chose checkpoint-best.pt; val_result: the latest validation result
    best, val_result, start_epoch = restore(last_path, model, optimizer, val.val_pids, cfg)
    if start_epoch == 0:
        history_path.unlink(missing_ok=True)
    tracking = FinetuneTracking(cfg, out)

    # 3. Epochs: (unsupervised: cluster) -> train -> (every N epochs) validate -> checkpoints.
    end = cfg.optim.epochs if stop_after_epoch is None else min(cfg.optim.epochs, stop_after_epoch)
    for epoch in range(start_epoch, end):
        memory = None
        row: dict[str, Any] = {"epoch": epoch}
        if cfg.mode == "unsupervised":
            memory, n_clusters, n_out = _recluster(model, train_samples, train_set, cfg)
            row.update(clusters=n_clusters, unclustered=n_out)
            if memory is None:
                # Nothing to contrast against; the epoch is still validated so the run reports what it has.
                logger.warning("epoch %d: DBSCAN found fewer than 2 clusters; no training this epoch", epoch)
        if cfg.mode == "supervised" or memory is not None:
            row.update(_train_epoch(model, train_set, optimizer, weights, memory, epoch, cfg))
        last_epoch = epoch == cfg.optim.epochs - 1
        if val.enabled and (last_epoch or (cfg.eval.every > 0 and (epoch + 1) % cfg.eval.every == 0)):
            val_result = row["val"] = _evaluate(model, val.eval_split, cfg, keep := {})
            tracking.retrieval(val.eval_split, keep, epoch, "val")
            # Ties (frequent on a few validation identities) go to the other metric, then to the later epoch.
            if best["val"] is None or _rank_key(val_result, key_metric) >= _rank_key(best["val"], key_metric):
                best = {"epoch": epoch, "val": val_result}
                save_reid_checkpoint(best_path(out), model, epoch=epoch, metrics=val_result, config=asdict(cfg))
        elif not val.enabled and last_epoch:
            best = {"epoch": epoch, "val": None}
            save_reid_checkpoint(best_path(out), model, epoch=epoch, metrics=None, config=asdict(cfg))
        save_reid_checkpoint(
            ckpt_last_path(out),
            model,
            rng=True,
            epoch=epoch,
            metrics=val_result,
            config=asdict(cfg),
            optimizer=optimizer.state_dict(),
            best=best,
            val_pids=val.val_pids,
        )
        logger.info("epoch %d: %s", epoch, json.dumps(row, default=float))
        _append_jsonl(history_path, row)
        tracking.log(row, epoch)
    if end < cfg.optim.epochs:
        tracking.finish()
        logger.info("stopped after %d of %d epochs; a rerun continues", end, cfg.optim.epochs)
        return {"stopped": True, "epochs_done": end, "epochs": cfg.optim.epochs}

    # 4. Test, once per model: checkpoint-best.pt (chosen on validation, or the last epoch) and the last epoch.
    final_epoch = cfg.optim.epochs - 1
    test_last = _evaluate(model, split, cfg, keep := {})
    if best["epoch"] == final_epoch:
        test_best = test_last
    else:
        best_model, _ = load_model(best_path(out), size)
        test_best = _evaluate(best_model.to(cfg.device), split, cfg)
    final = {
        "mode": cfg.mode,
        "dataset": cfg.data.dataset,
        "init": cfg.model.init,
        "selection": "validation" if val.enabled else "last_epoch",
        "val_identities": len(val.val_pids),
        "best_epoch": best["epoch"],
        "best": {**test_best, "epoch": best["epoch"], "val": best["val"]},
        "last": {**test_last, "epoch": final_epoch, "val": val_result},
    }
    _write_json(out / "result.json", final)
    tracking.log({"test": {"best": test_best, "last": test_last}}, final_epoch)
    tracking.retrieval(split, keep, final_epoch, "test")
    tracking.finish()
    logger.info(describe_result(final))
    return final


def _evaluate(
    model: torch.nn.Module, split: dict[str, Any], cfg: FinetuneConfig, keep: dict[str, Any] | None = None
) -> dict[str, Any]:
    """:func:`evaluate_model` with the run's eval settings, on the validation or the test split."""
    rerank = {"k1": cfg.eval.k1, "k2": cfg.eval.k2, "lambda_value": cfg.eval.lambda_value} if cfg.eval.rerank else None
    return evaluate_model(
        model,
        cfg.data.dataset,
        split,
        img_size=cfg.model.img_size,
        batch_size=cfg.data.eval_batch_size,
        num_workers=cfg.data.num_workers,
        metric=cfg.eval.metric,
        rerank=rerank,
        num_trials=cfg.eval.num_trials,
        max_rank=cfg.eval.max_rank,
        seed=cfg.seed,
        device=cfg.device,
        keep=keep,
    )


def _rank_key(metrics: dict[str, Any], key_metric: str) -> tuple[float, float]:
    """Model-selection order: the key metric (VeRi mAP / VehicleID Rank-1), then the other one."""
    other = "Rank-1" if key_metric == "mAP" else "mAP"
    return float(metrics[key_metric]), float(metrics.get(other, 0.0))


def _log_validation(val: Any, num_ids: int, cfg: FinetuneConfig) -> None:
    if not val.enabled:
        logger.warning(
            "data.val_identities=0: no validation; all %d training identities are trained on and the best checkpoint "
            "will be the LAST epoch (the test split is evaluated only at the end and chooses nothing)",
            num_ids,
        )
        return
    split = val.eval_split
    if "query" in split:
        sizes = f"{len(split['query'])} queries, {len(split['gallery'])} gallery images"
    else:
        sizes = f"{len(split['test'])} images"
    logger.info(
        "validation: %d of %d training identities held out (data.val_identities=%s, seed %d; %s); the best "
        "checkpoint is chosen on them, the test split is evaluated only at the end",
        len(val.val_pids),
        num_ids,
        cfg.data.val_identities,
        cfg.seed,
        sizes,
    )


def describe_result(result: dict[str, Any]) -> str:
    """One plain sentence: which split chose the model, and its test metrics (and the last epoch's)."""
    keys = ("mAP", "Rank-1") if result["dataset"] == "veri776" else ("Rank-1", "Rank-5")

    def metrics(res: dict[str, Any], prefix: str) -> str:
        return ", ".join(f"{prefix} {k} {res[k]:.1f}" for k in keys)

    best, last = result["best"], result["last"]
    if result["selection"] == "validation":
        head = (
            f"best epoch {result['best_epoch']} chosen on {result['val_identities']} validation identities "
            f"(val {keys[0]} {best['val'][keys[0]]:.1f}); {metrics(best, 'test')}"
        )
    else:
        head = (
            f"no validation identities: the best checkpoint is the last epoch {result['best_epoch']}; "
            f"{metrics(best, 'test')}"
        )
    views = [f"{k} {best[k]:.1f}" for k in ("cross_view_mAP", "same_view_mAP") if best.get(k) is not None]
    if views:
        head += " (" + ", ".join(views) + ")"
    if result["best_epoch"] != last["epoch"]:
        head += f"; last epoch {last['epoch']}: {metrics(last, 'test')}"
    return head


def _train_epoch(
    model: ft.ReIDModel,
    train_set: Any,
    optimizer: torch.optim.Optimizer,
    weights: ft.LossWeights,
    memory: ft.ClusterMemory | None,
    epoch: int,
    cfg: FinetuneConfig,
) -> dict[str, float]:
    """One epoch over the samples that have a label (all when supervised, the clustered ones when not)."""
    from vehiclemae.data import PKSampler

    labels = train_set.labels
    usable = np.flatnonzero(labels >= 0)
    # Unsupervised: early epochs may find fewer clusters than P; batches then hold every cluster.
    p = min(cfg.data.p, len(np.unique(labels[usable])))
    sampler = PKSampler(_masked_labels(labels), p, cfg.data.k, seed=cfg.seed)
    sampler.set_epoch(epoch)
    loader = ft.make_loader(
        torch.utils.data.Subset(train_set, usable) if len(usable) < len(labels) else train_set,
        p * cfg.data.k,
        sampler,
        cfg.data.num_workers,
        seed=derive_seed(cfg.seed, "reid.finetune.loader", epoch),
    )
    stats = ft.train_one_epoch(
        model,
        loader,
        optimizer,
        epoch=epoch,
        epochs=cfg.optim.epochs,
        base_lr=cfg.optim.lr,
        warmup_epochs=cfg.optim.warmup_epochs,
        min_lr_ratio=cfg.optim.min_lr_ratio,
        weights=weights,
        memory=memory,
        max_iters=cfg.optim.max_iters_per_epoch,
        device=cfg.device,
    )
    return stats


def _masked_labels(labels: np.ndarray) -> np.ndarray:
    """Labels of the clustered samples only (the PK sampler indexes the Subset of usable samples)."""
    return labels[labels >= 0]


def _append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(row, default=float) + "\n")


def _recluster(
    model: ft.ReIDModel, samples: list, train_set: Any, cfg: FinetuneConfig
) -> tuple[ft.ClusterMemory | None, int, int]:
    """Pseudo labels for this epoch (set on ``train_set``) and a memory initialised from the cluster centroids."""
    loader = eval_loader(samples, cfg.model.img_size, cfg.data.eval_batch_size, cfg.data.num_workers)
    feats, _, _ = ft.extract_features(model, loader, cfg.device, "cluster")
    u = cfg.unsupervised
    labels = ft.cluster_pseudo_labels(feats, u.k1, u.k2, u.eps, u.min_samples)
    n_clusters = int(labels.max()) + 1
    n_out = int((labels < 0).sum())
    logger.info("clustering: %d clusters, %d of %d images un-clustered", n_clusters, n_out, len(labels))
    train_set.set_labels(labels)
    if n_clusters < 2:
        return None, n_clusters, n_out
    memory = ft.ClusterMemory(ft.centroids(feats, labels), u.temperature, u.momentum).to(cfg.device)
    return memory, n_clusters, n_out
