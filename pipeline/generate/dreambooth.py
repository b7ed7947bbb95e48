"""DreamBooth per identity: LoRA (peft) on the UNet attention projections, prior preservation, accelerate.

For each identity of the ``subjects`` table:

1. check its instance images (all of them, before any work; see ``strict_inputs``);
2. generate the class images of its class once (cached per base model and class, shared by identities);
3. train: the batch concatenates ``batch_size`` instance examples (prompt ``a photo of <token> <class>``) and,
   with prior preservation, as many class examples (``a photo of a <class>``); the loss is the instance MSE plus
   ``prior_weight`` times the class-half MSE (:func:`dreambooth_loss`);
4. checkpoint every ``checkpoint_every`` optimizer steps to ``<identity folder>/checkpoints/checkpoint-last.pt``
   (docs/architecture.md, "Checkpoints and resume"; a crash resumes from the last step exactly: batch choice, noise
   and timesteps come from per-step seeds, not from a global RNG);
5. save the adapter as safetensors (``unet.`` / ``text_encoder.`` prefixed peft keys, the LoRA config in the
   metadata), hash it, and upsert one ``dreambooth`` row. A failed identity becomes a ``failed`` row with a
   reason and the next identity goes on.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import data_manifests as dm
from data_manifests import Reason, Status
from data_manifests import checkpoints as dm_checkpoints
from data_manifests.schedule import lambda_schedule
from data_manifests.seeds import derive_seed

from .common import (
    MODEL_LOCK,
    ModelsConfig,
    check_image,
    dumps,
    load_image_square,
    model_sha256,
    rare_token,
    relative_to_root,
    resolve_base_model,
    set_torch_threads,
    slug,
    write_png,
)

logger = logging.getLogger(__name__)

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # attention projections of diffusers' UNet blocks
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")  # CLIP text encoder attention projections
MODES = ("lora", "full")
MIXED_PRECISION = ("no", "fp16", "bf16")


class InputError(ValueError):
    """Bad input found before any work started (nothing has been written)."""


@dataclass
class DreamBoothConfig:
    """The ``dreambooth:`` config section (every value documented in docs/pipeline.md)."""

    mode: str = "lora"
    rank: int = 4
    alpha: float | None = None
    train_text_encoder: bool = False
    resolution: int = 64
    steps: int = 20
    batch_size: int = 1
    gradient_accumulation: int = 1
    learning_rate: float = 1e-4
    lr_warmup_steps: int = 0
    adam_weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    prior_preservation: bool = True
    prior_weight: float = 1.0
    num_class_images: int = 8
    instance_prompt: str = "a photo of {token} {class_name}"
    class_prompt: str = "a photo of a {class_name}"
    class_sampler_steps: int = 10
    class_guidance: float = 7.5
    class_batch_size: int = 4
    checkpoint_every: int = 10
    keep_checkpoints: int | None = None  # deprecated, no effect: one checkpoint-last.pt is kept per identity
    mixed_precision: str = "no"
    cpu: bool = False
    strict_inputs: bool = True
    torch_threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.keep_checkpoints is not None:  # old configs still load; the key is gone from the shipped ones
            print(
                "warning: dreambooth.keep_checkpoints is deprecated and has no effect (one checkpoint-last.pt is "
                "kept per identity while it trains, deleted when it finishes); remove it from your config",
                file=sys.stderr,
            )
        if self.mode not in MODES:
            raise ValueError(f"dreambooth.mode={self.mode!r}; valid: {list(MODES)}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"dreambooth.mixed_precision={self.mixed_precision!r}; valid: {list(MIXED_PRECISION)}")
        for name in ("rank", "steps", "batch_size", "gradient_accumulation", "resolution", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"dreambooth.{name} must be >= 1, got {getattr(self, name)}")
        if self.prior_preservation and self.num_class_images < 1:
            raise ValueError("dreambooth.num_class_images must be >= 1 with prior_preservation")
        if self.train_text_encoder and self.mode == "full":
            raise ValueError("dreambooth.train_text_encoder is a LoRA option; use mode: lora with it")


@dataclass
class IdentityResult:
    identity_id: str
    status: str
    steps: int = 0
    final_loss: float | None = None
    seconds: float = 0.0
    lora_path: str | None = None
    lora_sha256: str | None = None
    reason: str | None = None
    message: str | None = None


# ------------------------------------------------------------------------------------------------------------- loss
def dreambooth_loss(model_pred, target, n_instance: int, prior_weight: float):
    """DreamBooth loss with prior preservation.

    ``model_pred``, ``target``: ``(B, C, h, w)``; rows ``[:n_instance]`` are instance examples and rows
    ``[n_instance:]`` class (prior) examples. Returns ``(loss, instance_loss, prior_loss)``; ``prior_loss`` is
    ``None`` when the batch has no class half.
    """
    import torch.nn.functional as F

    inst = F.mse_loss(model_pred[:n_instance].float(), target[:n_instance].float(), reduction="mean")
    if model_pred.shape[0] == n_instance:
        return inst, inst, None
    prior = F.mse_loss(model_pred[n_instance:].float(), target[n_instance:].float(), reduction="mean")
    return inst + prior_weight * prior, inst, prior


def training_step(
    *,
    unet,
    vae,
    noise_scheduler,
    pixels,
    encoder_hidden_states,
    n_instance: int,
    prior_weight: float,
    generator,
):
    """One forward pass of the DreamBooth objective.

    ``pixels``: ``(B, 3, H, W)`` in [-1, 1] (instance rows first); ``encoder_hidden_states``: ``(B, T, D)``.
    Noise and timesteps are drawn from ``generator`` so a step is reproducible from its seed alone.
    Returns ``(loss, instance_loss, prior_loss)`` as :func:`dreambooth_loss`.
    """
    import torch

    with torch.no_grad():
        latents = vae.encode(pixels.to(vae.dtype)).latent_dist.sample(generator=generator)
        latents = latents * vae.config.scaling_factor
    noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(latents.device)
    timesteps = torch.randint(
        0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator
    ).to(latents.device)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    model_pred = unet(noisy, timesteps, encoder_hidden_states).sample
    if noise_scheduler.config.prediction_type == "epsilon":
        target = noise
    elif noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        raise ValueError(f"unsupported prediction_type {noise_scheduler.config.prediction_type!r}")
    return dreambooth_loss(model_pred, target, n_instance, prior_weight)


# ------------------------------------------------------------------------------------------------------ class images
def class_image_dir(root: Path, base_sha: str, class_name: str) -> Path:
    return root / "dreambooth" / "class_images" / base_sha[:12] / slug(class_name)


def ensure_class_images(
    *,
    pipe,
    out_dir: Path,
    class_name: str,
    prompt: str,
    count: int,
    resolution: int,
    sampler_steps: int,
    guidance: float,
    batch_size: int,
    seed: int,
) -> list[Path]:
    """Generate the class images of ``class_name`` once (existing files are kept); returns their paths.

    Image ``i`` always comes from seed ``derive_seed(seed, "class", class_name, i)``, so the cache can be
    rebuilt or extended identically.
    """
    import torch

    paths = [out_dir / f"{i:05d}.png" for i in range(count)]
    todo = [i for i, p in enumerate(paths) if not p.is_file()]
    if todo:
        logger.info("generating %d class image(s) for %r in %s", len(todo), class_name, out_dir)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        generators = [torch.Generator().manual_seed(derive_seed(seed, "class", class_name, i)) for i in chunk]
        with torch.no_grad():
            images = pipe(
                [prompt] * len(chunk),
                num_inference_steps=sampler_steps,
                guidance_scale=guidance,
                height=resolution,
                width=resolution,
                generator=generators,
                output_type="np",
            ).images
        for i, image in zip(chunk, images):
            write_png(paths[i], (np.clip(image, 0, 1) * 255).round().astype(np.uint8))
    return paths


# ------------------------------------------------------------------------------------------------------- adapters
def lora_config(rank: int, alpha: float | None, targets: tuple[str, ...]):
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else rank,
        init_lora_weights="gaussian",
        target_modules=list(targets),
    )


def adapter_state(unet, text_encoder, mode: str, with_text: bool) -> dict[str, Any]:
    """The trained weights to save: peft LoRA state dicts (or the full UNet), keys prefixed by component."""
    from peft.utils import get_peft_model_state_dict

    if mode == "full":
        return {f"unet.{k}": v.detach().contiguous() for k, v in unet.state_dict().items()}
    state = {
        f"unet.{k}": v.detach().contiguous()
        for k, v in get_peft_model_state_dict(unet, save_embedding_layers=False).items()
    }
    if with_text:
        state.update(
            {
                f"text_encoder.{k}": v.detach().contiguous()
                for k, v in get_peft_model_state_dict(text_encoder, save_embedding_layers=False).items()
            }
        )
    return state


ADAPTER_META_KEY = "diffveri"


def save_adapter(path: Path, state: dict[str, Any], info: dict[str, Any]) -> str:
    """Save ``state`` as safetensors atomically, ``info`` as one JSON metadata entry; returns the file's sha256.

    One sorted-JSON entry rather than several metadata keys: safetensors writes its metadata map in arbitrary
    order, so several keys would give different bytes (and sha256) for the same adapter.
    """
    import hashlib

    from safetensors.torch import save

    metadata = {ADAPTER_META_KEY: dumps(info)}
    data = save({k: v.float().cpu().contiguous() for k, v in state.items()}, metadata=metadata)
    dm.atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def adapter_info(path: Path) -> dict[str, Any]:
    """The ``info`` saved with an adapter (mode, rank, alpha, identity, token, base model sha256)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    if ADAPTER_META_KEY not in meta:
        raise ValueError(
            f"{path}: not a DreamBooth adapter written by this pipeline (no {ADAPTER_META_KEY!r} metadata)"
        )
    return json.loads(meta[ADAPTER_META_KEY])


