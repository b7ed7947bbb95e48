"""Student-side heads of past-to-present mutual distillation (PPMD): what a student uses to predict a teacher's tokens.

Two PPMD targets (``method.ppmd_target``), each with and without a predictor network (``method.ppmd_predictor``):

``complementary`` (default): each student predicts the *other* branch's teacher tokens at the patches the other branch
saw and the student did not (with paired asymmetric masks the two visible sets are disjoint). The teacher encodes
its own visible set; so what the RGB encoder is asked to contain depends on the view branch's mask.

* predictor on: :class:`ComplementaryPredictor`, a light transformer (at the MAE decoder's width) over the student's
  latent ``(N, 1 + Ks, D)`` followed by one query token per target patch (a learned query embedding plus the fixed
  sin-cos position embedding of that patch), ``(N, Kt, D)``; the query outputs are the prediction ``(N, Kt, D)``.
* predictor off: :class:`DecoderTokenHead`, the student's own MAE decoder tokens at the target patches (there they
  are mask tokens that attended to the visible tokens), ``(N, Kt, Dd)``, mapped to ``D`` by one linear layer.

``same_patches`` (the earlier form, kept for the ablation): each student's visible tokens ``(N, Ks, D)`` toward the
other teacher run on the *student's own* visible patches; an MLP (predictor on) or nothing (off) in between.
"""

from __future__ import annotations

import torch
from timm.layers import Mlp
from timm.models.vision_transformer import Block
from torch import nn

from .mae import gather_tokens
from .pos_embed import sincos_2d

PPMD_TARGETS = ("complementary", "same_patches")


class ComplementaryPredictor(nn.Module):
    """Predict tokens at patches the student did not see from the student's latent.

    ``forward(latent (N, 1 + Ks, D), target_keep (N, Kt)) -> (N, Kt, D)``. The blocks run at ``width`` (the MAE
    decoder's width by default, as light as the decoder: 128 for ViT-Tiny, 512 for ViT-B); when it differs from
    ``D`` the latent is projected in and the predictions out by one linear layer each.
    """

    def __init__(
        self, dim: int, grid: int, num_heads: int, depth: int = 1, mlp_ratio: float = 4.0, width: int | None = None
    ) -> None:
        super().__init__()
        width = width or dim
        self.proj_in = nn.Linear(dim, width) if width != dim else nn.Identity()
        self.proj_out = nn.Linear(width, dim) if width != dim else nn.Identity()
        self.query = nn.Parameter(torch.zeros(1, 1, width))
        nn.init.normal_(self.query, std=0.02)
        # Same fixed sin-cos embedding as the encoder's (MAE): queries name their patch the way visible tokens do.
        self.register_buffer("pos_embed", sincos_2d(width, grid, cls_token=False), persistent=False)  # (1, L, W)
        self.blocks = nn.Sequential(*[Block(width, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)

    def forward(self, latent: torch.Tensor, target_keep: torch.Tensor) -> torch.Tensor:
        n, kt = target_keep.shape
        x = self.proj_in(latent)
        pos = gather_tokens(self.pos_embed.to(x.dtype).expand(n, -1, -1), target_keep)  # (N, Kt, W)
        queries = self.query.to(x.dtype).expand(n, kt, -1) + pos
        x = self.blocks(torch.cat([x, queries], dim=1))
        return self.proj_out(self.norm(x[:, -kt:]))


class DecoderTokenHead(nn.Module):
    """The student's decoder tokens at the target patches, mapped to the encoder width.

    ``forward(decoder_tokens (N, L, Dd), target_keep (N, Kt)) -> (N, Kt, D)``.
    """

    def __init__(self, decoder_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(decoder_dim, dim)

    def forward(self, decoder_tokens: torch.Tensor, target_keep: torch.Tensor) -> torch.Tensor:
        return self.proj(gather_tokens(decoder_tokens, target_keep))


def build_ppmd_heads(
    target: str,
    predictor: bool,
    *,
    dim: int,
    decoder_dim: int,
    grid: int,
    num_heads: int,
    depth: int = 1,
    decoder_heads: int | None = None,
) -> nn.ModuleDict | None:
    """The two students' heads (``"rgb"``, ``"view"``) for ``target``; ``None`` for ``same_patches`` without a
    predictor (the student's tokens are compared directly)."""
    if target not in PPMD_TARGETS:
        raise ValueError(f"unknown PPMD target {target!r}; valid: {', '.join(PPMD_TARGETS)}")
    if target == "complementary":
        if predictor:
            # At the decoder's width with the decoder's heads (the encoder's when the widths agree, as in the toy).
            heads = num_heads if decoder_dim == dim or decoder_heads is None else decoder_heads
            return nn.ModuleDict(
                {b: ComplementaryPredictor(dim, grid, heads, depth, width=decoder_dim) for b in ("rgb", "view")}
            )
        return nn.ModuleDict({b: DecoderTokenHead(decoder_dim, dim) for b in ("rgb", "view")})
    if predictor:
        # BYOL-style: a student must *contain* what the other teacher knows rather than *equal* its features.
        return nn.ModuleDict({b: Mlp(dim, hidden_features=2 * dim, out_features=dim) for b in ("rgb", "view")})
    return None
