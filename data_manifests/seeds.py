"""Named random streams: every random draw in the project comes from ``(seed, purpose, *parts)``.

``derive_seed(seed, "purpose", *parts)`` is an integer seed and ``rng(seed, "purpose", *parts)`` a numpy
``Generator``; ``torch_generator`` wraps the integer for torch. The purpose says what the stream is for
(``"toyworld.image"``, ``"reid.pk_sampler"``), the parts say which one (an identity index, an epoch, ...). The
same ``(seed, purpose, parts)`` always gives the same stream, and a new purpose gets a stream of its own.

A new purpose is derived by a hash (sha256 over the parts, so that neighbouring indices get unrelated streams). A
stream whose numbers were fixed before it had a name (toy-world renders and identities, tests' expected values,
committed results) keeps its old entropy through :data:`LEGACY`, so its values stay bit-identical while it is
named like the others (untagged ones, once ``default_rng(seed)`` in different commands, still coincide). Add new
purposes without a ``LEGACY`` entry.

The run-wide ``torch.manual_seed(seed)`` before a model is built (its initial weights) is the run seed itself,
not a stream of this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

MASK32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Tag:
    """A numpy stream with entropy ``[seed & 0xFFFFFFFF, *parts, value]``; ``at``: the tag sits after the first
    ``at`` parts instead of after all of them. ``value=None``: no tag (``[seed & 0xFFFFFFFF, *parts]``).

    Some old streams used the seed unmasked; for every seed in ``[0, 2**32)`` (all the project's seeds) that is the
    same stream, and a negative seed, which numpy refused, now works."""

    value: int | None
    at: int | None = None

    def entropy(self, seed: int, parts: tuple[int, ...]) -> list[int]:
        words = [int(seed) & MASK32, *(int(p) for p in parts)]
        if self.value is not None:
            words.insert(len(words) if self.at is None else 1 + self.at, self.value)
        return words


@dataclass(frozen=True)
class Linear:
    """An integer seed ``seed * weights[0] + parts[0] * weights[1] + ...`` (a numpy stream seeded with it)."""

    weights: tuple[int, ...]

    def seed(self, seed: int, parts: tuple[int, ...]) -> int:
        values = (int(seed), *(int(p) for p in parts))
        if len(values) != len(self.weights):
            raise ValueError(f"this stream takes {len(self.weights) - 1} parts, got {len(parts)}")
        return sum(v * w for v, w in zip(values, self.weights, strict=True))


@dataclass(frozen=True)
class Unnamed:
    """The hash of ``(seed, *parts)`` without the purpose (a caller of ``derive_seed`` from before purposes)."""


Layout = Tag | Linear | Unnamed

# Streams named after their numbers were fixed: purpose -> how the stream was built before it had a name.
# Keep an entry as it is (changing it changes renders, splits and committed results); new purposes need none.
LEGACY: dict[str, Layout] = {
    # Toy world (pipeline/toyworld): identities, renders, splits and exports are test fixtures and results.
    "toyworld.identity.twins": Tag(0),  # parts: pair
    "toyworld.identity.pair": Tag(1),  # parts: pair
    "toyworld.identity.marks": Tag(2),  # parts: index
    "toyworld.view_order": Tag(3),  # parts: index, cycle
    "toyworld.instance_cameras": Tag(4),  # parts: index
    "toyworld.image": Tag(5),  # parts: index, j  (the image's render seed)
    "toyworld.query_gallery": Tag(6),
    "toyworld.render": Tag(7),  # parts: identity index, identity seed
    "toyworld.detection_scene": Tag(8),  # parts: scene k
    "toyworld.train_families": Tag(9),
    "toyworld.image_camera": Tag(12),  # parts: index, j
    "toyworld.family.body": Tag(20),  # parts: family, family_size
    "toyworld.family.cue_order": Tag(21, at=2),  # parts: family, family_size, face
    "toyworld.family.cue_tone": Tag(22, at=2),  # parts: index, family_size, face
    "toyworld.noise_bank": Tag(None),  # seed 20261124, no parts
    "toyworld.contact_sheet": Linear((1, 31, 1)),  # parts: row, column
    "toyworld.synthetic.cameras": Tag(None),  # random_renders
    "toyworld.synthetic.camera": Tag(1),  # write_annotated_world, parts: index
    "toyworld.synthetic.render": Linear((100003, 101, 1)),  # write_annotated_world, parts: index, k
    "toyworld.boxes.vehicle": Tag(None),  # parts: index
    "toyworld.boxes.render": Tag(None),  # seed: the render seed
    # Dataset construction (pipeline).
    "generate.image": Unnamed(),  # parts: identity, view, index
    "generate.camera": Tag(1),  # seed: the image's seed
    "generate.subjects": Linear((1,)),
    "assemble.splits": Tag(None),
    "review.audit": Tag(0xA0D17),
    "review.sample": Tag(None),
    "review.guide_images": Tag(None),
    "segment.annotation_sample": Tag(None),
    "segment.split": Tag(None),
    "segment.evaluate.samples": Tag(None),
    "segment.finetune.augment": Linear((1,)),
    "segment.finetune.batches": Tag(None),
    "toy_models.noise_images": Tag(7),
    # Pre-training and Re-ID (vehiclemae).
    "pretrain.order": Tag(7),  # parts: epoch
    "pretrain.shifted.item": Tag(1),  # parts: epoch, item
    "pretrain.diffveri.item": Tag(None),  # parts: epoch, item
    "monitor.probe": Tag(0x70726F6265),  # "probe"
    "reid.validation": Tag(0x76616C),  # "val"
    "reid.pk_sampler": Tag(None),  # parts: epoch
    "reid.vehicleid.trial": Tag(None),  # parts: trial
    "reid.baselines.noise": Tag(None),  # parts: run
    "reid.plots.identities": Tag(None),
    "reid.finetune.loader": Linear((1, 1)),  # parts: epoch
    "reid.probe.batch_order": Linear((1,)),
}


def _hash(*parts: object) -> int:
    text = "\x1f".join(str(p) for p in parts)
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def derive_seed(seed: int, purpose: str, *parts: object) -> int:
    """The integer seed of stream ``purpose`` (``parts`` pick one of its kind: an index, an epoch, ...).

    A 31-bit sha256 hash of ``(seed, purpose, *parts)``; a :data:`LEGACY` purpose gives its old value (a ``Tag``
    stream: the first 32-bit word of its ``SeedSequence``)."""
    layout = LEGACY.get(purpose)
    if layout is None:
        return _hash(seed, purpose, *parts)
    if isinstance(layout, Unnamed):
        return _hash(seed, *parts)
    if isinstance(layout, Linear):
        return layout.seed(seed, parts)  # type: ignore[arg-type]
    return int(np.random.SeedSequence(layout.entropy(seed, parts)).generate_state(1)[0])  # type: ignore[arg-type]


def rng(seed: int, purpose: str, *parts: object) -> np.random.Generator:
    """The numpy generator of stream ``purpose`` (see :func:`derive_seed`)."""
    layout = LEGACY.get(purpose)
    if isinstance(layout, Tag):
        return np.random.default_rng(layout.entropy(seed, parts))  # type: ignore[arg-type]
    return np.random.default_rng(derive_seed(seed, purpose, *parts))


def torch_generator(seed: int, purpose: str, *parts: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed`."""
    import torch

    return torch.Generator().manual_seed(derive_seed(seed, purpose, *parts))