def load_adapter(pipe, path: Path, adapter_name: str) -> Callable[[], None]:
    """Apply a saved DreamBooth adapter to ``pipe`` (LoRA or full UNet); returns a function that removes it."""
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    info = adapter_info(path)
    state = load_file(str(path))
    parts: dict[str, dict[str, Any]] = {"unet": {}, "text_encoder": {}}
    for key, value in state.items():
        component, _, rest = key.partition(".")
        if component not in parts:
            raise ValueError(f"{path}: unexpected key {key!r} (expected unet.* or text_encoder.*)")
        parts[component][rest] = value
    if info["mode"] == "full":
        original = {k: v.detach().clone() for k, v in pipe.unet.state_dict().items()}
        pipe.unet.load_state_dict({k: v.to(pipe.unet.dtype) for k, v in parts["unet"].items()})
        return lambda: pipe.unet.load_state_dict(original)
    attached = []
    for component, targets in (("unet", UNET_TARGETS), ("text_encoder", TEXT_TARGETS)):
        if not parts[component]:
            continue
        model = getattr(pipe, component)
        model.add_adapter(lora_config(info["rank"], info["alpha"], targets), adapter_name=adapter_name)
        result = set_peft_model_state_dict(model, parts[component], adapter_name=adapter_name)
        if getattr(result, "unexpected_keys", None):
            raise ValueError(f"{path}: {component} keys do not match the model: {result.unexpected_keys[:3]}")
        model.set_adapter(adapter_name)
        attached.append(model)

    def remove() -> None:
        for model in attached:
            # diffusers models name it delete_adapters, transformers models delete_adapter.
            if hasattr(model, "delete_adapters"):
                model.delete_adapters(adapter_name)
            else:
                model.delete_adapter(adapter_name)

    return remove


