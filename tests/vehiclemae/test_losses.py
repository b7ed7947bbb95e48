from __future__ import annotations

import torch

from vehiclemae.losses import distill_cosine, patch_weights, rgb_per_patch, view_per_patch, weighted_masked_mean
from vehiclemae.masking import keep_to_mask, make_masks
from vehiclemae.models import build_vehiclemae


def _model(mode: str = "vmim", fg_floor: float = 0.0):
    torch.manual_seed(0)
    return build_vehiclemae(
        encoder_name="vehiclemae_vit_toy_patch8",
        img_size=32,
        mode=mode,
        num_view_classes=6,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
        fg_floor=fg_floor,
        view_loss_weight=1.0,
    )


def test_weighted_masked_mean_formula() -> None:
    per_patch = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    weight = torch.tensor([[1.0, 0.5, 1.0, 0.0]])
    # visible patch 2 and zero-weight patch 3 drop out: (1*1 + 2*0.5) / (1 + 0.5)
    assert torch.isclose(weighted_masked_mean(per_patch, mask, weight), torch.tensor(2.0 / 1.5))
    assert torch.equal(patch_weights(torch.tensor([0.0, 0.05, 0.6]), 0.1), torch.tensor([0.1, 0.1, 0.6]))


def test_view_per_patch_is_the_pixel_cross_entropy_in_patchify_layout() -> None:
    """Each patch's logits are laid out (p, p, C), channels fastest: compare with a per-pixel log-softmax."""
    logits = torch.randn(2, 5, 4 * 3, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 5, 4))
    log_probs = logits.reshape(2, 5, 4, 3).log_softmax(-1)
    expected = -log_probs.gather(-1, labels[..., None]).squeeze(-1).mean(-1)
    torch.testing.assert_close(view_per_patch(logits, labels, 3), expected.float())


def test_loss_ignores_visible_patches() -> None:
    """Gradient of both reconstruction losses w.r.t. the predictions is zero exactly on visible patches."""
    pred = torch.randn(2, 16, 192, requires_grad=True)
    logits = torch.randn(2, 16, 64 * 6, requires_grad=True)
    target, labels = torch.randn(2, 16, 192), torch.randint(0, 6, (2, 16, 64))
    keep_a, keep_b = make_masks("asymmetric", 2, 16, 0.75)
    weight = torch.rand(2, 16) + 0.1
    loss = weighted_masked_mean(rgb_per_patch(pred, target), keep_to_mask(keep_a, 16), weight)
    loss = loss + weighted_masked_mean(view_per_patch(logits, labels, 6), keep_to_mask(keep_b, 16), weight)
    loss.backward()
    for grad, keep in ((pred.grad, keep_a), (logits.grad, keep_b)):
        visible = torch.zeros(2, 16, dtype=torch.bool).scatter(1, keep, True)
        assert grad[visible].abs().max() == 0
        assert grad[~visible].abs().sum(-1).min() > 0


def test_model_loss_follows_foreground_weights() -> None:
    """With fg_floor=0, changing the image only on background patches leaves the reconstruction loss unchanged;
    changing it on a masked vehicle patch changes it."""
    model = _model("mae", fg_floor=0.0).eval()
    x = torch.randn(1, 3, 32, 32)
    labels = torch.zeros(1, 32, 32, dtype=torch.long)
    labels[:, :16, :16] = 1  # the vehicle covers patches 0, 1, 4, 5
    fg = (labels > 0).float()
    keep = torch.tensor([[2, 3, 6, 7]])  # vehicle patches are all masked
    with torch.no_grad():
        base, _ = model(x, labels, fg, keep)
        x_bg = x.clone()
        x_bg[:, :, 16:, 16:] = torch.randn(1, 3, 16, 16)  # background-only patches 10, 11, 14, 15
        # keep the encoder input identical: only masked background changes, visible ones are 2, 3, 6, 7
        same, _ = model(x_bg, labels, fg, keep)
        x_fg = x.clone()
        x_fg[:, :, :8, :8] += 3.0 * torch.randn(1, 3, 8, 8)  # patch 0: masked vehicle
        changed, _ = model(x_fg, labels, fg, keep)
    assert torch.equal(base, same)
    assert not torch.isclose(base, changed)


def test_loss_is_per_image_mean_so_batch_splits_agree() -> None:
    """The loss of a batch equals the mean of the losses of its halves (what DDP gradient averaging assumes)."""
    model = _model("vmim", fg_floor=0.1).eval()
    x, labels = torch.randn(4, 3, 32, 32), torch.randint(0, 6, (4, 32, 32))
    fg = (labels > 0).float()
    keep_a, keep_b = make_masks("asymmetric", 4, 16, 0.75, torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole, _ = model(x, labels, fg, keep_a, keep_b)
        h1, _ = model(x[:2], labels[:2], fg[:2], keep_a[:2], keep_b[:2])
        h2, _ = model(x[2:], labels[2:], fg[2:], keep_a[2:], keep_b[2:])
    torch.testing.assert_close(whole, (h1 + h2) / 2)


def test_centered_distillation_penalises_a_shared_direction() -> None:
    """Tokens that all point one way (a collapse) match perfectly without centering, not with it."""
    torch.manual_seed(0)
    shared = torch.randn(1, 1, 16)
    student = shared * 10 + 0.01 * torch.randn(2, 8, 16)
    teacher = shared * 10 + 0.01 * torch.randn(2, 8, 16)
    assert distill_cosine(student, teacher, center=False) < 1e-3
    assert distill_cosine(student, teacher, center=True) > 0.5
    tokens = torch.randn(2, 8, 16)
    assert distill_cosine(tokens, tokens.clone(), center=True) < 1e-5
    # shifting every token of an image by one vector (what a norm bias does) changes nothing once centred
    assert distill_cosine(tokens + torch.randn(2, 1, 16), tokens, center=True) < 1e-5
