"""The view SAM: batched decoding equals SamPredictor, masks have the image's shape, checkpoints round-trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor
from segment_anything.modeling import MaskDecoder, TwoWayTransformer

from data_manifests import VIEW_CLASSES_TOYWORLD
from pipeline.segment.model import (
    ModelSpec,
    build_toy_sam,
    decode_batch,
    encode_images,
    load_segmenter,
    logits_to_masks,
    save_segmenter,
    widen_decoder_state,
)

from .helpers import random_image, tiny_segmenter, tiny_spec


def test_decoder_has_vehicle_plus_one_token_per_view_class():
    seg = tiny_segmenter()
    assert seg.sam.mask_decoder.num_mask_tokens == 1 + len(seg.view_classes)
    seg = tiny_segmenter(classes=VIEW_CLASSES_TOYWORLD)
    assert seg.sam.mask_decoder.num_mask_tokens == 7


def test_decode_batch_matches_mask_decoder_per_image():
    seg = tiny_segmenter()
    torch.manual_seed(1)
    with torch.no_grad():
        emb = torch.randn(3, 32, 8, 8)
        boxes = torch.tensor([[5.0, 6, 40, 50], [0, 0, 63, 63], [20, 10, 30, 60]])
        sparse, dense = seg.sam.prompt_encoder(points=None, boxes=boxes, masks=None)
        pe = seg.sam.prompt_encoder.get_dense_pe()
        batched, iou = decode_batch(seg.sam, emb, sparse, dense)
        for i in range(3):
            single, _ = seg.sam.mask_decoder(emb[i : i + 1], pe, sparse[i : i + 1], dense[i : i + 1], False)
            multi, multi_iou = seg.sam.mask_decoder(emb[i : i + 1], pe, sparse[i : i + 1], dense[i : i + 1], True)
            torch.testing.assert_close(batched[i, :1], single[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(batched[i, 1:], multi[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(iou[i, 1:], multi_iou[0], atol=1e-5, rtol=1e-5)
        # several prompts on one image through image_index
        two, _ = decode_batch(seg.sam, emb[:1], sparse[:2], dense[:2], torch.tensor([0, 0]))
        ref, _ = seg.sam.mask_decoder(emb[:1], pe, sparse[1:2], dense[1:2], True)
        torch.testing.assert_close(two[1, 1:], ref[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", [(64, 64), (48, 80), (90, 40)])
def test_predict_matches_sam_predictor_and_keeps_image_shape(shape):
    seg = tiny_segmenter(seed=3)
    rng = np.random.default_rng(0)
    images = [random_image(rng, *shape) for _ in range(3)]
    h, w = shape
    boxes = np.array([[2, 3, w - 5, h - 4], [w / 4, h / 4, w / 2, h / 2], [0, 0, w, h]], dtype=float)
    logits = seg.predict_logits(images, boxes, batch_size=2)
    predictor = SamPredictor(seg.sam)
    for image, box, got in zip(images, boxes, logits):
        assert got.shape == (1 + len(seg.view_classes), h, w)
        predictor.set_image(image)
        vehicle, _, _ = predictor.predict(box=box, multimask_output=False, return_logits=True)
        views, _, _ = predictor.predict(box=box, multimask_output=True, return_logits=True)
        np.testing.assert_allclose(got[0].numpy(), vehicle[0], atol=1e-4)
        np.testing.assert_allclose(got[1:].numpy(), views, atol=1e-4)
    vehicle_mask, labels = seg.predict(images[:1], boxes[:1])[0]
    assert vehicle_mask.shape == shape and vehicle_mask.dtype == bool
    assert labels.shape == shape and labels.dtype == np.int64


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # global attention in every block (the toy profile)
        {"depth": 3, "window_size": 3, "global_attn_indexes": (1,)},  # windows with padding (8x8 grid), one global
    ],
)
def test_fused_encoder_equals_the_stock_image_encoder(overrides):
    seg = tiny_segmenter(seed=1, **overrides)
    encoder = seg.sam.image_encoder
    with torch.no_grad():
        for block in encoder.blocks:  # SAM zero-initialises the relative positions; make them matter
            block.attn.rel_pos_h.normal_(std=0.5)
            block.attn.rel_pos_w.normal_(std=0.5)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = encoder(x)
        torch.testing.assert_close(encode_images(encoder, x), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(seg.encode(x), expected, rtol=1e-5, atol=1e-5)  # inference uses the fused path
    assert seg.encode(x).requires_grad  # with autograd on, the stock forward runs (training)


def test_predict_needs_one_box_per_image():
    seg = tiny_segmenter()
    with pytest.raises(ValueError, match="one box per image"):
        seg.predict([np.zeros((64, 64, 3), np.uint8)] * 2, np.zeros((1, 4)))
    with pytest.raises(ValueError, match="uint8 \\(H, W, 3\\)"):
        seg.predict([np.zeros((64, 64), np.uint8)], np.zeros((1, 4)))


def test_logits_to_masks_partitions_the_vehicle():
    # K = 3 classes (background, front, rear); token 0 vehicle.
    logits = torch.full((4, 2, 3), -5.0)
    logits[0, 0, :2] = 3.0  # vehicle = first two pixels of the top row
    logits[2, :, :] = 1.0  # front everywhere ...
    logits[3, 0, 1] = 2.0  # ... except rear at (0, 1)
    logits[1] = 10.0  # a strong background token must not override the vehicle mask
    vehicle, labels = logits_to_masks(logits)
    assert vehicle.tolist() == [[True, True, False], [False, False, False]]
    assert labels.tolist() == [[1, 2, 0], [0, 0, 0]]


def test_box_transform_aligns_with_resized_mask():
    seg = tiny_segmenter()
    image = np.zeros((100, 50, 3), np.uint8)
    box = seg.boxes_to_input(np.array([[10.0, 20.0, 40.0, 80.0]]), [(100, 50)])[0]
    # long side 100 -> 64: scale 0.64
    torch.testing.assert_close(box, torch.tensor([6.4, 12.8, 25.6, 51.2]))
    resized, size = seg.prepare_image(image)
    assert size == (64, 32) and resized.shape == (3, 64, 32)


def test_checkpoint_round_trip(tmp_path):
    seg = tiny_segmenter(seed=5)
    path = tmp_path / "m" / "sam.pt"
    sha = save_segmenter(path, seg, {"step": 3})
    loaded, sha2 = load_segmenter(path)
    assert sha == sha2 and loaded.view_classes == seg.view_classes and loaded.spec.img_size == 64
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    box = np.array([[4.0, 4, 50, 60]])
    torch.testing.assert_close(seg.predict_logits([image], box)[0], loaded.predict_logits([image], box)[0])


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="diffveri segment finetune"):
        load_segmenter(tmp_path / "nope.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable segmenter checkpoint"):
        load_segmenter(corrupt)
    raw = tmp_path / "raw_sam.pth"
    torch.save(tiny_segmenter().sam.state_dict(), raw)
    with pytest.raises(ValueError, match="base_checkpoint"):
        load_segmenter(raw)


def test_widen_decoder_state_from_original_sam_layout():
    # An "original" SAM decoder: 3 multimask outputs = 4 mask tokens.
    spec = tiny_spec()
    original = build_toy_sam(spec, num_views=3)
    state = {k: v for k, v in original.state_dict().items()}
    widened = widen_decoder_state(state, num_mask_tokens=6)
    target = build_toy_sam(spec, num_views=5)
    target.load_state_dict(widened)  # strict: every key and shape fits
    old_tokens = state["mask_decoder.mask_tokens.weight"]
    new_tokens = target.mask_decoder.mask_tokens.weight.detach()
    for new, old in enumerate([0, 1, 2, 3, 1, 2]):
        torch.testing.assert_close(new_tokens[new], old_tokens[old])
        torch.testing.assert_close(
            target.mask_decoder.output_hypernetworks_mlps[new].layers[0].weight.detach(),
            state[f"mask_decoder.output_hypernetworks_mlps.{old}.layers.0.weight"],
        )


def test_model_spec_rejects_unknown_kind():
    with pytest.raises(ValueError, match="vit_b"):
        ModelSpec(kind="vit_x")


def test_paper_kind_missing_weights_is_a_clear_error(tmp_path):
    from pipeline.segment.model import build_paper_sam

    with pytest.raises(FileNotFoundError, match="base_checkpoint"):
        build_paper_sam("vit_b", str(tmp_path / "sam_vit_b.pth"), 5)


def test_decoder_is_stock_segment_anything():
    seg = tiny_segmenter()
    assert type(seg.sam.mask_decoder) is MaskDecoder
    assert type(seg.sam.mask_decoder.transformer) is TwoWayTransformer