# ---------------------------------------------------------------------------------------------------- checkpoints
CHECKPOINT_FORMAT = "diffveri-dreambooth-v1"
# Settings of how a run goes, not of what it trains: left out of the config recorded in each dreambooth row.
NOT_RECORDED = ("strict_inputs", "cpu", "torch_threads", "keep_checkpoints")
# Settings that do not change what is trained: a resumed identity may differ from its checkpoint in these (`steps`
# may grow: the schedule is constant after its warmup).
RESUME_IGNORES = ("steps", "checkpoint_every", "class_batch_size", *NOT_RECORDED)


def _trained_states(accelerator: Any, models: list, lora: bool) -> list[dict[str, Any]]:
    """What is trained, per model: the LoRA weights (``lora``) or the full state dict."""
    from peft.utils import get_peft_model_state_dict

    states = []
    for model in models:
        inner = accelerator.unwrap_model(model)
        state = get_peft_model_state_dict(inner, save_embedding_layers=False) if lora else inner.state_dict()
        states.append({k: v.detach().clone() for k, v in state.items()})
    return states


def _load_trained_states(accelerator: Any, models: list, states: list[dict[str, Any]], lora: bool) -> None:
    from peft.utils import set_peft_model_state_dict

    for model, state in zip(models, states, strict=True):
        inner = accelerator.unwrap_model(model)
        if lora:
            set_peft_model_state_dict(inner, state)
        else:
            inner.load_state_dict(state)


