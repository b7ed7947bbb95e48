"""Re-ID splits shared by the toy world and the assembled dataset (the VeRi-776 protocol)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np


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
