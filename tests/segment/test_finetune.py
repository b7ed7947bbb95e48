"""Fine-tuning: the loss halves when overfitting a few images; augmentation keeps annotations true; resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data_manifests import VIEW_CLASSES_PVEN, VIEW_CLASSES_TOYWORLD
from pipeline.segment.data import load_annotated
from pipeline.segment.finetune import (
    IGNORE,
    Prepared,
    augment,
    finetune,
    photometric,
    prepare,
    random_affine,
    segmentation_loss,
    train_step,
)
from pipeline.segment.model import load_segmenter

from .helpers import annotated_root, tiny_segmenter, tiny_spec


def test_overfitting_a_handful_of_images_halves_the_loss(tmp_path):
    annotated_root(tmp_path, identities=2, images=2)
    seg = tiny_segmenter(seed=0)
    items = [prepare(seg, a) for a in load_annotated(tmp_path)]
    assert len(items) == 4
    optimizer = torch.optim.AdamW(seg.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = [train_step(seg, optimizer, items, gen, box_jitter=0.0, hflip=False)["loss"] for _ in range(30)]
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) <= 0.5 * losses[0], (losses[0], losses[-5:])


def test_prepared_masks_align_with_boxes(tmp_path):
    annotated_root(tmp_path, identities=2, images=2, size=96)  # 96 px -> resized to the 64 px input frame
    seg = tiny_segmenter()
    for item in load_annotated(tmp_path):
        p = prepare(seg, item)
        assert p.image.shape == (3, 64, 64) and p.labels.shape == (64, 64)
        ys, xs = np.nonzero(p.vehicle.numpy())
        x1, y1, x2, y2 = p.box.tolist()
        # the box of the resized mask matches the transformed prompt box within a pixel of rounding
        assert abs(xs.min() - x1) <= 1.5 and abs(ys.min() - y1) <= 1.5
        assert abs(xs.max() + 1 - x2) <= 1.5 and abs(ys.max() + 1 - y2) <= 1.5
        assert set(np.unique(p.labels.numpy())) <= set(range(len(VIEW_CLASSES_PVEN)))


def test_flip_swaps_left_and_right_and_mirrors_the_box():
    classes = VIEW_CLASSES_TOYWORLD  # left = 3, right = 4
    labels = torch.full((8, 8), IGNORE)
    labels[:4, :6] = 0
    labels[1, 0] = 3
    labels[2, 5] = 4
    vehicle = (labels > 0).float()
    p = Prepared(torch.zeros(3, 8, 8, dtype=torch.uint8), labels, vehicle, torch.tensor([0.0, 1, 2, 3]), (4, 6))
    gen = torch.Generator().manual_seed(0)
    flipped = None
    for _ in range(20):  # flips are random; find one
        images, lab, veh, boxes, _ = augment([p], classes, 0.0, True, gen)
        if not torch.equal(lab[0], labels):
            flipped = (lab[0], veh[0], boxes[0])
            break
    assert flipped is not None
    lab, veh, box = flipped
    assert lab[1, 5] == 4 and lab[2, 0] == 3  # mirrored and swapped
    assert (lab[4:] == IGNORE).all() and (lab[:, 6:] == IGNORE).all()  # padding untouched
    assert box.tolist() == [4.0, 1.0, 6.0, 3.0]
    assert torch.equal(veh, (lab > 0).float())


def test_box_jitter_keeps_boxes_valid():
    labels = torch.zeros(32, 32, dtype=torch.int64)
    p = Prepared(torch.zeros(3, 32, 32, dtype=torch.uint8), labels, labels.float(), torch.tensor([1.0, 2, 30, 31]),
                 (32, 32))  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    _, _, _, boxes, _ = augment([p] * 64, VIEW_CLASSES_PVEN, 0.3, False, gen)
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert (boxes >= 0).all() and (boxes <= 32).all()
    assert not torch.equal(boxes[0], boxes[1])


def test_random_affine_moves_image_masks_and_box_together():
    """A bright rectangle, its labels and its box: after zoom + shift the box still bounds the mask and the image."""
    size = 32
    x = torch.zeros(4, 3, size, size)
    labels = torch.zeros(4, size, size, dtype=torch.int64)
    labels[:, 24:, :] = IGNORE  # padding rows
    x[:, :, 8:16, 6:20] = 1.0
    labels[:, 8:16, 6:20] = 2
    vehicle = (labels > 0).float()
    boxes = torch.tensor([[6.0, 8, 20, 16]]).repeat(4, 1)
    gen = torch.Generator().manual_seed(0)
    same = random_affine(x, labels, vehicle, boxes, 0.0, 0.0, gen)
    assert torch.equal(same[1], labels) and torch.equal(same[2], vehicle) and torch.equal(same[3], boxes)
    torch.testing.assert_close(same[0], x)
    x2, lab2, veh2, box2 = random_affine(x, labels, vehicle, boxes, 0.3, 0.15, gen)
    assert not torch.equal(lab2, labels)
    for i in range(4):
        ys, xs = torch.nonzero(veh2[i] > 0, as_tuple=True)
        assert torch.equal(veh2[i], (lab2[i] > 0).float())
        bounds = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
        assert (bounds - box2[i]).abs().max() <= 1.0, (bounds, box2[i])
        assert (x2[i, 0][veh2[i] > 0] > 0.4).all()  # the image moved with the mask
    assert set(torch.unique(lab2).tolist()) <= {IGNORE, 0, 2}
    assert (lab2 == IGNORE).any()  # padding and pixels from outside the source stay ignored


def test_photometric_jitter_keeps_the_range_and_varies_images():
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    out = photometric(images, 0.3, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 255
    assert not torch.allclose(out, images.float())
    torch.testing.assert_close(photometric(images, 0.0, torch.Generator()), images.float())


def test_loss_prefers_the_right_answer():
    labels = torch.randint(0, 5, (2, 16, 16))
    labels[:, :2] = IGNORE
    vehicle = (labels > 0).float()
    good = torch.full((2, 6, 16, 16), -8.0)
    good[:, 0] = torch.where(vehicle > 0, 8.0, -8.0)
    good[:, 1:] = torch.nn.functional.one_hot(labels.clamp(min=0), 5).permute(0, 3, 1, 2) * 16 - 8
    bad = torch.randn(2, 6, 16, 16)
    good_loss, _ = segmentation_loss(good, labels, vehicle)
    bad_loss, _ = segmentation_loss(bad, labels, vehicle)
    assert good_loss < 0.05 < bad_loss


def test_finetune_writes_checkpoints_and_resumes(tmp_path):
    annotated_root(tmp_path, identities=4, images=2)
    out = tmp_path / "run"
    kwargs = dict(
        root=tmp_path, view_classes=VIEW_CLASSES_PVEN, model=tiny_spec(), checkpoint=out / "sam.pt", out_dir=out,
        batch_size=2, eval_every=2, checkpoint_every=2, val_fraction=0.25, train_image_encoder=True,
    )  # fmt: skip
    first = finetune(steps=2, **kwargs)
    last = out / "checkpoints" / "checkpoint-last.pt"
    assert first.steps == 2 and last.is_file() and (out / "result.json").is_file()
    assert first.val is not None and set(first.val["iou"]) == set(VIEW_CLASSES_PVEN)
    state = torch.load(last, weights_only=False)
    assert state["step"] == 2
    second = finetune(steps=4, **kwargs)  # resumes at step 2, runs 2 more
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert second.steps == 4
    model, sha = load_segmenter(out / "sam.pt")
    assert sha == second.sha256 and model.view_classes == VIEW_CLASSES_PVEN
    # a checkpoint trained with other settings is refused, naming them; resume=False (--no-resume) starts over
    with pytest.raises(ValueError, match=r"lr: .*--no-resume"):
        finetune(steps=4, **{**kwargs, "lr": 1e-3})
    assert finetune(steps=2, resume=False, **{**kwargs, "lr": 1e-3}).steps == 2
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [2]
