"""The toy world's Re-ID splits: whole families (single identities in the classic world) go to train or test, so
the test gallery holds the siblings of every query as hard negatives; test identities give queries and gallery by
the VeRi-776 protocol of :func:`pipeline.splits.assign_query_gallery`."""

from __future__ import annotations

from typing import Any

from data_manifests.seeds import rng

from ..splits import assign_query_gallery
from .identity import ToyIdentity
from .settings import ToyworldSettings


def train_identities(settings: ToyworldSettings, idents: list[ToyIdentity]) -> set[str]:
    """The identity ids of the train split: ``train_fraction`` of the families (of ``family_size`` consecutive
    identities; single identities in the classic world), drawn by the world seed, at least one family each for
    train and test. ``idents`` are the world's identities in index order."""
    k = settings.family_size
    n_units = len(idents) // k
    order = rng(settings.seed, "toyworld.train_families").permutation(n_units)
    n_train = min(max(1, round(n_units * settings.train_fraction)), n_units - 1)
    return {idents[int(u) * k + m].identity_id for u in order[:n_train] for m in range(k)}


def assign_family_splits(rows: list[dict[str, Any]], train_ids: set[str], queries_per_identity: int, seed: int) -> None:
    """Set ``split`` on each row: train identities -> ``train``; the others -> query/gallery by the VeRi-776
    protocol of :func:`pipeline.splits.assign_query_gallery`."""
    test_ids = {r["identity_id"] for r in rows} - set(train_ids)
    assign_query_gallery(rows, test_ids, queries_per_identity, rng(seed, "toyworld.query_gallery"))
