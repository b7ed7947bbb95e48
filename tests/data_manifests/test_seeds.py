"""data_manifests.seeds: one stream per (seed, purpose, parts); registered streams keep their old numbers."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest
import torch

from data_manifests import seeds
from data_manifests.seeds import LEGACY, Linear, Tag, Unnamed, derive_seed, rng, torch_generator

M = 0xFFFFFFFF


def _old_hash(*parts: object) -> int:
    """pipeline.generate.common.derive_seed before it moved here."""
    return int(hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


# purpose -> (parts, the expression the stream had before it was named): numpy entropy, or an integer seed.
OLD = {
    "toyworld.identity.twins": ((5,), lambda s, p: [s & M, p, 0]),
    "toyworld.identity.pair": ((5,), lambda s, p: [s & M, p, 1]),
    "toyworld.identity.marks": ((11,), lambda s, i: [s & M, i, 2]),
    "toyworld.view_order": ((11, 2), lambda s, i, c: [s & M, i, c, 3]),
    "toyworld.instance_cameras": ((11,), lambda s, i: [s & M, i, 4]),
    "toyworld.image": ((11, 3), lambda s, i, j: [s & M, i, j, 5]),
    "toyworld.query_gallery": ((), lambda s: [s & M, 6]),
    "toyworld.render": ((11, 123456), lambda s, i, t: [int(s) & M, i, t & M, 7]),
    "toyworld.detection_scene": ((4,), lambda s, k: [s & M, k, 8]),
    "toyworld.train_families": ((), lambda s: [s & M, 9]),
    "toyworld.image_camera": ((11, 3), lambda s, i, j: [s & M, i, j, 12]),
    "toyworld.family.body": ((3, 2), lambda s, f, k: [s & M, f, k, 20]),
    "toyworld.family.cue_order": ((3, 2, 1), lambda s, f, k, c: [s & M, f, k, 21, c]),
    "toyworld.family.cue_tone": ((7, 2, 1), lambda s, i, k, c: [s & M, i, k, 22, c]),
    "toyworld.noise_bank": ((), lambda s: s),
    "toyworld.contact_sheet": ((2, 5), lambda s, r, c: s + r * 31 + c),  # the sheet passes seed 0
    "generate.image": (("v0001", "front", 2), lambda s, i, v, n: _old_hash(s, i, v, n)),
    "generate.camera": ((), lambda s: [s, 1]),
    "generate.subjects": ((), lambda s: s),
    "assemble.splits": ((), lambda s: s),
    "review.audit": ((), lambda s: [s, 0xA0D17]),
    "review.sample": ((), lambda s: s),
    "review.guide_images": ((), lambda s: s),
    "toyworld.synthetic.cameras": ((), lambda s: s),
    "toyworld.synthetic.camera": ((4,), lambda s, i: [s, i, 1]),
    "toyworld.synthetic.render": ((4, 2), lambda s, i, k: s * 100003 + i * 101 + k),
    "toyworld.boxes.vehicle": ((4,), lambda s, i: [s, i]),
    "toyworld.boxes.render": ((), lambda s: s),
    "segment.annotation_sample": ((), lambda s: s),
    "segment.split": ((), lambda s: s),
    "segment.evaluate.samples": ((), lambda s: s),
    "segment.finetune.augment": ((), lambda s: s),
    "segment.finetune.batches": ((), lambda s: s),
    "toy_models.noise_images": ((), lambda s: [s, 7]),
    "pretrain.order": ((3,), lambda s, e: [s, e, 7]),
    "pretrain.shifted.item": ((3, 9), lambda s, e, i: [s, e, i, 1]),
    "pretrain.diffveri.item": ((3, 9), lambda s, e, i: [s, e, i]),
    "monitor.probe": ((), lambda s: [int(s) & M, 0x70726F6265]),
    "reid.validation": ((), lambda s: [int(s) & M, 0x76616C]),
    "reid.pk_sampler": ((3,), lambda s, e: [s, e]),
    "reid.vehicleid.trial": ((4,), lambda s, t: [int(s), int(t)]),
    "reid.baselines.noise": ((4,), lambda s, r: [s, r]),
    "reid.plots.identities": ((), lambda s: s),
    "reid.finetune.loader": ((6,), lambda s, e: s + e),
    "reid.probe.batch_order": ((), lambda s: s),
}


def test_every_registered_stream_has_its_old_expression_here():
    assert set(OLD) == set(LEGACY)


@pytest.mark.parametrize("purpose", sorted(OLD))
@pytest.mark.parametrize("seed", [0, 7, 2**31 + 5])
def test_registered_stream_equals_its_old_expression(purpose, seed):
    parts, old = OLD[purpose]
    expected = old(seed, *parts)
    if isinstance(LEGACY[purpose], Tag):
        want = np.random.default_rng(expected).random(5)
        assert derive_seed(seed, purpose, *parts) == int(np.random.SeedSequence(expected).generate_state(1)[0])
    else:
        assert derive_seed(seed, purpose, *parts) == expected
        want = np.random.default_rng(expected).random(5)
    np.testing.assert_array_equal(rng(seed, purpose, *parts).random(5), want)


def test_toyworld_image_seed_is_the_old_seed_sequence_word():
    old = int(np.random.SeedSequence([3 & M, 11, 2, 5]).generate_state(1)[0])
    assert derive_seed(3, "toyworld.image", 11, 2) == old


def test_existing_hash_callers_keep_their_values():
    assert derive_seed(4, "class", "car", 2) == _old_hash(4, "class", "car", 2)
    assert derive_seed(4, "dreambooth", "v0001") == _old_hash(4, "dreambooth", "v0001")
    assert 0 <= derive_seed(4, "step", 10, 0) < 2**31


def test_same_purpose_same_stream_and_purposes_apart():
    a = rng(1, "test.augment", 3).random(4)
    np.testing.assert_array_equal(a, rng(1, "test.augment", 3).random(4))
    assert not np.array_equal(a, rng(1, "test.masks", 3).random(4))
    assert not np.array_equal(a, rng(1, "test.augment", 4).random(4))
    assert not np.array_equal(a, rng(2, "test.augment", 3).random(4))
    assert derive_seed(1, "test.augment", 3) != derive_seed(1, "test.masks", 3)


def test_registered_purposes_share_a_stream_only_when_untagged():
    """Tagged streams are apart; before they had names, streams of different commands seeded with the run seed and
    their parts alone (``default_rng(seed)``, ``default_rng([seed, index])``) could share numbers, and still do."""
    by_draw: dict[tuple[float, ...], list[str]] = {}
    for purpose in LEGACY:
        by_draw.setdefault(tuple(rng(3, purpose, *OLD[purpose][0]).random(3)), []).append(purpose)
    shared = [p for group in by_draw.values() if len(group) > 1 for p in group]
    assert shared and all(LEGACY[p] in (Tag(None), Linear((1,))) for p in shared)


def test_torch_generator_is_seeded_with_derive_seed():
    a = torch.rand(4, generator=torch_generator(5, "test.torch", 1))
    b = torch.rand(4, generator=torch.Generator().manual_seed(derive_seed(5, "test.torch", 1)))
    assert torch.equal(a, b)
    legacy = torch.rand(4, generator=torch_generator(5, "reid.probe.batch_order"))
    assert torch.equal(legacy, torch.rand(4, generator=torch.Generator().manual_seed(5)))


def test_subjects_random_is_the_old_one():
    assert random.Random(derive_seed(9, "generate.subjects")).random() == random.Random(9).random()


def test_layouts_check_their_parts():
    with pytest.raises(ValueError, match="takes 2 parts"):
        derive_seed(1, "toyworld.synthetic.render", 3)
    assert Tag(21, at=2).entropy(1, (4, 5, 6)) == [1, 4, 5, 21, 6]
    assert Tag(None).entropy(2**32 + 3, (1,)) == [3, 1]
    assert Linear((1, 2)).seed(3, (4,)) == 11
    assert isinstance(seeds.LEGACY["generate.image"], Unnamed)
