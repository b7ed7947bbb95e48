"""Export a pre-trained encoder from a training checkpoint: our safetensors file (format: :mod:`vehiclemae.models.vit`)
and a timm ``save_for_hf`` folder that plain timm loads (:mod:`vehiclemae.timm_folder`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .engine.checkpoint import load_checkpoint
from .engine.pretrain import build_model_from_meta
from .models.vit import read_metadata, save_encoder
from .timm_folder import save_timm_folder


def default_timm_dir(out: str | os.PathLike) -> Path:
    """``encoder.safetensors`` -> ``encoder_timm/`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}_timm")


def export_encoder(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    branch: str | None = None,
    *,
    force: bool = False,
    timm_dir: str | os.PathLike | None = None,
    with_timm_dir: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """Write the ``branch`` encoder ("rgb" default, per the run's ``method.export_branch``) of ``checkpoint`` to
    ``out`` and (``with_timm_dir``) to the timm folder ``timm_dir`` (default :func:`default_timm_dir`).

    Existing outputs are replaced only with ``force`` (checked before anything is loaded). The returned metadata
    holds ``timm_dir`` (``None`` when not written).
    """
    folder = Path(timm_dir) if timm_dir is not None else default_timm_dir(out)
    for target in (Path(out), *((folder,) if with_timm_dir else ())):
        if target.exists() and not force:
            raise ValueError(f"{target} already exists; pass --force to replace it, or choose another --out")
    ck = load_checkpoint(checkpoint)
    meta = ck["model_meta"]
    model = build_model_from_meta(meta)
    model.load_state_dict(ck["model"])
    branch = branch or ck.get("config", {}).get("method", {}).get("export_branch", "rgb")
    if branch == "view" and model.view is None:
        raise ValueError(f"{checkpoint}: a mode {meta['mode']!r} run has no view branch; export --branch rgb")
    encoder = (model.rgb if branch == "rgb" else model.view).encoder
    path = save_encoder(encoder, out, model_name=meta["encoder_name"], img_size=meta["img_size"], source=meta["mode"])
    written = None
    if with_timm_dir:
        written = save_timm_folder(
            encoder, folder, model_name=meta["encoder_name"], img_size=meta["img_size"], force=force
        )
    return path, {**read_metadata(path), "timm_dir": written}
