"""PPMD targets: the complementary target makes the RGB encoder depend on the view branch's mask."""

from __future__ import annotations

import pytest
import torch

from vehiclemae.engine.config import PretrainConfig
from vehiclemae.engine.pretrain import LEGACY_META, _check_config, build_model_from_meta, model_meta
from vehiclemae.masking import make_masks
from vehiclemae.models import build_vehiclemae
from vehiclemae.models.ppmd_heads import ComplementaryPredictor, DecoderTokenHead
from vehiclemae.ppmd import PPMDTeachers

L = 16  # 32 px images, patch 8


def _model(target: str, predictor: bool = True):
    torch.manual_seed(0)
    return build_vehiclemae(
        encoder_name="vehiclemae_vit_toy_patch8",
        img_size=32,
        mode="vehiclemae",
        num_view_classes=6,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
        fg_floor=0.1,
        view_loss_weight=1.0,
        ppmd_predictor=predictor,
        ppmd_target=target,
    )


def _teachers(model):
    # A past that differs from the present, as after an epoch of training.
    teachers = PPMDTeachers(model.rgb.encoder, model.view.encoder)
    with torch.no_grad():
        for p in teachers.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return teachers


def _rgb_encoder_grad(model, teachers, keep_a, keep_b) -> torch.Tensor:
    torch.manual_seed(1)
    x, labels = torch.randn(2, 3, 32, 32), torch.randint(0, 6, (2, 32, 32))
    model.zero_grad()
    loss, _ = model(x, labels, (labels > 0).float(), keep_a, keep_b, teachers=teachers, ppmd_weight=1.0)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.rgb.encoder.parameters() if p.grad is not None])


@pytest.mark.parametrize("predictor", [True, False])
def test_rgb_encoder_gradient_depends_on_the_view_mask_only_in_complementary(predictor: bool) -> None:
    keep_a = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    keep_b1 = torch.tensor([[8, 9, 10, 11], [0, 1, 2, 3]])
    keep_b2 = torch.tensor([[12, 13, 14, 15], [8, 10, 12, 14]])
    for target, depends in (("complementary", True), ("same_patches", False)):
        model = _model(target, predictor)
        teachers = _teachers(model)
        g1 = _rgb_encoder_grad(model, teachers, keep_a, keep_b1)
        g2 = _rgb_encoder_grad(model, teachers, keep_a, keep_b2)
        assert torch.isfinite(g1).all() and g1.abs().sum() > 0
        if depends:
            assert not torch.allclose(g1, g2), target
        else:
            assert torch.equal(g1, g2), target  # bit for bit: the view mask never reaches the RGB encoder
    # Without PPMD (vmim) the RGB encoder's gradient is the MAE's whatever the view branch saw.
    model = _model("complementary")
    assert torch.equal(_rgb_encoder_grad(model, None, keep_a, keep_b1), _rgb_encoder_grad(model, None, keep_a, keep_b2))


class _RecordingTeachers(PPMDTeachers):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.calls: list[tuple[str, torch.Tensor]] = []

    def features(self, branch, imgs, keep):
        self.calls.append((branch, keep.clone()))
        return super().features(branch, imgs, keep)


