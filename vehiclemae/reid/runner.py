"""Fine-tuning runs and evaluations: the typed config, the epoch loop with eval and checkpoints, and model loading.

The YAML config (``configs/vehiclemae/finetune_*.yaml``) becomes :class:`FinetuneConfig` in the CLI; :func:`run`
unpacks it into the explicit-argument functions of :mod:`vehiclemae.reid.finetune`.
"""

from __future__ import annotations

import io
import json
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_manifests import atomic_write_bytes
from data_manifests.seeds import derive_seed

from . import finetune as ft
from .metrics import evaluate_rank, pairwise_distance, summarize

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "vehiclemae-reid-v1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VIEW_KEYS = ("cross_view_mAP", "cross_view_queries", "same_view_mAP", "same_view_queries")


@dataclass
class ModelConfig:
    init: str = "scratch"  # scratch | export (vehiclemae export file) | mae (timm/MAE state dict) | clip
    init_path: str | None = None
    model_name: str = "vehiclemae_vit_toy_patch8"  # ignored for init=export (the file names its architecture)
    img_size: int = 64
    drop_path_rate: float = 0.1


@dataclass
class DataConfig:
    dataset: str = "veri776"  # veri776 | vehicleid
    root: str = "data/toy/VeRi"
    vehicleid_test_size: int | None = None  # default: the smallest test list offered
    p: int = 8  # identities per batch
    k: int = 4  # images per identity
    eval_batch_size: int = 64
    num_workers: int = 0
    # Training identities held out to choose best.pth: a fraction in (0, 1), a count, or 0 (best.pth = last epoch).
    val_identities: float | int = 0.2


@dataclass
class OptimConfig:
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 3.5e-4
    weight_decay: float = 0.05
    layer_decay: float = 1.0  # < 1 enables layer-wise lr decay
    epochs: int = 10
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    max_iters_per_epoch: int | None = None
    label_smoothing: float = 0.1
    triplet_margin: float | None = 0.3  # null = soft margin
    id_weight: float = 1.0
    triplet_weight: float = 1.0


@dataclass
class EvalConfig:
    every: int = 1  # evaluate on the validation identities every N epochs (and after the last)
    metric: str = "euclidean"  # euclidean | cosine
    rerank: bool = False
    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3
    num_trials: int = 10  # VehicleID protocol trials
    max_rank: int = 50
    log_examples: int = 4  # queries in the retrieval picture sent to the trackers at each validation (0: none)


@dataclass
class UnsupervisedConfig:
    k1: int = 30
    k2: int = 6
    eps: float = 0.6
    min_samples: int = 4
    temperature: float = 0.05
    momentum: float = 0.2


@dataclass
class FinetuneConfig:
    mode: str = "supervised"  # supervised | unsupervised
    seed: int = 0
    output_dir: str = "runs/finetune-toy"
    device: str = "cpu"
    threads: int | None = None  # torch threads (None: torch's default)
    log_with: str = "tensorboard"  # trackers: tensorboard | wandb | mlflow, comma-separated, or none (offline-safe)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    unsupervised: UnsupervisedConfig = field(default_factory=UnsupervisedConfig)

    def validate(self) -> None:
        if self.mode not in ("supervised", "unsupervised"):
            raise ValueError(f"mode must be 'supervised' or 'unsupervised', got {self.mode!r}")
        if self.data.dataset not in ("veri776", "vehicleid"):
            raise ValueError(f"data.dataset must be 'veri776' or 'vehicleid', got {self.data.dataset!r}")
        if self.eval.metric not in ("euclidean", "cosine"):
            raise ValueError(f"eval.metric must be 'euclidean' or 'cosine', got {self.eval.metric!r}")
        from vehiclemae.engine.tracking import parse_log_with

        parse_log_with(self.log_with)  # unknown or missing trackers fail before any work


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------------ data
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


# ------------------------------------------------------------------------------------------------ eval
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


