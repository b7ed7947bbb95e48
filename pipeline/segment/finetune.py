"""Fine-tuning the view SAM on annotated masks: Dice + cross-entropy, box jitter, AdamW, atomic checkpoints
(``OUT_DIR/checkpoints/checkpoint-last.pt``, docs/architecture.md "Checkpoints and resume"), validation IoU per class.

``finetune`` is the loop; ``train_step`` / ``evaluate_items`` are the pieces tests call directly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from tqdm import tqdm

from data_manifests import atomic_write_bytes, rle, seeds
from data_manifests import checkpoints as ckpt
from data_manifests.schedule import lambda_schedule

from .annotations import ANNOTATION_REFS
from .data import Annotated, label_map, load_annotated, read_image, split_by_identity
from .metrics import SegMeter
from .model import ModelSpec, ViewSegmenter, build_segmenter, load_segmenter, save_segmenter

log = logging.getLogger(__name__)

IGNORE = -1  # label of padding pixels (outside the resized image)
CHECKPOINT_FORMAT = "diffveri-segment-finetune-v1"
LEGACY_NAMES = {"last.pt": ckpt.LAST}  # OUT_DIR/last.pt of earlier versions, moved into checkpoints/ on resume
# Arguments that do not change what is trained: a resumed run may differ from its checkpoint in these (`steps` may
# grow: a run can be extended; the cosine then follows the new length from where it resumes).
RESUME_IGNORES = ("steps", "max_minutes", "eval_every", "checkpoint_every", "num_threads", "device")


@dataclass
class Prepared:
    """One training image in the encoder's input frame (side ``S``), cached in memory."""

    image: torch.Tensor  # (3, S, S) uint8, zero-padded right/bottom
    labels: torch.Tensor  # (S, S) int64 view labels, IGNORE in the padding
    vehicle: torch.Tensor  # (S, S) float32 {0, 1}
    box: torch.Tensor  # (4,) xyxy in the input frame
    input_size: tuple[int, int]  # (h, w) of the resized image inside the padded square


def prepare(segmenter: ViewSegmenter, item: Annotated) -> Prepared:
    """Resize image and masks to the encoder input frame exactly as inference will (``ResizeLongestSide``)."""
    where = f"{item.image_id}: "
    image = read_image(item.path, where)
    labels = label_map(item, segmenter.view_classes)
    if labels.shape != image.shape[:2]:
        raise ValueError(f"{where}mask size {labels.shape} differs from image size {image.shape[:2]} ({item.path})")
    resized, (h, w) = segmenter.prepare_image(image)
    s = segmenter.img_size
    padded = torch.zeros(3, s, s, dtype=torch.uint8)
    padded[:, :h, :w] = resized
    small = np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((w, h), Image.NEAREST), dtype=np.int64)
    lab = torch.full((s, s), IGNORE, dtype=torch.int64)
    lab[:h, :w] = torch.from_numpy(small)
    truth = rle.decode(item.vehicle_rle).astype(np.uint8)
    vehicle = torch.zeros(s, s)
    vehicle[:h, :w] = torch.from_numpy(np.asarray(Image.fromarray(truth).resize((w, h), Image.NEAREST), np.float32))
    box = segmenter.boxes_to_input(np.asarray(item.bbox)[None], [image.shape[:2]])[0].cpu()
    return Prepared(padded, lab, vehicle, box, (h, w))


