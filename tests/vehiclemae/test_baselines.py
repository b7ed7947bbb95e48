"""The paper's pre-training baselines as engine modes: CMAE (``method.mode: cmae``) and CL-MAE (``clmae``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from vehiclemae.engine import run_pretraining
from vehiclemae.engine.checkpoint import load_checkpoint
from vehiclemae.masking import make_masks, num_visible
from vehiclemae.models.clmae import build_clmae, curriculum_factor
from vehiclemae.models.cmae import build_cmae, cmae_momentum

from .helpers import toy_config

TINY = dict(
    encoder_name="vehiclemae_vit_toy_patch8",
    img_size=32,
    decoder_embed_dim=32,
    decoder_depth=1,
    decoder_num_heads=2,
    fg_floor=0.1,
)


def _batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=g)
    labels = torch.zeros(n, 32, 32, dtype=torch.long)
    labels[:, 8:24, 4:28] = 1
    keep, _ = make_masks("single", n, 16, 0.75, torch.Generator().manual_seed(1))
    return x, labels, (labels > 0).float(), keep


def _train(model: torch.nn.Module, steps: int, **extra: torch.Tensor) -> list[dict[str, float]]:
    x, labels, fg, keep = _batch()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    history = []
    for _ in range(steps):
        loss, parts = model(x, labels, fg, keep, **extra)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if hasattr(model, "momentum_update"):
            model.momentum_update(0.99)
        history.append({"loss": float(loss.detach()), **{k: float(v) for k, v in parts.items() if v.dim() == 0}})
    return history


def test_cmae_loss_finite_and_decreasing() -> None:
    torch.manual_seed(0)
    model = build_cmae(**TINY)
    x = _batch()[0]
    history = _train(model, 40, image_t=x.roll(2, dims=-1))
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert history[-1]["loss_rgb"] < 0.9 * history[0]["loss_rgb"]
    assert history[-1]["loss_contrast"] < history[0]["loss_contrast"]


def test_clmae_loss_finite_and_decreasing() -> None:
    torch.manual_seed(0)
    model = build_clmae(**TINY, mask_ratio=0.75)
    history = _train(model, 40)
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert history[-1]["loss_rgb"] < 0.9 * history[0]["loss_rgb"]


def test_cmae_target_gets_no_gradient_and_follows_the_momentum_rule() -> None:
    torch.manual_seed(0)
    model = build_cmae(**TINY)
    x, labels, fg, keep = _batch()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss, parts = model(x, labels, fg, keep, image_t=x.flip(-1))
    loss.backward()
    optimizer.step()
    assert parts["loss_contrast"] > 0
    targets = [*model.target_encoder.parameters(), *model.target_projector.parameters()]
    onlines = [*model.rgb.encoder.parameters(), *model.projector.parameters()]
    assert all(not p.requires_grad and p.grad is None for p in targets)
    assert all(id(p) not in {id(q) for g in optimizer.param_groups for q in g["params"]} for p in targets)
    before = [p.detach().clone() for p in targets]
    assert any(not torch.equal(t, o) for t, o in zip(before, onlines))  # the online branch moved, the target not
    m = cmae_momentum(0.3, 0.996, 1.0)
    model.momentum_update(m)
    for old, online, new in zip(before, onlines, targets):
        assert torch.equal(new, old * m + online.detach() * (1 - m))
    # the schedule: cosine from the base momentum at the start to the end momentum at the end
    assert cmae_momentum(0.0, 0.996, 1.0) == 0.996 and cmae_momentum(1.0, 0.996, 1.0) == 1.0
    assert cmae_momentum(0.5, 0.996, 1.0) == pytest.approx(0.998)
    assert cmae_momentum(0.7, 0.996, 0.996) == 0.996
    # the target encoder stays in eval mode (no drop-path) while the online branch trains
    model.train()
    assert model.rgb.encoder.training and not model.target_encoder.training and model.target_projector.training


@pytest.mark.parametrize("mask_ratio", [0.75, 0.5, 0.9])
def test_clmae_masks_have_the_configured_ratio(mask_ratio: float) -> None:
    torch.manual_seed(0)
    model = build_clmae(**TINY, mask_ratio=mask_ratio)
    x, labels, fg, keep = _batch()
    _, parts = model(x, labels, fg, keep)
    k = num_visible(16, mask_ratio)
    mask = parts["keep_a"]
    assert mask.shape == (4, k)
    assert all(len(set(row.tolist())) == k for row in mask)
    assert torch.equal(mask, mask.sort(dim=1).values)
    # the module's choice: the K highest scores of each image
    scores = model.scores(x)
    threshold = scores.gather(1, mask).min(dim=1).values
    hidden = torch.ones_like(scores, dtype=torch.bool).scatter(1, mask, False)
    assert bool((scores.masked_fill(~hidden, -1).max(dim=1).values <= threshold).all())


def test_clmae_curriculum_turns_the_module_from_partner_to_adversary() -> None:
    assert [curriculum_factor(e, 4) for e in range(4)] == [1.0, 0.5, -0.5, -1.0]
    assert curriculum_factor(0, 20) == 1.0 and curriculum_factor(19, 20) == -1.0
    # with the regularisers off, the module's gradient flips sign with lambda; the MAE's does not change
    torch.manual_seed(0)
    model = build_clmae(**TINY, mask_ratio=0.75, gauss_weight=0.0, kl_weight=0.0, diversity_weight=0.0)
    x, labels, fg, keep = _batch()
    grads = {}
    for lam in (1.0, -1.0):
        model.zero_grad()
        model.curriculum = lam
        loss, _ = model(x, labels, fg, keep)
        loss.backward()
        grads[lam] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    for name, grad in grads[1.0].items():
        if name.startswith("masker."):
            torch.testing.assert_close(grads[-1.0][name], -grad)
        else:
            assert torch.equal(grads[-1.0][name], grad), name
    assert any(g.abs().sum() > 0 for n, g in grads[1.0].items() if n.startswith("masker."))


def test_shifted_view_dataset(diffveri_root: Path) -> None:
    from vehiclemae.data.shifted import ShiftedViewDataset

    ds = ShiftedViewDataset(diffveri_root, img_size=32, patch_size=8, mask_ratio=0.75, mask_mode="single", shift=6)
    plain = ShiftedViewDataset(
        diffveri_root, img_size=32, patch_size=8, mask_ratio=0.75, mask_mode="single", shift=6, color=False
    )
    ds.set_epoch(1)
    plain.set_epoch(1)
    item, again, raw = ds[3], ds[3], plain[3]
    assert item["image"].shape == item["image_t"].shape == (3, 32, 32) and item["fg"].shape == (32, 32)
    assert all(torch.equal(item[k], again[k]) for k in item)  # a pure function of (seed, epoch, index)
    assert torch.equal(item["image"], raw["image"]) and not torch.equal(item["image_t"], raw["image_t"])
    # without colour augmentation the target is the online view's window moved by the drawn (dy, dx)
    dy, dx = (int(v) for v in np.random.default_rng([0, 1, 3, 1]).integers(0, 7, size=2))
    torch.testing.assert_close(raw["image_t"][:, : 32 - dy, : 32 - dx], raw["image"][:, dy:, dx:])
    ds.augment = False
    assert "image_t" not in ds[3]


def _run(root: Path, out: Path, mode: str, **kwargs):
    return toy_config(root, out, **{"method.mode": mode, "monitor.probe_size": 4, **kwargs})


@pytest.mark.parametrize("mode", ["cmae", "clmae"])
def test_resume_is_exact_and_export_loads_with_timm(mode: str, diffveri_root: Path, tmp_path: Path) -> None:
    """2 epochs straight == 1 epoch + resume + 1 epoch (EMA target / masking module and their optimiser state
    included); the exported encoder loads with timm.create_model; viz-recon draws the run."""
    from vehiclemae.export import export_encoder
    from vehiclemae.viz import reconstruction_grid

    straight = run_pretraining(_run(diffveri_root, tmp_path / "a", mode))
    run_pretraining(_run(diffveri_root, tmp_path / "b", mode), stop_after_epoch=1)
    resumed = run_pretraining(_run(diffveri_root, tmp_path / "b", mode), resume=True)
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a["epoch"] == b["epoch"] == 2 and a["global_step"] == b["global_step"]
    extra = "target_encoder." if mode == "cmae" else "masker."
    assert any(k.startswith(extra) for k in a["model"])
    assert not any(k.startswith("view.") for k in a["model"]) and a["teachers"] is None
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    state_a, state_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[i]["exp_avg_sq"], state_b[i]["exp_avg_sq"]) for i in state_a)
    if mode == "cmae":  # the target moved away from its initial copy but is not the online encoder
        key = "blocks.0.attn.qkv.weight"
        assert not torch.equal(a["model"][f"target_encoder.{key}"], a["model"][f"rgb.encoder.{key}"])
        assert a["model_meta"]["cmae_temperature"] == 0.07

    path, meta = export_encoder(straight, tmp_path / "enc.safetensors")
    assert meta["source"] == mode and meta["model_name"] == "vehiclemae_vit_toy_patch8"
    encoder = timm.create_model(
        meta["model_name"],
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(path)),
        num_classes=0,
        img_size=meta["img_size"],
    )
    assert torch.equal(encoder.blocks[0].attn.qkv.weight, a["model"]["rgb.encoder.blocks.0.attn.qkv.weight"])
    assert encoder(torch.randn(1, 3, 64, 64)).shape == (1, encoder.embed_dim)
    with pytest.raises(ValueError, match="no view branch"):
        export_encoder(straight, tmp_path / "view.safetensors", branch="view")
    assert reconstruction_grid(straight, tmp_path / "recon.png", n=2).stat().st_size > 0


def test_mode_config_errors(diffveri_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid modes: mae, vmim, vehiclemae, cmae, clmae"):
        run_pretraining(toy_config(diffveri_root, tmp_path / "u", **{"method.mode": "simmim"}))
    with pytest.raises(ValueError, match="method.cmae_temperature belongs to mode cmae.*'mae'"):
        run_pretraining(
            toy_config(diffveri_root, tmp_path / "k", **{"method.mode": "mae", "method.cmae_temperature": 0.2})
        )
    with pytest.raises(ValueError, match="method.clmae_depth belongs to mode clmae.*'cmae'"):
        run_pretraining(toy_config(diffveri_root, tmp_path / "c", **{"method.mode": "cmae", "method.clmae_depth": 2}))
    with pytest.raises(ValueError, match="export_branch must be rgb"):
        run_pretraining(
            toy_config(diffveri_root, tmp_path / "e", **{"method.mode": "clmae", "method.export_branch": "view"})
        )
    with pytest.raises(ValueError, match="cmae_momentum"):
        run_pretraining(
            toy_config(diffveri_root, tmp_path / "m", **{"method.mode": "cmae", "method.cmae_momentum": 1.5})
        )
    with pytest.raises(ValueError, match="heads must divide"):
        run_pretraining(toy_config(diffveri_root, tmp_path / "h", **{"method.mode": "clmae", "method.clmae_heads": 7}))
    assert not any((tmp_path / name).exists() for name in "ukcemh")
