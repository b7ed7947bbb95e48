"""The pre-training loop (``train_one_epoch``) and the run wiring (``run_pretraining``).

Scaling: accelerate provides DDP (``accelerate launch``/``torchrun``), gradient accumulation and bf16/fp16
autocast. Exactness: items, masks and the sampling order are pure functions of ``(seed, epoch, index)``, the lr is a
pure function of the fractional epoch, and checkpoints hold everything else (model, optimiser, scaler, teachers, RNG
states), so a resumed run continues bit-for-bit on the CPU.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from data_manifests.checkpoints import NO_RESUME_HINT, check_config, start_over
from data_manifests.schedule import set_lr, warmup_cosine
from data_manifests.seeds import rng

from ..config import save_run_config, to_dict
from ..data import DiffVERIDataset
from ..models import build_vehiclemae
from ..models.ppmd_heads import PPMD_TARGETS
from ..models.vmim import VehicleMAE
from ..monitor import CollapseMonitor, select_probe
from ..ppmd import PPMDTeachers, ppmd_weight
from .checkpoint import LAST, checkpoint_dir, find_last, load_checkpoint, save_checkpoint, set_rng_states
from .config import PretrainConfig
from .modes import BASELINE_MODES, EXTRA_INPUTS, build_baseline, check_mode, dataset_options, mode_hooks, mode_meta
from .schedule import build_optimizer
from .tracking import RunTrackers, parse_log_with

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN/inf; training stops instead of writing corrupt weights."""