def _save_checkpoint(work_dir: Path, accelerator: Any, models: list, optimizer: Any, lr_scheduler: Any,
                     lora: bool, progress: dict[str, Any]) -> None:  # fmt: skip
    """``work_dir/checkpoints/checkpoint-last.pt``: trained weights, AdamW, schedule, scaler, step, loss, RNG states."""
    payload = {
        "models": _trained_states(accelerator, models, lora),
        "optimizer": optimizer.state_dict(),
        "scheduler": lr_scheduler.state_dict(),
        "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
        **progress,
    }
    dm_checkpoints.save_checkpoint(dm_checkpoints.last_path(work_dir), payload, format=CHECKPOINT_FORMAT)


def _restore(last: Path, accelerator: Any, models: list, optimizer: Any, lr_scheduler: Any, lora: bool,
             config: dict[str, Any]) -> tuple[int, float]:  # fmt: skip
    """Load a checkpoint written by :func:`_save_checkpoint`; returns ``(step, loss)``."""
    state = dm_checkpoints.load_checkpoint(
        last, format=CHECKPOINT_FORMAT, what="DreamBooth checkpoint", fix=dm_checkpoints.NO_RESUME_HINT
    )
    dm_checkpoints.check_config(last, state.get("config"), config, RESUME_IGNORES)
    _load_trained_states(accelerator, models, state["models"], lora)
    optimizer.load_state_dict(state["optimizer"])
    lr_scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler") is not None and accelerator.scaler is not None:
        accelerator.scaler.load_state_dict(state["scaler"])
    dm_checkpoints.set_rng_states(state["rng"])
    return int(state["step"]), float(state["loss"])


def _resume_point(work_dir: Path, resume: bool) -> Path | None:
    """The identity's ``checkpoint-last.pt`` to continue from; ``resume=False`` removes it. Checkpoint folders of
    earlier versions (``checkpoints/step-NNNNNNN``, accelerate's format) are not read: the identity starts over."""
    if not resume:
        dm_checkpoints.start_over(work_dir)
    old = sorted(dm_checkpoints.checkpoint_dir(work_dir).glob("step-*"))
    if old:
        logger.warning("%s: old checkpoint folders %s are not read; removing them", work_dir, [p.name for p in old])
        for path in old:
            shutil.rmtree(path, ignore_errors=True)
    return dm_checkpoints.find_last(work_dir) if resume else None


# ----------------------------------------------------------------------------------------------------------- training
def _to_pixels(images: list[np.ndarray]):
    """uint8 ``(H, W, 3)`` images -> float tensor ``(N, 3, H, W)`` in [-1, 1]."""
    import torch

    array = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def _prepare_models(
    vae: Any, text_encoder: Any, unet: Any, cfg: DreamBoothConfig, device: Any, weight_dtype: Any, seed: int
) -> None:
    """Freeze what is not trained, move everything to ``device``, cast frozen parts to ``weight_dtype`` and (mode
    ``lora``) add the seeded LoRA adapters, whose weights stay in fp32."""
    import torch

    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    unet.requires_grad_(cfg.mode == "full")
    # The frozen parts run in the mixed-precision dtype; trained weights stay in fp32.
    for model in (vae, text_encoder, unet):
        model.to(device)
        if weight_dtype != torch.float32 and not (model is unet and cfg.mode == "full"):
            model.to(dtype=weight_dtype)
    if cfg.mode == "lora":
        # peft draws the initial LoRA weights from torch's global RNG: seed it (in a fork, leaving the caller's
        # RNG alone) so a run is reproducible from its seed.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            unet.add_adapter(lora_config(cfg.rank, cfg.alpha, UNET_TARGETS))
            if cfg.train_text_encoder:
                text_encoder.add_adapter(lora_config(cfg.rank, cfg.alpha, TEXT_TARGETS))
        # Trainable (LoRA) parameters stay in fp32 even when the frozen base runs in fp16/bf16.
        for model in (unet, text_encoder):
            for p in model.parameters():
                if p.requires_grad:
                    p.data = p.data.float()


