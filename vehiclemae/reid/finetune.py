"""Re-ID fine-tuning engine: backbone + BNNeck model, losses, optimiser groups, train/eval loops, checkpoints.

Supervised (TransReID / "bag of tricks" recipe): a ViT backbone's class-token feature goes through a BNNeck
(BatchNorm1d with a frozen bias); the pre-BN feature takes a batch-hard triplet loss, the post-BN feature a
label-smoothed cross-entropy via a bias-free classifier; PK batches; warmup + cosine learning rate; optional
layer-wise lr decay (the schedule and parameter groups are :mod:`data_manifests.schedule`). Evaluation uses the
post-BN feature.

Unsupervised (cluster-contrast recipe, as used by the paper's † unsupervised rows): each epoch the training images'
features are clustered with DBSCAN on the k-reciprocal Jaccard distance; un-clustered images are left out for the
epoch; the cluster centroids initialise a memory bank and the loss is the InfoNCE of each feature against all
centroids (temperature ``tau``), the memory being updated with momentum by the batch features.

Everything here takes explicit arguments; ``vehiclemae.commands.finetune`` turns the YAML config into them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from data_manifests.schedule import param_groups, prefixed_group_matcher, set_lr, warmup_cosine

logger = logging.getLogger(__name__)

INITS = ("scratch", "export", "mae", "clip")


# --------------------------------------------------------------------------------------------------- model
def build_backbone(
    init: str, model_name: str, img_size: int, init_path: str | None = None, drop_path_rate: float = 0.0
) -> tuple[nn.Module, dict[str, Any]]:
    """A timm ViT without head (``forward: (N, 3, H, W) -> (N, D)``) and its spec ``{model_name, img_size}``.

    Args:
        init: ``scratch`` (random), ``export`` (a ``vehiclemae export`` safetensors file; its metadata names the
            architecture, ``model_name`` is ignored), ``mae`` (a timm/MAE ViT state dict from a local file) or
            ``clip`` (a local CLIP ViT-B/16 file into ``vehiclemae_vit_base_patch16_clip``).
        model_name: a timm name (``vehiclemae_vit_*`` or any timm ViT such as ``vit_tiny_patch16_224``).
        init_path: the weight file for every init but ``scratch``.
    """
    import timm

    import vehiclemae.models  # noqa: F401 - registers the vehiclemae_vit_* names with timm
    from vehiclemae.models import load_encoder, read_metadata
    from vehiclemae.models.init import load_into_encoder

    if init not in INITS:
        raise ValueError(f"model.init must be one of {INITS}, got {init!r}")
    if init != "scratch" and not init_path:
        raise ValueError(f"model.init={init} needs model.init_path (a local weight file)")
    if init == "export":
        meta = read_metadata(init_path)
        backbone = load_encoder(init_path, img_size=img_size, drop_path_rate=drop_path_rate)
        return backbone, {"model_name": meta["model_name"], "img_size": img_size, "source": meta["source"]}
    backbone = timm.create_model(
        model_name, pretrained=False, num_classes=0, img_size=img_size, drop_path_rate=drop_path_rate
    )
    if init in ("mae", "clip"):
        load_into_encoder(backbone, init_path, kind=init)
    return backbone, {"model_name": model_name, "img_size": img_size, "source": init}


class ReIDModel(nn.Module):
    """Backbone + BNNeck (+ identity classifier when ``num_classes > 0``).

    ``forward(x)`` with ``x (N, 3, H, W)``: in training returns ``(logits (N, C) | None, feat (N, D), bn (N, D))``
    with the pre-BN feature ``feat`` (triplet loss) and the post-BN ``bn`` (cluster memory); in eval returns the
    post-BN feature ``(N, D)``.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, spec: dict[str, Any]) -> None:
        super().__init__()
        self.backbone = backbone
        self.spec = dict(spec)
        dim = int(backbone.num_features)
        self.bottleneck = nn.BatchNorm1d(dim)
        self.bottleneck.bias.requires_grad_(False)  # BNNeck: a shift would only move every class together
        nn.init.constant_(self.bottleneck.weight, 1.0)
        nn.init.constant_(self.bottleneck.bias, 0.0)
        self.num_classes = int(num_classes)
        self.classifier = nn.Linear(dim, num_classes, bias=False) if num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> Any:
        feat = self.backbone(x)
        bn = self.bottleneck(feat)
        if not self.training:
            return bn
        return (self.classifier(bn) if self.classifier is not None else None), feat, bn

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """The backbone's timm layer groups (for layer-wise lr decay); its final norm, the BNNeck and the classifier
        form the last layer (MAE's convention)."""
        return prefixed_group_matcher(self.backbone.group_matcher(coarse), "backbone.")

    def reset_classifier(self, num_classes: int) -> None:
        dim = self.bottleneck.num_features
        self.num_classes = int(num_classes)
        self.classifier = nn.Linear(dim, num_classes, bias=False) if num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)