# --------------------------------------------------------------------------------------------------- augmentation
def augment(
    batch: list[Prepared], view_classes: tuple[str, ...], box_jitter: float, hflip: bool, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """Stack a batch with random horizontal flips and box jitter.

    Returns images ``(B, 3, S, S)`` uint8, labels ``(B, S, S)``, vehicle ``(B, S, S)``, boxes ``(B, 4)`` and the
    input sizes. A flip mirrors the image inside its un-padded region and swaps left/right labels (when both
    exist) so the annotation stays true; box jitter moves each corner by N(0, box_jitter * side) to mimic an
    imprecise detector box.
    """
    swap = torch.arange(len(view_classes))
    if "left" in view_classes and "right" in view_classes:
        left, right = view_classes.index("left"), view_classes.index("right")
        swap[left], swap[right] = right, left
    images, labels, vehicles, boxes, sizes = [], [], [], [], []
    for p in batch:
        img, lab, veh, box = p.image.clone(), p.labels.clone(), p.vehicle.clone(), p.box.clone()
        h, w = p.input_size
        if hflip and torch.rand((), generator=gen) < 0.5:
            img[:, :h, :w] = img[:, :h, :w].flip(-1)
            region = lab[:h, :w].flip(-1)
            lab[:h, :w] = torch.where(region >= 0, swap[region.clamp(min=0)], region)
            veh[:h, :w] = veh[:h, :w].flip(-1)
            box = torch.stack([w - box[2], box[1], w - box[0], box[3]])
        if box_jitter > 0:
            side = torch.stack([box[2] - box[0], box[3] - box[1]]).repeat(2)
            box = box + torch.randn(4, generator=gen) * box_jitter * side
            box = torch.stack([box[0].clamp(0, w - 1), box[1].clamp(0, h - 1), box[2].clamp(1, w), box[3].clamp(1, h)])
            box = torch.stack([torch.minimum(box[0], box[2] - 1), torch.minimum(box[1], box[3] - 1), box[2], box[3]])
        images.append(img)
        labels.append(lab)
        vehicles.append(veh)
        boxes.append(box)
        sizes.append((h, w))
    return torch.stack(images), torch.stack(labels), torch.stack(vehicles), torch.stack(boxes), sizes


def photometric(images: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast and saturation per image: uint8 ``(B, 3, S, S)`` -> float ``(B, 3, S, S)``.

    Factors are drawn from ``1 ± strength`` (brightness as an offset of ``± strength * 64`` grey levels). Hue is left
    alone: colour is what tells a red tail light from a white head light.
    """
    x = images.float()
    b = x.shape[0]
    contrast = 1 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * strength
    saturation = 1 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * strength
    brightness = (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * strength * 64
    grey = x.mean(dim=1, keepdim=True)
    x = grey + (x - grey) * saturation
    x = (x - x.mean(dim=(1, 2, 3), keepdim=True)) * contrast + x.mean(dim=(1, 2, 3), keepdim=True) + brightness
    return x.clamp(0, 255)


def random_affine(
    x: torch.Tensor,
    labels: torch.Tensor,
    vehicle: torch.Tensor,
    boxes: torch.Tensor,
    scale: float,
    translate: float,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zoom by ``1 ± scale`` and shift by ``± translate`` of the side, the same for image, masks and box.

    ``x`` is the normalised input ``(B, 3, S, S)`` (its padding is 0, so the zeros ``grid_sample`` adds outside the
    source are padding too, as at inference); labels ``(B, S, S)`` are resampled by nearest neighbour and pixels
    from outside the source become ``IGNORE``; boxes ``(B, 4)`` xyxy follow the mapping and are clipped.
    """
    b, _, size, _ = x.shape
    zoom = 1 + (torch.rand(b, generator=gen) * 2 - 1) * scale  # > 1 enlarges the content
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * translate * 2  # in normalised [-1, 1] units
    # affine_grid maps output coordinates to source coordinates: src = out / zoom - shift / zoom.
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom
    theta[:, :, 2] = -shift / zoom[:, None]
    grid = F.affine_grid(theta, [b, 1, size, size], align_corners=False)  # on the CPU, like labels and boxes
    x = F.grid_sample(x, grid.to(x.device), mode="bilinear", padding_mode="zeros", align_corners=False)
    shifted = (labels + 1).unsqueeze(1).float()  # 0 after sampling = outside the source
    labels = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    labels = labels.squeeze(1).long() - 1
    vehicle = F.grid_sample(vehicle.unsqueeze(1), grid, mode="nearest", align_corners=False).squeeze(1)
    # Boxes: pixel -> normalised (align_corners=False: u = 2 * px / S - 1), out = zoom * src + shift, back to pixels.
    norm = boxes.to(torch.float32) * 2 / size - 1
    norm = norm * zoom[:, None] + shift.repeat(1, 2)
    boxes = ((norm + 1) * size / 2).clamp(0, size)
    boxes = torch.stack(
        [
            boxes[:, 0],
            boxes[:, 1],
            torch.maximum(boxes[:, 2], boxes[:, 0] + 1),
            torch.maximum(boxes[:, 3], boxes[:, 1] + 1),
        ],
        dim=1,
    )
    return x, labels, vehicle, boxes


def normalise(segmenter: ViewSegmenter, images: torch.Tensor, sizes: list[tuple[int, int]]) -> torch.Tensor:
    """uint8 ``(B, 3, S, S)`` -> SAM's normalised input; padding stays 0 as ``Sam.preprocess`` leaves it."""
    sam = segmenter.sam
    x = (images.to(sam.device, torch.float32) - sam.pixel_mean) / sam.pixel_std
    for i, (h, w) in enumerate(sizes):
        x[i, :, h:, :] = 0
        x[i, :, :, w:] = 0
    return x


# ----------------------------------------------------------------------------------------------------------- loss
def dice_loss(probs: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice over ``(B, C, H, W)`` probabilities vs one-hot targets, per class over the batch, then averaged."""
    probs, target = probs * valid, target * valid
    inter = (probs * target).sum(dim=(0, 2, 3))
    total = probs.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3))
    return (1 - (2 * inter + eps) / (total + eps)).mean()


def segmentation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    vehicle: torch.Tensor,
    dice_weight: float = 1.0,
    view_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Vehicle token: BCE + Dice. View tokens: cross-entropy over the K classes + multi-class Dice.

    Args:
        logits: ``(B, 1 + K, S, S)``; token 0 is the vehicle, tokens ``1..K`` the view classes.
        labels: ``(B, S, S)`` int64 view labels, ``IGNORE`` where not annotated (padding).
        vehicle: ``(B, S, S)`` float {0, 1}.
    """
    valid = (labels != IGNORE).unsqueeze(1).float()
    veh_logits = logits[:, :1]
    bce = F.binary_cross_entropy_with_logits(veh_logits, vehicle.unsqueeze(1), weight=valid)
    veh_dice = dice_loss(torch.sigmoid(veh_logits), vehicle.unsqueeze(1), valid)
    view_logits = logits[:, 1:]
    ce = F.cross_entropy(view_logits, labels, ignore_index=IGNORE)
    onehot = F.one_hot(labels.clamp(min=0), view_logits.shape[1]).permute(0, 3, 1, 2).float()
    view_dice = dice_loss(view_logits.softmax(dim=1), onehot, valid)
    loss = bce + dice_weight * veh_dice + view_weight * (ce + dice_weight * view_dice)
    parts = {"bce": bce.item(), "vehicle_dice": veh_dice.item(), "ce": ce.item(), "view_dice": view_dice.item()}
    return loss, parts


def train_step(
    segmenter: ViewSegmenter,
    optimizer: torch.optim.Optimizer,
    batch: list[Prepared],
    gen: torch.Generator,
    box_jitter: float = 0.1,
    hflip: bool = True,
    dice_weight: float = 1.0,
    view_weight: float = 1.0,
    grad_clip: float = 1.0,
    scale_jitter: float = 0.0,
    translate: float = 0.0,
    color_jitter: float = 0.0,
) -> dict[str, float]:
    """One optimisation step on a batch; raises on a non-finite loss (stop early rather than save NaN weights)."""
    segmenter.train()
    images, labels, vehicle, boxes, sizes = augment(batch, segmenter.view_classes, box_jitter, hflip, gen)
    device = segmenter.sam.device
    if color_jitter > 0:
        images = photometric(images, color_jitter, gen)
    x = normalise(segmenter, images, sizes)
    if scale_jitter > 0 or translate > 0:
        x, labels, vehicle, boxes = random_affine(x, labels, vehicle, boxes, scale_jitter, translate, gen)
    logits = segmenter(x, boxes.to(device))
    loss, parts = segmentation_loss(logits, labels.to(device), vehicle.to(device), dice_weight, view_weight)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite loss {loss.item()} (parts {parts}); lower segment.finetune.lr")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip) if grad_clip > 0 else torch.tensor(0.0)
    optimizer.step()
    return {"loss": loss.item(), "grad_norm": float(grad_norm), **parts}


@torch.no_grad()
def evaluate_prepared(segmenter: ViewSegmenter, items: list[Prepared], batch_size: int = 16) -> dict[str, Any]:
    """Vehicle IoU and per-class IoU on prepared images, prompted with their exact boxes (input frame)."""
    segmenter.eval()
    meter = SegMeter(segmenter.view_classes)
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        images, labels, vehicle, boxes, sizes = augment(chunk, segmenter.view_classes, 0.0, False, torch.Generator())
        logits = segmenter(normalise(segmenter, images, sizes), boxes.to(segmenter.sam.device)).cpu()
        pred_vehicle = logits[:, 0] > 0
        pred_labels = torch.where(pred_vehicle, logits[:, 2:].argmax(1) + 1, 0)
        valid = labels != IGNORE
        meter.update(pred_labels.numpy(), labels.clamp(min=0).numpy(), pred_vehicle.numpy(), vehicle.numpy() > 0,
                     valid.numpy())  # fmt: skip
    return meter.result()


# ----------------------------------------------------------------------------------------------------------- loop
def _set_trainable(segmenter: ViewSegmenter, train_image_encoder: bool, train_prompt_encoder: bool) -> list:
    sam = segmenter.sam
    for module, flag in ((sam.image_encoder, train_image_encoder), (sam.prompt_encoder, train_prompt_encoder)):
        module.requires_grad_(flag)
    sam.mask_decoder.requires_grad_(True)
    return [p for p in sam.parameters() if p.requires_grad]


@dataclass
class FinetuneResult:
    checkpoint: Path
    sha256: str
    steps: int
    final_loss: float
    first_loss: float
    val: dict[str, Any] | None
    seconds: float


def _restore(
    last_path: Path,
    device: str,
    segmenter: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    gen: torch.Generator,
    rng: np.random.Generator,
    train_config: dict[str, Any],
) -> tuple[int, float, float]:
    """Load ``checkpoint-last.pt`` into the model, optimiser, schedule and generators; returns
    ``(step, best, first_loss)``."""
    # weights_only: a crafted checkpoint is refused before anything in it runs (it holds tensors and plain values).
    state = ckpt.load_checkpoint(last_path, map_location=device, fix="delete it or pass --no-resume")
    if state.get("format", CHECKPOINT_FORMAT) != CHECKPOINT_FORMAT:  # files of earlier versions carry no tag
        raise ValueError(f"{last_path} is not a view-SAM fine-tuning checkpoint; {ckpt.NO_RESUME_HINT}")
    ckpt.check_config(last_path, state.get("config"), train_config, RESUME_IGNORES)
    try:
        segmenter.sam.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{last_path} cannot be resumed ({exc}); delete it or pass --no-resume") from exc
    gen.set_state(state["gen"])
    rng.bit_generator.state = state["rng"]
    log.info("resumed from %s at step %d", last_path, state["step"])
    return state["step"], state["best"], state["first_loss"]


def _resume_point(out_dir: Path, resume: bool) -> Path | None:
    """``checkpoints/checkpoint-last.pt`` to continue from, or ``None`` for a new run (``resume=False`` removes the
    earlier run's checkpoints); a new run's ``metrics.jsonl`` starts empty."""
    if not resume:
        ckpt.start_over(out_dir, legacy=LEGACY_NAMES)
    last_path = ckpt.find_last(out_dir, legacy=LEGACY_NAMES) if resume else None
    if last_path is None:
        (out_dir / "metrics.jsonl").unlink(missing_ok=True)
    return last_path


def _keep_best(
    checkpoint: Path, segmenter: Any, step: int, val_result: dict[str, Any], best: float, sha: str
) -> tuple[float, str]:
    """Save the weights as ``checkpoint`` when their validation view mIoU beats ``best``; returns ``(best, sha)``."""
    score = val_result["view_miou"] or 0.0
    if score <= best:
        return best, sha
    return score, save_segmenter(checkpoint, segmenter, {"step": step, "val": val_result})


def _existing_or_saved(checkpoint: Path, segmenter: Any, step: int) -> str:
    """The sha256 of the checkpoint file, writing the current weights there first when it does not exist."""
    if not checkpoint.is_file():
        return save_segmenter(checkpoint, segmenter, {"step": step})
    return load_segmenter(checkpoint)[1]


def finetune(
    *,
    root: Path,
    view_classes: tuple[str, ...],
    model: ModelSpec,
    checkpoint: Path,
    out_dir: Path,
    table: str = "segments",
    gt_root: Path | None = None,
    refs: tuple[str, ...] | list[str] | None = ANNOTATION_REFS,
    train_image_encoder: bool = False,
    train_prompt_encoder: bool = False,
    steps: int = 2000,
    max_minutes: float | None = None,
    batch_size: int = 8,
    lr: float = 1e-4,
    weight_decay: float = 0.01,
    warmup_steps: int = 50,
    grad_clip: float = 1.0,
    dice_weight: float = 1.0,
    view_weight: float = 1.0,
    box_jitter: float = 0.1,
    hflip: bool = True,
    scale_jitter: float = 0.0,
    translate: float = 0.0,
    color_jitter: float = 0.0,
    val_fraction: float = 0.15,
    eval_every: int = 200,
    checkpoint_every: int = 200,
    num_threads: int = 1,
    seed: int = 0,
    resume: bool = True,
    device: str = "cpu",
    config_snapshot: dict[str, Any] | None = None,
) -> FinetuneResult:
    """Fine-tune a view SAM on ``root``'s annotated masks; writes ``checkpoint`` (best validation view mIoU, or the
    last weights without a validation split) and ``out_dir/{checkpoints/checkpoint-last.pt, metrics.jsonl, config.yaml,
    result.json}``.

    Resumes from ``out_dir/checkpoints/checkpoint-last.pt`` when it exists: weights, optimiser, schedule, RNG and step
    (a checkpoint trained with other settings is an error naming them); ``resume=False`` starts over.
    Trains on rows whose ``segmenter_ref`` starts with one of ``refs`` (human annotations and exact renderer masks by
    default; the segmenter's own ``sam:`` predictions in the same table are left out).
    """
    # 1. Data: identity-disjoint split, images prepared once in the encoder's input frame.
    torch.set_num_threads(num_threads)
    torch.manual_seed(seed)
    items = load_annotated(root, table, gt_root=gt_root, refs=refs)
    if not items:
        raise ValueError(
            f"no ok annotated rows (segmenter_ref starting with {list(refs or [])}) in {gt_root or root}/manifests/"
            f"{table}; nothing to fine-tune on. Bring human masks in with `diffveri segment annotations import` "
            "(docs/segment.md#annotating-view-masks)"
        )
    train_items, val_items = split_by_identity(items, val_fraction, seed)
    segmenter = build_segmenter(model, view_classes).to(device)
    log.info("fine-tuning on %d images (%d held out for validation)", len(train_items), len(val_items))
    train_set = [prepare(segmenter, a) for a in tqdm(train_items, desc="prepare train", leave=False)]
    val_set = [prepare(segmenter, a) for a in tqdm(val_items, desc="prepare val", leave=False)]

    # 2. Optimiser over the trainable parts; cosine schedule after a linear warm-up.
    params = _set_trainable(segmenter, train_image_encoder, train_prompt_encoder)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    # Per step (data_manifests.schedule): warmup from 1 / (warmup_steps + 1), then cosine to 0 at `steps`.
    scheduler = lambda_schedule(optimizer, total=steps, warmup=warmup_steps, warmup_start=1.0)
    gen = seeds.torch_generator(seed, "segment.finetune.augment")
    rng = seeds.rng(seed, "segment.finetune.batches")
    step, best, first_loss, history = 0, -1.0, float("nan"), []
    out_dir.mkdir(parents=True, exist_ok=True)
    if config_snapshot is not None:
        atomic_write_bytes(out_dir / "config.yaml", yaml.safe_dump(config_snapshot, sort_keys=False).encode())
    train_config = {
        "view_classes": list(view_classes), "model": dataclasses.asdict(model), "table": table,
        "refs": list(refs) if refs is not None else None, "train_image_encoder": train_image_encoder,
        "train_prompt_encoder": train_prompt_encoder, "steps": steps, "max_minutes": max_minutes,
        "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "warmup_steps": warmup_steps,
        "grad_clip": grad_clip, "dice_weight": dice_weight, "view_weight": view_weight, "box_jitter": box_jitter,
        "hflip": hflip, "scale_jitter": scale_jitter, "translate": translate, "color_jitter": color_jitter,
        "val_fraction": val_fraction, "eval_every": eval_every, "checkpoint_every": checkpoint_every,
        "num_threads": num_threads, "seed": seed, "device": device,
    }  # fmt: skip

    # 3. Resume (or start over).
    last_path = _resume_point(out_dir, resume)
    if last_path is not None:
        step, best, first_loss = _restore(last_path, device, segmenter, optimizer, scheduler, gen, rng, train_config)

    def save_last() -> None:
        payload = {
            "model": segmenter.sam.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "gen": gen.get_state(),
            "rng": rng.bit_generator.state,
            "step": step,
            "best": best,
            "first_loss": first_loss,
            "config": train_config,
        }
        # No global RNG states: every draw comes from `gen` and `rng`, which the payload holds.
        ckpt.save_checkpoint(ckpt.last_path(out_dir), payload, format=CHECKPOINT_FORMAT, rng=False)

    def log_metrics(record: dict[str, Any]) -> None:
        history.append(record)
        with open(out_dir / "metrics.jsonl", "a") as handle:  # append-only log; a torn last line is harmless
            handle.write(json.dumps(record) + "\n")

    # 4. Loop: sample a batch without replacement per epoch, step, validate, checkpoint.
    start = time.monotonic()
    sha = ""
    val_result: dict[str, Any] | None = None
    loss_ema = None
    order: list[int] = []
    progress = tqdm(total=steps, initial=step, desc="segment finetune")
    while step < steps:
        if len(order) < batch_size:
            order = list(rng.permutation(len(train_set))) + order
        batch = [train_set[order.pop()] for _ in range(min(batch_size, len(train_set)))]
        out = train_step(
            segmenter, optimizer, batch, gen, box_jitter, hflip, dice_weight, view_weight, grad_clip,
            scale_jitter, translate, color_jitter,
        )  # fmt: skip
        scheduler.step()
        step += 1
        if math.isnan(first_loss):
            first_loss = out["loss"]
        loss_ema = out["loss"] if loss_ema is None else 0.95 * loss_ema + 0.05 * out["loss"]
        progress.update(1)
        progress.set_postfix(loss=f"{loss_ema:.3f}")
        out_of_time = max_minutes is not None and (time.monotonic() - start) / 60 >= max_minutes
        last = step >= steps or out_of_time
        if step % eval_every == 0 or last:
            record = {"step": step, "lr": scheduler.get_last_lr()[0], "loss": out["loss"], "loss_ema": loss_ema}
            if val_set:
                record["val"] = val_result = evaluate_prepared(segmenter, val_set)
                log.info(
                    "step %d loss %.4f val vehicle IoU %.4f view mIoU %.4f",
                    step, loss_ema, val_result["vehicle_iou"] or 0, val_result["view_miou"] or 0,
                )  # fmt: skip
                best, sha = _keep_best(checkpoint, segmenter, step, val_result, best, sha)
            log_metrics(record)
        if step % checkpoint_every == 0 or last:
            if not val_set:
                sha = save_segmenter(checkpoint, segmenter, {"step": step})
            save_last()
        if out_of_time:
            log.info("stopping at step %d: segment.finetune.max_minutes=%s reached", step, max_minutes)
            break
    progress.close()
    if not sha:  # resumed after the last step, or no improvement recorded in this session
        sha = _existing_or_saved(checkpoint, segmenter, step)
    seconds = time.monotonic() - start
    best_val = evaluate_prepared(load_segmenter(checkpoint, device)[0], val_set) if val_set else None
    result = FinetuneResult(checkpoint, sha, step, loss_ema or float("nan"), first_loss, best_val, seconds)
    summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(result).items()}
    atomic_write_bytes(out_dir / "result.json", json.dumps(summary, indent=1).encode())
    return result