class EpochSampler(Sampler[int]):
    """A shuffled order that depends only on ``(seed, epoch)`` (call ``set_epoch``), so resume replays it exactly."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(rng(self.seed, "pretrain.order", self.epoch).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


class JsonlLogger:
    """Append-only JSON-lines log, and the same numbers to the experiment trackers (main process only)."""

    def __init__(self, output_dir: Path, enabled: bool, until_step: int = 0, trackers: RunTrackers | None = None):
        """``until_step``: the global step the run starts from (0 for a new run). Records after it (written by an
        interrupted run after its last checkpoint) are dropped: the log of a resumed run reads like a straight one.
        ``trackers``: TensorBoard / wandb / MLflow (:mod:`.tracking`), or ``None``."""
        self.enabled = enabled
        self.path = output_dir / "log.jsonl"
        self.trackers = trackers if enabled else None
        if enabled and self.path.is_file():
            from data_manifests import atomic_write_bytes

            kept = [
                line
                for line in self.path.read_text().splitlines(keepends=True)
                if line.strip() and json.loads(line).get("step", 0) <= until_step and until_step > 0
            ]
            atomic_write_bytes(self.path, "".join(kept).encode())

    def write(self, record: dict[str, Any], step: int, prefix: str) -> None:
        """Append ``record``; its numbers go to the trackers as ``prefix/key`` at ``step`` (the global step)."""
        if not self.enabled:
            return
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
        if self.trackers is not None:
            self.trackers.log({f"{prefix}/{k}": v for k, v in record.items() if k not in ("epoch", "step")}, step)

    def close(self) -> None:
        if self.trackers is not None:
            self.trackers.finish()


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    accelerator: Any,
    *,
    epoch: int,
    lr_at: Callable[[float], float],
    teachers: PPMDTeachers | None,
    ppmd_w: float,
    ppmd_same_w: float,
    clip_grad: float | None,
    global_step: int,
    logger: JsonlLogger,
    log_every: int,
    after_step: Callable[[float], None] | None = None,
    run_bar: Any = None,
) -> tuple[dict[str, float], int]:
    """One epoch of optimisation. Returns ``(mean of each loss part, global_step)``.

    ``global_step`` counts data iterations (micro-batches). The lr is set from the fractional epoch at the start of
    every accumulation cycle (per-iteration cosine). A non-finite loss on any process stops every process.
    ``after_step(fractional epoch of the cycle)`` runs after every optimiser step (CMAE's EMA update). ``run_bar``:
    the whole run's progress bar (steps of every epoch, so its ETA is the run's), advanced once per iteration.
    """
    model.train()
    steps = len(loader)
    accum = accelerator.gradient_accumulation_steps
    sums: dict[str, float] = {}
    bar = tqdm(
        loader,
        total=steps,
        desc=f"epoch {epoch}",
        disable=not accelerator.is_main_process,
        leave=False,
        position=1 if run_bar is not None else None,
    )
    t0 = time.perf_counter()
    for it, batch in enumerate(bar):
        if it % accum == 0:
            cycle_epoch = epoch + it / steps
            set_lr(optimizer, lr_at(cycle_epoch))
        with accelerator.accumulate(model):
            loss, parts = model(
                batch["image"],
                batch["labels"],
                batch["fg"],
                batch["keep_a"],
                batch["keep_b"],
                teachers=teachers,
                ppmd_weight=ppmd_w,
                ppmd_same_weight=ppmd_same_w,
                **{key: batch[key] for key in EXTRA_INPUTS if key in batch},
            )
            # 1. Stop on NaN/inf everywhere at once (a lone raising rank would hang the others in all-reduce).
            finite = accelerator.gather(torch.isfinite(loss.detach()).reshape(1)).all()
            if not bool(finite):
                detail = ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items() if v.dim() == 0)
                raise NonFiniteLossError(
                    f"non-finite loss at epoch {epoch}, iteration {it} (global step {global_step}): {detail}. "
                    "Lower optim.blr, keep optim.clip_grad set, or use mixed_precision=bf16 instead of fp16; "
                    "then start over with --no-resume (a changed config does not resume this run's checkpoint)."
                )
            # 2. Backward; accelerate divides by the accumulation steps and syncs gradients on the last micro-batch.
            accelerator.backward(loss)
            if accelerator.sync_gradients and clip_grad:
                accelerator.clip_grad_norm_(model.parameters(), clip_grad)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if after_step is not None and accelerator.sync_gradients:
                after_step(cycle_epoch)
        global_step += 1
        scalars = {k: float(v) for k, v in parts.items() if v.dim() == 0}
        scalars["loss"] = float(loss.detach())
        for key, value in scalars.items():
            sums[key] = sums.get(key, 0.0) + value
        if run_bar is not None:
            run_bar.update(1)
        if accelerator.is_main_process:
            bar.set_postfix(loss=f"{scalars['loss']:.4f}")
            if log_every and global_step % log_every == 0:
                lr = optimizer.param_groups[0]["lr"]
                logger.write({"epoch": epoch, "step": global_step, "lr": lr, **scalars}, global_step, "train")
    means = {k: v / max(1, steps) for k, v in sums.items()}
    means["seconds"] = time.perf_counter() - t0
    return means, global_step


class ReconstructionLog:
    """Reconstructions of a few fixed training images (no augmentation, the masks of epoch 0), rendered for the
    trackers every ``every`` epochs. Runs under ``torch.random.fork_rng`` and draws nothing from any generator the
    training uses, so a run with images logged is bit-for-bit the run without."""

    def __init__(self, dataset: DiffVERIDataset, meta: dict[str, Any], every: int, n: int = 4) -> None:
        from ..viz import probe_batch

        plain = copy.copy(dataset)  # shares the rows; only the item recipe differs
        plain.augment = False
        plain.set_epoch(0)
        self.batch = probe_batch(plain, n)
        self.mean, self.std, self.meta, self.every = plain.mean, plain.std, meta, every

    def maybe_log(self, model: nn.Module, trackers: RunTrackers, epoch: int, step: int) -> None:
        if not self.every or (epoch + 1) % self.every:
            return
        from ..viz import png_to_array, render_reconstructions

        with torch.random.fork_rng(devices=[]):
            png = render_reconstructions(
                model, self.meta, self.batch, self.mean, self.std, f"{self.meta['mode']} — epoch {epoch + 1}"
            )
        trackers.log_image("reconstructions", png_to_array(png), step)


def start_logging(
    cfg: PretrainConfig, out: Path, main: bool, global_step: int, dataset: DiffVERIDataset, meta: dict[str, Any]
) -> tuple[JsonlLogger, ReconstructionLog | None]:
    """The run's JSON-lines log with its trackers (``cfg.log_with``) and the reconstruction images, on the main
    process (elsewhere a disabled logger and no images)."""
    trackers = None
    if main:
        names = parse_log_with(cfg.log_with)
        trackers = RunTrackers(names, out, project="vehiclemae-pretrain", run_name=out.name, config=to_dict(cfg))
    logger = JsonlLogger(out, main, until_step=global_step, trackers=trackers)
    recon = ReconstructionLog(dataset, meta, cfg.log_images_every) if trackers and trackers.trackers else None
    return logger, recon


def _check_config(cfg: PretrainConfig) -> None:
    m = cfg.method
    check_mode(m)  # unknown modes, keys of another mode, the cmae/clmae settings
    if m.mode != "mae" and m.mask_mode not in ("asymmetric", "symmetric"):
        raise ValueError(f"method.mask_mode must be asymmetric or symmetric for mode {m.mode}, got {m.mask_mode!r}")
    _check_masks(m)
    if m.ppmd_target not in PPMD_TARGETS:
        raise ValueError(f"method.ppmd_target must be one of {', '.join(PPMD_TARGETS)}, got {m.ppmd_target!r}")
    if m.ppmd_predictor_depth < 1:
        raise ValueError(f"method.ppmd_predictor_depth must be >= 1, got {m.ppmd_predictor_depth}")
    if cfg.model.init != "scratch" and not cfg.model.init_path:
        raise ValueError(f"model.init={cfg.model.init!r} needs model.init_path (a local weights file)")
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {cfg.epochs}")
    if cfg.monitor.probe_size == 1 or cfg.monitor.probe_size < 0:
        raise ValueError(f"monitor.probe_size must be 0 (off) or >= 2, got {cfg.monitor.probe_size}")
    parse_log_with(cfg.log_with)  # unknown or missing trackers fail before any work


def _check_masks(m: Any) -> None:
    """Mask settings: asymmetric masks need disjoint visible sets; a view-branch ratio needs asymmetric masks."""
    two_branches = m.mode in ("vmim", "vehiclemae")  # mae, cmae and clmae draw one mask per image
    ratio_view = m.mask_ratio if m.mask_ratio_view is None else m.mask_ratio_view
    if m.mask_ratio_view is not None and (not two_branches or m.mask_mode != "asymmetric"):
        raise ValueError(
            "method.mask_ratio_view (the view branch's own mask ratio) needs mode vmim or vehiclemae with "
            f"method.mask_mode=asymmetric, got mode {m.mode!r}, mask_mode {m.mask_mode!r}"
        )
    if not 0.0 <= ratio_view < 1.0:
        raise ValueError(f"method.mask_ratio_view must be in [0, 1), got {ratio_view}")
    if two_branches and m.mask_mode == "asymmetric" and m.mask_ratio + ratio_view < 1.0:
        raise ValueError(
            "asymmetric masks need disjoint visible sets: method.mask_ratio + method.mask_ratio_view >= 1 "
            f"(mask_ratio >= 0.5 with one ratio), got {m.mask_ratio} and {ratio_view}"
        )


# Model settings added after checkpoints were first written, with the value older checkpoints were trained with.
LEGACY_META = {"ppmd_center": True, "ppmd_predictor": False, "ppmd_target": "same_patches", "ppmd_predictor_depth": 1}


def model_meta(cfg: PretrainConfig, num_view_classes: int) -> dict[str, Any]:
    """What `vehiclemae export` / `viz-recon` need to rebuild the model from a checkpoint."""
    return {
        "encoder_name": cfg.model.encoder,
        "img_size": cfg.model.img_size,
        "mode": cfg.method.mode,
        "num_view_classes": num_view_classes,
        "decoder_embed_dim": cfg.model.decoder_embed_dim,
        "decoder_depth": cfg.model.decoder_depth,
        "decoder_num_heads": cfg.model.decoder_num_heads,
        "fg_floor": cfg.method.fg_floor,
        "view_loss_weight": cfg.method.view_loss_weight,
        "norm_pix_loss": cfg.model.norm_pix_loss,
        "ppmd_center": cfg.method.ppmd_center,
        "ppmd_predictor": cfg.method.ppmd_predictor,
        "ppmd_target": cfg.method.ppmd_target,
        "ppmd_predictor_depth": cfg.method.ppmd_predictor_depth,
        **mode_meta(cfg),
    }


def build_model_from_meta(meta: dict[str, Any]) -> VehicleMAE:
    if meta["mode"] in BASELINE_MODES:
        return build_baseline(meta)
    return build_vehiclemae(
        encoder_name=meta["encoder_name"],
        img_size=meta["img_size"],
        mode=meta["mode"],
        num_view_classes=meta["num_view_classes"],
        decoder_embed_dim=meta["decoder_embed_dim"],
        decoder_depth=meta["decoder_depth"],
        decoder_num_heads=meta["decoder_num_heads"],
        fg_floor=meta["fg_floor"],
        view_loss_weight=meta["view_loss_weight"],
        norm_pix_loss=meta["norm_pix_loss"],
        **{key: meta.get(key, default) for key, default in LEGACY_META.items()},
    )


def build_dataset(cfg: PretrainConfig, patch_size: int) -> DiffVERIDataset:
    d = cfg.data
    dataset_class, extra = dataset_options(cfg)  # cmae: items also hold the shifted target view
    return dataset_class(
        d.root,
        table=d.table,
        splits=d.splits,
        img_size=cfg.model.img_size,
        view_classes=d.view_classes,
        augment=True,
        scale=d.scale,
        ratio=d.ratio,
        hflip=d.hflip,
        seed=cfg.seed,
        patch_size=patch_size,
        mask_ratio=cfg.method.mask_ratio,
        mask_mode="single" if cfg.method.mode in ("mae", *BASELINE_MODES) else cfg.method.mask_mode,
        mask_ratio_view=cfg.method.mask_ratio_view,
        limit=d.limit,
        vehicle_crop=d.vehicle_crop,
        **extra,
    )


def build_monitor(cfg: PretrainConfig, dataset: DiffVERIDataset) -> CollapseMonitor | None:
    """The collapse monitor over ``cfg.monitor.probe_size`` training images (``None`` when 0), decoded by the
    dataset itself without augmentation or masks (the image resized to the model size), once, at the start."""
    if cfg.monitor.probe_size <= 0:
        return None
    plain = copy.copy(dataset)  # shares the rows; only the item recipe differs
    plain.augment, plain.mask_ratio = False, None
    indices = select_probe(len(dataset), cfg.monitor.probe_size, cfg.seed)
    images = torch.stack([plain[int(i)]["image"] for i in indices])
    return CollapseMonitor(
        images, min_effective_rank=cfg.monitor.min_effective_rank, min_std_ratio=cfg.monitor.min_std_ratio
    )


def build_loader(cfg: PretrainConfig, dataset: DiffVERIDataset, processes: int) -> tuple[EpochSampler, DataLoader]:
    """The epoch sampler and the loader of whole batches (an error when the data is less than one global batch)."""
    if len(dataset) < cfg.optim.batch_size * processes:
        raise ValueError(
            f"{len(dataset)} training images are fewer than one global batch "
            f"({cfg.optim.batch_size} x {processes} processes); lower optim.batch_size"
        )
    sampler = EpochSampler(len(dataset), cfg.seed)
    loader = DataLoader(
        dataset,
        batch_size=cfg.optim.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.data.num_workers,
        pin_memory=not cfg.cpu,
        # Forking a process that runs threads (accelerate, TensorBoard, an orchestrator) can kill the workers;
        # forkserver starts them clean (Python 3.14's default).
        multiprocessing_context="forkserver" if cfg.data.num_workers > 0 else None,
    )
    return sampler, loader


def restore(
    ck: dict[str, Any],
    last: Path,
    meta: dict[str, Any],
    accelerator: Any,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    teachers: PPMDTeachers | None,
) -> tuple[int, int]:
    """Load a checkpoint's model, optimiser, scaler, teachers and RNG states; returns ``(start_epoch, global_step)``.
    A checkpoint of another model architecture is an error."""
    old = {**LEGACY_META, **ck["model_meta"]}
    changed = {k: (old.get(k), v) for k, v in meta.items() if old.get(k) != v}
    if changed:
        raise ValueError(
            f"{last} was trained with a different model (checkpoint vs config: {changed}); "
            f"resume with the run's own config (its config.yaml), or {NO_RESUME_HINT}"
        )
    accelerator.unwrap_model(model).load_state_dict(ck["model"])
    optimizer.load_state_dict(ck["optimizer"])
    if ck.get("scaler") is not None and accelerator.scaler is not None:
        accelerator.scaler.load_state_dict(ck["scaler"])
    if teachers is not None and ck.get("teachers") is not None:
        teachers.load_state_dict(ck["teachers"])
    start_epoch, global_step = int(ck["epoch"]), int(ck["global_step"])
    set_rng_states(ck["rng"])
    log.info("resumed %s at epoch %d (step %d)", last, start_epoch, global_step)
    return start_epoch, global_step


def init_encoders(model: VehicleMAE, init: str, init_path: str | None) -> None:
    """Load local weights (``init`` ``mae`` or ``clip``) into every branch's encoder; ``scratch`` keeps the random
    initialisation."""
    if init == "scratch":
        return
    from ..models.init import load_into_encoder

    for branch in (model.rgb, model.view):
        if branch is not None:
            load_into_encoder(branch.encoder, init_path, init)


def measure_collapse(monitor: CollapseMonitor | None, model: VehicleMAE, epoch: int) -> dict[str, float]:
    """The collapse probe's record for this epoch's encoders (rgb, and view in vmim/vehiclemae); ``{}`` without one."""
    if monitor is None:
        return {}
    encoders = {"rgb": model.rgb.encoder}
    if model.view is not None:
        encoders["view"] = model.view.encoder
    return monitor.measure(encoders, epoch)


# Keys that do not change what is trained: a resumed run may differ from its checkpoint in these (the run length
# `epochs` too: a run may be extended; the schedule then follows the new length from where it resumes).
RESUME_IGNORES = (
    "output_dir",
    "epochs",
    "log_every",
    "log_with",
    "log_images_every",
    "checkpoint_every",
    "data.num_workers",
    "monitor",
)


def _check_run_folder(out: Path, resume: bool) -> Path | None:
    """The last checkpoint to resume from (``None`` for a new run). ``resume=False`` removes the earlier run's
    checkpoints; a folder holding numbered checkpoints but no ``checkpoint-last.pt`` is refused (a new run would
    overwrite ``checkpoint-0001.pt`` and mix the logs)."""
    if not resume:
        start_over(out)
        return None
    last = find_last(out)
    earlier = sorted(checkpoint_dir(out).glob("checkpoint-*.pt"))
    if last is None and earlier:
        raise ValueError(
            f"{out} holds checkpoints of an earlier run ({', '.join(f.name for f in earlier[:3])}) but no {LAST}: "
            f"copy it to {LAST} to resume from {earlier[-1].name}, or {NO_RESUME_HINT}"
        )
    return last


def run_pretraining(cfg: PretrainConfig, *, resume: bool = True, stop_after_epoch: int | None = None) -> Path:
    """Pre-train per ``cfg``; returns the path of the last checkpoint. The one place the config becomes arguments.

    A run continues from ``output_dir/checkpoints/checkpoint-last.pt`` when it exists (the same schedule, exactly);
    ``resume=False`` (``--no-resume``) starts over. ``stop_after_epoch=e`` returns after epoch ``e`` is done and
    checkpointed (as if the job were interrupted there, e.g. by a cluster time limit).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    _check_config(cfg)
    out = Path(cfg.output_dir)
    accelerator = Accelerator(
        cpu=cfg.cpu, mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.optim.accum_steps
    )
    last = _check_run_folder(out, resume)
    set_seed(cfg.seed)  # model initialisation is identical on every process

    # 1. Data: every process sees whole, disjoint micro-batches of the same global order.
    from .. import models as _models  # registers encoders with timm

    patch = int(_models.ARCHS[cfg.model.encoder]["patch_size"]) if cfg.model.encoder in _models.ARCHS else None
    if patch is None:
        raise KeyError(f"unknown model.encoder {cfg.model.encoder!r}; valid names: {', '.join(_models.ARCHS)}")
    dataset = build_dataset(cfg, patch)
    sampler, loader = build_loader(cfg, dataset, accelerator.num_processes)

    # 2. Model, optional initialisation from local weights, teachers (vehiclemae mode only), optimiser.
    meta = model_meta(cfg, len(dataset.view_classes))
    model = build_model_from_meta(meta)
    init_encoders(model, cfg.model.init, cfg.model.init_path)
    hooks = mode_hooks(cfg, model, accelerator.num_processes)  # cmae: EMA target; clmae: curriculum
    teachers = PPMDTeachers(model.rgb.encoder, model.view.encoder) if cfg.method.mode == "vehiclemae" else None
    eff_batch = cfg.optim.batch_size * cfg.optim.accum_steps * accelerator.num_processes
    lr = cfg.optim.blr * eff_batch / 256
    optimizer = build_optimizer(model, lr=lr, weight_decay=cfg.optim.weight_decay, betas=cfg.optim.betas)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    if teachers is not None:
        teachers.to(accelerator.device)

    # 3. Resume: restore everything the straight run would hold at this point.
    start_epoch, global_step = 0, 0
    if last is not None:
        ck = load_checkpoint(last)
        start_epoch, global_step = restore(ck, last, meta, accelerator, model, optimizer, teachers)
        check_config(last, ck.get("config"), to_dict(cfg), RESUME_IGNORES)
    # The collapse probe runs on the main process only, after each epoch (it draws no random numbers).
    monitor = build_monitor(cfg, dataset) if accelerator.is_main_process else None
    if monitor is not None and last is not None:
        monitor.load_state_dict(ck.get("monitor"))
    if accelerator.is_main_process:
        save_run_config(cfg, out)
    logger, recon = start_logging(cfg, out, accelerator.is_main_process, global_step, dataset, meta)
    if accelerator.is_main_process:
        log.info(
            "%s: %d images, %d iterations/epoch/process, effective batch %d, lr %.3g, %d process(es)",
            cfg.method.mode,
            len(dataset),
            len(loader),
            eff_batch,
            lr,
            accelerator.num_processes,
        )

    lr_at = lambda e: warmup_cosine(  # noqa: E731 - per iteration, at the fractional epoch e
        e, total=cfg.epochs, warmup=cfg.optim.warmup_epochs, lr=lr, min_lr=cfg.optim.min_lr
    )
    # The run's bar: every configured epoch's iterations, from where a resumed run starts (its ETA is the run's).
    run_bar = tqdm(
        total=cfg.epochs * len(loader),
        initial=start_epoch * len(loader),
        desc="run",
        unit="it",
        disable=not accelerator.is_main_process,
        position=0,
    )
    try:
        end = cfg.epochs if stop_after_epoch is None else min(cfg.epochs, stop_after_epoch)
        for epoch in range(start_epoch, end):
            dataset.set_epoch(epoch)
            sampler.set_epoch(epoch)
            if hasattr(loader, "set_epoch"):
                # accelerate's loader re-sets the dataset/sampler epoch from its own counter, which starts at 0 in a
                # resumed process: give it the true epoch.
                loader.set_epoch(epoch)
            w = ppmd_weight(epoch, cfg.method.ppmd_weight, cfg.method.ppmd_ramp_epochs)
            w_same = ppmd_weight(epoch, cfg.method.ppmd_same_weight, cfg.method.ppmd_ramp_epochs)
            mode_stats = hooks.before_epoch(epoch)
            stats, global_step = train_one_epoch(
                model,
                loader,
                optimizer,
                accelerator,
                epoch=epoch,
                lr_at=lr_at,
                teachers=teachers if teachers is not None and bool(teachers.ready) else None,
                ppmd_w=w,
                ppmd_same_w=w_same,
                clip_grad=cfg.optim.clip_grad,
                global_step=global_step,
                logger=logger,
                log_every=cfg.log_every,
                after_step=hooks.after_step,
                run_bar=run_bar,
            )
            # 4. PPMD: this epoch's weights become the next epoch's teachers.
            unwrapped = accelerator.unwrap_model(model)
            if teachers is not None:
                teachers.update(unwrapped.rgb.encoder, unwrapped.view.encoder)
            probe = measure_collapse(monitor, unwrapped, epoch)
            logger.write(
                {"epoch": epoch, "step": global_step, "ppmd_weight": w, **mode_stats, **stats, **probe},
                global_step,
                "epoch",
            )
            if recon is not None:
                recon.maybe_log(unwrapped, logger.trackers, epoch, global_step)
            if accelerator.is_main_process:
                log.info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.4g}" for k, v in {**stats, **probe}.items()))
                payload = {
                    "model": unwrapped.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
                    "teachers": teachers.state_dict() if teachers is not None else None,
                    "epoch": epoch + 1,  # epochs completed
                    "global_step": global_step,
                    "schedule": {"lr": lr, "min_lr": cfg.optim.min_lr, "warmup_epochs": cfg.optim.warmup_epochs},
                    "model_meta": meta,
                    "config": to_dict(cfg),
                    "stats": stats,
                    "monitor": monitor.state_dict() if monitor is not None else None,
                }
                save_checkpoint(checkpoint_dir(out) / LAST, payload)
                if cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0:
                    save_checkpoint(checkpoint_dir(out) / f"checkpoint-{epoch + 1:04d}.pt", payload)
            accelerator.wait_for_everyone()
    finally:
        run_bar.close()
        logger.close()
    return checkpoint_dir(out) / LAST
