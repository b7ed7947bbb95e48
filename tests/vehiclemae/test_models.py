from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

import vehiclemae.models  # noqa: F401 - registers the encoders with timm
from vehiclemae.masking import make_masks
from vehiclemae.models import build_vehiclemae, encode_visible, load_encoder, patchify, read_metadata, save_encoder
from vehiclemae.models.mae import unpatchify


def test_patchify_round_trip_and_layout() -> None:
    x = torch.randn(2, 3, 32, 32)
    p = patchify(x, 8)
    assert p.shape == (2, 16, 8 * 8 * 3)
    assert torch.equal(unpatchify(p, 8), x)
    # patch 1 is the second patch of the first row, channels fastest
    assert torch.equal(p[0, 1].reshape(8, 8, 3), x[0, :, :8, 8:16].permute(1, 2, 0))
    labels = torch.randint(0, 5, (2, 32, 32))
    pl = patchify(labels, 8)
    assert pl.shape == (2, 16, 64)
    assert torch.equal(unpatchify(pl.float(), 8, channels=1)[:, 0].long(), labels)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        patchify(torch.zeros(1, 3, 30, 30), 8)


@pytest.mark.parametrize(
    "name",
    [
        "vehiclemae_vit_toy_patch8",
        "vehiclemae_vit_toy_wide_patch8",
        "vehiclemae_vit_toy_patch4",
        "vehiclemae_vit_tiny_patch16",
    ],
)
def test_timm_create_model(name: str) -> None:
    model = timm.create_model(name, num_classes=0, img_size=64)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, model.embed_dim)
    assert not any(k.startswith("head.") and v.numel() for k, v in model.state_dict().items())


def test_encode_visible_matches_full_forward_when_all_visible() -> None:
    enc = timm.create_model("vehiclemae_vit_toy_patch8", num_classes=0, img_size=32).eval()
    x = torch.randn(2, 3, 32, 32)
    keep = torch.arange(16).expand(2, 16)
    torch.testing.assert_close(encode_visible(enc, x, keep), enc.forward_features(x))


def test_visible_patch_embedding_equals_the_convolution_then_gather() -> None:
    """The gathered linear patch embedding gives the timm conv's values and weight gradients on random masks."""
    from vehiclemae.masking import make_masks
    from vehiclemae.models.mae import _embed_visible, gather_tokens

    enc = timm.create_model("vehiclemae_vit_toy_patch8", num_classes=0, img_size=32)
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    enc = enc.double()
    keep, _ = make_masks("asymmetric", 3, 16, 0.75)
    fast = _embed_visible(enc.patch_embed, x, keep)
    ref = gather_tokens(enc.patch_embed(x), keep)
    torch.testing.assert_close(fast, ref)
    g_fast = torch.autograd.grad(fast.square().sum(), enc.patch_embed.proj.weight)[0]
    g_ref = torch.autograd.grad(ref.square().sum(), enc.patch_embed.proj.weight)[0]
    torch.testing.assert_close(g_fast, g_ref)


def test_export_round_trip_and_timm_pretrained_overlay(tmp_path: Path) -> None:
    enc = timm.create_model("vehiclemae_vit_toy_patch8", num_classes=0, img_size=64).eval()
    path = save_encoder(
        enc, tmp_path / "e.safetensors", model_name="vehiclemae_vit_toy_patch8", img_size=64, source="mae"
    )
    assert read_metadata(path) == {
        "model_name": "vehiclemae_vit_toy_patch8",
        "img_size": 64,
        "source": "mae",
        "model_kwargs": {},
    }
    x = torch.randn(2, 3, 64, 64)
    loaded = load_encoder(path).eval()
    torch.testing.assert_close(loaded(x), enc(x), rtol=0, atol=0)
    # timm's own path, with a classifier for fine-tuning and another resolution (pos_embed resampled)
    tm = timm.create_model(
        "vehiclemae_vit_toy_patch8",
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(path)),
        num_classes=7,
        img_size=96,
    )
    assert tm(torch.randn(1, 3, 96, 96)).shape == (1, 7)
    assert torch.equal(tm.blocks[0].attn.qkv.weight, enc.blocks[0].attn.qkv.weight)


def test_read_metadata_explains_foreign_files(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="not written by `vehiclemae export`"):
        read_metadata(tmp_path / "x.safetensors")
    with pytest.raises(FileNotFoundError, match="vehiclemae export"):
        read_metadata(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("mode", ["mae", "vmim", "vehiclemae"])
def test_model_modes_forward_backward(mode: str) -> None:
    torch.manual_seed(0)
    model = build_vehiclemae(
        encoder_name="vehiclemae_vit_toy_patch8",
        img_size=32,
        mode=mode,
        num_view_classes=6,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
        fg_floor=0.1,
        view_loss_weight=1.0,
    )
    x, labels = torch.randn(2, 3, 32, 32), torch.randint(0, 6, (2, 32, 32))
    keep_a, keep_b = make_masks("single" if mode == "mae" else "asymmetric", 2, 16, 0.75)
    loss, parts = model(x, labels, (labels > 0).float(), keep_a, keep_b)
    loss.backward()
    assert torch.isfinite(loss)
    assert ("loss_view" in parts) == (mode != "mae")
    assert parts["pred_rgb"].shape == (2, 16, 8 * 8 * 3)
    if mode != "mae":
        assert parts["pred_view"].shape == (2, 16, 8 * 8 * 6)
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)


def test_ppmd_predictor_gets_gradients_with_and_without_teachers() -> None:
    from vehiclemae.ppmd import PPMDTeachers

    torch.manual_seed(0)
    model = build_vehiclemae(
        encoder_name="vehiclemae_vit_toy_patch8",
        img_size=32,
        mode="vehiclemae",
        num_view_classes=6,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
        fg_floor=0.1,
        view_loss_weight=1.0,
        ppmd_predictor=True,
    )
    x, labels = torch.randn(2, 3, 32, 32), torch.randint(0, 6, (2, 32, 32))
    keep_a, keep_b = make_masks("asymmetric", 2, 16, 0.75)
    # epoch 0: no teachers, the predictors stay in the graph with a zero gradient (DDP needs every parameter used)
    loss, _ = model(x, labels, (labels > 0).float(), keep_a, keep_b)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() == 0 for p in model.ppmd_pred.parameters())
    model.zero_grad()
    teachers = PPMDTeachers(model.rgb.encoder, model.view.encoder)
    loss, parts = model(x, labels, (labels > 0).float(), keep_a, keep_b, teachers=teachers, ppmd_weight=1.0)
    loss.backward()
    assert parts["loss_ppmd"] > 0
    assert all(p.grad.abs().sum() > 0 for p in model.ppmd_pred.parameters())
