"""CMAE: Contrastive Masked Autoencoders (Huang et al., "Contrastive Masked Autoencoders are Stronger Vision
Learners", TPAMI 2023), a baseline mode of ``vehiclemae train`` (``method.mode: cmae``).

Online branch: the encoder sees the visible patches of the image; a pixel decoder reconstructs the masked patches (the
MAE loss, body-weighted as in every mode) and a light *feature decoder* predicts every patch's feature from the same
latent. Target branch: a momentum (EMA) copy of the encoder sees the *whole* image of a pixel-shifted (and colour
augmented) view, without final norm. The mean of the feature decoder's tokens, projected and passed through a
predictor, is contrasted (InfoNCE, temperature ``t``, other images of the global batch as negatives) with the target's
mean patch token through the EMA projector; the loss is ``2 t · CE`` (MoCo v3's scale) times ``contrast_weight``.

Shapes: images ``(N, 3, H, W)``, ``L`` patches, ``keep (N, K)`` visible indices, encoder width ``D``, projection
width ``P``.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from ..losses import patch_weights, rgb_per_patch, weighted_masked_mean
from ..masking import keep_to_mask
from .mae import MaskedAutoencoder, build_branch, patchify
from .pos_embed import sincos_2d


def cmae_momentum(progress: float, base: float, end: float) -> float:
    """EMA momentum at training ``progress`` in [0, 1]: cosine from ``base`` (start) to ``end`` (BYOL's rule, the
    reference's ``MomentumUpdateHook``): ``end - (end - base) * (cos(pi * progress) + 1) / 2``."""
    progress = min(max(progress, 0.0), 1.0)
    return end - (end - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


def encode_full(encoder: VisionTransformer, imgs: torch.Tensor, final_norm: bool = True) -> torch.Tensor:
    """A timm ViT on every patch: ``(N, 3, H, W)`` -> ``(N, 1 + L, D)`` (class token first); ``final_norm=False``
    skips the last LayerNorm (CMAE's target encoder)."""
    pos = encoder.pos_embed
    x = encoder.patch_embed(imgs) + pos[:, 1:]
    cls = (encoder.cls_token + pos[:, :1]).expand(x.shape[0], -1, -1)
    x = encoder.blocks(encoder.norm_pre(torch.cat([cls, x], dim=1)))
    return encoder.norm(x) if final_norm else x


class ProjectionMLP(nn.Module):
    """``Linear -> BatchNorm -> ReLU -> Linear`` (the reference's 2-layer neck, no last BN): ``(N, C) -> (N, P)``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FeatureDecoder(nn.Module):
    """MAE-style decoder predicting the encoder feature of every patch: latent ``(N, 1 + K, D)`` -> ``(N, L, D)``."""

    def __init__(self, dim: int, grid: int, width: int, depth: int, num_heads: int) -> None:
        super().__init__()
        self.num_patches = grid * grid
        self.embed = nn.Linear(dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.register_buffer("pos_embed", sincos_2d(width, grid), persistent=False)
        self.blocks = nn.Sequential(*[Block(width, num_heads, 4.0, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.pred = nn.Linear(width, dim)
        nn.init.normal_(self.mask_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, latent: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        x = self.embed(latent)
        n, _, d = x.shape
        full = self.mask_token.to(x.dtype).expand(n, self.num_patches, d)
        full = full.scatter(1, keep[..., None].expand(-1, -1, d), x[:, 1:])
        x = torch.cat([x[:, :1], full], dim=1) + self.pos_embed.to(x.dtype)
        return self.pred(self.norm(self.blocks(x))[:, 1:])


def _gather_all(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``x`` of every process concatenated (no gradient) and this process's offset in it (DDP negatives)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return x, 0
    world = torch.distributed.get_world_size()
    if world == 1:
        return x, 0
    parts = [torch.empty_like(x) for _ in range(world)]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts), torch.distributed.get_rank() * x.shape[0]


class CMAE(nn.Module):
    """The CMAE pre-training model. ``rgb`` is the online MAE (encoder + pixel decoder); ``view`` is ``None`` (the
    attribute exists so that export, the collapse probe and encoder initialisation treat every mode alike)."""

    def __init__(
        self,
        rgb: MaskedAutoencoder,
        *,
        decoder_embed_dim: int,
        decoder_num_heads: int,
        feature_depth: int = 2,
        proj_dim: int = 256,
        temperature: float = 0.07,
        contrast_weight: float = 1.0,
        fg_floor: float = 0.1,
        norm_pix_loss: bool = True,
    ) -> None:
        super().__init__()
        if rgb.target != "rgb":
            raise ValueError("CMAE's online MAE must reconstruct rgb")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.rgb, self.view = rgb, None
        self.mode = "cmae"
        self.fg_floor, self.norm_pix_loss = fg_floor, norm_pix_loss
        self.temperature, self.contrast_weight = temperature, contrast_weight
        dim = rgb.encoder.embed_dim
        self.feature_decoder = FeatureDecoder(dim, rgb.grid, decoder_embed_dim, feature_depth, decoder_num_heads)
        self.projector = ProjectionMLP(dim, 2 * dim, proj_dim)
        self.predictor = ProjectionMLP(proj_dim, 2 * dim, proj_dim)
        # The target branch: EMA copies, never optimised (no gradient; see momentum_update).
        self.target_encoder = copy.deepcopy(rgb.encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    @property
    def patch_size(self) -> int:
        return self.rgb.patch_size

    @property
    def num_patches(self) -> int:
        return self.rgb.num_patches

    def train(self, mode: bool = True) -> CMAE:
        # The target encoder never uses drop-path; the target projector keeps batch statistics (as the reference).
        super().train(mode)
        self.target_encoder.eval()
        return self

    def _pairs(self) -> list[tuple[nn.Parameter, nn.Parameter]]:
        return [
            *zip(self.target_encoder.parameters(), self.rgb.encoder.parameters(), strict=True),
            *zip(self.target_projector.parameters(), self.projector.parameters(), strict=True),
        ]

    @torch.no_grad()
    def reset_target(self) -> None:
        """Target := online (start of training, after the encoder's weights are loaded)."""
        for target, online in self._pairs():
            target.copy_(online)

    @torch.no_grad()
    def momentum_update(self, momentum: float) -> None:
        """``target <- momentum * target + (1 - momentum) * online`` for the encoder and the projector."""
        for target, online in self._pairs():
            target.mul_(momentum).add_(online.detach() * (1.0 - momentum))

    @torch.no_grad()
    def target_projection(self, image_t: torch.Tensor) -> torch.Tensor:
        """The target branch: mean patch token of the whole shifted view (no final norm), EMA projector, unit norm:
        ``(N, 3, H, W)`` -> ``(N, P)``."""
        tokens = encode_full(self.target_encoder, image_t, final_norm=False)[:, 1:]
        return F.normalize(self.target_projector(tokens.mean(dim=1)).float(), dim=-1)

    def contrastive_loss(self, latent: torch.Tensor, keep: torch.Tensor, image_t: torch.Tensor) -> torch.Tensor:
        """InfoNCE between the online prediction ``(N, P)`` and the target projections of the global batch."""
        features = self.feature_decoder(latent, keep)  # (N, L, D)
        query = F.normalize(self.predictor(self.projector(features.mean(dim=1))).float(), dim=-1)
        keys, offset = _gather_all(self.target_projection(image_t))
        logits = query @ keys.T / self.temperature
        labels = torch.arange(query.shape[0], device=query.device) + offset
        return 2.0 * self.temperature * F.cross_entropy(logits, labels)

    def forward(
        self,
        imgs: torch.Tensor,
        labels: torch.Tensor,
        fg: torch.Tensor,
        keep_a: torch.Tensor,
        keep_b: torch.Tensor | None = None,
        *,
        image_t: torch.Tensor | None = None,
        teachers: nn.Module | None = None,
        ppmd_weight: float = 0.0,
        ppmd_same_weight: float = 0.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One step's loss. ``imgs (N, 3, H, W)`` online view, ``fg (N, H, W)`` its foreground, ``keep_a (N, K)`` its
        visible patches, ``image_t (N, 3, H, W)`` the shifted target view (``None``: reconstruction only, e.g. for
        ``viz-recon``). ``labels``/``keep_b`` are unused; PPMD arguments are accepted for the engine's common call
        and must stay unset. Returns ``(loss, parts)`` with ``loss_rgb``, ``loss_contrast`` and ``pred_rgb``."""
        if teachers is not None:
            raise ValueError("mode cmae has no PPMD teachers")
        p = self.patch_size
        weight = patch_weights(patchify(fg.float(), p).mean(-1), self.fg_floor)  # (N, L)
        # 1. Online reconstruction of the masked patches (the MAE loss).
        latent = self.rgb.encode(imgs, keep_a)
        pred = self.rgb.decode(latent, keep_a)
        per_patch = rgb_per_patch(pred, patchify(imgs, p), self.norm_pix_loss)
        loss = weighted_masked_mean(per_patch, keep_to_mask(keep_a, self.num_patches), weight)
        parts = {"loss_rgb": loss.detach(), "pred_rgb": pred.detach()}
        if image_t is None:
            return loss, parts
        # 2. Contrast the online feature-decoder prediction with the EMA target of the shifted view.
        contrast = self.contrastive_loss(latent, keep_a, image_t)
        parts["loss_contrast"] = contrast.detach()
        return loss + self.contrast_weight * contrast, parts


def build_cmae(
    *,
    encoder_name: str,
    img_size: int,
    decoder_embed_dim: int,
    decoder_depth: int,
    decoder_num_heads: int,
    fg_floor: float,
    norm_pix_loss: bool = True,
    drop_path_rate: float = 0.0,
    feature_depth: int = 2,
    proj_dim: int = 256,
    temperature: float = 0.07,
    contrast_weight: float = 1.0,
) -> CMAE:
    """A CMAE with a freshly initialised timm encoder; the target starts as a copy of the online branch."""
    rgb = build_branch(
        encoder_name,
        img_size,
        decoder_embed_dim=decoder_embed_dim,
        decoder_depth=decoder_depth,
        decoder_num_heads=decoder_num_heads,
        drop_path_rate=drop_path_rate,
    )
    return CMAE(
        rgb,
        decoder_embed_dim=decoder_embed_dim,
        decoder_num_heads=decoder_num_heads,
        feature_depth=feature_depth,
        proj_dim=proj_dim,
        temperature=temperature,
        contrast_weight=contrast_weight,
        fg_floor=fg_floor,
        norm_pix_loss=norm_pix_loss,
    )
