"""VMIM: two homogeneous MAEs (RGB and view-map reconstruction) with asymmetric masks, plus PPMD; and the MAE baseline.

``VehicleMAE.forward`` returns the total loss and its parts, like MAE's ``forward -> (loss, pred, mask)``.
Modes:
    ``mae``        the RGB MAE only (one random mask per image), the baseline;
    ``vmim``       both MAEs, masks per ``mask_mode`` (asymmetric by default), no distillation;
    ``vehiclemae`` VMIM + PPMD (pass ``teachers`` and a non-zero ``ppmd_weight``).

PPMD targets (``ppmd_target``; heads in :mod:`vehiclemae.models.ppmd_heads`): ``complementary`` — each student
predicts the other branch's previous-epoch teacher tokens at the patches the other branch saw and it did not, so the
RGB encoder's loss depends on the view branch's mask; ``same_patches`` — each student's visible tokens toward the
other teacher run on the student's own visible patches (then the RGB encoder's gradient does not depend on the view
branch's mask at all; kept for the ablation).
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses import distill_cosine, patch_weights, rgb_per_patch, view_per_patch, weighted_masked_mean
from ..masking import keep_to_mask
from .mae import MaskedAutoencoder, build_branch, patchify
from .ppmd_heads import PPMD_TARGETS, DecoderTokenHead, build_ppmd_heads

MODES = ("mae", "vmim", "vehiclemae")


class VehicleMAE(nn.Module):
    """The pre-training model: ``rgb`` MAE and (unless mode ``mae``) ``view`` MAE."""

    def __init__(
        self,
        rgb: MaskedAutoencoder,
        view: MaskedAutoencoder | None,
        *,
        mode: str = "vehiclemae",
        fg_floor: float = 0.1,
        view_loss_weight: float = 1.0,
        norm_pix_loss: bool = True,
        ppmd_center: bool = True,
        ppmd_predictor: bool = False,
        ppmd_target: str = "complementary",
        ppmd_predictor_depth: int = 1,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid modes: {MODES}")
        if (mode == "mae") != (view is None):
            raise ValueError(f"mode {mode!r} needs {'no' if mode == 'mae' else 'a'} view branch")
        if rgb.target != "rgb" or (view is not None and view.target != "view"):
            raise ValueError("the first MAE must reconstruct rgb and the second the view map")
        self.rgb, self.view = rgb, view
        self.mode = mode
        self.fg_floor = fg_floor
        self.view_loss_weight = view_loss_weight
        self.norm_pix_loss = norm_pix_loss
        self.ppmd_center = ppmd_center
        if ppmd_target not in PPMD_TARGETS:
            raise ValueError(f"unknown PPMD target {ppmd_target!r}; valid: {', '.join(PPMD_TARGETS)}")
        self.ppmd_target = ppmd_target
        # Student heads of PPMD (vehiclemae.models.ppmd_heads): what each student predicts the other teacher with.
        self.ppmd_pred = None
        if mode == "vehiclemae":
            self.ppmd_pred = build_ppmd_heads(
                ppmd_target,
                ppmd_predictor,
                dim=rgb.encoder.embed_dim,
                decoder_dim=rgb.decoder_embed.out_features,
                grid=rgb.grid,
                num_heads=rgb.encoder.blocks[0].attn.num_heads,
                depth=ppmd_predictor_depth,
                decoder_heads=rgb.decoder_blocks[0].attn.num_heads if len(rgb.decoder_blocks) else None,
            )

    @property
    def patch_size(self) -> int:
        return self.rgb.patch_size

    @property
    def num_patches(self) -> int:
        return self.rgb.num_patches

    def forward(
        self,
        imgs: torch.Tensor,
        labels: torch.Tensor,
        fg: torch.Tensor,
        keep_a: torch.Tensor,
        keep_b: torch.Tensor | None = None,
        teachers: nn.Module | None = None,
        ppmd_weight: float = 0.0,
        ppmd_same_weight: float = 0.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One pre-training step's loss.

        Args:
            imgs: ``(N, 3, H, W)`` normalised images.
            labels: ``(N, H, W)`` int64 view classes (used by the view branch).
            fg: ``(N, H, W)`` float foreground mask (patch weights).
            keep_a: ``(N, K)`` visible patches of the RGB branch; ``keep_b``: of the view branch.
            teachers: :class:`~vehiclemae.ppmd.PPMDTeachers` (previous epoch), used when ``ppmd_weight > 0``.
        Returns:
            ``(loss, parts)``; ``parts`` holds detached scalars ``loss_rgb``, ``loss_view``, ``loss_ppmd`` and the
            predictions ``pred_rgb (N, L, p*p*3)`` / ``pred_view (N, L, p*p*C)`` (detached) for visualisation.
        """
        p, length = self.patch_size, self.num_patches
        weight = patch_weights(patchify(fg.float(), p).mean(-1), self.fg_floor)  # (N, L)
        parts: dict[str, torch.Tensor] = {}

        # 1. RGB branch: reconstruct normalised pixels of the patches it did not see.
        pred_rgb, lat_rgb, dec_rgb = self.rgb.forward_tokens(imgs, keep_a)
        mask_a = keep_to_mask(keep_a, length)
        loss_rgb = weighted_masked_mean(rgb_per_patch(pred_rgb, patchify(imgs, p), self.norm_pix_loss), mask_a, weight)
        loss = loss_rgb
        parts["loss_rgb"] = loss_rgb.detach()
        parts["pred_rgb"] = pred_rgb.detach()
        if self.view is None:
            return loss, parts

        # 2. View branch: per-pixel view class of its masked patches, from a disjoint visible set.
        if keep_b is None:
            raise ValueError(f"mode {self.mode!r} needs the view branch's visible patches keep_b")
        pred_view, lat_view, dec_view = self.view.forward_tokens(imgs, keep_b)
        mask_b = keep_to_mask(keep_b, length)
        ce = view_per_patch(pred_view, patchify(labels, p), self.view.num_view_classes)
        loss_view = weighted_masked_mean(ce, mask_b, weight)
        loss = loss + self.view_loss_weight * loss_view
        parts["loss_view"] = loss_view.detach()
        parts["pred_view"] = pred_view.detach()

        # 3. PPMD: each student toward the other branch's past (teachers of the previous epoch).
        if teachers is not None and (ppmd_weight > 0 or ppmd_same_weight > 0):
            students = {"rgb": (lat_rgb, dec_rgb, keep_a), "view": (lat_view, dec_view, keep_b)}
            cross = self._ppmd_cross(imgs, students, teachers, "rgb", "view") + self._ppmd_cross(
                imgs, students, teachers, "view", "rgb"
            )
            ppmd = ppmd_weight * cross
            parts["loss_ppmd_cross"] = cross.detach()
            if ppmd_same_weight > 0:
                c = self.ppmd_center
                same = distill_cosine(lat_rgb[:, 1:], teachers.features("rgb", imgs, keep_a)[:, 1:], c) + (
                    distill_cosine(lat_view[:, 1:], teachers.features("view", imgs, keep_b)[:, 1:], c)
                )
                ppmd = ppmd + ppmd_same_weight * same
                parts["loss_ppmd_same"] = same.detach()
            loss = loss + ppmd
            parts["loss_ppmd"] = ppmd.detach()
        elif self.ppmd_pred is not None:
            # Epoch 0 has no teachers: keep the heads in the graph with weight 0 so that DDP (which expects a
            # gradient for every parameter) does not need find_unused_parameters.
            loss = loss + 0.0 * sum(p.sum() for p in self.ppmd_pred.parameters())
        return loss, parts

    def _ppmd_cross(
        self,
        imgs: torch.Tensor,
        students: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
        teachers: nn.Module,
        student: str,
        teacher: str,
    ) -> torch.Tensor:
        """``1 - cos`` between student ``student``'s prediction and teacher ``teacher``'s tokens.

        ``students[b] = (latent (N, 1 + Kb, D), decoder tokens (N, L, Dd), keep (N, Kb))``. Complementary: the targets
        are the teacher's tokens of the *teacher branch's* visible patches (encoded from those patches), predicted at
        those positions; same_patches: the teacher run on the student's own visible patches.
        """
        latent, dec_tokens, keep = students[student]
        if self.ppmd_target == "complementary":
            target_keep = students[teacher][2]
            target = teachers.features(teacher, imgs, target_keep)[:, 1:]  # (N, Kt, D)
            assert self.ppmd_pred is not None
            head = self.ppmd_pred[student]
            source = dec_tokens if isinstance(head, DecoderTokenHead) else latent
            pred = head(source, target_keep)  # (N, Kt, D)
        else:
            target = teachers.features(teacher, imgs, keep)[:, 1:]  # (N, Ks, D)
            tokens = latent[:, 1:]
            pred = self.ppmd_pred[student](tokens) if self.ppmd_pred is not None else tokens
        return distill_cosine(pred, target, self.ppmd_center)


