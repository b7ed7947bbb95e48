"""Encoder initialisation from local files: CLIP (Hugging Face and OpenAI layouts, built locally) and MAE exports."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vehiclemae.models import create_encoder, save_encoder
from vehiclemae.models.init import load_into_encoder

TINY_CLIP = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2)


def _tiny_clip_encoder():
    return create_encoder("vehiclemae_vit_base_patch16_clip", **TINY_CLIP).eval()


def test_hf_clip_weights_give_the_same_features(tmp_path: Path) -> None:
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    hf = CLIPVisionModel(config).eval()
    with torch.no_grad():  # random, non-trivial norms so that a wrong mapping cannot pass by accident
        for name, p in hf.named_parameters():
            if "layer_norm" in name or "layrnorm" in name:
                p.add_(0.1 * torch.randn_like(p))
    # the hub layout: CLIPModel checkpoints prefix the vision tower with "vision_model."
    state = {
        f"vision_model.{k}".replace("vision_model.vision_model.", "vision_model."): v.contiguous()
        for k, v in hf.state_dict().items()
    }
    save_file(state, tmp_path / "model.safetensors")
    enc = _tiny_clip_encoder()
    load_into_encoder(enc, tmp_path / "model.safetensors", "clip")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = hf(pixel_values=x)
        tokens = enc.forward_features(x)
        torch.testing.assert_close(tokens[:, 0], out.pooler_output, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(
            tokens, getattr(hf, "vision_model", hf).post_layernorm(out.last_hidden_state), rtol=1e-4, atol=1e-4
        )


def _to_openai(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm keys -> OpenAI CLIP ``visual.*`` keys (the layout of ``clip.load(...).state_dict()``)."""
    out = {
        "visual.class_embedding": sd["cls_token"].reshape(-1),
        "visual.positional_embedding": sd["pos_embed"][0],
        "visual.conv1.weight": sd["patch_embed.proj.weight"],
        "visual.ln_pre.weight": sd["norm_pre.weight"],
        "visual.ln_pre.bias": sd["norm_pre.bias"],
        "visual.ln_post.weight": sd["norm.weight"],
        "visual.ln_post.bias": sd["norm.bias"],
        "visual.proj": torch.randn(sd["norm.weight"].shape[0], 32),
    }
    names = {
        "norm1": "ln_1",
        "norm2": "ln_2",
        "attn.qkv": "attn.in_proj",
        "attn.proj": "attn.out_proj",
        "mlp.fc1": "mlp.c_fc",
        "mlp.fc2": "mlp.c_proj",
    }
    for key, value in sd.items():
        if not key.startswith("blocks."):
            continue
        _, i, rest = key.split(".", 2)
        module, kind = rest.rsplit(".", 1)
        if module == "attn.qkv":
            out[f"visual.transformer.resblocks.{i}.attn.in_proj_{kind}"] = value
        else:
            out[f"visual.transformer.resblocks.{i}.{names[module]}.{kind}"] = value
    return out


def test_openai_clip_layout_loads_every_weight(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = _tiny_clip_encoder()
    torch.save(_to_openai(source.state_dict()), tmp_path / "ViT-B-16.pt")
    target = _tiny_clip_encoder()
    load_into_encoder(target, tmp_path / "ViT-B-16.pt", "clip")
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_clip_needs_the_pre_norm_encoder_and_mae_init_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(2)
    torch.save(_to_openai(_tiny_clip_encoder().state_dict()), tmp_path / "clip.pt")
    with pytest.raises(ValueError, match="vehiclemae_vit_base_patch16_clip"):
        load_into_encoder(create_encoder("vehiclemae_vit_toy_patch8", 32), tmp_path / "clip.pt", "clip")
    source = create_encoder("vehiclemae_vit_toy_patch8", 32)
    path = save_encoder(
        source, tmp_path / "mae.safetensors", model_name="vehiclemae_vit_toy_patch8", img_size=32, source="mae"
    )
    target = create_encoder("vehiclemae_vit_toy_patch8", 32)
    load_into_encoder(target, path, "mae")
    assert all(torch.equal(target.state_dict()[k], v) for k, v in source.state_dict().items())
    # a full MAE checkpoint (facebookresearch/mae layout: {"model": encoder + decoder}) loads its encoder part
    full = {**source.state_dict(), "mask_token": torch.zeros(1, 1, 32), "decoder_embed.weight": torch.zeros(32, 96)}
    torch.save({"model": full}, tmp_path / "mae_full.pth")
    target = create_encoder("vehiclemae_vit_toy_patch8", 32)
    load_into_encoder(target, tmp_path / "mae_full.pth", "mae")
    assert torch.equal(target.blocks[1].mlp.fc2.weight, source.blocks[1].mlp.fc2.weight)
    with pytest.raises(ValueError, match="do not fit the encoder"):
        load_into_encoder(create_encoder("vehiclemae_vit_tiny_patch16", 32), path, "mae")