# ------------------------------------------------------------------------------------------- checkpoints
def save_reid_checkpoint(path: Path, model: ft.ReIDModel, **extra: Any) -> Path:
    """Atomic ``torch.save`` of the model weights, its backbone spec and ``extra`` (epoch, metrics, config...)."""
    buffer = io.BytesIO()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "spec": model.spec,
        "num_classes": model.num_classes,
        **extra,
    }
    torch.save(payload, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def load_model(path: str | Path, img_size: int | None = None) -> tuple[torch.nn.Module, int]:
    """A model for evaluation and its image size, from a fine-tuning checkpoint, a ``vehiclemae export-reid`` folder
    or a ``vehiclemae export`` file.

    An exported encoder (``.safetensors``) is evaluated as is (its class-token feature, no BNNeck): the
    "pre-trained only" row of a comparison.
    """
    from vehiclemae.reid.export import is_reid_export, load_reid_export

    path = Path(path)
    if is_reid_export(path):  # a `vehiclemae export-reid` folder
        return load_reid_export(path, img_size)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (fine-tuning writes OUTPUT/best.pth, last.pth)")
    if path.suffix == ".safetensors":
        from vehiclemae.models import load_encoder, read_metadata

        size = img_size or read_metadata(path)["img_size"]
        return load_encoder(path, img_size=size).eval(), size
    from vehiclemae.engine.checkpoint import load_checkpoint_file  # weights-only: a crafted file runs nothing

    payload = load_checkpoint_file(path)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is not a Re-ID checkpoint of `vehiclemae finetune` (format {CHECKPOINT_FORMAT}) nor an exported "
            ".safetensors encoder"
        )
    spec = payload["spec"]
    size = img_size or int(spec["img_size"])
    backbone, _ = ft.build_backbone("scratch", spec["model_name"], size)
    model = ft.ReIDModel(backbone, int(payload["num_classes"]), spec)
    model.load_state_dict(payload["model"])
    return model.eval(), size


# ------------------------------------------------------------------------------------------------- run
def _write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=float) + "\n").encode())


def run(cfg: FinetuneConfig, resume: bool = False, stop_after_epoch: int | None = None) -> dict[str, Any]:
    """Fine-tune (supervised or unsupervised), choosing the model on validation identities; writes into
    ``cfg.output_dir``: ``config.yaml``, ``best.pth`` (best validation mAP, or Rank-1 for VehicleID; the last epoch
    when ``data.val_identities`` is 0), ``last.pth`` (with optimiser state, for ``resume``), ``metrics.jsonl`` and
    ``result.json`` (test metrics of ``best.pth`` and of the last epoch, each evaluated once at the end). Returns
    the result dict.

    The test split never influences training or selection. ``resume=True`` continues after the epoch stored in
    ``last.pth`` (the validation split is redrawn identically from ``seed``); without it an existing ``last.pth``
    is an error, so a finished run is never overwritten by accident. ``stop_after_epoch=e`` returns after ``e``
    epochs are done and checkpointed, without the test evaluation (as if the job had been interrupted there).
    """
    from vehiclemae.config import save_run_config
    from vehiclemae.reid.data import ReIDImageDataset, build_transforms, relabel

    from .validation import split_validation

    cfg.validate()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
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
    train_set = ReIDImageDataset(train_samples, build_transforms(size, True, IMAGENET_MEAN, IMAGENET_STD), gt_labels)

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
    last_path = out / "last.pth"
    # best: the validation result that chose best.pth; val_result: the latest validation result
    best, val_result, start_epoch = _restore(last_path, resume, model, optimizer, val.val_pids, cfg)
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
                save_reid_checkpoint(out / "best.pth", model, epoch=epoch, metrics=val_result, config=asdict(cfg))
        elif not val.enabled and last_epoch:
            best = {"epoch": epoch, "val": None}
            save_reid_checkpoint(out / "best.pth", model, epoch=epoch, metrics=None, config=asdict(cfg))
        save_reid_checkpoint(
            last_path,
            model,
            epoch=epoch,
            metrics=val_result,
            config=asdict(cfg),
            optimizer=optimizer.state_dict(),
            best=best,
            val_pids=val.val_pids,
            torch_rng=torch.get_rng_state(),
        )
        logger.info("epoch %d: %s", epoch, json.dumps(row, default=float))
        _append_jsonl(history_path, row)
        tracking.log(row, epoch)
    if end < cfg.optim.epochs:
        tracking.finish()
        logger.info("stopped after %d of %d epochs; continue with --resume", end, cfg.optim.epochs)
        return {"stopped": True, "epochs_done": end, "epochs": cfg.optim.epochs}

    # 4. Test, once per model: best.pth (chosen on validation, or the last epoch) and the last epoch.
    final_epoch = cfg.optim.epochs - 1
    test_last = _evaluate(model, split, cfg, keep := {})
    if best["epoch"] == final_epoch:
        test_best = test_last
    else:
        best_model, _ = load_model(out / "best.pth", size)
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