# -------------------------------------------------------------------------------------------------- losses
def batch_hard_triplet(feat: torch.Tensor, labels: torch.Tensor, margin: float | None = 0.3) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al., 2017) on Euclidean distances.

    ``feat (N, D)``, ``labels (N,)``. For each anchor the farthest positive and the nearest negative;
    ``margin=None`` uses the soft-margin ``softplus(d_ap - d_an)``. Anchors without a positive or negative are
    ignored (returns 0 if none is usable).
    """
    dist = torch.cdist(feat, feat).clamp_min(1e-12)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=feat.device)
    pos_mask, neg_mask = same & ~eye, ~same
    usable = pos_mask.any(1) & neg_mask.any(1)
    if not usable.any():
        return feat.sum() * 0.0
    d_ap = torch.where(pos_mask, dist, torch.zeros_like(dist)).max(1).values
    d_an = torch.where(neg_mask, dist, torch.full_like(dist, float("inf"))).min(1).values
    d_ap, d_an = d_ap[usable], d_an[usable]
    if margin is None:
        return F.softplus(d_ap - d_an).mean()
    return F.relu(d_ap - d_an + margin).mean()


class ClusterMemory(nn.Module):
    """Cluster-level memory for unsupervised Re-ID (Dai et al., "Cluster Contrast", 2022).

    ``features (K, D)`` L2-normalised centroids; ``loss(feat (N, D), labels (N,))`` is the InfoNCE of each
    normalised feature against all centroids; ``update`` moves each sample's centroid towards it with momentum.
    """

    def __init__(self, centroids: torch.Tensor, temperature: float = 0.05, momentum: float = 0.2) -> None:
        super().__init__()
        self.temperature, self.momentum = temperature, momentum
        self.register_buffer("features", F.normalize(centroids.float(), dim=1))

    def loss(self, feat: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = F.normalize(feat, dim=1) @ self.features.T / self.temperature
        return F.cross_entropy(logits, labels)

    @torch.no_grad()
    def update(self, feat: torch.Tensor, labels: torch.Tensor) -> None:
        feat = F.normalize(feat.detach(), dim=1)
        for f, y in zip(feat, labels):
            m = self.features[y] * self.momentum + (1.0 - self.momentum) * f
            self.features[y] = m / m.norm().clamp_min(1e-12)


# ----------------------------------------------------------------------------------------------- optimiser
def build_optimizer(
    model: ReIDModel, name: str, lr: float, weight_decay: float, layer_decay: float = 1.0
) -> torch.optim.Optimizer:
    """AdamW or SGD over :func:`data_manifests.schedule.param_groups` with layer-wise lr decay (``layer_decay < 1``;
    1 keeps every ``lr_scale`` at 1): no weight decay on 1-D parameters, tokens and position embeddings."""
    groups = param_groups(model, weight_decay=weight_decay, layer_decay=layer_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    raise ValueError(f"optim.optimizer must be 'adamw' or 'sgd', got {name!r}")


# ----------------------------------------------------------------------------------------------- loops
@dataclass
class LossWeights:
    id_weight: float = 1.0
    triplet_weight: float = 1.0
    label_smoothing: float = 0.1
    triplet_margin: float | None = 0.3


def train_one_epoch(
    model: ReIDModel,
    loader: Iterable[dict[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    *,
    epoch: int,
    epochs: int,
    base_lr: float,
    warmup_epochs: float,
    min_lr_ratio: float,
    weights: LossWeights,
    memory: ClusterMemory | None = None,
    max_iters: int | None = None,
    device: str = "cpu",
) -> dict[str, float]:
    """One epoch of supervised (ID + triplet) or, with ``memory``, unsupervised (cluster contrast + triplet) training.

    The lr follows :func:`data_manifests.schedule.warmup_cosine` per iteration (the warmup starts at
    ``1 / (warmup_epochs + 1)``, so the first iteration already learns; the cosine ends at ``min_lr_ratio``).
    Returns mean ``loss``, ``id``, ``triplet``, ``acc``, ``lr``.
    Stops with an error on a non-finite loss (a diverged run is not worth continuing).
    """
    model.train()
    n_iters = len(loader) if max_iters is None else min(len(loader), max_iters)  # type: ignore[arg-type]
    if n_iters == 0:
        raise ValueError("the training loader is empty (fewer images than one P x K batch?)")
    sums = {"loss": 0.0, "id": 0.0, "triplet": 0.0, "acc": 0.0}
    lr = base_lr
    for it, batch in enumerate(tqdm(loader, total=n_iters, desc=f"epoch {epoch}", leave=False)):
        if it >= n_iters:
            break
        lr = base_lr * warmup_cosine(
            epoch + it / n_iters, total=epochs, warmup=warmup_epochs, min_lr=min_lr_ratio, warmup_start=1.0
        )
        set_lr(optimizer, lr)
        images, labels = batch["image"].to(device), batch["label"].to(device)
        logits, feat, bn = model(images)
        if memory is not None:
            id_loss = memory.loss(bn, labels)
        else:
            id_loss = F.cross_entropy(logits, labels, label_smoothing=weights.label_smoothing)
        tri = batch_hard_triplet(feat, labels, weights.triplet_margin)
        loss = weights.id_weight * id_loss + weights.triplet_weight * tri
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at epoch {epoch} iteration {it}; lower optim.lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if memory is not None:
            memory.update(bn, labels)
            acc = 0.0
        else:
            acc = float((logits.argmax(1) == labels).float().mean())
        sums["loss"] += float(loss.detach())
        sums["id"] += float(id_loss.detach())
        sums["triplet"] += float(tri.detach())
        sums["acc"] += acc
    out = {k: v / n_iters for k, v in sums.items()}
    out["lr"] = lr
    return out


@torch.no_grad()
def extract_features(
    model: nn.Module, loader: Iterable[dict[str, torch.Tensor]], device: str = "cpu", desc: str = "features"
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Eval-mode features ``(N, D)`` float32 with the items' ``label`` and ``camid`` arrays (dataset order)."""
    model.eval()
    feats, labels, cams = [], [], []
    for batch in tqdm(loader, desc=desc, leave=False):
        feats.append(model(batch["image"].to(device)).float().cpu())
        labels.append(batch["label"].numpy())
        cams.append(batch["camid"].numpy())
    return torch.cat(feats), np.concatenate(labels), np.concatenate(cams)