def build_vehiclemae(
    *,
    encoder_name: str,
    img_size: int,
    mode: str,
    num_view_classes: int,
    decoder_embed_dim: int,
    decoder_depth: int,
    decoder_num_heads: int,
    fg_floor: float,
    view_loss_weight: float,
    norm_pix_loss: bool = True,
    drop_path_rate: float = 0.0,
    ppmd_center: bool = True,
    ppmd_predictor: bool = False,
    ppmd_target: str = "complementary",
    ppmd_predictor_depth: int = 1,
) -> VehicleMAE:
    """Build the model of ``mode`` with freshly initialised timm encoders (load weights afterwards if wanted)."""

    def branch(target: str) -> MaskedAutoencoder:
        return build_branch(
            encoder_name,
            img_size,
            target=target,
            num_view_classes=num_view_classes,
            decoder_embed_dim=decoder_embed_dim,
            decoder_depth=decoder_depth,
            decoder_num_heads=decoder_num_heads,
            drop_path_rate=drop_path_rate,
        )

    rgb = branch("rgb")
    view = None if mode == "mae" else branch("view")
    return VehicleMAE(
        rgb,
        view,
        mode=mode,
        fg_floor=fg_floor,
        view_loss_weight=view_loss_weight,
        norm_pix_loss=norm_pix_loss,
        ppmd_center=ppmd_center,
        ppmd_predictor=ppmd_predictor,
        ppmd_target=ppmd_target,
        ppmd_predictor_depth=ppmd_predictor_depth,
    )
