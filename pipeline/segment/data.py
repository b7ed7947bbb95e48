"""Annotated masks for fine-tuning and evaluation: a ``segments``-schema table joined with ``generations``.

Ground-truth rows may use other view classes than the segmenter (the toy world renders left and right separately);
:func:`label_map` maps them onto the segmenter's classes with ``data_manifests.COLLAPSE_TO_PVEN``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
from PIL import UnidentifiedImageError

from data_manifests import (
    COLLAPSE_TO_PVEN,
    VIEW_SETS,
    Status,
    inside_root,
    open_image,
    read_table,
    rle,
    seeds,
    table_exists,
)
from data_manifests.rows import segment_row

log = logging.getLogger(__name__)


def resolve_view_classes(view_set: str, view_classes: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The segmenter's classes: an explicit list (background first) or a named set from ``VIEW_SETS``."""
    if view_classes:
        classes = tuple(view_classes)
    else:
        try:
            classes = VIEW_SETS[view_set]
        except KeyError:
            raise ValueError(f"segment.view_set={view_set!r} is not one of {sorted(VIEW_SETS)}") from None
    if classes[0] != "background" or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"segment view classes {classes} must be unique, start with 'background', and name a view")
    return classes


@dataclass
class Annotated:
    """One annotated image: where it is, its prompt box and its masks (RLE, decoded on demand)."""

    image_id: str
    identity_id: str
    path: Path  # absolute
    bbox: tuple[float, float, float, float]  # xyxy, image pixels
    vehicle_rle: dict[str, Any]
    view_classes: tuple[str, ...]  # the row's own classes
    view_rles: list[dict[str, Any]]


def class_mapping(source: tuple[str, ...], target: tuple[str, ...], where: str) -> np.ndarray:
    """Index map ``source class -> target class`` (``COLLAPSE_TO_PVEN`` applies when a name is missing)."""
    out = []
    for name in source:
        mapped = name if name in target else COLLAPSE_TO_PVEN.get(name, name)
        if mapped not in target:
            raise ValueError(
                f"{where}: ground-truth view class {name!r} has no counterpart in the segmenter's classes {target}; "
                "set segment.view_classes to include it"
            )
        out.append(target.index(mapped))
    return np.asarray(out, dtype=np.int64)


def label_map(item: Annotated, target: tuple[str, ...]) -> np.ndarray:
    """The ground-truth view label map ``(H, W)`` int64 in ``target`` classes; pixels outside the vehicle are 0."""
    source_labels = rle.rles_to_label_map(item.view_rles)
    mapping = class_mapping(item.view_classes, target, f"image {item.image_id}")
    labels = mapping[source_labels]
    labels[~rle.decode(item.vehicle_rle)] = 0
    return labels


def read_image(path: Path, where: str = "") -> np.ndarray:
    """An RGB uint8 ``(H, W, 3)`` image, with errors that name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{where}image {path} does not exist")
    try:
        with open_image(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{where}image {path} is not a readable image ({exc})") from exc


def load_annotated(
    root: Path,
    table: str = "segments",
    gt_root: Path | None = None,
    identities: list[str] | None = None,
    refs: tuple[str, ...] | list[str] | None = None,
) -> list[Annotated]:
    """Rows with ``status == ok`` and masks from ``gt_root/manifests/<table>``, with image paths from ``root``'s
    ``generations`` (``gt_root`` defaults to ``root``). Sorted by ``image_id`` (deterministic).

    ``refs``: keep only rows whose ``segmenter_ref`` starts with one of these prefixes (fine-tuning passes
    ``("human:", "groundtruth:")`` so that the segmenter never learns from its own predictions); None keeps all.
    """
    gt_root = gt_root or root
    if not table_exists(gt_root, table):
        raise FileNotFoundError(
            f"no annotated masks: table {table!r} is missing under {gt_root}/manifests; write a toy world there "
            "(`diffveri toy world --root DIR`) or point --table/--root at human annotations"
        )
    masks = read_table(gt_root, table, filter=pc.field("status") == Status.OK).to_pylist()
    if refs is not None:
        masks = [m for m in masks if (m["segmenter_ref"] or "").startswith(tuple(refs))]
    generations = {
        r["image_id"]: r
        for r in read_table(root, "generations", columns=["image_id", "identity_id", "path"]).to_pylist()
    }
    out = []
    for row in masks:
        where = f"{gt_root}/manifests/{table} image_id={row['image_id']}"
        gen = generations.get(row["image_id"])
        if gen is None:
            raise ValueError(f"{where}: no generations row under {root} gives its image path")
        if identities is not None and gen["identity_id"] not in identities:
            continue
        if row["vehicle_rle"] is None or not row["view_rles"] or not row["view_classes"]:
            raise ValueError(f"{where}: an ok row must have vehicle_rle, view_classes and view_rles")
        if row["bbox"] is None:
            raise ValueError(f"{where}: no bbox to prompt with (no_box); fix the row or mark it failed")
        out.append(
            Annotated(
                image_id=row["image_id"],
                identity_id=gen["identity_id"],
                path=inside_root(root, gen["path"], f"{where}: generations path").absolute(),
                bbox=tuple(float(v) for v in row["bbox"]),
                vehicle_rle=row["vehicle_rle"],
                view_classes=tuple(row["view_classes"]),
                view_rles=list(row["view_rles"]),
            )
        )
    out.sort(key=lambda a: a.image_id)
    return out


def split_by_identity(
    items: list[Annotated], val_fraction: float, seed: int
) -> tuple[list[Annotated], list[Annotated]]:
    """Identity-disjoint train/val split: a seeded shuffle of the sorted identity ids, the last share held out."""
    identities = sorted({a.identity_id for a in items})
    if val_fraction <= 0 or len(identities) < 2:
        return items, []
    order = seeds.rng(seed, "segment.split").permutation(len(identities))
    n_val = max(1, int(round(val_fraction * len(identities))))
    held = {identities[i] for i in order[:n_val]}
    return [a for a in items if a.identity_id not in held], [a for a in items if a.identity_id in held]


def make_segment_row(
    image_id: str,
    bbox: tuple[float, float, float, float] | list[float] | None,
    vehicle: np.ndarray,
    labels: np.ndarray,
    view_classes: tuple[str, ...],
    segmenter_ref: str,
) -> dict[str, Any]:
    """A predicted ``segments`` row (:func:`data_manifests.rows.segment_row`) from a vehicle mask ``(H, W)`` bool
    and a view label map ``(H, W)`` (0 outside the vehicle); an empty vehicle mask gives ``rejected``/``empty_mask``."""
    return segment_row(
        image_id,
        bbox,
        vehicle,
        labels,
        view_classes,
        segmenter_ref,
        empty_message="the predicted vehicle mask has no pixels",
    )


def failed_row(image_id: str, reason: str, message: str, status: str = Status.FAILED, **extra: Any) -> dict[str, Any]:
    """A ``segments`` row that records why an image has no masks."""
    return {"image_id": image_id, "status": status, "reason": reason, "message": message, **extra}
