"""An exported encoder as a timm ``save_for_hf`` folder that plain timm loads, without this project installed::

    import timm
    encoder = timm.create_model("local-dir:/path/to/encoder_timm", pretrained=True)  # num_classes=0, features (N, D)

The folder is what :func:`timm.models.save_for_hf` writes (``config.json`` + ``model.safetensors``). Our encoder names
(``vehiclemae_vit_*``) exist only where :mod:`vehiclemae.models` registered them, so ``config.json`` names timm's
own ViT builder with our widths as ``model_args``: ``vit_base_patch16_224`` with ``patch_size``, ``embed_dim``,
``depth``, ``num_heads``, ``mlp_ratio``, ``img_size`` (every encoder is a plain ``VisionTransformer``), or
``vit_base_patch16_clip_quickgelu_224`` for the CLIP-laid-out encoder (pre-norm, quick-GELU: that builder's
defaults). ``pretrained_cfg`` keeps our input size, mean and std, so ``timm.data.resolve_data_config`` gives the
right preprocessing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from data_manifests import atomic_dir

from .models.vit import ARCHS

CLIP_ONLY_ARGS = ("pre_norm", "norm_layer", "act_layer")  # defaults of timm's quick-GELU CLIP builder


def timm_architecture(model_name: str) -> tuple[str, dict[str, Any]]:
    """The plain-timm builder and JSON ``model_args`` that rebuild encoder ``model_name`` exactly."""
    if model_name not in ARCHS:
        raise KeyError(f"unknown encoder {model_name!r}; valid names: {', '.join(ARCHS)}")
    args = dict(ARCHS[model_name])
    if "norm_layer" in args:  # CLIP layout
        return "vit_base_patch16_clip_quickgelu_224", {k: v for k, v in args.items() if k not in CLIP_ONLY_ARGS}
    return "vit_base_patch16_224", args


def save_timm_folder(
    encoder: nn.Module, directory: str | os.PathLike, *, model_name: str, img_size: int, force: bool = False
) -> Path:
    """Write ``directory`` (``config.json``, ``model.safetensors``) with :func:`timm.models.save_for_hf`.

    Written into a temporary sibling and renamed into place: a failed export leaves no half folder. An existing
    ``directory`` is replaced only with ``force``.
    """
    from timm.models import save_for_hf

    directory = Path(directory)
    if directory.exists() and not force:
        raise ValueError(f"{directory} already exists; pass --force to replace it, or choose another --out")
    architecture, model_args = timm_architecture(model_name)
    with atomic_dir(directory) as tmp:
        save_for_hf(
            encoder,
            str(tmp),
            model_config={"pretrained_cfg": {"architecture": architecture}},
            model_args={**model_args, "img_size": int(img_size), "num_classes": 0},
            safe_serialization=True,
        )
    return directory
