"""The paper's pre-training baselines as modes of the engine: ``cmae`` and ``clmae`` (docs/vehiclemae.md).

Everything mode-specific the run wiring needs lives here, so that :mod:`vehiclemae.engine.pretrain` only dispatches:
config checks (a ``method.cmae_*`` / ``method.clmae_*`` key set in another mode is an error), the model metadata and
builder, the dataset class, and the per-epoch / per-step rules (CL-MAE's curriculum factor, CMAE's EMA momentum).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from .config import MethodConfig, PretrainConfig

BASELINE_MODES = ("cmae", "clmae")
ALL_MODES = ("mae", "vmim", "vehiclemae", *BASELINE_MODES)
# Mode-specific method keys: name prefix -> the mode they belong to.
MODE_KEY_PREFIXES = {"cmae_": "cmae", "clmae_": "clmae"}
# Batch entries passed to the model as keyword arguments when the dataset provides them.
EXTRA_INPUTS = ("image_t",)


def check_mode(method: MethodConfig) -> None:
    """Unknown modes, keys of another mode set to a non-default value, and the baselines' own settings."""
    if method.mode not in ALL_MODES:
        raise ValueError(f"unknown method.mode {method.mode!r}; valid modes: {', '.join(ALL_MODES)}")
    defaults = MethodConfig()
    for f in dataclasses.fields(method):
        owner = next((mode for prefix, mode in MODE_KEY_PREFIXES.items() if f.name.startswith(prefix)), None)
        if owner not in (None, method.mode) and getattr(method, f.name) != getattr(defaults, f.name):
            raise ValueError(
                f"method.{f.name} belongs to mode {owner} but method.mode is {method.mode!r}: "
                f"remove it (default {getattr(defaults, f.name)!r}) or set method.mode={owner}"
            )
    if method.mode in BASELINE_MODES:
        _check_baseline(method)


def _check_baseline(m: MethodConfig) -> None:
    if getattr(m, "mask_ratio_view", None) is not None:
        raise ValueError(f"method.mask_ratio_view is for the view branch of vmim/vehiclemae; mode {m.mode} has none")
    if m.export_branch != "rgb":
        raise ValueError(f"mode {m.mode} has one encoder: method.export_branch must be rgb, got {m.export_branch!r}")
    if not 0.0 <= m.mask_ratio < 1.0:
        raise ValueError(f"method.mask_ratio must be in [0, 1), got {m.mask_ratio}")
    if m.mode == "cmae":
        if not 0.0 <= m.cmae_momentum <= m.cmae_momentum_end <= 1.0:
            raise ValueError(
                "method.cmae_momentum <= method.cmae_momentum_end must both be in [0, 1], "
                f"got {m.cmae_momentum} and {m.cmae_momentum_end}"
            )
        if m.cmae_temperature <= 0 or m.cmae_shift < 0 or m.cmae_feature_depth < 1 or m.cmae_proj_dim < 1:
            raise ValueError(
                "method.cmae_temperature must be > 0, cmae_shift >= 0, cmae_feature_depth and cmae_proj_dim >= 1, "
                f"got {m.cmae_temperature}, {m.cmae_shift}, {m.cmae_feature_depth}, {m.cmae_proj_dim}"
            )
    elif m.clmae_depth < 1 or m.clmae_heads < 1:
        raise ValueError(f"method.clmae_depth and clmae_heads must be >= 1, got {m.clmae_depth}, {m.clmae_heads}")


def mode_meta(cfg: PretrainConfig) -> dict[str, Any]:
    """The baseline's model settings for ``model_meta`` (``{}`` for the other modes, whose metadata is unchanged)."""
    m = cfg.method
    if m.mode == "cmae":
        return {
            "cmae_feature_depth": m.cmae_feature_depth,
            "cmae_proj_dim": m.cmae_proj_dim,
            "cmae_temperature": m.cmae_temperature,
            "cmae_contrast_weight": m.cmae_contrast_weight,
        }
    if m.mode == "clmae":
        return {
            "mask_ratio": m.mask_ratio,
            "clmae_depth": m.clmae_depth,
            "clmae_heads": m.clmae_heads,
            "clmae_gauss_weight": m.clmae_gauss_weight,
            "clmae_kl_weight": m.clmae_kl_weight,
            "clmae_diversity_weight": m.clmae_diversity_weight,
        }
    return {}