@pytest.mark.parametrize("predictor", [True, False])
def test_complementary_targets_are_the_other_branch_visible_patches(predictor: bool, monkeypatch) -> None:
    model = _model("complementary", predictor)
    teachers = _RecordingTeachers(model.rgb.encoder, model.view.encoder)
    head_type = ComplementaryPredictor if predictor else DecoderTokenHead
    if predictor:  # blocks at the decoder's width (32) with its heads, projected from and to the encoder's (96)
        assert model.ppmd_pred["rgb"].blocks[0].attn.qkv.in_features == 32
        assert model.ppmd_pred["rgb"].proj_out.out_features == model.rgb.encoder.embed_dim
    positions: dict[str, torch.Tensor] = {}
    for name, head in model.ppmd_pred.items():
        assert isinstance(head, head_type)
        real = head.forward

        def spy(source, target_keep, _name=name, _real=real):
            positions[_name] = target_keep.clone()
            out = _real(source, target_keep)
            assert out.shape == (*target_keep.shape, model.rgb.encoder.embed_dim)
            return out

        monkeypatch.setattr(head, "forward", spy)
    keep_a, keep_b = make_masks("asymmetric", 2, L, 0.75, torch.Generator().manual_seed(0), mask_ratio_b=0.5)
    x, labels = torch.randn(2, 3, 32, 32), torch.randint(0, 6, (2, 32, 32))
    loss, parts = model(x, labels, (labels > 0).float(), keep_a, keep_b, teachers=teachers, ppmd_weight=1.0)
    loss.backward()
    # The RGB student predicts the view teacher at the view branch's patches (encoded from them), and vice versa.
    assert [(b, k.tolist()) for b, k in teachers.calls] == [("view", keep_b.tolist()), ("rgb", keep_a.tolist())]
    assert torch.equal(positions["rgb"], keep_b) and torch.equal(positions["view"], keep_a)
    assert parts["loss_ppmd_cross"] > 0
    assert all(p.grad is None for p in teachers.parameters())  # teachers never receive gradients
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.ppmd_pred.parameters())


def test_asymmetric_masks_with_two_ratios_stay_disjoint() -> None:
    keep_a, keep_b = make_masks("asymmetric", 64, 64, 0.75, torch.Generator().manual_seed(0), mask_ratio_b=0.5)
    assert keep_a.shape == (64, 16) and keep_b.shape == (64, 32)
    for a, b in zip(keep_a.tolist(), keep_b.tolist()):
        assert not set(a) & set(b) and a == sorted(a) and b == sorted(b)
    # One ratio: exactly the masks drawn before the per-branch ratio existed (same generator draws).
    one = make_masks("asymmetric", 4, 64, 0.75, torch.Generator().manual_seed(3))
    two = make_masks("asymmetric", 4, 64, 0.75, torch.Generator().manual_seed(3), mask_ratio_b=0.75)
    assert all(torch.equal(u, v) for u, v in zip(one, two))
    with pytest.raises(ValueError, match="sum to at least 1"):
        make_masks("asymmetric", 1, 64, 0.75, mask_ratio_b=0.2)
    with pytest.raises(ValueError, match="needs mask mode asymmetric"):
        make_masks("symmetric", 1, 64, 0.75, mask_ratio_b=0.5)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"ppmd_target": "other_patches"}, "ppmd_target must be one of complementary, same_patches"),
        ({"ppmd_predictor_depth": 0}, "ppmd_predictor_depth must be >= 1"),
        ({"mask_ratio_view": 0.1}, "mask_ratio \\+ method.mask_ratio_view >= 1"),
        ({"mask_ratio_view": 0.5, "mask_mode": "symmetric"}, "needs mode vmim or vehiclemae"),
        ({"mask_ratio_view": 0.5, "mode": "mae"}, "needs mode vmim or vehiclemae"),
    ],
)
def test_config_errors(changes: dict, message: str) -> None:
    cfg = PretrainConfig()
    for key, value in changes.items():
        setattr(cfg.method, key, value)
    with pytest.raises(ValueError, match=message):
        _check_config(cfg)


def test_checkpoints_without_a_target_rebuild_the_earlier_ppmd() -> None:
    meta = model_meta(PretrainConfig(), 6)
    assert meta["ppmd_target"] == "complementary"
    legacy = {k: v for k, v in meta.items() if k not in LEGACY_META}
    model = build_model_from_meta({**legacy, "ppmd_predictor": True})
    assert model.ppmd_target == "same_patches"  # what checkpoints written before ppmd_target were trained with


@pytest.mark.parametrize("mode", ["mae", "cmae", "clmae"])
def test_one_mask_modes_accept_low_mask_ratios(mode: str) -> None:
    cfg = PretrainConfig()
    cfg.method.mode, cfg.method.mask_ratio = mode, 0.4  # one mask per image: nothing has to stay disjoint
    _check_config(cfg)
