"""The view segmenter: a Segment Anything model whose mask decoder has one output token per view class.

Design (see ``docs/segment.md``): SAM's ``MaskDecoder`` already has ``num_multimask_outputs + 1`` mask tokens, where
token 0 is the single-mask output and tokens ``1..`` are the multimask outputs. We build it with
``num_multimask_outputs = len(view_classes)``, so

* token 0 -> the vehicle mask (what ``SamPredictor.predict(box, multimask_output=False)`` returns), and
* tokens ``1..K`` -> one logit map per view class, in ``view_classes`` order (``multimask_output=True``).

Nothing in ``segment_anything`` is patched: the model is a stock ``Sam`` built from ``ImageEncoderViT``,
``PromptEncoder``, ``MaskDecoder`` and ``TwoWayTransformer``, so ``SamPredictor`` works on it unchanged (the
benchmark compares against exactly that). :func:`decode_batch` runs the decoder's own sub-modules on a batch of
(image, prompt) pairs, which ``MaskDecoder.predict_masks`` cannot do (it assumes one image per call).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.build_sam import sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from segment_anything.modeling.image_encoder import Attention, get_rel_pos, window_partition, window_unpartition
from segment_anything.utils.transforms import ResizeLongestSide
from torch import nn

from data_manifests import atomic_write_bytes

from .config import KINDS, PAPER_KINDS, ModelSpec  # noqa: F401  (ModelSpec is part of this module's API)

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "diffveri-sam-view/1"


# ------------------------------------------------------------------------------------------------------- building
def build_toy_sam(spec: ModelSpec, num_views: int) -> Sam:
    """A small SAM from the real modules, randomly initialised (the toy profile cannot download weights)."""
    grid = spec.img_size // spec.patch_size
    encoder = ImageEncoderViT(
        img_size=spec.img_size,
        patch_size=spec.patch_size,
        embed_dim=spec.embed_dim,
        depth=spec.depth,
        num_heads=spec.num_heads,
        mlp_ratio=4.0,
        out_chans=spec.prompt_dim,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=spec.window_size,
        global_attn_indexes=spec.global_attn_indexes,
    )
    prompt = PromptEncoder(
        embed_dim=spec.prompt_dim,
        image_embedding_size=(grid, grid),
        input_image_size=(spec.img_size, spec.img_size),
        mask_in_chans=16,
    )
    decoder = _view_decoder(spec.prompt_dim, spec.decoder_depth, spec.decoder_mlp_dim, spec.decoder_heads,
                            spec.iou_head_hidden_dim, num_views)  # fmt: skip
    return Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder)


def _view_decoder(dim: int, depth: int, mlp_dim: int, heads: int, iou_hidden: int, num_views: int) -> MaskDecoder:
    return MaskDecoder(
        num_multimask_outputs=num_views,  # tokens: 0 = vehicle, 1..K = view classes
        transformer=TwoWayTransformer(depth=depth, embedding_dim=dim, mlp_dim=mlp_dim, num_heads=heads),
        transformer_dim=dim,
        iou_head_depth=3,
        iou_head_hidden_dim=iou_hidden,
    )


def build_paper_sam(kind: str, base_checkpoint: str | None, num_views: int) -> Sam:
    """SAM ViT-B/L/H from ``sam_model_registry``, its decoder widened to ``1 + num_views`` mask tokens.

    The original weights (4 mask tokens) are loaded with :func:`widen_decoder_state`: the vehicle token starts from
    SAM's single-mask token and each view token from one of SAM's multimask tokens, so fine-tuning starts from
    SAM's notion of "object" rather than from noise. ``base_checkpoint=None`` gives random weights (tests only).
    """
    if kind not in PAPER_KINDS:
        raise ValueError(f"paper SAM kind {kind!r} is not one of {PAPER_KINDS}")
    path = Path(base_checkpoint) if base_checkpoint is not None else None
    if path is not None and not path.is_file():  # fail before spending seconds building a ViT
        raise FileNotFoundError(
            f"SAM base checkpoint {path} does not exist; download sam_{kind}_*.pth from the segment-anything "
            "release page to this machine and set segment.model.base_checkpoint to its path"
        )
    sam = sam_model_registry[kind](checkpoint=None)
    old = sam.mask_decoder
    sam.mask_decoder = _view_decoder(
        old.transformer_dim, 2, 2048, 8, old.iou_prediction_head.layers[0].out_features, num_views
    )
    if path is not None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
            raise ValueError(f"{path} is not a loadable SAM state dict ({exc}); check the file") from exc
        sam.load_state_dict(widen_decoder_state(state, 1 + num_views))
    return sam


def widen_decoder_state(state: dict[str, torch.Tensor], num_mask_tokens: int) -> dict[str, torch.Tensor]:
    """Adapt an original SAM state dict (4 mask tokens) to a decoder with ``num_mask_tokens`` tokens.

    New token ``i`` copies old token ``0`` for ``i == 0`` and old token ``1 + (i - 1) % (old - 1)`` otherwise, for the
    token embedding, its hypernetwork MLP and its row of the IoU head's last layer.
    """
    prefix = "mask_decoder."
    old_tokens = state[prefix + "mask_tokens.weight"].shape[0]
    source = [0] + [1 + (i - 1) % (old_tokens - 1) for i in range(1, num_mask_tokens)]
    out = {k: v for k, v in state.items() if not k.startswith(prefix + "output_hypernetworks_mlps.")}
    out[prefix + "mask_tokens.weight"] = state[prefix + "mask_tokens.weight"][source].clone()
    for new, old in enumerate(source):
        for key, value in state.items():
            head = f"{prefix}output_hypernetworks_mlps.{old}."
            if key.startswith(head):
                out[f"{prefix}output_hypernetworks_mlps.{new}.{key[len(head) :]}"] = value.clone()
    last = max(
        int(k.split(".")[3]) for k in state if k.startswith(prefix + "iou_prediction_head.layers.")
    )  # index of the IoU head's last linear layer
    for suffix in ("weight", "bias"):
        key = f"{prefix}iou_prediction_head.layers.{last}.{suffix}"
        out[key] = state[key][source].clone()
    return out


# ------------------------------------------------------------------------------------------------------- encoding
def _attention(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """SAM's ``Attention.forward`` with one fused ``scaled_dot_product_attention`` call. ``x``: ``(B, H, W, C)``.

    SAM adds decomposed relative positions to the attention logits: ``q·R_h[qh, kh] + q·R_w[qw, kw]``. That is a dot
    product of ``[rel_h(q), rel_w(q)]`` with one-hot rows ``[e_kh, e_kw]`` of the key's position, so appending those
    to queries and keys gives the same logits from one matrix product, and the softmax and value product run in the
    fused kernel instead of over a materialised ``(B·heads, HW, HW)`` matrix. Values are zero-padded to the same
    width (the fused CPU kernel needs equal widths) and the padding is cut from the output.
    """
    b, h, w, _ = x.shape
    heads = attn.num_heads
    q, k, v = attn.qkv(x).reshape(b, h * w, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, HW, hd)
    dim = q.shape[-1]
    if attn.use_rel_pos:
        r_q = q.reshape(b, heads, h, w, dim)
        rel_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, get_rel_pos(h, h, attn.rel_pos_h)).reshape(b, heads, h * w, h)
        rel_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, get_rel_pos(w, w, attn.rel_pos_w)).reshape(b, heads, h * w, w)
        eye_h = torch.eye(h, dtype=q.dtype, device=q.device).repeat_interleave(w, 0)  # (HW, H): row of each key
        eye_w = torch.eye(w, dtype=q.dtype, device=q.device).repeat(h, 1)  # (HW, W): column of each key
        q = torch.cat([q * attn.scale, rel_h, rel_w], dim=-1)
        k = torch.cat([k, eye_h.expand(b, heads, -1, -1), eye_w.expand(b, heads, -1, -1)], dim=-1)
        out = F.scaled_dot_product_attention(q, k, F.pad(v, (0, h + w)), scale=1.0)[..., :dim]
    else:
        out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
    out = out.reshape(b, heads, h, w, dim).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
    return attn.proj(out)


def encode_images(encoder: ImageEncoderViT, x: torch.Tensor) -> torch.Tensor:
    """``ImageEncoderViT.forward`` with fused attention (:func:`_attention`): same modules and weights, same
    embeddings up to float rounding, about 1.7x faster on the toy encoder. ``(B, 3, S, S)`` -> ``(B, C, S/p, S/p)``.

    Used for inference only; training keeps the stock forward (autograd through SAM's own code path).
    """
    x = encoder.patch_embed(x)
    if encoder.pos_embed is not None:
        x = x + encoder.pos_embed
    for block in encoder.blocks:
        shortcut = x
        x = block.norm1(x)
        if block.window_size > 0:
            size = (x.shape[1], x.shape[2])
            x, pad_hw = window_partition(x, block.window_size)
        x = _attention(block.attn, x)
        if block.window_size > 0:
            x = window_unpartition(x, block.window_size, pad_hw, size)
        x = shortcut + x
        x = x + block.mlp(block.norm2(x))
    return encoder.neck(x.permute(0, 3, 1, 2))


# ------------------------------------------------------------------------------------------------------- decoding
def decode_batch(
    sam: Sam,
    image_embeddings: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
    image_index: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All mask tokens for P prompts over B images in one decoder pass.

    Mirrors ``MaskDecoder.predict_masks`` (same sub-modules, same order of operations) except that each prompt
    uses its own image embedding instead of one image repeated for every prompt.

    Args:
        image_embeddings: ``(B, C, h, w)`` image encoder output.
        sparse: ``(P, T, C)`` sparse prompt embeddings (a box is 2 tokens).
        dense: ``(P, C, h, w)`` dense prompt embeddings.
        image_index: ``(P,)`` image of each prompt; default ``arange(P)`` (one prompt per image).
    Returns:
        ``(P, 1 + K, 4h, 4w)`` low-resolution mask logits (token 0 vehicle, then the K view classes) and
        ``(P, 1 + K)`` IoU predictions.
    """
    decoder: MaskDecoder = sam.mask_decoder
    if image_index is None:
        image_index = torch.arange(sparse.shape[0], device=sparse.device)
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    output_tokens = output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1)
    tokens = torch.cat((output_tokens, sparse), dim=1)
    src = image_embeddings[image_index] + dense
    pos_src = sam.prompt_encoder.get_dense_pe().expand(src.shape[0], -1, -1, -1)
    b, c, h, w = src.shape
    hs, src = decoder.transformer(src, pos_src, tokens)
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1 : (1 + decoder.num_mask_tokens), :]
    src = src.transpose(1, 2).reshape(b, c, h, w)
    upscaled = decoder.output_upscaling(src)
    hyper_in = torch.stack(
        [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1
    )
    b, c, h, w = upscaled.shape
    masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
    return masks, decoder.iou_prediction_head(iou_token_out)


class ViewSegmenter(nn.Module):
    """A ``Sam`` plus the names of its view classes, with the image/box transforms SAM expects.

    ``view_classes[0]`` must be ``"background"``.
    """

    def __init__(self, sam: Sam, view_classes: tuple[str, ...], spec: ModelSpec) -> None:
        super().__init__()
        if not view_classes or view_classes[0] != "background":
            raise ValueError(f"view classes must start with 'background', got {view_classes}")
        if sam.mask_decoder.num_mask_tokens != 1 + len(view_classes):
            raise ValueError(
                f"the SAM mask decoder has {sam.mask_decoder.num_mask_tokens} mask tokens but {len(view_classes)} "
                "view classes need 1 + K (vehicle + one per class)"
            )
        self.sam = sam
        self.view_classes = tuple(view_classes)
        self.spec = spec
        self.transform = ResizeLongestSide(sam.image_encoder.img_size)

    @property
    def img_size(self) -> int:
        return int(self.sam.image_encoder.img_size)

    # ------------------------------------------------------------------------------------------- inputs
    def prepare_image(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """uint8 ``(H, W, 3)`` RGB -> resized uint8 tensor ``(3, h, w)`` (long side = img_size), exactly as
        ``SamPredictor.set_image`` resizes; also returns the resized size ``(h, w)``."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}")
        if max(image.shape[:2]) == self.img_size:  # ResizeLongestSide would return an exact copy (PIL same-size)
            resized = image
        else:
            resized = self.transform.apply_image(image)
        tensor = torch.tensor(resized).permute(2, 0, 1).contiguous()  # a copy: the input may be read-only
        return tensor, (resized.shape[0], resized.shape[1])

    def preprocess(self, images: list[torch.Tensor]) -> torch.Tensor:
        """Resized images ``[(3, h_i, w_i)]`` -> normalised, zero-padded batch ``(B, 3, S, S)``."""
        return torch.stack([self.sam.preprocess(x.to(self.sam.device, torch.float32)) for x in images])

    def boxes_to_input(self, boxes: np.ndarray | torch.Tensor, original_sizes: list[tuple[int, int]]) -> torch.Tensor:
        """Boxes ``(P, 4)`` xyxy in original pixels -> the encoder input frame, like ``SamPredictor``."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = [self.transform.apply_boxes(b[None], size)[0] for b, size in zip(boxes, original_sizes)]
        return torch.as_tensor(np.stack(out), dtype=torch.float32, device=self.sam.device)

    # ------------------------------------------------------------------------------------------- forward
    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` preprocessed -> image embeddings ``(B, C, S/p, S/p)``.

        Without autograd (inference) the fused-attention forward :func:`encode_images` runs; with it, the stock one.
        """
        if torch.is_grad_enabled():
            return self.sam.image_encoder(batch)
        return encode_images(self.sam.image_encoder, batch)

    def decode(
        self, embeddings: torch.Tensor, boxes: torch.Tensor, image_index: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings ``(B, C, h, w)`` and input-frame boxes ``(P, 4)`` -> logits ``(P, 1 + K, 4h, 4w)``, IoU."""
        sparse, dense = self.sam.prompt_encoder(points=None, boxes=boxes, masks=None)
        return decode_batch(self.sam, embeddings, sparse, dense, image_index)

    def forward(self, batch: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Training forward: ``(B, 3, S, S)`` and ``(B, 4)`` -> logits at input resolution ``(B, 1 + K, S, S)``."""
        low_res, _ = self.decode(self.encode(batch), boxes)
        return F.interpolate(low_res, (self.img_size, self.img_size), mode="bilinear", align_corners=False)

    @torch.no_grad()
    def predict(
        self, images: list[np.ndarray], boxes: np.ndarray, batch_size: int = 8
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Segment each image inside its box (one box per image), ``batch_size`` images per encoder pass.

        Args:
            images: uint8 ``(H_i, W_i, 3)`` RGB images.
            boxes: ``(N, 4)`` xyxy boxes in each image's pixels.
        Returns:
            per image ``(vehicle_mask (H, W) bool, view_labels (H, W) int64)``; labels index ``view_classes``;
            pixels outside the vehicle mask are 0 (background), inside they take the best non-background view.
        """
        out = []
        for logits in self.predict_logits(images, boxes, batch_size):
            out.append(logits_to_masks(logits))
        return out

    @torch.no_grad()
    def predict_logits(self, images: list[np.ndarray], boxes: np.ndarray, batch_size: int = 8) -> list[torch.Tensor]:
        """Like :meth:`predict`, returning the logits ``(1 + K, H, W)`` at each image's original size."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) != len(images):
            raise ValueError(f"predict needs one box per image, got {len(boxes)} boxes for {len(images)} images")
        results: list[torch.Tensor] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            prepared = [self.prepare_image(img) for img in chunk]
            sizes = [img.shape[:2] for img in chunk]
            batch = self.preprocess([p[0] for p in prepared])
            low_res, _ = self.decode(self.encode(batch), self.boxes_to_input(boxes[start : start + batch_size], sizes))
            results.extend(self.postprocess(low_res, [p[1] for p in prepared], sizes))
        return results

    def postprocess(
        self, low_res: torch.Tensor, input_sizes: list[tuple[int, int]], original_sizes: list[tuple[int, int]]
    ) -> list[torch.Tensor]:
        """``Sam.postprocess_masks`` for a batch: low-res logits ``(B, T, h, w)`` -> ``[(T, H_i, W_i)]``.

        Images sharing (input size, original size) are upscaled in one call; the second resize is skipped when it
        would be the identity (the original image already had the input size), which is exact for bilinear
        interpolation with ``align_corners=False``.
        """
        out: list[torch.Tensor | None] = [None] * low_res.shape[0]
        groups: dict[tuple[tuple[int, int], tuple[int, int]], list[int]] = {}
        for i, key in enumerate(zip(input_sizes, original_sizes)):
            groups.setdefault((tuple(key[0]), tuple(key[1])), []).append(i)
        s = self.img_size
        for (input_size, original_size), index in groups.items():
            masks = F.interpolate(low_res[index], (s, s), mode="bilinear", align_corners=False)
            masks = masks[..., : input_size[0], : input_size[1]]
            if tuple(masks.shape[-2:]) != tuple(original_size):
                masks = F.interpolate(masks, original_size, mode="bilinear", align_corners=False)
            for j, i in enumerate(index):
                out[i] = masks[j].cpu()
        return out  # type: ignore[return-value]


def logits_to_masks(logits: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``(1 + K, H, W)`` -> vehicle mask ``(H, W)`` bool and view label map ``(H, W)`` int64.

    The vehicle mask is token 0 > 0 (SAM's threshold). Inside it each pixel takes the arg-max of the non-background
    view logits, so the view masks partition the vehicle mask exactly; outside it the label is 0 (background).
    """
    vehicle = logits[0] > Sam.mask_threshold
    views = logits[2:].argmax(dim=0) + 1
    labels = torch.where(vehicle, views, torch.zeros_like(views))
    return vehicle.numpy(), labels.numpy().astype(np.int64)


# ---------------------------------------------------------------------------------------------------- checkpoints
def build_segmenter(spec: ModelSpec, view_classes: tuple[str, ...]) -> ViewSegmenter:
    """A fresh segmenter for fine-tuning: toy (random) or paper (SAM weights from ``spec.base_checkpoint``)."""
    num_views = len(view_classes)
    if spec.kind == "toy":
        sam = build_toy_sam(spec, num_views)
    else:
        sam = build_paper_sam(spec.kind, spec.base_checkpoint, num_views)
    return ViewSegmenter(sam, view_classes, spec)


def model_bytes(segmenter: ViewSegmenter, extra: dict[str, Any] | None = None) -> bytes:
    """Serialise weights + architecture + view classes (what inference needs) to bytes."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "spec": dataclasses.asdict(segmenter.spec),
        "view_classes": list(segmenter.view_classes),
        "model": segmenter.sam.state_dict(),
        "extra": extra or {},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_segmenter(path: Path, segmenter: ViewSegmenter, extra: dict[str, Any] | None = None) -> str:
    """Atomically write the inference checkpoint; returns its sha256 (the ``segmenter_ref`` suffix)."""
    data = model_bytes(segmenter, extra)
    atomic_write_bytes(Path(path), data)
    return hashlib.sha256(data).hexdigest()


def load_segmenter(path: str | Path, device: str = "cpu") -> tuple[ViewSegmenter, str]:
    """Load a checkpoint written by :func:`save_segmenter`; returns the model (eval mode) and its sha256."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"segmenter checkpoint {path} does not exist; run `diffveri segment finetune --config C --root R` "
            "first or set segment.checkpoint to an existing file"
        )
    data = path.read_bytes()
    try:
        payload = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a corrupt file
        raise ValueError(
            f"{path} is not a readable segmenter checkpoint ({type(exc).__name__}: {exc}); "
            "re-run `diffveri segment finetune` to rewrite it"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is not a checkpoint written by `diffveri segment finetune` (format "
            f"{payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r}, expected "
            f"{CHECKPOINT_FORMAT!r}); an original SAM .pth belongs in segment.model.base_checkpoint"
        )
    spec = ModelSpec(**{**payload["spec"], "base_checkpoint": None})
    view_classes = tuple(payload["view_classes"])
    num_views = len(view_classes)
    sam = build_toy_sam(spec, num_views) if spec.kind == "toy" else build_paper_sam(spec.kind, None, num_views)
    sam.load_state_dict(payload["model"])
    segmenter = ViewSegmenter(sam, view_classes, spec).to(device).eval()
    return segmenter, hashlib.sha256(data).hexdigest()
