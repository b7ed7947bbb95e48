"""Past-to-present mutual distillation (PPMD).

At the end of every epoch both student encoders are copied into frozen teachers. During the next epoch each
student's visible-token features are pulled (``1 - cos``, stop-gradient) toward the *other* branch's teacher run on
the *same* visible patches; an optional same-branch term pulls each student toward its own past. The weight is 0 in
epoch 0 (no past yet) and ramps linearly to its full value over ``ramp_epochs`` epochs.
"""

from __future__ import annotations

import copy

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .models.mae import encode_visible


def ppmd_weight(epoch: int, weight: float, ramp_epochs: int) -> float:
    """Distillation weight for ``epoch`` (0-based): 0 at epoch 0, then ``weight * min(1, epoch / ramp_epochs)``."""
    if epoch <= 0 or weight == 0.0:
        return 0.0
    return weight * min(1.0, epoch / max(1, ramp_epochs))


class PPMDTeachers(nn.Module):
    """Frozen snapshots of the RGB and view encoders (the previous epoch's weights). Never receives gradients."""

    def __init__(self, rgb_encoder: VisionTransformer, view_encoder: VisionTransformer) -> None:
        super().__init__()
        self.rgb = copy.deepcopy(rgb_encoder)
        self.view = copy.deepcopy(view_encoder)
        self.requires_grad_(False)
        self.eval()
        # Whether the snapshots hold a past epoch yet (they are meaningless before the first epoch ends).
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))

    def train(self, mode: bool = True) -> PPMDTeachers:
        # Teachers stay in eval mode (no dropout / drop-path), whatever the caller does.
        return super().train(False)

    @torch.no_grad()
    def update(self, rgb_encoder: VisionTransformer, view_encoder: VisionTransformer) -> None:
        """Copy the students' current weights exactly (call at the end of an epoch)."""
        for teacher, student in ((self.rgb, rgb_encoder), (self.view, view_encoder)):
            teacher.load_state_dict(student.state_dict())
        self.ready.fill_(True)

    @torch.no_grad()
    def features(self, branch: str, imgs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Teacher ``branch`` ("rgb" | "view") on the visible patches: ``(N, 1 + K, D)``, detached."""
        encoder = self.rgb if branch == "rgb" else self.view
        return encode_visible(encoder, imgs, keep).detach()
