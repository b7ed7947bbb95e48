"""VehicleMAE encoders: timm ``VisionTransformer`` variants registered with timm, and our weight files.

Every encoder is a plain timm ``VisionTransformer`` so that downstream code (Re-ID fine-tuning, clustering) builds it
with ``timm.create_model`` and loads our exported weights like any timm checkpoint::

    import vehiclemae.models  # registers the names below with timm
    enc = timm.create_model("vehiclemae_vit_tiny_patch16", num_classes=0, img_size=128)
    enc = timm.create_model("vehiclemae_vit_base_patch16", pretrained=True, num_classes=0, img_size=256,
                            pretrained_cfg_overlay=dict(file="encoder.safetensors"))
    enc = load_encoder("encoder.safetensors")  # architecture and image size read from the file's metadata

Export format (``vehiclemae export``): a safetensors file holding the encoder's timm state_dict without a head, with
string metadata ``model_name``, ``img_size``, ``source`` (the run's mode: ``vehiclemae`` | ``mae`` | ``vmim`` |
``cmae`` | ``clmae``) and ``model_kwargs`` (JSON of extra constructor kwargs, usually ``{}``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from timm.models import build_model_with_cfg, register_model
from timm.models._registry import generate_default_cfgs
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from torch import nn

# name -> constructor kwargs. ``toy`` is small enough to pre-train on a 2-core CPU in minutes; ``base_patch16_clip``
# matches OpenAI CLIP ViT-B/16's visual tower (pre-norm, quick-GELU) so CLIP weights load into it unchanged.
ARCHS: dict[str, dict[str, Any]] = {
    "vehiclemae_vit_toy_patch8": dict(patch_size=8, embed_dim=96, depth=4, num_heads=3, mlp_ratio=3.0),
    # Twice the toy width (the capacity check of docs/benchmarks.md); 1.35x the toy's step time on this CPU.
    "vehiclemae_vit_toy_wide_patch8": dict(patch_size=8, embed_dim=192, depth=4, num_heads=3, mlp_ratio=3.0),
    # The toy encoder at 4-px patches (256 tokens at 64 px instead of 64): the patch-size check of docs/benchmarks.md.
    "vehiclemae_vit_toy_patch4": dict(patch_size=4, embed_dim=96, depth=4, num_heads=3, mlp_ratio=3.0),
    "vehiclemae_vit_tiny_patch16": dict(patch_size=16, embed_dim=192, depth=12, num_heads=3),
    "vehiclemae_vit_small_patch16": dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "vehiclemae_vit_base_patch16": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "vehiclemae_vit_base_patch16_clip": dict(
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_heads=12,
        pre_norm=True,
        norm_layer=nn.LayerNorm,
        act_layer="quick_gelu",
    ),
}
DEFAULT_IMG_SIZE: dict[str, int] = {
    "vehiclemae_vit_toy_patch8": 64,
    "vehiclemae_vit_toy_wide_patch8": 64,
    "vehiclemae_vit_toy_patch4": 64,
    "vehiclemae_vit_tiny_patch16": 128,
    "vehiclemae_vit_small_patch16": 224,
    "vehiclemae_vit_base_patch16": 224,
    "vehiclemae_vit_base_patch16_clip": 224,
}
EXPORT_SOURCES = ("vehiclemae", "mae", "vmim", "cmae", "clmae")


def _cfg(name: str) -> dict[str, Any]:
    # num_classes=0: our weights never carry a classifier; timm then adapts to any requested num_classes.
    size = DEFAULT_IMG_SIZE[name]
    return dict(
        num_classes=0,
        input_size=(3, size, size),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        interpolation="bicubic",
        crop_pct=1.0,
        first_conv="patch_embed.proj",
        classifier="head",
        license="apache-2.0",
    )


# timm's ``register_model`` picks pretrained configs up from the module-level ``default_cfgs``.
default_cfgs = generate_default_cfgs({name: _cfg(name) for name in ARCHS})


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    kwargs.setdefault("img_size", DEFAULT_IMG_SIZE[variant])
    return build_model_with_cfg(
        VisionTransformer,
        variant,
        pretrained,
        # Resamples pos_embed to the requested img_size and converts OpenAI-CLIP checkpoints.
        pretrained_filter_fn=checkpoint_filter_fn,
        pretrained_strict=kwargs.pop("pretrained_strict", True),
        feature_cfg=dict(out_indices=3, feature_cls="getter"),
        **{**ARCHS[variant], **kwargs},
    )


@register_model
def vehiclemae_vit_toy_patch8(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """Toy ViT (patch 8, width 96, depth 4) for CPU runs on the toy world; default 64 px."""
    return _create("vehiclemae_vit_toy_patch8", pretrained, **kwargs)


@register_model
def vehiclemae_vit_toy_wide_patch8(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """Toy ViT at twice the width (patch 8, width 192, depth 4); default 64 px."""
    return _create("vehiclemae_vit_toy_wide_patch8", pretrained, **kwargs)


@register_model
def vehiclemae_vit_toy_patch4(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """The toy ViT at 4-px patches (width 96, depth 4); default 64 px, 256 tokens."""
    return _create("vehiclemae_vit_toy_patch4", pretrained, **kwargs)


@register_model
def vehiclemae_vit_tiny_patch16(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-Ti/16 (width 192, depth 12); default 128 px."""
    return _create("vehiclemae_vit_tiny_patch16", pretrained, **kwargs)


