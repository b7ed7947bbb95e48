"""``diffveri segment annotations export``: images to annotate with view masks, for CVAT or Label Studio.

Selected images are the ones the ``segment`` stage would process (generation ok, filter kept, review accepted)
that have no human annotation yet, optionally a seeded sample of them. They are copied to ``OUT/images/`` under
their image id and listed in

* ``coco`` — ``OUT/annotations.json``: COCO with one category per view class (background excluded) and no
  annotations; every image entry carries ``diffveri_image_id`` (CVAT: create a task from ``OUT/images`` and upload
  the file as "COCO 1.0"; the file name is our image id too, so the round trip survives tools that drop extra
  fields);
* ``labelstudio`` — ``OUT/tasks.json`` (Label Studio tasks, ``data.image`` + ``data.diffveri_image_id``) and
  ``OUT/labelstudio_config.xml`` (a ``PolygonLabels`` interface with the view classes). When the segmenter has
  already predicted an image (a ``sam:`` row in ``segments``) or a checkpoint is available, each task carries that
  prediction as polygon pre-annotations, which the annotator corrects instead of drawing from scratch.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

import data_manifests as dm

from .annotations import KnownImage, human_ids, is_human, known_images, mask_to_polygons, without_enclosed_islands

log = logging.getLogger(__name__)

FORMATS = ("coco", "labelstudio")
LS_FROM, LS_TO = "view", "image"  # names in the Label Studio labelling config


@dataclass
class ExportResult:
    out: Path
    images: int
    preannotated: int
    files: list[Path]


def select_images(root: Path, sample: int | None = None, seed: int = 0) -> list[KnownImage]:
    """Images to annotate: kept and accepted by the pipeline, not yet annotated by a person; sorted by id."""
    from .infer import accepted_ids

    known = known_images(root)
    kept = {i for i, k in known.items() if k.bbox is not None} if dm.table_exists(root, "detections") else set(known)
    chosen = sorted((accepted_ids(root, kept) & set(known)) - human_ids(root))
    if sample is not None:
        if sample <= 0:
            raise ValueError(f"--sample must be a positive number of images, got {sample}")
        if sample < len(chosen):
            picked = dm.seeds.rng(seed, "segment.annotation_sample").choice(len(chosen), size=sample, replace=False)
            chosen = sorted(chosen[int(i)] for i in picked)
    return [known[i] for i in chosen]


def _predicted_labels(root: Path, ids: list[str], view_classes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Label maps ``(H, W)`` (indices into ``view_classes``) of the segmenter's ``ok`` rows for ``ids``."""
    if not dm.table_exists(root, "segments") or not ids:
        return {}
    from .data import Annotated, label_map

    rows = dm.read_rows(root, "segments", filter=(pc.field("status") == dm.Status.OK) & pc.field("image_id").isin(ids))
    out = {}
    for r in rows:
        if is_human(r["segmenter_ref"]) or not r["view_rles"] or r["vehicle_rle"] is None:
            continue
        item = Annotated(r["image_id"], "", Path(), (0, 0, 0, 0), r["vehicle_rle"], tuple(r["view_classes"]),
                         list(r["view_rles"]))  # fmt: skip
        out[r["image_id"]] = label_map(item, view_classes)
    return out


