"""One schedule and one parameter-group builder for every trainer: each trainer's old formula, kept here as the
reference, gives the same values (or, for the view-SAM warmup, the documented difference)."""

from __future__ import annotations

import math

import pytest
import torch

from data_manifests.schedule import lambda_schedule, param_groups, warmup_cosine


# ------------------------------------------------------------------------------------ the formulas before unification
def _pretrain_cosine_lr(epoch: float, *, lr: float, min_lr: float, warmup_epochs: float, epochs: int) -> float:
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    span = max(epochs - warmup_epochs, 1e-8)
    progress = min(1.0, (epoch - warmup_epochs) / span)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _reid_warmup_cosine(step: float, total: float, warmup: float, min_ratio: float = 0.01) -> float:
    if warmup > 0 and step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(total - warmup, 1e-8))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _sam_lr_lambda(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _fractional_epochs(epochs: int, iters: int) -> list[float]:
    return [e + i / iters for e in range(epochs + 1) for i in range(iters)]


@pytest.mark.parametrize(
    ("lr", "min_lr", "warmup", "epochs", "iters"),
    [(1.5e-4 * 64 / 256, 0.0, 1.0, 4, 7), (1.5e-4 * 4096 / 256, 1e-6, 40.0, 400, 3), (1e-3, 0.0, 0.0, 3, 5)],
)
def test_pretraining_schedule_is_bit_identical(lr, min_lr, warmup, epochs, iters) -> None:
    for t in _fractional_epochs(epochs, iters):
        old = _pretrain_cosine_lr(t, lr=lr, min_lr=min_lr, warmup_epochs=warmup, epochs=epochs)
        assert warmup_cosine(t, total=epochs, warmup=warmup, lr=lr, min_lr=min_lr) == old, t


@pytest.mark.parametrize(("warmup", "epochs", "min_ratio"), [(1.0, 10, 0.01), (0.5, 2, 0.01), (0.0, 3, 0.1)])
def test_reid_schedule_is_bit_identical(warmup, epochs, min_ratio) -> None:
    for t in _fractional_epochs(epochs, 6):
        old = _reid_warmup_cosine(t, epochs, warmup, min_ratio)
        assert warmup_cosine(t, total=epochs, warmup=warmup, min_lr=min_ratio, warmup_start=1.0) == old, t


@pytest.mark.parametrize(("warmup", "steps"), [(50, 2000), (3, 20), (0, 10), (50, 4)])
def test_segment_schedule_equals_the_old_cosine_and_starts_its_warmup_one_step_lower(warmup, steps) -> None:
    """The view-SAM warmup was ``(s + 1) / warmup``, which reached the full lr one step before the warmup ended;
    the shared one (as Re-ID fine-tuning) is ``(s + 1) / (warmup + 1)``. After the warmup they are identical."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = lambda_schedule(optimizer, total=steps, warmup=warmup, warmup_start=1.0)
    for step in range(steps + 2):
        new = scheduler.get_last_lr()[0]
        if step < warmup:
            assert new == pytest.approx(_sam_lr_lambda(step, warmup, steps) * warmup / (warmup + 1), rel=1e-12)
        else:
            assert new == _sam_lr_lambda(step, warmup, steps), step
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize("warmup", [0, 1, 4])
def test_dreambooth_schedule_equals_diffusers_constant_with_warmup(warmup) -> None:
    from diffusers.optimization import get_scheduler

    def lrs(make) -> list[float]:
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
        scheduler = make(optimizer)
        out = []
        for _ in range(8):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return out

    old = lrs(lambda o: get_scheduler("constant_with_warmup" if warmup else "constant", o, num_warmup_steps=warmup))
    assert lrs(lambda o: lambda_schedule(o, total=8, warmup=warmup, min_ratio=1.0)) == old


# ------------------------------------------------------------------------------------------------ parameter groups
def _reid_param_groups(model, lr: float, weight_decay: float, layer_decay: float = 1.0) -> list[dict]:
    """Re-ID fine-tuning's hand-written layer decay before it used timm's helper."""
    blocks = getattr(model.backbone, "blocks", None)
    num_layers = len(blocks) if blocks is not None else 0

    def layer_id(name: str) -> int:
        if name.startswith("backbone."):
            sub = name[len("backbone.") :]
            if sub.startswith(("cls_token", "pos_embed", "patch_embed", "reg_token", "norm_pre")):
                return 0
            if sub.startswith("blocks."):
                return int(sub.split(".")[1]) + 1
        return num_layers + 1

    groups: dict = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim <= 1 or name.endswith((".bias", "cls_token", "pos_embed"))
        lid = layer_id(name)
        if (lid, no_decay) not in groups:
            scale = layer_decay ** (num_layers + 1 - lid) if layer_decay < 1.0 else 1.0
            groups[(lid, no_decay)] = {
                "params": [],
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_scale": scale,
            }
        groups[(lid, no_decay)]["params"].append(param)
    return list(groups.values())


def _by_param(groups: list[dict]) -> dict[int, tuple[float, float]]:
    return {id(p): (g["weight_decay"], g["lr_scale"]) for g in groups for p in g["params"]}


@pytest.mark.parametrize("layer_decay", [0.65, 1.0])
def test_reid_layer_decay_groups_equal_the_hand_written_ones(layer_decay) -> None:
    from vehiclemae.reid import finetune as ft

    backbone, spec = ft.build_backbone("scratch", "vehiclemae_vit_toy_patch8", 32)
    model = ft.ReIDModel(backbone, 5, spec)
    old = _reid_param_groups(model, 1.0, 0.05, layer_decay)
    new = param_groups(model, weight_decay=0.05, layer_decay=layer_decay)
    assert _by_param(new) == _by_param(old)  # every parameter: the same decay and the same (bit-identical) scale
    # the same groups in the same order, so optimiser states of earlier checkpoints still load
    assert [[id(p) for p in g["params"]] for g in new] == [[id(p) for p in g["params"]] for g in old]


def test_pretraining_groups_exclude_norms_biases_tokens_and_position_embeddings() -> None:
    from vehiclemae.models import build_vehiclemae

    model = build_vehiclemae(
        encoder_name="vehiclemae_vit_toy_patch8", img_size=32, mode="vehiclemae", num_view_classes=5,
        decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, fg_floor=0.1, view_loss_weight=1.0,
    )  # fmt: skip
    decay = {id(p) for g in param_groups(model, weight_decay=0.05) if g["weight_decay"] for p in g["params"]}
    for name, param in model.named_parameters():
        excluded = param.ndim <= 1 or name.endswith(("cls_token", "mask_token", "pos_embed"))
        assert (id(param) not in decay) == excluded, name