@register_model
def vehiclemae_vit_small_patch16(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-S/16 (width 384, depth 12); default 224 px."""
    return _create("vehiclemae_vit_small_patch16", pretrained, **kwargs)


@register_model
def vehiclemae_vit_base_patch16(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-B/16 (width 768, depth 12); default 224 px."""
    return _create("vehiclemae_vit_base_patch16", pretrained, **kwargs)


@register_model
def vehiclemae_vit_base_patch16_clip(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-B/16 laid out like CLIP's visual tower (pre-norm, quick-GELU): the paper's CLIP-initialised setting."""
    return _create("vehiclemae_vit_base_patch16_clip", pretrained, **kwargs)


def create_encoder(model_name: str, img_size: int, **kwargs: Any) -> VisionTransformer:
    """Build an encoder without a head (``num_classes=0``); an unknown name lists the valid ones."""
    if model_name not in ARCHS:
        raise KeyError(f"unknown encoder {model_name!r}; valid names: {', '.join(ARCHS)}")
    import timm

    return timm.create_model(model_name, num_classes=0, img_size=img_size, **kwargs)


def encoder_state_dict(encoder: VisionTransformer) -> dict[str, torch.Tensor]:
    """The encoder's state_dict without classifier weights, as contiguous CPU tensors (safetensors needs that)."""
    return {
        k: v.detach().to("cpu").contiguous().clone()
        for k, v in encoder.state_dict().items()
        if not k.startswith("head.")
    }


def save_encoder(
    encoder: VisionTransformer,
    path: str | os.PathLike,
    *,
    model_name: str,
    img_size: int,
    source: str,
    model_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Write the export format (see the module docstring) atomically."""
    from safetensors.torch import save

    from data_manifests import atomic_write_bytes

    if source not in EXPORT_SOURCES:
        raise ValueError(f"source must be one of {EXPORT_SOURCES}, got {source!r}")
    if model_name not in ARCHS:
        raise KeyError(f"unknown encoder {model_name!r}; valid names: {', '.join(ARCHS)}")
    metadata = {
        "model_name": model_name,
        "img_size": str(int(img_size)),
        "source": source,
        "model_kwargs": json.dumps(model_kwargs or {}, sort_keys=True),
        "format": "vehiclemae-encoder-v1",
    }
    path = Path(path)
    atomic_write_bytes(path, save(encoder_state_dict(encoder), metadata=metadata))
    return path


def unreadable_safetensors(path: str | os.PathLike, exc: Exception) -> ValueError:
    """The one-line error for a safetensors file that cannot be read (empty, truncated, garbage)."""
    return ValueError(
        f"{path} is not a readable safetensors file ({exc}); it may be truncated or not a weights file — "
        "re-export it with `vehiclemae export`"
    )


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """``{"model_name", "img_size" (int), "source", "model_kwargs" (dict)}`` of an exported encoder file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder file {path} does not exist (write one with `vehiclemae export`)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except SafetensorError as exc:
        raise unreadable_safetensors(path, exc) from None
    missing = [k for k in ("model_name", "img_size") if k not in meta]
    if missing:
        raise ValueError(
            f"{path}: safetensors metadata lacks {missing}; it was not written by `vehiclemae export` — build the "
            "model with timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=...)) instead"
        )
    return {
        "model_name": meta["model_name"],
        "img_size": int(meta["img_size"]),
        "source": meta.get("source", "unknown"),
        "model_kwargs": json.loads(meta.get("model_kwargs", "{}")),
    }


def load_encoder(path: str | os.PathLike, img_size: int | None = None, **kwargs: Any) -> VisionTransformer:
    """Build the encoder named in an exported file's metadata and load its weights (strict).

    ``img_size`` (default: the file's) may differ from the training size: the position embedding is resampled.
    Extra ``kwargs`` go to ``timm.create_model`` (e.g. ``num_classes``, ``drop_path_rate``, ``global_pool``).
    """
    import timm
    from safetensors import SafetensorError

    meta = read_metadata(path)
    args = {"num_classes": 0, **meta["model_kwargs"], **kwargs}
    try:
        return timm.create_model(
            meta["model_name"],
            pretrained=True,
            pretrained_cfg_overlay=dict(file=str(path)),
            img_size=img_size or meta["img_size"],
            **args,
        )
    except SafetensorError as exc:  # a valid header over truncated data fails only here
        raise unreadable_safetensors(path, exc) from None


__all__ = [
    "ARCHS",
    "DEFAULT_IMG_SIZE",
    "EXPORT_SOURCES",
    "create_encoder",
    "encoder_state_dict",
    "load_encoder",
    "read_metadata",
    "save_encoder",
]