def _predict_with(checkpoint: Path, images: list[KnownImage], view_classes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Run a segmenter checkpoint on images that have a detector box; label maps in ``view_classes``."""
    from .data import class_mapping, read_image
    from .model import load_segmenter

    todo = [k for k in images if k.bbox is not None]
    if not todo:
        return {}
    segmenter, _ = load_segmenter(checkpoint)
    mapping = class_mapping(segmenter.view_classes, view_classes, f"checkpoint {checkpoint}")
    out = {}
    for start in range(0, len(todo), 8):
        chunk = todo[start : start + 8]
        arrays = [read_image(k.path) for k in chunk]
        for k, (_, labels) in zip(chunk, segmenter.predict(arrays, np.asarray([k.bbox for k in chunk]))):
            out[k.image_id] = mapping[labels]
    return out


def _file_name(image: KnownImage) -> str:
    return f"{image.image_id}{image.path.suffix.lower() or '.png'}"


def coco_document(images: list[KnownImage], view_classes: tuple[str, ...]) -> dict[str, Any]:
    """The COCO file for ``images``: categories = view classes without background, no annotations."""
    return {
        "info": {"description": "DiffVERI view masks to annotate", "version": "1"},
        "licenses": [],
        "categories": [
            {"id": i, "name": name, "supercategory": "vehicle"} for i, name in enumerate(view_classes) if i > 0
        ],
        "images": [
            {
                "id": n + 1,
                "file_name": _file_name(k),
                "width": k.width,
                "height": k.height,
                "diffveri_image_id": k.image_id,
            }
            for n, k in enumerate(images)
        ],  # fmt: skip
        "annotations": [],
    }


def _ls_polygons(labels: np.ndarray, view_classes: tuple[str, ...]) -> list[dict[str, Any]]:
    """Label Studio ``polygonlabels`` results (points in percent of the image) for every view class present."""
    labels = without_enclosed_islands(labels)  # polygons have no holes: islands would overlap their surroundings
    h, w = labels.shape
    out = []
    for index, name in enumerate(view_classes):
        if index == 0:
            continue
        for poly in mask_to_polygons(labels == index):
            pts = np.asarray(poly).reshape(-1, 2)
            out.append(
                {
                    "id": f"{name}-{len(out)}",
                    "type": "polygonlabels",
                    "from_name": LS_FROM,
                    "to_name": LS_TO,
                    "original_width": w,
                    "original_height": h,
                    "image_rotation": 0,
                    "value": {
                        "points": [[100.0 * x / w, 100.0 * y / h] for x, y in pts],
                        "closed": True,
                        "polygonlabels": [name],
                    },
                }
            )
    return out


def labelstudio_tasks(
    images: list[KnownImage], view_classes: tuple[str, ...], predictions: dict[str, np.ndarray], url_prefix: str,
    model_version: str,
) -> list[dict[str, Any]]:  # fmt: skip
    """Label Studio tasks; images with a predicted label map get it as polygon pre-annotations."""
    tasks = []
    for k in images:
        task: dict[str, Any] = {
            "data": {"image": f"{url_prefix}images/{_file_name(k)}", "diffveri_image_id": k.image_id}
        }
        if k.image_id in predictions:
            task["predictions"] = [
                {"model_version": model_version, "result": _ls_polygons(predictions[k.image_id], view_classes)}
            ]
        tasks.append(task)
    return tasks


def labelstudio_config(view_classes: tuple[str, ...]) -> str:
    """A Label Studio labelling interface: the image and one polygon label per view class."""
    labels = "\n".join(f'    <Label value="{name}"/>' for name in view_classes[1:])
    return (
        f'<View>\n  <Image name="{LS_TO}" value="$image" zoom="true"/>\n'
        f'  <PolygonLabels name="{LS_FROM}" toName="{LS_TO}" strokeWidth="2" opacity="0.4">\n'
        f"{labels}\n  </PolygonLabels>\n</View>\n"
    )


def export_annotations(
    root: Path,
    out: Path,
    *,
    fmt: str,
    view_classes: tuple[str, ...],
    sample: int | None = None,
    seed: int = 0,
    checkpoint: Path | None = None,
    url_prefix: str = "",
) -> ExportResult:
    """Write the images to annotate and the ``fmt`` file(s) under ``out``; see the module docstring."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown annotation format {fmt!r}; valid: {', '.join(FORMATS)}")
    root, out = Path(root), Path(out)
    # 1. Which images; refuse an empty export rather than write a file with nothing to do.
    images = select_images(root, sample, seed)
    if not images:
        raise ValueError(
            f"{root}: no image to annotate (every kept, accepted image already has a human annotation, or none has "
            "passed the filter and review yet)"
        )
    # 2. Copy the images under their id (tools show and return the file name).
    (out / "images").mkdir(parents=True, exist_ok=True)
    for k in images:
        target = out / "images" / _file_name(k)
        if not target.is_file() or target.stat().st_size != k.path.stat().st_size:
            tmp = target.with_name(f".tmp-{target.name}")
            shutil.copyfile(k.path, tmp)
            tmp.replace(target)
    files = [out / "images"]
    preannotated = 0
    # 3. The annotation file(s).
    if fmt == "coco":
        path = out / "annotations.json"
        dm.atomic_write_bytes(path, json.dumps(coco_document(images, view_classes), indent=1).encode())
        files.append(path)
    else:
        predictions = _predicted_labels(root, [k.image_id for k in images], view_classes)
        missing = [k for k in images if k.image_id not in predictions]
        version = "segments table"
        if missing and checkpoint is not None and Path(checkpoint).is_file():
            predictions.update(_predict_with(Path(checkpoint), missing, view_classes))
            version = f"segments table + {Path(checkpoint).name}"
        preannotated = len(predictions)
        tasks = labelstudio_tasks(images, view_classes, predictions, url_prefix, version)
        path = out / "tasks.json"
        dm.atomic_write_bytes(path, json.dumps(tasks, indent=1).encode())
        config = out / "labelstudio_config.xml"
        dm.atomic_write_bytes(config, labelstudio_config(view_classes).encode())
        files += [path, config]
    log.info("exported %d images (%d pre-annotated) to %s", len(images), preannotated, out)
    return ExportResult(out, len(images), preannotated, files)
