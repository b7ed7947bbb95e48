"""Frozen-encoder Re-ID protocols: k-NN retrieval on mean-pooled / class-token features and a linear probe.

Fine-tuning moves every weight and mostly measures the fine-tuning recipe; these protocols keep the encoder frozen
so that what pre-training put into the features is what is measured:

* ``knn_mean``: mean of the final (normed) patch tokens, prefix tokens (class, registers) excluded;
* ``knn_cls``: the final normed class token;
* ``linear_probe``: BatchNorm1d(affine=False) + Linear(D, n_train_ids) trained with cross-entropy on the frozen
  ``[cls, mean]`` features of the training identities minus held-out validation identities; the epoch is chosen by
  validation mAP; retrieval uses the L2-normalised logits.

All three retrieve the VeRi-776 test queries in the gallery with cosine distance on L2-normalised vectors and
report :func:`vehiclemae.reid.views.retrieval_metrics` (view metrics when ``toyworld_meta.json`` exists).
Features come from the evaluation transform (resize to the encoder's size, ImageNet normalisation), computed once.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data_manifests.seeds import torch_generator

from .metrics import pairwise_distance
from .views import retrieval_metrics

logger = logging.getLogger(__name__)

PROTOCOLS: tuple[str, ...] = ("knn_mean", "knn_cls", "linear_probe")
DEFAULT_MODEL_NAME = "vehiclemae_vit_toy_patch8"


def check_protocols(protocols: list[str] | tuple[str, ...] | str) -> list[str]:
    """Validate protocol names (a list or a comma-separated string); an unknown name lists the valid ones."""
    from vehiclemae.config import parse_names

    return parse_names(protocols, PROTOCOLS, "protocol")


# ------------------------------------------------------------------------------------------------ encoder
def build_frozen_encoder(
    encoder_path: str | Path | None,
    *,
    init_seed: int = 0,
    model_name: str = DEFAULT_MODEL_NAME,
    img_size: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """An eval-mode timm ViT (no head) and its spec ``{model_name, img_size, source}``.

    ``encoder_path``: a ``vehiclemae export`` ``.safetensors`` file (its metadata names architecture and size;
    ``img_size`` overrides the size). ``None``: a random initialisation of ``model_name`` seeded by ``init_seed``.
    """
    from vehiclemae.models import read_metadata
    from vehiclemae.models.vit import DEFAULT_IMG_SIZE

    from .finetune import build_backbone

    if encoder_path is not None:
        path = Path(encoder_path)
        if path.suffix != ".safetensors":
            raise ValueError(f"{path}: expected an exported encoder (.safetensors from `vehiclemae export`)")
        meta = read_metadata(path)  # FileNotFoundError / ValueError with the fix in the message
        size = int(img_size or meta["img_size"])
        model, spec = build_backbone("export", meta["model_name"], size, str(path))
    else:
        size = int(img_size or DEFAULT_IMG_SIZE.get(model_name, 0))
        if size <= 0:
            raise ValueError(f"model {model_name!r} has no default image size; pass img_size")
        torch.manual_seed(init_seed)
        model, spec = build_backbone("scratch", model_name, size)
        spec["init_seed"] = int(init_seed)
    return model.eval(), spec


@torch.no_grad()
def extract_tokens(
    model: nn.Module, samples: list, img_size: int, batch_size: int = 64, device: str = "cpu"
) -> dict[str, Any]:
    """Frozen features of ``samples`` (dataset order): ``cls (N, D)`` the final normed class token (``None`` if the
    model has none), ``mean (N, D)`` the mean of the final normed patch tokens, ``pids``, ``camids`` ``(N,)``."""
    from .evaluate import eval_loader

    model.eval().to(device)
    prefix = int(getattr(model, "num_prefix_tokens", 1))
    has_cls = getattr(model, "cls_token", None) is not None
    cls_list, mean_list, pids, cams = [], [], [], []
    for batch in eval_loader(samples, img_size, batch_size):
        tokens = model.forward_features(batch["image"].to(device)).float()  # (B, prefix + L, D), after the norm
        if has_cls:
            cls_list.append(tokens[:, 0].cpu())
        mean_list.append(tokens[:, prefix:].mean(1).cpu())
        pids.append(batch["label"].numpy())
        cams.append(batch["camid"].numpy())
    return {
        "cls": torch.cat(cls_list) if has_cls else None,
        "mean": torch.cat(mean_list),
        "pids": np.concatenate(pids),
        "camids": np.concatenate(cams),
    }


# ------------------------------------------------------------------------------------------- linear probe
@dataclass
class ProbeConfig:
    """Linear-probe optimisation; validation every ``eval_every`` epochs selects the epoch."""

    epochs: int = 100
    eval_every: int = 5
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    val_fraction: float = 0.2
    seed: int = 0


@dataclass
class ProbeResult:
    head: nn.Module  # BatchNorm1d(affine=False) + Linear at the selected epoch, eval mode
    epoch: int  # selected epoch (1-based: number of epochs trained)
    val_mAP: float  # percent
    history: list[dict[str, float]] = field(default_factory=list)


def split_validation(
    pids: np.ndarray,
    camids: np.ndarray,
    fraction: float = 0.2,
    seed: int = 0,
    groups: dict[int, str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays ``(train, val_query, val_gallery)`` into ``pids``: the fine-tuning validation split
    (:func:`vehiclemae.reid.validation.split_validation`, whole ``groups`` when given) on arrays.

    ``fraction`` of the training identities (at least one) are held out; per validation identity up to two queries on
    distinct cameras, each keeping a same-identity gallery image on another camera.
    """
    from vehiclemae.reid.data import ReIDSample

    from .validation import split_validation as split_samples

    pids, camids = np.asarray(pids), np.asarray(camids)
    if np.unique(pids).size < 3:
        raise ValueError(
            f"the linear probe needs >= 3 training identities (2 to train, 1 to validate), got {np.unique(pids).size}"
        )
    samples = [ReIDSample(Path(str(i)), int(p), int(c)) for i, (p, c) in enumerate(zip(pids, camids, strict=True))]
    val = split_samples(samples, "veri776", fraction, seed, groups)
    if not val.enabled:
        raise ValueError(f"the linear probe needs validation identities; got fraction {fraction}")

    def indices(part: list[ReIDSample]) -> np.ndarray:
        return np.array(sorted(int(str(s.path)) for s in part), dtype=np.int64)

    return indices(val.train), indices(val.eval_split["query"]), indices(val.eval_split["gallery"])


