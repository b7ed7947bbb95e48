"""One masked autoencoder: a timm ViT encoder that sees the visible patches, and a light decoder.

``target="rgb"`` reconstructs (per-patch normalised) pixels; ``target="view"`` predicts the view class of every pixel
of every patch (logits over ``num_view_classes``). Both branches of VMIM are this class (homogeneous MAEs).

Shapes: images ``(N, 3, H, W)``, ``L = (H / p) * (W / p)`` patches, ``keep`` ``(N, K)`` visible patch indices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from .pos_embed import sincos_2d

TARGETS = ("rgb", "view")


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, L, p*p*C)``; ``(N, H, W)`` -> ``(N, L, p*p)``.

    Patches are in row-major order, each flattened as ``(p, p, C)`` (channels fastest), as in MAE.
    """
    squeeze = x.dim() == 3
    if squeeze:
        x = x[:, None]
    n, c, h, w = x.shape
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {p}")
    x = x.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(n, (h // p) * (w // p), p * p * c) if not squeeze else x.reshape(n, (h // p) * (w // p), p * p)


def unpatchify(x: torch.Tensor, p: int, channels: int = 3) -> torch.Tensor:
    """Inverse of :func:`patchify` for square images: ``(N, L, p*p*C)`` -> ``(N, C, H, W)``."""
    n, length, _ = x.shape
    g = int(round(length**0.5))
    if g * g != length:
        raise ValueError(f"unpatchify expects a square grid of patches, got {length}")
    x = x.reshape(n, g, g, p, p, channels).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(n, channels, g * p, g * p)


def gather_tokens(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``x (N, L, D)``, ``keep (N, K)`` -> ``(N, K, D)``."""
    return torch.gather(x, 1, keep[..., None].expand(-1, -1, x.shape[-1]))


def _embed_visible(patch_embed: nn.Module, imgs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Patch embeddings of the visible patches only: ``(N, 3, H, W)``, ``(N, K)`` -> ``(N, K, D)``.

    timm's ``PatchEmbed`` is a stride-``p`` convolution, i.e. one linear map per patch; applying it to the ``K``
    gathered patches instead of all ``L`` saves ``1 - K / L`` of its cost (75 % at MAE's mask ratio) in every
    student and teacher pass. Other patch embeddings (with padding, norms before the projection ...) fall back to
    embedding every patch and gathering.
    """
    proj = getattr(patch_embed, "proj", None)
    plain = (
        isinstance(proj, nn.Conv2d)
        and proj.kernel_size == proj.stride
        and proj.padding == (0, 0)
        and proj.groups == 1
        and getattr(patch_embed, "flatten", False)
        and not getattr(patch_embed, "dynamic_img_pad", False)
        and not getattr(patch_embed, "dynamic_img_size", False)
        and tuple(imgs.shape[-2:]) == tuple(patch_embed.img_size)
    )
    if not plain:
        return gather_tokens(patch_embed(imgs), keep)
    # patchify flattens each patch as (p, p, C); the convolution weight (D, C, p, p) is reordered to match.
    weight = proj.weight.permute(0, 2, 3, 1).reshape(proj.out_channels, -1)
    x = F.linear(gather_tokens(patchify(imgs, proj.kernel_size[0]), keep), weight, proj.bias)
    return patch_embed.norm(x)


def encode_visible(encoder: VisionTransformer, imgs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Run a timm ViT on the visible patches only: ``(N, 3, H, W)``, ``(N, K)`` -> ``(N, 1 + K, D)`` (class first).

    Mirrors ``VisionTransformer.forward_features`` with the patch selection inserted after the position embedding.
    """
    if encoder.cls_token is None or getattr(encoder, "no_embed_class", False) or encoder.reg_token is not None:
        raise ValueError("encode_visible expects a ViT with a class token, class pos-embed and no register tokens")
    pos = encoder.pos_embed  # (1, 1 + L, D)
    x = _embed_visible(encoder.patch_embed, imgs, keep) + gather_tokens(pos[:, 1:].expand(len(keep), -1, -1), keep)
    cls = (encoder.cls_token + pos[:, :1]).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1)
    x = encoder.norm_pre(x)
    x = encoder.blocks(x)
    return encoder.norm(x)


class MaskedAutoencoder(nn.Module):
    """Encoder + decoder. ``forward(imgs, keep) -> pred (N, L, out_dim)`` where ``out_dim = p*p*3`` (rgb) or
    ``p*p*num_view_classes`` (view)."""

    def __init__(
        self,
        encoder: VisionTransformer,
        *,
        target: str = "rgb",
        num_view_classes: int = 5,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        fix_pos_embed: bool = True,
    ) -> None:
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; valid: {TARGETS}")
        self.encoder = encoder
        self.target = target
        self.num_view_classes = num_view_classes
        self.patch_size = int(encoder.patch_embed.patch_size[0])
        grid = encoder.patch_embed.grid_size
        if grid[0] != grid[1]:
            raise ValueError(f"square images only, got a {grid} patch grid")
        self.grid = int(grid[0])
        self.num_patches = self.grid * self.grid
        dim = encoder.embed_dim
        if fix_pos_embed:
            # MAE: fixed sin-cos position embedding (kept in the exported weights; fine-tuning may train it).
            encoder.pos_embed.data.copy_(sincos_2d(dim, self.grid))
            encoder.pos_embed.requires_grad_(False)
        self.decoder_embed = nn.Linear(dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.register_buffer("decoder_pos_embed", sincos_2d(decoder_embed_dim, self.grid), persistent=False)
        self.decoder_blocks = nn.Sequential(
            *[Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True) for _ in range(decoder_depth)]
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim)
        out_channels = 3 if target == "rgb" else num_view_classes
        self.out_channels = out_channels
        self.decoder_pred = nn.Linear(decoder_embed_dim, self.patch_size**2 * out_channels)
        nn.init.normal_(self.mask_token, std=0.02)
        for module in [self.decoder_embed, self.decoder_pred, *self.decoder_blocks.modules(), self.decoder_norm]:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def encode(self, imgs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)``, ``(N, K)`` -> latent ``(N, 1 + K, D)``."""
        return encode_visible(self.encoder, imgs, keep)

    def decode_tokens(self, latent: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Latent ``(N, 1 + K, D)`` -> the decoder's normalised patch tokens ``(N, L, Dd)`` (before the prediction
        layer): visible patches carry their latent, the others a mask token that attended to them."""
        x = self.decoder_embed(latent)
        n, _, d = x.shape
        full = self.mask_token.to(x.dtype).expand(n, self.num_patches, d)
        full = full.scatter(1, keep[..., None].expand(-1, -1, d), x[:, 1:])
        x = torch.cat([x[:, :1], full], dim=1) + self.decoder_pos_embed.to(x.dtype)
        return self.decoder_norm(self.decoder_blocks(x))[:, 1:]

    def decode(self, latent: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Latent ``(N, 1 + K, D)`` -> prediction for every patch ``(N, L, p*p*C)``."""
        return self.decoder_pred(self.decode_tokens(latent, keep))

    def forward(self, imgs: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(pred (N, L, p*p*C), latent (N, 1 + K, D))``; :meth:`forward_tokens` also the decoder tokens."""
        pred, latent, _ = self.forward_tokens(imgs, keep)
        return pred, latent

    def forward_tokens(self, imgs: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(pred (N, L, p*p*C), latent (N, 1 + K, D), decoder tokens (N, L, Dd))``."""
        latent = self.encode(imgs, keep)
        tokens = self.decode_tokens(latent, keep)
        return self.decoder_pred(tokens), latent, tokens


def build_branch(
    encoder_name: str,
    img_size: int,
    *,
    target: str = "rgb",
    num_view_classes: int = 5,
    decoder_embed_dim: int,
    decoder_depth: int,
    decoder_num_heads: int,
    drop_path_rate: float = 0.0,
) -> MaskedAutoencoder:
    """One MAE branch with a freshly initialised timm encoder (``vehiclemae.models.vit``), the building block of every
    pre-training mode (mae / vmim / vehiclemae branches, CMAE's online branch, CL-MAE's MAE)."""
    from .vit import create_encoder

    encoder = create_encoder(encoder_name, img_size, drop_path_rate=drop_path_rate)
    return MaskedAutoencoder(
        encoder,
        target=target,
        num_view_classes=num_view_classes,
        decoder_embed_dim=decoder_embed_dim,
        decoder_depth=decoder_depth,
        decoder_num_heads=decoder_num_heads,
    )