def _prepare_data(
    cfg: DreamBoothConfig,
    instance_images: list[Path],
    class_images: list[Path],
    instance_prompt: str,
    class_prompt: str,
    tokenizer: Any,
    text_encoder: Any,
    train_text: bool,
    device: Any,
) -> tuple[Any, Any, Any, Any]:
    """``(instance pixels, class pixels or None, prompt token ids, prompt embeddings or None)``: the handful of
    images kept as tensors, prompts tokenized once, and encoded once when the text encoder is frozen."""
    import torch

    instance = _to_pixels([load_image_square(p, cfg.resolution) for p in instance_images])
    with_prior = cfg.prior_preservation and bool(class_images)
    klass = _to_pixels([load_image_square(p, cfg.resolution) for p in class_images]) if with_prior else None
    prompts = [instance_prompt] * cfg.batch_size + ([class_prompt] * cfg.batch_size if with_prior else [])
    input_ids = tokenizer(
        prompts, padding="max_length", truncation=True, max_length=tokenizer.model_max_length, return_tensors="pt"
    ).input_ids.to(device)
    frozen_embeddings = None
    if not train_text:
        with torch.no_grad():  # the text encoder is frozen: encode the prompts once
            frozen_embeddings = text_encoder(input_ids)[0]
    return instance, klass, input_ids, frozen_embeddings