def _embed(head: nn.Module, feats: torch.Tensor) -> torch.Tensor:
    head.eval()
    with torch.no_grad():
        return F.normalize(head(feats), dim=1)


def train_linear_probe(
    train_feats: torch.Tensor,
    train_pids: np.ndarray,
    val_query: tuple[torch.Tensor, np.ndarray, np.ndarray],
    val_gallery: tuple[torch.Tensor, np.ndarray, np.ndarray],
    cfg: ProbeConfig | None = None,
    device: str = "cpu",
) -> ProbeResult:
    """Train ``BatchNorm1d(affine=False) + Linear(D, n_ids)`` with cross-entropy on frozen features; keep the epoch
    with the best validation mAP (query/gallery ``(feats (N, D), pids (N,), camids (N,))``, cosine distance on the
    L2-normalised logits). Seeded: the same inputs give the same head."""
    cfg = cfg or ProbeConfig()
    ids, labels_np = np.unique(np.asarray(train_pids), return_inverse=True)
    labels = torch.from_numpy(labels_np.astype(np.int64)).to(device)
    x = train_feats.float().to(device)
    n_ids = int(ids.size)
    gen = torch_generator(cfg.seed, "reid.probe.batch_order")
    torch.manual_seed(cfg.seed)
    head = nn.Sequential(nn.BatchNorm1d(x.shape[1], affine=False), nn.Linear(x.shape[1], n_ids)).to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    qf, qp, qc = val_query
    gf, gp, gc = val_gallery
    qf, gf = qf.float().to(device), gf.float().to(device)
    best = ProbeResult(copy.deepcopy(head), 0, -1.0)
    history: list[dict[str, float]] = []
    for epoch in range(1, cfg.epochs + 1):
        head.train()
        order = torch.randperm(x.shape[0], generator=gen).to(device)
        total = 0.0
        for start in range(0, x.shape[0], cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            if idx.numel() < 2:  # BatchNorm needs two samples in training mode
                continue
            loss = F.cross_entropy(head(x[idx]), labels[idx])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"linear probe: non-finite loss at epoch {epoch}; lower the probe lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            dist = pairwise_distance(_embed(head, qf), _embed(head, gf), metric="cosine").cpu().numpy()
            val = retrieval_metrics(dist, qp, gp, qc, gc)["mAP"]
            history.append({"epoch": epoch, "loss": total / x.shape[0], "val_mAP": val})
            logger.debug("linear probe epoch %d: loss %.4f val mAP %.2f", epoch, total / x.shape[0], val)
            if val > best.val_mAP:  # strict: ties keep the earlier (shorter) training
                best = ProbeResult(copy.deepcopy(head).eval(), epoch, val)
    best.history = history
    return best


# --------------------------------------------------------------------------------------------------- run
def _features(tokens: dict[str, Any], kind: str) -> torch.Tensor:
    if kind == "cls":
        if tokens["cls"] is None:
            raise ValueError("the encoder has no class token; use the knn_mean protocol")
        return tokens["cls"]
    if kind == "mean":
        return tokens["mean"]
    # "cls+mean": the probe can weight whichever carries identity (MAE objectives never train the class token).
    return tokens["mean"] if tokens["cls"] is None else torch.cat([tokens["cls"], tokens["mean"]], dim=1)


def run_frozen(
    encoder_path: str | Path | None,
    root: str | Path,
    protocols: list[str] | tuple[str, ...] | str = PROTOCOLS,
    *,
    init_seed: int = 0,
    model_name: str = DEFAULT_MODEL_NAME,
    img_size: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "cpu",
    probe: ProbeConfig | None = None,
    split: str = "test",
) -> dict[str, dict[str, Any]]:
    """Run frozen protocols on a VeRi-776 layout root: ``{protocol: metrics}``.

    Args:
        encoder_path: exported ``.safetensors`` encoder, or ``None`` for a random ``model_name`` seeded by
            ``init_seed`` (the "no pre-training" reference).
        root: VeRi-776 layout (``image_train/``, ``image_query/``, ``image_test/``); view metrics are reported when
            ``ROOT/toyworld_meta.json`` exists.
        protocols: names from :data:`PROTOCOLS` (list or comma-separated string).
        img_size: input size (default: the encoder's); ``seed``: the probe's validation split and training.
        split: ``"test"`` (the layout's query/gallery) or ``"val"``: query/gallery from validation identities held
            out of the training identities (:func:`vehiclemae.reid.validation.split_validation`, the fraction
            of ``probe.val_fraction``, whole families on toy-world roots), the linear probe trained on the rest.
            Choose pre-training settings on ``"val"``; the test split is read only for the final report.

    Returns:
        per protocol the dict of :func:`~vehiclemae.reid.views.retrieval_metrics` (percentages) plus
        ``"feature"``, ``"seconds"``; ``linear_probe`` adds ``"selected_epoch"``, ``"val_mAP"``,
        ``"num_train_ids"``, ``"num_val_ids"``, ``"num_val_queries"``.
    """
    from vehiclemae.reid.data import load_veri776
    from vehiclemae.reid.toymeta import load_toy_meta

    names = check_protocols(protocols)
    # 1. Data and (optional) views: fail on a wrong layout before building anything.
    if split not in ("test", "val"):
        raise ValueError(f"unknown split {split!r}; valid: test, val")
    data = load_veri776(root)
    meta = load_toy_meta(root)
    probe = probe or ProbeConfig(seed=seed)
    if split == "val":
        data = _validation_as_test(data, probe, meta.family_groups(data.train) if meta else None)
    q_views = meta.views_for(data.query) if meta else None
    g_views = meta.views_for(data.gallery) if meta else None
    # 2. Frozen features, once per split.
    model, spec = build_frozen_encoder(encoder_path, init_seed=init_seed, model_name=model_name, img_size=img_size)
    size = int(spec["img_size"])
    t0 = time.perf_counter()
    query = extract_tokens(model, data.query, size, batch_size, device)
    gallery = extract_tokens(model, data.gallery, size, batch_size, device)
    train = extract_tokens(model, data.train, size, batch_size, device) if "linear_probe" in names else None
    logger.info("frozen features of %s in %.1f s", spec.get("model_name"), time.perf_counter() - t0)
    # 3. Protocols.
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        t0 = time.perf_counter()
        if name in ("knn_mean", "knn_cls"):
            kind = name.split("_", 1)[1]
            qf, gf = _features(query, kind), _features(gallery, kind)
            extra: dict[str, Any] = {"feature": kind}
        else:
            assert train is not None
            groups = meta.family_groups(data.train) if meta else None
            qf, gf, extra = _probe_embeddings(train, query, gallery, probe, device, groups)
        dist = pairwise_distance(qf, gf, metric="cosine").numpy()
        res = retrieval_metrics(
            dist, query["pids"], gallery["pids"], query["camids"], gallery["camids"], q_views, g_views
        )
        out[name] = {**res, **extra, "seconds": round(time.perf_counter() - t0, 3)}
    return out


def _validation_as_test(data: Any, probe: ProbeConfig, groups: dict[int, str] | None) -> Any:
    """``data`` with its query/gallery replaced by validation identities held out of its training identities."""
    from vehiclemae.reid.data import ReIDSplit

    from .validation import split_validation as split_samples

    val = split_samples(data.train, "veri776", probe.val_fraction, probe.seed, groups)
    assert val.eval_split is not None  # val_fraction > 0 always holds identities out
    return ReIDSplit(
        f"{data.name} (validation identities)", data.root, val.train, val.eval_split["query"], val.eval_split["gallery"]
    )


def _probe_embeddings(
    train: dict[str, Any],
    query: dict[str, Any],
    gallery: dict[str, Any],
    cfg: ProbeConfig,
    device: str,
    groups: dict[int, str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Fit the probe on the training identities (validation ids held out) and embed the test query/gallery."""
    feats = _features(train, "cls+mean")
    tr, vq, vg = split_validation(train["pids"], train["camids"], cfg.val_fraction, cfg.seed, groups)
    result = train_linear_probe(
        feats[tr],
        train["pids"][tr],
        (feats[vq], train["pids"][vq], train["camids"][vq]),
        (feats[vg], train["pids"][vg], train["camids"][vg]),
        cfg,
        device,
    )
    qf = _embed(result.head, _features(query, "cls+mean").to(device)).cpu()
    gf = _embed(result.head, _features(gallery, "cls+mean").to(device)).cpu()
    extra = {
        "feature": "cls+mean" if train["cls"] is not None else "mean",
        "selected_epoch": result.epoch,
        "val_mAP": result.val_mAP,
        "num_train_ids": int(np.unique(train["pids"][tr]).size),
        "num_val_ids": int(np.unique(train["pids"][np.concatenate([vq, vg])]).size),
        "num_val_queries": int(vq.size),
    }
    return qf, gf, extra


__all__ = [
    "PROTOCOLS",
    "ProbeConfig",
    "ProbeResult",
    "build_frozen_encoder",
    "check_protocols",
    "extract_tokens",
    "run_frozen",
    "split_validation",
    "train_linear_probe",
]
