"""Export a pre-trained encoder from a training checkpoint (format: see :mod:`vehiclemae.models.vit`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .engine.checkpoint import load_checkpoint
from .engine.pretrain import build_model_from_meta
from .models.vit import read_metadata, save_encoder


def export_encoder(
    checkpoint: str | os.PathLike, out: str | os.PathLike, branch: str | None = None, *, force: bool = False
) -> tuple[Path, dict[str, Any]]:
    """Write the ``branch`` encoder ("rgb" default, per the run's ``method.export_branch``) of ``checkpoint``.

    An existing ``out`` is replaced only with ``force`` (checked before anything is loaded).
    """
    if Path(out).exists() and not force:
        raise ValueError(f"{out} already exists; pass --force to replace it, or choose another --out")
    ck = load_checkpoint(checkpoint)
    meta = ck["model_meta"]
    model = build_model_from_meta(meta)
    model.load_state_dict(ck["model"])
    branch = branch or ck.get("config", {}).get("method", {}).get("export_branch", "rgb")
    if branch == "view" and model.view is None:
        raise ValueError(f"{checkpoint}: a mode {meta['mode']!r} run has no view branch; export --branch rgb")
    encoder = (model.rgb if branch == "rgb" else model.view).encoder
    path = save_encoder(encoder, out, model_name=meta["encoder_name"], img_size=meta["img_size"], source=meta["mode"])
    return path, read_metadata(path)