def cluster_pseudo_labels(
    features: torch.Tensor, k1: int = 30, k2: int = 6, eps: float = 0.6, min_samples: int = 4
) -> np.ndarray:
    """DBSCAN on the k-reciprocal Jaccard distance of ``features (N, D)``: ``(N,)`` labels, ``-1`` = un-clustered."""
    from sklearn.cluster import DBSCAN

    from .reranking import compute_jaccard_distance

    n = features.shape[0]
    jaccard = compute_jaccard_distance(F.normalize(features, dim=1), k1=min(k1, n - 1), k2=min(k2, n))
    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed", n_jobs=1).fit_predict(jaccard)


def centroids(features: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    """``(K, D)`` mean feature of each cluster ``0..K-1`` (labels ``-1`` ignored)."""
    k = int(labels.max()) + 1
    idx = torch.from_numpy(labels)
    keep = idx >= 0
    sums = torch.zeros(k, features.shape[1]).index_add_(0, idx[keep], features[keep].float())
    counts = torch.bincount(idx[keep], minlength=k).clamp_min(1)[:, None]
    return sums / counts


def make_loader(
    dataset: torch.utils.data.Dataset,
    batch_size: int,
    sampler: torch.utils.data.Sampler | None = None,
    num_workers: int = 0,
    seed: int = 0,
) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=num_workers,
        drop_last=sampler is not None,
        generator=gen,
        persistent_workers=False,
        multiprocessing_context="forkserver" if num_workers > 0 else None,  # see engine.pretrain: no fork of threads
    )