def train_identity(
    *,
    base_model: Path,
    instance_images: list[Path],
    class_images: list[Path],
    instance_prompt: str,
    class_prompt: str,
    work_dir: Path,
    cfg: DreamBoothConfig,
    seed: int,
    progress_bar: bool = True,
    stop_at: int | None = None,
    resume: bool = True,
) -> tuple[dict[str, Any], int, float]:
    """Train one identity's adapter; resumes from ``work_dir/checkpoints/checkpoint-last.pt`` when it exists
    (``resume=False`` starts over).

    ``stop_at``: end this run after that optimizer step with a checkpoint (for preemptible jobs; a later call
    resumes from it).

    Returns ``(trained state dict, steps done, final loss)``; the final loss is the mean over the accumulation
    micro-steps of the last optimizer step. Raises ``FloatingPointError`` on a non-finite loss.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from tqdm.auto import tqdm
    from transformers import CLIPTextModel, CLIPTokenizer

    # 1. Accelerator (mixed precision, gradient accumulation) and the models.
    last = _resume_point(work_dir, resume)
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.gradient_accumulation,
        cpu=cfg.cpu,
        project_config=ProjectConfiguration(project_dir=str(work_dir)),
    )
    weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg.mixed_precision]
    tokenizer = CLIPTokenizer.from_pretrained(base_model, subfolder="tokenizer", local_files_only=True)
    text_encoder = CLIPTextModel.from_pretrained(base_model, subfolder="text_encoder", local_files_only=True)
    vae = AutoencoderKL.from_pretrained(base_model, subfolder="vae", local_files_only=True)
    unet = UNet2DConditionModel.from_pretrained(base_model, subfolder="unet", local_files_only=True)
    noise_scheduler = DDPMScheduler.from_pretrained(base_model, subfolder="scheduler", local_files_only=True)
    _prepare_models(vae, text_encoder, unet, cfg, accelerator.device, weight_dtype, seed)
    train_text = cfg.mode == "lora" and cfg.train_text_encoder
    models = [unet, text_encoder] if train_text else [unet]
    params = [p for m in models for p in m.parameters() if p.requires_grad]

    # 2. Data: a handful of images, kept as tensors; prompts tokenized once.
    instance, klass, input_ids, frozen_embeddings = _prepare_data(
        cfg,
        instance_images,
        class_images,
        instance_prompt,
        class_prompt,
        tokenizer,
        text_encoder,
        train_text,
        accelerator.device,
    )
    with_prior = klass is not None

    # 3. Optimizer, LR schedule, accelerate wrapping; checkpoints save only what is trained.
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.adam_weight_decay)
    # Linear warmup from 0 over lr_warmup_steps, then constant (min_ratio 1: the cosine stays at the lr).
    lr_scheduler = lambda_schedule(optimizer, total=cfg.steps, warmup=cfg.lr_warmup_steps, min_ratio=1.0)
    prepared = accelerator.prepare(*models, optimizer, lr_scheduler)
    models = list(prepared[: len(models)])
    optimizer, lr_scheduler = prepared[len(models)], prepared[len(models) + 1]
    unet_p = models[0]
    text_p = models[1] if train_text else None

    lora = cfg.mode == "lora"
    config = {**asdict(cfg), "identity_seed": seed, "instance_prompt": instance_prompt, "class_prompt": class_prompt}

    # 4. Resume from the last checkpoint.
    start_step, last_loss = 0, float("nan")
    if last is not None:
        start_step, last_loss = _restore(last, accelerator, models, optimizer, lr_scheduler, lora, config)
        logger.info("resuming %s from step %d", work_dir.name, start_step)

    # 5. The loop: optimizer steps x accumulation micro-steps, every draw from a per-(step, micro) seed.
    end_step = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    bar = tqdm(range(start_step, end_step), desc=f"dreambooth {work_dir.name}", disable=not progress_bar, leave=False)
    for step in bar:
        micro_losses = []
        for micro in range(cfg.gradient_accumulation):
            generator = torch.Generator().manual_seed(derive_seed(seed, "step", step, micro))
            idx = torch.randint(0, instance.shape[0], (cfg.batch_size,), generator=generator)
            pixels = instance[idx]
            if with_prior:
                cidx = torch.randint(0, klass.shape[0], (cfg.batch_size,), generator=generator)
                pixels = torch.cat([pixels, klass[cidx]])
            with accelerator.accumulate(*models):
                if text_p is not None:
                    embeddings = text_p(input_ids)[0]
                else:
                    embeddings = frozen_embeddings
                loss, _, _ = training_step(
                    unet=unet_p,
                    vae=vae,
                    noise_scheduler=noise_scheduler,
                    pixels=pixels.to(accelerator.device),
                    encoder_hidden_states=embeddings,
                    n_instance=cfg.batch_size,
                    prior_weight=cfg.prior_weight,
                    generator=generator,
                )
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss {loss.item()} at step {step}")
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            micro_losses.append(loss.detach().item())
        last_loss = float(np.mean(micro_losses))
        bar.set_postfix(loss=f"{last_loss:.4f}")
        done = step + 1
        if (done % cfg.checkpoint_every == 0 and done < cfg.steps) or done == stop_at:
            progress = {"step": done, "loss": last_loss, "config": config}
            _save_checkpoint(work_dir, accelerator, models, optimizer, lr_scheduler, lora, progress)

    # 6. What to save.
    state = adapter_state(
        accelerator.unwrap_model(unet_p),
        accelerator.unwrap_model(text_p) if text_p is not None else None,
        cfg.mode,
        train_text,
    )
    accelerator.free_memory()
    return state, end_step, last_loss


# ------------------------------------------------------------------------------------------------------------- stage
def _check_inputs(root: Path, subjects: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Problems per identity: ``{identity: (reason, message)}`` naming each bad file."""
    problems: dict[str, tuple[str, str]] = {}
    for row in subjects:
        images = row["instance_images"] or []
        if not images:
            problems[row["identity_id"]] = (Reason.NO_INSTANCE_IMAGES, "subject has no instance images")
            continue
        for rel in images:
            try:
                path = dm.inside_root(root, rel, what="instance image")
            except dm.PathEscapeError as exc:  # an absolute or ../ path: never read or trained on
                problems[row["identity_id"]] = (Reason.PATH_OUTSIDE_ROOT, str(exc))
                break
            reason = check_image(path)
            if reason:
                what = "does not exist" if reason == "missing_file" else "is not a readable image"
                problems[row["identity_id"]] = (reason, f"instance image {path} {what}")
                break
    return problems


