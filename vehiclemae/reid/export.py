"""A fine-tuned Re-ID model (``checkpoints/checkpoint-best.pt`` of ``vehiclemae finetune``) as a shareable folder::

    DIR/model.safetensors   the whole model's weights: backbone.* (timm ViT), bottleneck.* (BNNeck), classifier.*
    DIR/config.json         format, the backbone spec, num_classes, the feature the model returns, preprocessing,
                            the epoch and validation metrics it was chosen with, and the backbone's plain-timm recipe

Nothing in the folder is a pickle. ``vehiclemae eval --checkpoint DIR`` evaluates it; without this project, build the
backbone from ``config.json["timm"]`` (``timm.create_model(architecture, **model_args)``), load the ``backbone.``
weights, and apply ``bottleneck`` as a ``BatchNorm1d`` (eval mode) to the class-token feature.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from data_manifests import atomic_dir

FORMAT = "vehiclemae-reid-export-v1"
CONFIG, WEIGHTS = "config.json", "model.safetensors"


def _timm_recipe(model_name: str, img_size: int) -> dict[str, Any]:
    from ..models.vit import ARCHS
    from ..timm_folder import timm_architecture

    if model_name in ARCHS:
        architecture, args = timm_architecture(model_name)
    else:  # a timm name already (e.g. vit_tiny_patch16_224)
        architecture, args = model_name, {}
    return {"architecture": architecture, "model_args": {**args, "img_size": int(img_size), "num_classes": 0}}


def export_reid(checkpoint: str | os.PathLike, out: str | os.PathLike, *, force: bool = False) -> Path:
    """Write the folder for a fine-tuning checkpoint (written into a temporary sibling, then renamed into place)."""
    from safetensors.torch import save_file

    from .checkpoints import load_reid_checkpoint, resolve_run
    from .evaluate import IMAGENET_MEAN, IMAGENET_STD

    out = Path(out)
    if out.exists() and not force:
        raise ValueError(f"{out} already exists; pass --force to replace it, or choose another --out")
    payload = load_reid_checkpoint(resolve_run(checkpoint))
    spec = dict(payload["spec"])
    config = {
        "format": FORMAT,
        "spec": spec,
        "num_classes": int(payload["num_classes"]),
        "feature": "post-BNNeck class-token feature (eval mode), compared with euclidean or cosine distance",
        "img_size": int(spec["img_size"]),
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "epoch": payload.get("epoch"),
        "metrics": payload.get("metrics"),
        "timm": _timm_recipe(spec["model_name"], int(spec["img_size"])),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in payload["model"].items()}
    with atomic_dir(out) as tmp:
        save_file(state, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, default=float) + "\n")
    return out


def is_reid_export(path: str | os.PathLike) -> bool:
    return Path(path).is_dir() and (Path(path) / CONFIG).is_file() and (Path(path) / WEIGHTS).is_file()


def load_reid_export(path: str | os.PathLike, img_size: int | None = None) -> tuple[torch.nn.Module, int]:
    """The exported model for evaluation (eval mode) and its image size."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from . import finetune as ft

    path = Path(path)
    try:
        config = json.loads((path / CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path / CONFIG}: not readable ({exc}); re-export with `vehiclemae export-reid`") from exc
    if config.get("format") != FORMAT:
        raise ValueError(f"{path / CONFIG}: format {config.get('format')!r} is not {FORMAT}")
    spec = config["spec"]
    size = img_size or int(spec["img_size"])
    backbone, _ = ft.build_backbone("scratch", spec["model_name"], size)
    model = ft.ReIDModel(backbone, int(config["num_classes"]), spec)
    try:
        state = load_file(str(path / WEIGHTS))
    except SafetensorError as exc:
        raise ValueError(f"{path / WEIGHTS} is not a readable safetensors file ({exc})") from None
    model.load_state_dict(state)
    return model.eval(), size
