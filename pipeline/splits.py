"""Re-ID splits shared by the toy world and the assembled dataset (the VeRi-776 protocol).

:func:`assign_query_gallery` is the protocol; :func:`assign_splits` draws the test identities by a fraction (the
assemble stage), :func:`pipeline.toyworld.splits.assign_family_splits` by whole families (the toy world).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from data_manifests import seeds


def assign_query_gallery(
    rows: list[dict[str, Any]], test_ids: set[str], queries_per_identity: int, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Set ``split`` on each row (needs ``identity_id``, ``camera_id``, ``image_id``).

    Identities outside ``test_ids`` -> ``train``. Each test identity gives up to ``queries_per_identity``
    ``query`` images on distinct cameras, chosen so that every query keeps a ``gallery`` image of its identity on
    another camera (VeRi-776 ignores same-camera matches); its other images are ``gallery``.
    """
    by_identity: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_identity[row["identity_id"]].append(row)
    for identity in sorted(by_identity):
        images = sorted(by_identity[identity], key=lambda r: r["image_id"])
        for row in images:
            row["split"] = "gallery" if identity in test_ids else "train"
        if identity not in test_ids:
            continue
        queries: list[dict[str, Any]] = []
        for index in rng.permutation(len(images)):
            if len(queries) >= queries_per_identity:
                break
            candidate = images[int(index)]
            if candidate["camera_id"] in {q["camera_id"] for q in queries}:
                continue
            remaining = [r for r in images if r is not candidate and r not in queries]
            if all(any(g["camera_id"] != q["camera_id"] for g in remaining) for q in [*queries, candidate]):
                queries.append(candidate)
        for q in queries:
            q["split"] = "query"
    return rows


def assign_splits(
    rows: list[dict[str, Any]], test_identity_fraction: float, queries_per_identity: int, seed: int
) -> list[dict[str, Any]]:
    """Set ``split`` on every row: identity-disjoint train/test; test identities give queries and gallery.

    A test image becomes a query only if its identity keeps a gallery image on another camera, so every query is
    answerable under the VeRi-776 protocol (same-camera gallery matches are ignored there).
    """
    if not 0 <= test_identity_fraction <= 1:
        raise ValueError(f"test_identity_fraction must be in [0, 1], got {test_identity_fraction}")
    rng = seeds.rng(seed, "assemble.splits")
    identities = sorted({r["identity_id"] for r in rows})
    rng.shuffle(identities)
    test = set(identities[: int(round(len(identities) * test_identity_fraction))])
    return assign_query_gallery(rows, test, queries_per_identity, rng)
