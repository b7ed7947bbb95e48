"""The toy world as VeRi-776, VehicleID and YOLO datasets, written by the format writers of :mod:`pipeline.formats`.

The toy world numbers VeRi/VehicleID vehicles by identity index + 1 (``vid``) and frames by image index, and adds
``VeRi/toyworld_meta.json`` (:func:`veri_meta`) and ``detection/scenes.jsonl`` beside the standard files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

import data_manifests as dm
from data_manifests.toymeta import META_FILE, toy_meta_text
from pipeline.formats.crop import vehicle_box
from pipeline.formats.vehicleid import vehicleid_writer
from pipeline.formats.veri import veri_name, veri_writer
from pipeline.formats.yolo import yolo_writer

from .detection import Scene, render_scene, yolo_lines
from .identity import CLASSES, COLOR_NAMES, ToyIdentity
from .settings import DETECTION_CLASS_SETS, DETECTION_NAMES


def _source(out: Path, row: dict[str, Any]) -> Path:
    return dm.inside_root(out, row["path"], f"diffveri[{row['image_id']}].path")


def _crop(row: dict[str, Any], crop: float | None) -> tuple[int, int, int, int] | None:
    return vehicle_box(row["vehicle_rle"], crop)


def export_veri(
    out: Path,
    rows: list[dict[str, Any]],
    quality: int,
    identities: dict[str, ToyIdentity],
    family_size: int,
    crop: float | None = None,
) -> Path:
    """``out/VeRi`` (:mod:`pipeline.formats.veri`) with ``toyworld_meta.json``: ``vid`` = identity index + 1,
    camera = viewpoint bin (``camera_id``), frame = image index. ``crop`` (a margin) writes vehicle crops
    (:func:`pipeline.formats.crop.vehicle_box`) instead of whole renders."""
    with veri_writer(out / "VeRi", quality) as writer:
        for row in rows:
            writer.add(_source(out, row), row["vid"], row["camera_id"], row["frame"], row["split"], _crop(row, crop))
        writer.write_text(META_FILE, toy_meta_text(family_size, *veri_meta(rows, identities)))
    return out / "VeRi"


def veri_meta(
    rows: list[dict[str, Any]], identities: dict[str, ToyIdentity]
) -> tuple[dict[str, dict[str, Any]], dict[int, dict[str, Any]]]:
    """The ``images`` and ``identities`` of ``VeRi/toyworld_meta.json`` (format ``toyworld-veri-meta-v1``, see
    :mod:`vehiclemae.reid.toymeta`)::

        images:     {"<VeRi file name>": {"view": <INTENDED_VIEWS name>, "azimuth": float, "elevation": float}}
        identities: {<vid>: {"identity_id": "toy0011", "family": "fam0002", "class_name": str, "color_name": str,
                             "dims": [length, width, height]}}

    ``images`` covers every image of ``image_train`` and ``image_test`` (the queries are in ``image_test`` too);
    ``identities`` every vid of those names. In the classic world an identity's ``family`` is its own identity
    id."""
    images: dict[str, dict[str, Any]] = {}
    idents: dict[int, dict[str, Any]] = {}
    for row in rows:
        camera = json.loads(row["provenance"])
        images[veri_name(row["vid"], row["camera_id"], row["frame"])] = {
            "view": row["view_label"],
            "azimuth": camera["azimuth"],
            "elevation": camera["elevation"],
        }
        ident = identities[row["identity_id"]]
        idents[row["vid"]] = {
            "identity_id": ident.identity_id,
            "family": ident.family or ident.identity_id,
            "class_name": ident.class_name,
            "color_name": ident.color_name,
            "dims": [round(d, 4) for d in ident.dims],
        }
    return images, idents


def export_vehicleid(
    out: Path,
    rows: list[dict[str, Any]],
    identities: dict[str, ToyIdentity],
    train_ids: set[str],
    quality: int,
    crop: float | None = None,
) -> Path:
    """``out/VehicleID_V1.0`` (:mod:`pipeline.formats.vehicleid`): images numbered by ``(vid, frame)``, the train
    and test lists in identity-id order, the toy classes and colours as model and colour attributes."""
    vid_of = {r["identity_id"]: r["vid"] for r in rows}
    with vehicleid_writer(out / "VehicleID_V1.0", quality) as writer:
        for row in sorted(rows, key=lambda r: (r["vid"], r["frame"])):
            writer.add(_source(out, row), row["vid"], row["view_label"], _crop(row, crop))
        ordered = sorted(vid_of)
        writer.write_splits(
            [vid_of[i] for i in ordered if i in train_ids], [vid_of[i] for i in ordered if i not in train_ids]
        )
        writer.write_attribute("model_attr", {v: CLASSES.index(identities[i].class_name) for i, v in vid_of.items()})
        writer.write_attribute(
            "color_attr", {v: COLOR_NAMES.index(identities[i].color_name) for i, v in vid_of.items()}
        )
    return out / "VehicleID_V1.0"


def export_detection(
    out: Path,
    identities: list[ToyIdentity],
    n_images: int,
    size: int,
    seed: int,
    classes: str,
    quality: int,
    progress: bool = True,
) -> Path:
    """``out/detection`` (:mod:`pipeline.formats.yolo`): ``n_images`` rendered street scenes, about a fifth in
    ``val``, and ``scenes.jsonl`` (per image: every vehicle's identity, pixel box, and whether it is truncated or
    tiny)."""
    class_of = DETECTION_CLASS_SETS[classes]
    names = DETECTION_NAMES[classes]
    comments = [
        "YOLO dataset written by `diffveri toyworld`; paths are relative to this file's folder.",
        f"classes: {classes!r} ({', '.join(names)})",
    ]
    n_val = max(1, n_images // 5)
    records: list[dict[str, Any]] = []
    with yolo_writer(out / "detection", names, comments, quality) as writer:
        for k, scene in _scenes(identities, n_images, size, seed, progress):
            split = "val" if k < n_val else "train"
            image = writer.add(split, f"{k:06d}", scene.image, yolo_lines(scene.vehicles, size, class_of))
            records.append(
                {
                    "image": image,
                    "split": split,
                    "n_vehicles": len(scene.vehicles),
                    "vehicles": [asdict(v) for v in scene.vehicles],
                }
            )
        writer.write_text("scenes.jsonl", _jsonl(records))
    return out / "detection"


def _scenes(
    identities: list[ToyIdentity], n_images: int, size: int, seed: int, progress: bool
) -> Iterator[tuple[int, Scene]]:
    """The detection scenes ``(k, scene)``, each drawn from its own generator (deterministic per ``k``)."""
    for k in tqdm(range(n_images), desc="toyworld detection", disable=not progress, leave=False):
        scene = render_scene(identities, size, dm.seeds.rng(seed, "toyworld.detection_scene", k))
        yield k, scene


def _jsonl(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