class FinetuneTracking:
    """The fine-tuning run's trackers (``cfg.log_with``): epoch rows as scalars (nested keys joined by ``/``, step =
    epoch) and retrieval pictures (``eval.log_examples`` queries and their top 5) drawn from the distances the
    evaluation computed anyway: no extra forward pass, nothing random, training unchanged."""

    def __init__(self, cfg: FinetuneConfig, out: Path) -> None:
        from vehiclemae.engine.tracking import RunTrackers, parse_log_with

        self.cfg = cfg
        names = parse_log_with(cfg.log_with)
        self.trackers = RunTrackers(names, out, project="vehiclemae-finetune", run_name=out.name, config=asdict(cfg))

    def log(self, row: dict[str, Any], step: int) -> None:
        self.trackers.log(_numbers(row), step)

    def retrieval(self, split: dict[str, Any], evaluated: dict[str, Any], step: int, tag: str) -> None:
        """The picture from an evaluation's distances (``evaluated``: the ``keep`` dict of :func:`evaluate_model`;
        empty for VehicleID, which has no fixed query set)."""
        n = self.cfg.eval.log_examples
        if not n or not self.trackers.trackers or "dist" not in evaluated:
            return
        from .plots import retrieval_examples

        rows = np.unique(np.linspace(0, len(split["query"]) - 1, n).astype(int))
        q_pids, g_pids = evaluated["q_pids"][rows], evaluated["g_pids"]
        dist = np.array(evaluated["dist"][rows], dtype=np.float64)
        dist[(q_pids[:, None] == g_pids[None]) & (evaluated["q_cams"][rows][:, None] == evaluated["g_cams"][None])] = (
            np.inf  # the protocol's junk: same identity, same camera
        )
        same = q_pids[:, None] == g_pids[None]
        paths = [split["query"][int(i)].path for i in rows]
        image = retrieval_examples(paths, [g.path for g in split["gallery"]], dist, same, k=5)
        self.trackers.log_image(f"{tag}/retrieval", image, step)

    def finish(self) -> None:
        self.trackers.finish()


def _numbers(row: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested row, keys joined by ``/`` (``{"val": {"mAP": 1}}`` -> ``{"val/mAP": 1.0}``)."""
    out: dict[str, float] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update(_numbers(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool) and key != "epoch":
            out[f"{prefix}{key}"] = float(value)
    return out


def _restore(
    last_path: Path, resume: bool, model: ft.ReIDModel, optimizer: torch.optim.Optimizer, val_pids: list, cfg: Any
) -> tuple[dict[str, Any], dict[str, Any] | None, int]:
    """``(best, last validation result, first epoch to run)``: a new run's, or those stored in ``last.pth`` after
    loading its model, optimiser and RNG state (``resume``); an existing ``last.pth`` without ``resume`` is an error."""
    if last_path.is_file() and not resume:
        raise ValueError(f"{last_path} exists; pass --resume to continue that run or choose another output_dir")
    if not last_path.is_file():
        return {"epoch": None, "val": None}, None, 0
    from vehiclemae.engine.checkpoint import load_checkpoint_file  # weights-only: a crafted file runs nothing

    state = load_checkpoint_file(last_path)
    if "val_pids" not in state:
        raise ValueError(
            f"--resume: {last_path} predates validation-based selection (it chose best.pth on the test set); "
            "start a new output_dir"
        )
    if state["val_pids"] != val_pids:
        raise ValueError(
            f"--resume: {last_path} was trained with other validation identities than data.val_identities="
            f"{cfg.data.val_identities!r} and seed={cfg.seed} give now; resume with the run's own config.yaml"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    logger.info("resuming %s after epoch %d", last_path.parent, int(state["epoch"]))
    return state["best"], state["metrics"], int(state["epoch"]) + 1


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
            "data.val_identities=0: no validation; all %d training identities are trained on and best.pth will be "
            "the LAST epoch (the test split is evaluated only at the end and chooses nothing)",
            num_ids,
        )
        return
    split = val.eval_split
    if "query" in split:
        sizes = f"{len(split['query'])} queries, {len(split['gallery'])} gallery images"
    else:
        sizes = f"{len(split['test'])} images"
    logger.info(
        "validation: %d of %d training identities held out (data.val_identities=%s, seed %d; %s); best.pth is "
        "chosen on them, the test split is evaluated only at the end",
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
        head = f"no validation identities: best.pth is the last epoch {result['best_epoch']}; {metrics(best, 'test')}"
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
