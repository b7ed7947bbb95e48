"""CL-MAE: Curriculum-Learned Masked Autoencoders (Madan et al., WACV 2024), a baseline mode of ``vehiclemae train``
(``method.mode: clmae``).

A learnable **masking module** (a small transformer over the image's patch embeddings, class token -> LayerNorm ->
linear -> sigmoid) scores every patch, ``s (N, L)`` in (0, 1), high = keep. The MAE sees the ``K`` highest-scoring
patches (``K = round(L (1 - mask_ratio))``) and reconstructs the rest (the MAE loss, body-weighted as in every mode).
The module is trained on ``lambda * L_rec`` plus three regularisers (the reference's): a Gaussian term that pushes
scores away from 0.5, a binary KL that holds the mean score at the visible share ``1 - mask_ratio``, and a diversity
term that keeps the masks of different images apart. The curriculum factor ``lambda`` goes from +1 (cooperative: the
module helps the MAE, easy masks) to -1 (adversarial: it hides what the MAE reconstructs worst, hard masks).

One forward/backward serves both players (the reference alternates two passes, the second with the MAE frozen): the
visible tokens are multiplied by ``1 + (g(s) - sg(g(s)))`` — exactly 1 in value, so the MAE's loss and gradient are
those of a plain MAE on the module's mask — where ``g`` is the identity whose gradient is scaled by ``lambda``; the
module also gets ``lambda`` times the gradient of the reference's soft loss ``sum((1 - s) w l) / sum((1 - s) w)``
(per-patch losses ``l`` detached). The MAE parameters thus see only the reconstruction loss and the module only
``lambda * L_rec + regularisers``, at the cost of one extra forward/backward of the module instead of a second pass
through encoder and decoder.

Shapes: images ``(N, 3, H, W)``, ``L`` patches, encoder width ``D``.
"""

from __future__ import annotations

import math

import torch
from timm.models.vision_transformer import Block
from torch import nn

from ..losses import patch_weights, rgb_per_patch, weighted_masked_mean
from ..masking import keep_to_mask, num_visible
from .mae import MaskedAutoencoder, _embed_visible, build_branch, gather_tokens, patchify


def curriculum_factor(epoch: int, epochs: int, start: float = 1.0, end: float = -1.0) -> float:
    """The reference's per-epoch schedule: ``start + (end - start) * e' / epochs`` with ``e' = epoch`` in the first
    half and ``epoch + 1`` in the second, so the first epoch is fully ``start`` and the last fully ``end``."""
    e = epoch if epoch < epochs / 2 else epoch + 1
    return start + (end - start) * e / epochs


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the gradient is multiplied by ``scale`` (``-1``: gradient reversal)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad * ctx.scale, None


class MaskingModule(nn.Module):
    """Patch tokens ``(N, L, D)`` -> keep scores ``(N, L)`` in (0, 1)."""

    def __init__(self, dim: int, num_patches: int, depth: int = 5, num_heads: int = 4) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, num_heads, 4.0, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_patches)
        nn.init.normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens], dim=1)
        return torch.sigmoid(self.head(self.norm(self.blocks(x)[:, 0])).float())


