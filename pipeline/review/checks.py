"""Automatic consistency checks before review: identity and view scores for every kept image.

- **Identity score**: cosine similarity between the embedding of the image's vehicle (the generated image cut to
  the detector's box) and the embeddings of its identity's subject photos; the best photo counts (the photos show
  other sides of the vehicle). The encoder comes from :mod:`.encoders` (a local CLIP vision tower in the paper
  profile, a colour-histogram encoder in the toy profile).
- **View score**: the view segmenter (``segment.checkpoint``, prompted with the detector's box) labels the
  vehicle's pixels with view classes; the score is the share of vehicle pixels in the classes the prompted view
  shows (:data:`VIEW_SHOWS`), and ``segment_view`` is the dominant class.

The scores are written into the image's ``detections`` row (``identity_score``, ``view_score``, ``segment_view``,
``checks_ref``); the review triage (:mod:`.policy`) reads them from there. Images already scored by the same
encoder and segmenter are skipped (re-running is a no-op), unless ``overwrite``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import UnidentifiedImageError
from tqdm import tqdm

import data_manifests as dm
from data_manifests import Status

from .encoders import ImageEncoder

log = logging.getLogger(__name__)

# The view classes (PVEN and toy-world names) that a prompted view shows. Three-quarter views show two faces.
VIEW_SHOWS: dict[str, frozenset[str]] = {
    "front": frozenset({"front"}),
    "rear": frozenset({"rear"}),
    "left": frozenset({"left", "side"}),
    "right": frozenset({"right", "side"}),
    "front_left": frozenset({"front", "left", "side"}),
    "front_right": frozenset({"front", "right", "side"}),
    "rear_left": frozenset({"rear", "left", "side"}),
    "rear_right": frozenset({"rear", "right", "side"}),
    "top": frozenset({"top"}),
}


def view_consistency(
    intended_view: str, view_classes: Sequence[str], fractions: Sequence[float]
) -> tuple[float | None, str | None]:
    """``(view_score, dominant view class)`` from the share of vehicle pixels per view class (background first).

    The score is the share of vehicle pixels in the classes ``intended_view`` shows; ``(None, None)`` when the
    segmenter found no vehicle pixels."""
    fractions = np.asarray(fractions, dtype=np.float64)
    if len(fractions) != len(view_classes):
        raise ValueError(f"{len(fractions)} fractions for {len(view_classes)} view classes")
    total = fractions[1:].sum()
    if total <= 0:
        return None, None
    shows = VIEW_SHOWS[intended_view]
    score = sum(f for name, f in zip(view_classes[1:], fractions[1:], strict=True) if name in shows) / total
    return float(score), view_classes[1 + int(np.argmax(fractions[1:]))]


def view_fractions(vehicle: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Share of the vehicle's pixels per view class ``(n_classes,)`` (zeros for an empty vehicle mask)."""
    counts = np.bincount(np.asarray(labels)[np.asarray(vehicle, dtype=bool)].ravel(), minlength=n_classes)
    total = counts.sum()
    return counts / total if total else np.zeros(n_classes)


def identity_scores(crop_embeddings: np.ndarray, subject_embeddings: np.ndarray) -> np.ndarray:
    """Per crop, the best cosine similarity to any subject photo: ``(N, D) x (M, D) -> (N,)`` (NaN when M = 0)."""
    if len(subject_embeddings) == 0:
        return np.full(len(crop_embeddings), np.nan)
    return (crop_embeddings @ subject_embeddings.T).max(axis=1)


# ---------------------------------------------------------------------------------------------------------- reading
def _read_rgb(root: Path, rel: str) -> np.ndarray:
    with dm.open_image(dm.inside_root(root, rel, "image path")) as img:
        return np.asarray(img.convert("RGB"))


def _cut(image: np.ndarray, bbox: Sequence[float] | None) -> np.ndarray:
    """The image inside ``bbox`` (xyxy pixels, clipped); the whole image without a usable box."""
    if bbox is None:
        return image
    h, w = image.shape[:2]
    x1, y1 = max(0, int(np.floor(bbox[0]))), max(0, int(np.floor(bbox[1])))
    x2, y2 = min(w, int(np.ceil(bbox[2]))), min(h, int(np.ceil(bbox[3])))
    return image[y1:y2, x1:x2] if x2 > x1 and y2 > y1 else image


def subject_embeddings(root: Path, encoder: ImageEncoder, identities: Sequence[str]) -> dict[str, np.ndarray]:
    """identity_id -> embeddings ``(M, D)`` of its readable subject photos (M = 0 when none is readable)."""
    rows = dm.read_rows(
        root,
        "subjects",
        columns=["identity_id", "instance_images"],
        filter=pc.field("identity_id").isin(pa.array(list(identities), pa.string())),
        missing_ok=True,
    )
    out: dict[str, np.ndarray] = {}
    for r in rows:
        images = []
        for rel in r["instance_images"] or []:
            try:
                images.append(_read_rgb(root, rel))
            except (OSError, ValueError, UnidentifiedImageError) as exc:
                log.warning("consistency checks: subject photo %s of %s not usable (%s)", rel, r["identity_id"], exc)
        out[r["identity_id"]] = encoder.embed(images)
    return out


