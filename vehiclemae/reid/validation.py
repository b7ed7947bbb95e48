"""Validation identities for fine-tuning: held out from the training identities, never drawn from the test set.

``vehiclemae finetune`` chooses its best checkpoint on these identities; the test split is evaluated once at the end.
The split is a pure function of ``(samples, dataset, val_identities, seed)``, so a resumed run sees the same one.

* ``data.val_identities``: a fraction in (0, 1) of the training identities (rounded, at least 1), an integer count
  (>= 1), or 0 to disable validation.
* VeRi-776: per validation identity up to 2 query images on distinct cameras, each chosen only if a gallery image of
  its identity remains on another camera (same id + same camera is junk in the VeRi-776 protocol); every other
  image of the identity is gallery. The queries are not repeated in the gallery.
* VehicleID: the validation images form a test list evaluated with the VehicleID protocol (one random gallery image
  per identity and trial, the rest queries; :mod:`vehiclemae.reid.vehicleid`).
* ``groups`` (identity -> group, e.g. the toy world's families from ``toyworld_meta.json``): whole groups are held
  out, so that validation galleries hold each query's hard negatives as the test gallery does (the toy world's test
  split is by family too); groups are taken in a seeded order until ``n_val`` identities are held out.

The linear probe of :mod:`vehiclemae.reid.frozen` uses the same split.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data_manifests import seeds

QUERIES_PER_IDENTITY = 2


@dataclass
class ValidationSplit:
    """The training samples left for training and the validation evaluation split.

    ``eval_split`` is ``{"name": "val", "query", "gallery"}`` (VeRi-776) or ``{"name": "val", "test"}``
    (VehicleID), the layout :func:`vehiclemae.reid.evaluate.evaluate_model` reads; ``None`` when disabled.
    """

    train: list
    val_pids: list[int] = field(default_factory=list)
    eval_split: dict[str, Any] | None = None

    @property
    def enabled(self) -> bool:
        return self.eval_split is not None


def count_val_identities(value: float | int, num_ids: int) -> int:
    """How many of ``num_ids`` training identities ``data.val_identities = value`` holds out (0 = disabled)."""
    if isinstance(value, bool) or value < 0 or (value >= 1 and not float(value).is_integer()):
        raise ValueError(
            f"data.val_identities must be a fraction in (0, 1), an integer count >= 1 or 0 (no validation), "
            f"got {value!r}"
        )
    if value == 0:
        return 0
    n_val = int(value) if value >= 1 else max(1, int(math.floor(value * num_ids + 0.5)))
    if num_ids - n_val < 2:
        raise ValueError(
            f"data.val_identities={value!r} holds out {n_val} of the {num_ids} training identities, leaving "
            f"{num_ids - n_val} to train on; training needs at least 2. Lower data.val_identities, or set it to 0 "
            "to train on every identity (the best checkpoint is then the last epoch)"
        )
    return n_val


def pick_val_identities(
    pids: list[int], n_val: int, rng: np.random.Generator, groups: dict[int, str] | None = None
) -> list[int]:
    """``n_val`` of ``pids`` (sorted), drawn with ``rng``; with ``groups``, whole groups in a random order until at
    least ``n_val`` identities are held out (never all groups: at least one stays for training)."""
    if not groups:
        return sorted(int(p) for p in rng.permutation(pids)[:n_val])
    members: dict[str, list[int]] = defaultdict(list)
    for pid in pids:
        members[groups.get(pid, f"pid:{pid}")].append(int(pid))
    names = sorted(members)
    held: list[int] = []
    for index in rng.permutation(len(names))[: len(names) - 1]:
        if len(held) >= n_val:
            break
        held += members[names[int(index)]]
    return sorted(held)


def split_validation(
    samples: list, dataset: str, val_identities: float | int, seed: int, groups: dict[int, str] | None = None
) -> ValidationSplit:
    """Hold out validation identities from the training ``samples`` (:class:`~vehiclemae.reid.data.ReIDSample`).

    Raises ``ValueError`` when fewer than 2 training identities would remain, or when the held-out identities give
    nothing to evaluate (no VeRi query with a cross-camera match, no VehicleID identity with 2 images).
    """
    pids = sorted({s.pid for s in samples})
    n_val = count_val_identities(val_identities, len(pids))
    if n_val == 0:
        return ValidationSplit(list(samples))
    rng = seeds.rng(seed, "reid.validation")
    val_pids = pick_val_identities(pids, n_val, rng, groups)
    if len(pids) - len(val_pids) < 2:
        raise ValueError(
            f"holding out whole families for validation leaves {len(pids) - len(val_pids)} training identities; "
            "lower data.val_identities"
        )
    held = set(val_pids)
    train = [s for s in samples if s.pid not in held]
    val = [s for s in samples if s.pid in held]
    if dataset == "veri776":
        query, gallery = _veri_query_gallery(val, rng)
        if not query:
            raise ValueError(
                f"the {len(val_pids)} validation identities have no image with a same-identity image on another "
                "camera, so no validation query can be evaluated; raise data.val_identities or set it to 0"
            )
        eval_split: dict[str, Any] = {"name": "val", "query": query, "gallery": gallery}
    elif dataset == "vehicleid":
        counts = np.unique([s.pid for s in val], return_counts=True)[1]
        if not (counts >= 2).any():
            raise ValueError(
                f"every one of the {len(val_pids)} validation identities has a single image, so the VehicleID "
                "protocol has no query; raise data.val_identities or set it to 0"
            )
        eval_split = {"name": "val", "test": val, "test_size": len(val_pids)}
    else:
        raise ValueError(f"unknown dataset {dataset!r}; valid: veri776, vehicleid")
    return ValidationSplit(train, val_pids, eval_split)


def _veri_query_gallery(samples: list, rng: np.random.Generator) -> tuple[list, list]:
    """Query/gallery of the validation images, the way ``pipeline.splits.assign_query_gallery`` builds the toy
    world's VeRi test split (up to 2 queries per identity on distinct cameras, each keeping a cross-camera match)."""
    by_pid: dict[int, list] = defaultdict(list)
    for s in samples:
        by_pid[s.pid].append(s)
    queries: list = []
    for pid in sorted(by_pid):
        images = sorted(by_pid[pid], key=lambda s: str(s.path))
        chosen: list = []
        for index in rng.permutation(len(images)):
            if len(chosen) >= QUERIES_PER_IDENTITY:
                break
            candidate = images[int(index)]
            if candidate.camid in {q.camid for q in chosen}:
                continue
            rest = [s for s in images if s is not candidate and s not in chosen]
            if all(any(g.camid != q.camid for g in rest) for q in [*chosen, candidate]):
                chosen.append(candidate)
        queries += chosen
    picked = {id(q) for q in queries}
    gallery = [s for s in samples if id(s) not in picked]
    return queries, gallery