def mask_regularisers(
    scores: torch.Tensor, visible_share: float, sigma: float = 0.12, diversity_scale: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The masking module's regularisers on ``scores (N, L)``; each ``()``:

    - ``gauss``: mean of ``exp(-(s - 0.5)^2 / (2 sigma^2)) * sigma * sqrt(2 pi)`` (largest at 0.5: scores go to 0 or 1);
    - ``kl``: binary KL between each image's mean score and ``visible_share``, averaged over images (the reference
      sums over the batch; the mean keeps the weight independent of the batch size);
    - ``diversity``: mean over image pairs of ``exp(-diversity_scale * ||s_i - s_j||)`` (0 for one image).
    """
    s = scores.float()
    gauss = (torch.exp(-((s - 0.5) ** 2) / (2 * sigma**2)) * sigma * math.sqrt(2 * math.pi)).mean()
    m = s.mean(dim=1).clamp(1e-6, 1 - 1e-6)
    q = visible_share
    kl = (m * torch.log(m / q) + (1 - m) * torch.log((1 - m) / (1 - q))).mean()
    n = s.shape[0]
    if n < 2:
        return gauss, kl, s.new_zeros(())
    i, j = torch.triu_indices(n, n, offset=1, device=s.device)
    diversity = torch.exp(-diversity_scale * (s[i] - s[j]).norm(dim=-1)).mean()
    return gauss, kl, diversity


class CLMAE(nn.Module):
    """The CL-MAE pre-training model: ``rgb`` (the MAE) and ``masker`` (the masking module); ``view`` is ``None``.

    ``curriculum`` (the factor ``lambda``) is set by the training loop at the start of every epoch
    (:func:`curriculum_factor`)."""

    def __init__(
        self,
        rgb: MaskedAutoencoder,
        *,
        mask_ratio: float = 0.75,
        depth: int = 5,
        num_heads: int = 4,
        gauss_weight: float = 1.0,
        kl_weight: float = 0.1,
        diversity_weight: float = 2.0,
        fg_floor: float = 0.1,
        norm_pix_loss: bool = True,
    ) -> None:
        super().__init__()
        if rgb.target != "rgb":
            raise ValueError("CL-MAE's MAE must reconstruct rgb")
        dim = rgb.encoder.embed_dim
        if dim % num_heads:
            raise ValueError(f"the masking module's {num_heads} heads must divide the encoder width {dim}")
        self.rgb, self.view = rgb, None
        self.mode = "clmae"
        self.num_keep = num_visible(rgb.num_patches, mask_ratio)
        self.visible_share = self.num_keep / rgb.num_patches
        self.masker = MaskingModule(dim, rgb.num_patches, depth, num_heads)
        self.gauss_weight, self.kl_weight, self.diversity_weight = gauss_weight, kl_weight, diversity_weight
        self.fg_floor, self.norm_pix_loss = fg_floor, norm_pix_loss
        self.curriculum = 1.0

    @property
    def patch_size(self) -> int:
        return self.rgb.patch_size

    @property
    def num_patches(self) -> int:
        return self.rgb.num_patches

    def scores(self, imgs: torch.Tensor) -> torch.Tensor:
        """Keep scores ``(N, L)`` from the encoder's patch embeddings plus position (no gradient into the encoder)."""
        encoder = self.rgb.encoder
        with torch.no_grad():
            tokens = encoder.patch_embed(imgs) + encoder.pos_embed[:, 1:]
        return self.masker(tokens.detach())

    def masks(self, scores: torch.Tensor) -> torch.Tensor:
        """The ``K`` highest-scoring patches per image, sorted ascending: ``(N, L)`` -> ``keep (N, K)``."""
        return scores.detach().topk(self.num_keep, dim=1).indices.sort(dim=1).values

    def encode(self, imgs: torch.Tensor, keep: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        """:func:`~vehiclemae.models.mae.encode_visible` with each visible token (embedding + position) multiplied by
        ``factor (N, K)``: ``(N, 3, H, W)`` -> ``(N, 1 + K, D)``."""
        encoder = self.rgb.encoder
        pos = encoder.pos_embed
        x = _embed_visible(encoder.patch_embed, imgs, keep) + gather_tokens(pos[:, 1:].expand(len(keep), -1, -1), keep)
        x = x * factor[..., None].to(x.dtype)
        cls = (encoder.cls_token + pos[:, :1]).expand(x.shape[0], -1, -1)
        x = encoder.blocks(encoder.norm_pre(torch.cat([cls, x], dim=1)))
        return encoder.norm(x)

    def forward(
        self,
        imgs: torch.Tensor,
        labels: torch.Tensor,
        fg: torch.Tensor,
        keep_a: torch.Tensor | None = None,
        keep_b: torch.Tensor | None = None,
        *,
        teachers: nn.Module | None = None,
        ppmd_weight: float = 0.0,
        ppmd_same_weight: float = 0.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One step's loss for both players. ``imgs (N, 3, H, W)``, ``fg (N, H, W)``; the masks come from the module
        (``keep_a``/``keep_b``/``labels`` are unused; PPMD arguments are accepted for the engine's common call and must
        stay unset). Returns ``(loss, parts)``: ``loss_rgb`` (the MAE loss), ``loss_mask_rec`` (the soft loss the
        module sees), ``loss_gauss``/``loss_kl``/``loss_diversity``, ``clmae_lambda``, ``pred_rgb`` and the module's
        mask ``keep_a (N, K)``."""
        if teachers is not None:
            raise ValueError("mode clmae has no PPMD teachers")
        p, lam = self.patch_size, float(self.curriculum)
        weight = patch_weights(patchify(fg.float(), p).mean(-1), self.fg_floor)  # (N, L)
        # 1. The module scores the patches; the MAE sees the top K.
        scores = self.scores(imgs)
        keep = self.masks(scores)
        # 2. MAE pass; visible tokens x 1 in value, lambda x d/ds in the backward pass (the module's token path).
        s_vis = torch.gather(scores, 1, keep)
        scaled = _ScaleGrad.apply(s_vis, lam)
        latent = self.encode(imgs, keep, 1.0 + (scaled - scaled.detach()))
        pred = self.rgb.decode(latent, keep)
        per_patch = rgb_per_patch(pred, patchify(imgs, p), self.norm_pix_loss)  # (N, L)
        loss_rgb = weighted_masked_mean(per_patch, keep_to_mask(keep, self.num_patches), weight)
        # 3. The module's own objective: lambda x the soft reconstruction loss (hide = 1 - s) + regularisers.
        soft = weighted_masked_mean(per_patch.detach(), 1.0 - scores, weight)
        gauss, kl, diversity = mask_regularisers(scores, self.visible_share)
        module = lam * soft + self.gauss_weight * gauss + self.kl_weight * kl + self.diversity_weight * diversity
        parts = {
            "loss_rgb": loss_rgb.detach(),
            "loss_mask_rec": soft.detach(),
            "loss_gauss": gauss.detach(),
            "loss_kl": kl.detach(),
            "loss_diversity": diversity.detach(),
            "clmae_lambda": torch.tensor(lam),
            "pred_rgb": pred.detach(),
            "keep_a": keep,
        }
        return loss_rgb + module, parts


def build_clmae(
    *,
    encoder_name: str,
    img_size: int,
    decoder_embed_dim: int,
    decoder_depth: int,
    decoder_num_heads: int,
    fg_floor: float,
    mask_ratio: float,
    norm_pix_loss: bool = True,
    drop_path_rate: float = 0.0,
    depth: int = 5,
    num_heads: int = 4,
    gauss_weight: float = 1.0,
    kl_weight: float = 0.1,
    diversity_weight: float = 2.0,
) -> CLMAE:
    """A CL-MAE with a freshly initialised timm encoder and masking module."""
    rgb = build_branch(
        encoder_name,
        img_size,
        decoder_embed_dim=decoder_embed_dim,
        decoder_depth=decoder_depth,
        decoder_num_heads=decoder_num_heads,
        drop_path_rate=drop_path_rate,
    )
    return CLMAE(
        rgb,
        mask_ratio=mask_ratio,
        depth=depth,
        num_heads=num_heads,
        gauss_weight=gauss_weight,
        kl_weight=kl_weight,
        diversity_weight=diversity_weight,
        fg_floor=fg_floor,
        norm_pix_loss=norm_pix_loss,
    )