@dataclass
class _Item:
    row: dict[str, Any]  # the full detections row
    identity_id: str
    intended_view: str
    path: str


def _pending(root: Path, identities: Sequence[str] | None, ref: str, overwrite: bool) -> tuple[list[_Item], int]:
    """Kept images (detections ok) of ``identities`` not yet scored by ``ref``, in image order, and how many of
    those identities' kept images were skipped (already scored)."""
    det = dm.read_rows(root, "detections", filter=pc.field("status") == Status.OK.value)
    gen = {
        r["image_id"]: r
        for r in dm.read_rows(root, "generations", columns=["image_id", "identity_id", "intended_view", "path"])
    }
    wanted = None if identities is None else set(identities)
    out, skipped = [], 0
    for r in sorted(det, key=lambda d: d["image_id"]):
        g = gen.get(r["image_id"])
        if g is None or not g["path"] or (wanted is not None and g["identity_id"] not in wanted):
            continue
        if not overwrite and r["checks_ref"] == ref:
            skipped += 1
            continue
        out.append(_Item(r, g["identity_id"], g["intended_view"], g["path"]))
    return out, skipped


# ----------------------------------------------------------------------------------------------------------- running
def run_checks(
    root: Path,
    encoder: ImageEncoder,
    segmenter: Any | None = None,
    segmenter_ref: str | None = None,
    *,
    identities: Sequence[str] | None = None,
    batch_size: int = 16,
    overwrite: bool = False,
    flush_every: int = 256,
    progress: bool = True,
) -> dict[str, int]:
    """Score every kept image (see the module docstring) and write the scores into its ``detections`` row.

    ``segmenter`` is a :class:`pipeline.segment.model.ViewSegmenter` (or None: no view check). Returns counts:
    ``scored``, ``skipped`` (already scored by the same encoder/segmenter), ``unreadable``, ``no_subject_photos``.
    """
    root = Path(root)
    ref = f"{encoder.ref}|{segmenter_ref or 'no-segmenter'}"
    items, skipped = _pending(root, identities, ref, overwrite)
    counts = {"scored": 0, "skipped": skipped, "unreadable": 0, "no_subject_photos": 0}
    if not items:
        return counts
    subjects = subject_embeddings(root, encoder, sorted({it.identity_id for it in items}))
    buffer: list[dict[str, Any]] = []
    for start in tqdm(range(0, len(items), batch_size), desc="review checks", unit="batch", disable=not progress):
        # 1. Read the batch; an unreadable image keeps null scores (the triage lets a person see it).
        batch, images = [], []
        for it in items[start : start + batch_size]:
            try:
                images.append(_read_rgb(root, it.path))
                batch.append(it)
            except (OSError, ValueError, UnidentifiedImageError) as exc:
                log.warning("consistency checks: %s not usable (%s)", it.path, exc)
                counts["unreadable"] += 1
        if not batch:
            continue
        # 2. Identity: the vehicle inside the detector's box against the identity's subject photos.
        counts["no_subject_photos"] += _identity_step(encoder, subjects, images, batch)
        # 3. View: the segmenter's view classes inside the same box against the prompted view.
        if segmenter is not None:
            _view_scores(segmenter, images, batch, batch_size)
        for it in batch:
            it.row["checks_ref"] = ref
            buffer.append(it.row)
        counts["scored"] += len(batch)
        if len(buffer) >= flush_every:
            dm.upsert(root, "detections", buffer)
            buffer.clear()
    if buffer:
        dm.upsert(root, "detections", buffer)
    return counts


def _identity_step(
    encoder: ImageEncoder, subjects: dict[str, np.ndarray], images: list[np.ndarray], batch: list[_Item]
) -> int:
    """Set ``identity_score`` of each item; returns how many had no usable subject photo (score stays null)."""
    crops = encoder.embed([_cut(img, it.row["bbox"]) for img, it in zip(images, batch, strict=True)])
    missing = 0
    for k, it in enumerate(batch):
        score = identity_scores(crops[k : k + 1], subjects.get(it.identity_id, np.zeros((0, crops.shape[1]))))[0]
        missing += int(np.isnan(score))
        it.row["identity_score"] = None if np.isnan(score) else float(score)
    return missing


def _view_scores(segmenter: Any, images: list[np.ndarray], batch: list[_Item], batch_size: int) -> None:
    classes = tuple(segmenter.view_classes)
    usable = [k for k, it in enumerate(batch) if it.row["bbox"] is not None]
    if not usable:
        return
    boxes = np.asarray([batch[k].row["bbox"] for k in usable], dtype=np.float64)
    results = segmenter.predict([images[k] for k in usable], boxes, batch_size)
    for k, (vehicle, labels) in zip(usable, results, strict=True):
        it = batch[k]
        score, dominant = view_consistency(it.intended_view, classes, view_fractions(vehicle, labels, len(classes)))
        it.row["view_score"], it.row["segment_view"] = score, dominant


__all__ = [
    "VIEW_SHOWS",
    "identity_scores",
    "run_checks",
    "subject_embeddings",
    "view_consistency",
    "view_fractions",
]