def select_subjects(root: Path, identities: list[str] | None) -> list[dict[str, Any]]:
    """``ok`` subjects rows, optionally only ``identities`` (each must exist; duplicates are an error)."""
    rows = [r for r in dm.read_rows(root, "subjects") if r["status"] == Status.OK]
    if identities is None:
        return sorted(rows, key=lambda r: r["identity_id"])
    dups = sorted({i for i in identities if identities.count(i) > 1})
    if dups:
        raise InputError(f"duplicate identity id(s) requested: {dups}; name each identity once")
    by_id = {r["identity_id"]: r for r in rows}
    unknown = [i for i in identities if i not in by_id]
    if unknown:
        raise InputError(
            f"identity id(s) {unknown} have no ok row in {root}/manifests/subjects; "
            f"known: {sorted(by_id)[:10]}{' ...' if len(by_id) > 10 else ''}"
        )
    return [by_id[i] for i in identities]


def run_dreambooth(
    *,
    root: Path,
    models: ModelsConfig,
    cfg: DreamBoothConfig,
    identities: list[str] | None = None,
    progress_bar: bool = True,
    resume: bool = True,
) -> list[IdentityResult]:
    """Train every selected identity that has no ``ok`` dreambooth row yet; returns one result per identity.

    An identity interrupted in an earlier run continues from its ``checkpoints/checkpoint-last.pt``; ``resume=False``
    starts it over.

    Raises :class:`InputError` (before writing anything) for duplicate or unknown identities and, with
    ``cfg.strict_inputs``, for any missing or unreadable instance image; without it those identities get a
    ``failed`` row and the others go on.
    """
    import torch
    from diffusers import StableDiffusionPipeline

    root = Path(root)
    # 1. Fail early on bad input, before anything is written.
    subjects = select_subjects(root, identities)
    problems = _check_inputs(root, subjects)
    if problems and cfg.strict_inputs:
        lines = "\n".join(f"  {ident}: {msg}" for ident, (_, msg) in sorted(problems.items()))
        raise InputError(
            f"bad instance images for {len(problems)} identit{'y' if len(problems) == 1 else 'ies'}:\n{lines}\n"
            "fix or re-import these subjects (diffveri subjects import), or set dreambooth.strict_inputs=false to "
            "record them as failed and train the others"
        )
    base = resolve_base_model(root, models)
    base_sha = model_sha256(base)
    done = {r["identity_id"] for r in dm.read_rows(root, "dreambooth", missing_ok=True) if r["status"] == Status.OK}
    results: list[IdentityResult] = []
    class_cache: dict[str, list[Path]] = {}
    pipe = None
    taken = {r["token"] for r in subjects if r.get("token")}
    settings = {k: v for k, v in asdict(cfg).items() if k not in NOT_RECORDED}

    def record(result: IdentityResult) -> None:
        dm.upsert(
            root,
            "dreambooth",
            [
                {
                    "identity_id": result.identity_id,
                    "base_model": str(models.base),
                    "lora_path": result.lora_path,
                    "lora_sha256": result.lora_sha256,
                    "steps": result.steps,
                    "final_loss": result.final_loss,
                    "seconds": result.seconds,
                    "config": dumps({**settings, "base_model_sha256": base_sha}),
                    "status": result.status,
                    "reason": result.reason,
                    "message": result.message,
                }
            ],
        )
        results.append(result)

    for row in subjects:
        ident = row["identity_id"]
        if ident in done:
            results.append(IdentityResult(ident, "skipped"))
            continue
        if ident in problems:
            reason, message = problems[ident]
            record(IdentityResult(ident, Status.FAILED, reason=reason, message=message))
            continue
        t0 = time.perf_counter()
        work_dir = root / "dreambooth" / slug(ident)
        token = row.get("token") or rare_token(ident, taken)
        try:
            # 2. Class images, once per class (the base pipeline is loaded only if some are missing).
            class_name = row["class_name"]
            class_prompt = cfg.class_prompt.format(class_name=class_name)
            if cfg.prior_preservation and class_name not in class_cache:
                out_dir = class_image_dir(root, base_sha, class_name)
                missing = any(not (out_dir / f"{i:05d}.png").is_file() for i in range(cfg.num_class_images))
                if missing and pipe is None:
                    with MODEL_LOCK:
                        pipe = StableDiffusionPipeline.from_pretrained(base, local_files_only=True, safety_checker=None)
                    pipe.set_progress_bar_config(disable=True)
                with MODEL_LOCK:  # see common.MODEL_LOCK; also keeps threads from drawing the same images twice
                    class_cache[class_name] = ensure_class_images(
                        pipe=pipe,
                        out_dir=out_dir,
                        class_name=class_name,
                        prompt=class_prompt,
                        count=cfg.num_class_images,
                        resolution=cfg.resolution,
                        sampler_steps=cfg.class_sampler_steps,
                        guidance=cfg.class_guidance,
                        batch_size=cfg.class_batch_size,
                        seed=cfg.seed,
                    )
            # 3-4. Train (resumable), one identity per process at a time (see common.MODEL_LOCK).
            with MODEL_LOCK:
                state, steps, loss = train_identity(
                    base_model=base,
                    instance_images=[dm.inside_root(root, p, what="instance image") for p in row["instance_images"]],
                    class_images=class_cache.get(class_name, []),
                    instance_prompt=cfg.instance_prompt.format(token=token, class_name=class_name),
                    class_prompt=class_prompt,
                    work_dir=work_dir,
                    cfg=cfg,
                    seed=derive_seed(cfg.seed, "dreambooth", ident),
                    progress_bar=progress_bar,
                    resume=resume,
                )
            # 5. Save, hash, record; the checkpoints are no longer needed.
            lora_path = work_dir / ("unet.safetensors" if cfg.mode == "full" else "lora.safetensors")
            info = {
                "mode": cfg.mode,
                "rank": cfg.rank,
                "alpha": cfg.alpha if cfg.alpha is not None else cfg.rank,
                "identity_id": ident,
                "token": token,
                "base_model_sha256": base_sha,
            }
            sha = save_adapter(lora_path, state, info)
            shutil.rmtree(work_dir / "checkpoints", ignore_errors=True)
            record(
                IdentityResult(
                    ident,
                    Status.OK,
                    steps=steps,
                    final_loss=loss,
                    seconds=time.perf_counter() - t0,
                    lora_path=relative_to_root(root, lora_path),
                    lora_sha256=sha,
                )
            )
        except FloatingPointError as exc:
            logger.error("dreambooth %s: %s", ident, exc)
            record(
                IdentityResult(
                    ident,
                    Status.FAILED,
                    seconds=time.perf_counter() - t0,
                    reason=Reason.NON_FINITE_LOSS,
                    message=str(exc),
                )
            )
        except Exception as exc:  # noqa: BLE001 - one identity's failure must not stop the others
            logger.exception("dreambooth %s failed", ident)
            record(
                IdentityResult(
                    ident,
                    Status.FAILED,
                    seconds=time.perf_counter() - t0,
                    reason=Reason.EXCEPTION,
                    message=f"{type(exc).__name__}: {exc}",
                )
            )
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return results


def run_stage(config: dict[str, Any], root: Path, identities: list[str] | None, resume: bool = True):
    """``diffveri run dreambooth``: the config dict becomes typed sections here, and only here. ``resume=False``
    (``--no-resume``) starts interrupted identities over instead of continuing from their checkpoints."""
    from pipeline.config import section
    from pipeline.stages import StageResult

    from .common import import_model_libraries

    import_model_libraries()
    cfg = section(config, "dreambooth", DreamBoothConfig)
    set_torch_threads(cfg.torch_threads)
    models = section(config, "models", ModelsConfig)
    results = run_dreambooth(root=root, models=models, cfg=cfg, identities=identities, resume=resume)
    counts = {"processed": 0, "skipped": 0, "failed": 0}
    for r in results:
        counts["processed" if r.status == Status.OK else "skipped" if r.status == "skipped" else "failed"] += 1
    failed = [f"{r.identity_id} ({r.reason}: {r.message})" for r in results if r.status == Status.FAILED]
    return StageResult("dreambooth", counts, ("failed: " + "; ".join(failed)) if failed else "")
