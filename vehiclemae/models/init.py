"""Initialise encoders from local weight files: our exported MAE/VehicleMAE encoders or CLIP ViT-B/16.

CLIP key mapping (the paper's † setting loads CLIP ViT-B/16's visual tower into ``vehiclemae_vit_base_patch16_clip``):

OpenAI format (``clip.load`` / ``torch.jit`` state dict, keys ``visual.*``) — converted by timm's own
``checkpoint_filter_fn``: ``visual.conv1`` -> ``patch_embed.proj``, ``visual.class_embedding`` -> ``cls_token``,
``visual.positional_embedding`` -> ``pos_embed``, ``visual.ln_pre`` -> ``norm_pre``,
``visual.transformer.resblocks.i.{ln_1,ln_2}`` -> ``blocks.i.{norm1,norm2}``, ``attn.in_proj_*`` -> ``attn.qkv.*``,
``attn.out_proj`` -> ``attn.proj``, ``mlp.c_fc``/``mlp.c_proj`` -> ``mlp.fc1``/``mlp.fc2``, ``visual.ln_post`` ->
``norm``; ``visual.proj`` (the image-text projection) is dropped.

Hugging Face format (``CLIPModel`` / ``CLIPVisionModel`` ``model.safetensors``, keys ``vision_model.*``, or without
that prefix as transformers >= 5 ``CLIPVisionModel.state_dict()`` writes them):
``embeddings.class_embedding`` -> ``cls_token``, ``embeddings.patch_embedding.weight`` -> ``patch_embed.proj.weight``,
``embeddings.position_embedding.weight`` -> ``pos_embed``, ``pre_layrnorm`` -> ``norm_pre``,
``encoder.layers.i.self_attn.{q,k,v}_proj`` -> ``blocks.i.attn.qkv`` (concatenated in q, k, v order),
``self_attn.out_proj`` -> ``attn.proj``, ``layer_norm1/2`` -> ``norm1/2``, ``mlp.fc1/fc2`` -> ``mlp.fc1/fc2``,
``post_layernorm`` -> ``norm``; ``visual_projection`` and the text tower are dropped.

The position embedding is resampled when the training image size differs from CLIP's 224 px.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors``, a ``torch.save`` file, or a TorchScript archive (OpenAI ``clip``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist (set model.init_path to a local file)")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from .vit import unreadable_safetensors

        try:
            return load_file(str(path))
        except SafetensorError as exc:
            raise unreadable_safetensors(path, exc) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except RuntimeError:  # OpenAI's ViT-B-16.pt is a TorchScript archive
        try:
            obj = torch.jit.load(str(path), map_location="cpu").state_dict()
        except RuntimeError as exc:
            raise ValueError(
                f"{path} is neither a weights-only torch file nor a TorchScript archive ({str(exc).splitlines()[0]}); "
                "set model.init_path to a .safetensors, state-dict or OpenAI CLIP file"
            ) from None
    except Exception as exc:  # noqa: BLE001 - garbage or a pickle naming code (refused, never run): any unpickler error
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path} is not a safe weights file ({first}); nothing in it was run") from None
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return obj


def _hf_prefix(state_dict: dict[str, torch.Tensor]) -> str | None:
    """The prefix of Hugging Face CLIP vision keys: ``vision_model.`` (hub checkpoints) or none (``CLIPVisionModel``
    state dicts of transformers >= 5); None when the layout is not Hugging Face's."""
    for prefix in ("vision_model.", ""):
        if f"{prefix}embeddings.class_embedding" in state_dict:
            return prefix
    return None


def convert_hf_clip(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face CLIP vision keys (``[vision_model.]*``) -> timm ``VisionTransformer`` keys (module docstring)."""
    prefix = _hf_prefix(state_dict)
    if prefix is None:
        raise ValueError("not a Hugging Face CLIP vision state dict (no embeddings.class_embedding)")
    sd = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    out: dict[str, torch.Tensor] = {
        "cls_token": sd["embeddings.class_embedding"].reshape(1, 1, -1),
        "patch_embed.proj.weight": sd["embeddings.patch_embedding.weight"],
        "pos_embed": sd["embeddings.position_embedding.weight"].unsqueeze(0),
        "norm_pre.weight": sd["pre_layrnorm.weight"],
        "norm_pre.bias": sd["pre_layrnorm.bias"],
        "norm.weight": sd["post_layernorm.weight"],
        "norm.bias": sd["post_layernorm.bias"],
    }
    layers = sorted({int(m.group(1)) for k in sd if (m := re.match(r"encoder\.layers\.(\d+)\.", k))})
    for i in layers:
        src, dst = f"encoder.layers.{i}.", f"blocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{dst}attn.qkv.{kind}"] = torch.cat([sd[f"{src}self_attn.{x}_proj.{kind}"] for x in "qkv"], dim=0)
            out[f"{dst}attn.proj.{kind}"] = sd[f"{src}self_attn.out_proj.{kind}"]
            out[f"{dst}norm1.{kind}"] = sd[f"{src}layer_norm1.{kind}"]
            out[f"{dst}norm2.{kind}"] = sd[f"{src}layer_norm2.{kind}"]
            out[f"{dst}mlp.fc1.{kind}"] = sd[f"{src}mlp.fc1.{kind}"]
            out[f"{dst}mlp.fc2.{kind}"] = sd[f"{src}mlp.fc2.{kind}"]
    return out


def load_into_encoder(encoder: VisionTransformer, path: str | os.PathLike, kind: str) -> list[str]:
    """Load ``kind`` ("mae" | "clip") weights from ``path`` into ``encoder``; returns the encoder keys left as built.

    Every checkpoint key must find a place (a wrong file fails loudly); only the classifier head may stay missing.
    """
    state = read_state_dict(path)
    if kind == "clip":
        if _hf_prefix(state) is not None:
            state = convert_hf_clip(state)
        elif not any(k.startswith(("visual.", "module.visual.")) for k in state):
            raise ValueError(f"{path}: no CLIP vision keys (visual.* or [vision_model.]embeddings.*) found")
        if not isinstance(encoder.norm_pre, torch.nn.LayerNorm):
            raise ValueError("CLIP weights need a pre-norm encoder: use model.encoder=vehiclemae_vit_base_patch16_clip")
    elif kind == "mae":
        # A full MAE checkpoint (facebookresearch/mae) also holds its decoder: keep the encoder only. (timm's filter
        # would otherwise read a "mask_token" key as a DINOv2 checkpoint.)
        state = {k: v for k, v in state.items() if not k.startswith(("decoder_", "mask_token"))}
    else:
        raise ValueError(f"unknown init kind {kind!r}; valid: 'mae', 'clip'")
    # timm's filter converts OpenAI CLIP keys and resamples pos_embed to the encoder's grid.
    state = checkpoint_filter_fn(state, encoder)
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    try:
        missing, unexpected = encoder.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches: another architecture
        first = str(exc).split("\n\t")[1] if "\n\t" in str(exc) else str(exc)
        raise ValueError(f"{path}: weights do not fit the encoder ({first.strip()}); check model.encoder") from exc
    if unexpected:
        raise ValueError(f"{path}: keys that fit no encoder parameter: {unexpected[:8]} (wrong file or model.encoder?)")
    missing = [k for k in missing if not k.startswith("head.")]
    if missing:
        raise ValueError(f"{path}: encoder parameters missing from the file: {missing[:8]}")
    return missing