def build_baseline(meta: dict[str, Any]) -> nn.Module:
    """The ``cmae`` / ``clmae`` model of ``model_meta``."""
    common = {
        "encoder_name": meta["encoder_name"],
        "img_size": meta["img_size"],
        "decoder_embed_dim": meta["decoder_embed_dim"],
        "decoder_depth": meta["decoder_depth"],
        "decoder_num_heads": meta["decoder_num_heads"],
        "fg_floor": meta["fg_floor"],
        "norm_pix_loss": meta["norm_pix_loss"],
    }
    if meta["mode"] == "cmae":
        from ..models.cmae import build_cmae

        return build_cmae(
            **common,
            feature_depth=meta["cmae_feature_depth"],
            proj_dim=meta["cmae_proj_dim"],
            temperature=meta["cmae_temperature"],
            contrast_weight=meta["cmae_contrast_weight"],
        )
    if meta["mode"] == "clmae":
        from ..models.clmae import build_clmae

        return build_clmae(
            **common,
            mask_ratio=meta["mask_ratio"],
            depth=meta["clmae_depth"],
            num_heads=meta["clmae_heads"],
            gauss_weight=meta["clmae_gauss_weight"],
            kl_weight=meta["clmae_kl_weight"],
            diversity_weight=meta["clmae_diversity_weight"],
        )
    raise ValueError(f"unknown baseline mode {meta['mode']!r}; valid: {', '.join(BASELINE_MODES)}")


def dataset_options(cfg: PretrainConfig) -> tuple[type, dict[str, Any]]:
    """The dataset class and its extra keyword arguments: CMAE's items also hold the shifted target view."""
    from ..data import DiffVERIDataset

    if cfg.method.mode != "cmae":
        return DiffVERIDataset, {}
    from ..data.shifted import ShiftedViewDataset

    shift = round(cfg.method.cmae_shift * cfg.model.img_size)
    return ShiftedViewDataset, {"shift": shift, "color": cfg.method.cmae_color}


@dataclass
class ModeHooks:
    """Per-epoch and per-step rules of a mode. ``before_epoch(epoch)`` returns scalars for the epoch log;
    ``after_step(fractional_epoch)`` runs after every optimiser step (``None``: nothing to do)."""

    before_epoch: Callable[[int], dict[str, float]]
    after_step: Callable[[float], None] | None = None


def mode_hooks(cfg: PretrainConfig, model: nn.Module, processes: int) -> ModeHooks:
    """Prepare ``model`` (unwrapped, encoders already initialised) for its mode and return its rules.

    CMAE: the target starts as a copy of the online branch; the projector's BatchNorms become SyncBatchNorm with
    several processes; after every optimiser step the target moves by the momentum of the fractional epoch.
    CL-MAE: the curriculum factor of the epoch is set before it starts.
    """
    m = cfg.method
    if m.mode == "cmae":
        from ..models.cmae import cmae_momentum

        model.reset_target()
        if processes > 1:
            nn.SyncBatchNorm.convert_sync_batchnorm(model)

        def momentum_at(epoch: float) -> float:
            return cmae_momentum(epoch / cfg.epochs, m.cmae_momentum, m.cmae_momentum_end)

        return ModeHooks(
            before_epoch=lambda epoch: {"cmae_momentum": momentum_at(epoch)},
            after_step=lambda epoch: model.momentum_update(momentum_at(epoch)),
        )
    if m.mode == "clmae":
        from ..models.clmae import curriculum_factor

        def set_curriculum(epoch: int) -> dict[str, float]:
            model.curriculum = curriculum_factor(epoch, cfg.epochs, m.clmae_lambda_start, m.clmae_lambda_end)
            return {"clmae_lambda": model.curriculum}

        return ModeHooks(before_epoch=set_curriculum)
    return ModeHooks(before_epoch=lambda epoch: {})
