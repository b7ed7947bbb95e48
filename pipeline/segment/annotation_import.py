"""``diffveri segment annotations import``: human view masks from COCO or Label Studio into ``segments``.

The whole file is checked before anything is written; every problem is listed (with the annotation or task it
comes from) and one :class:`AnnotationImportError` is raised, leaving the tables as they were:

* an image the root does not know (COCO ``diffveri_image_id`` or file name; Label Studio ``data.diffveri_image_id``
  or the image file name), or whose size differs from the generated image;
* an unknown category (after ``--category-map NAME=VIEW``; a category mapped to ``background`` is skipped);
* a polygon with a point outside the image, fewer than 3 points, or an RLE of another size;
* duplicate annotation ids;
* two view classes of one image that overlap by more than ``overlap_tolerance`` (5 %) of the smaller region (a pixel
  has one view; smaller overlaps are boundary slop between polygons drawn one by one and go to the smaller region).

Accepted annotations become one ``segments`` row per image (``segmenter_ref`` = ``human:<format>:<sha256 prefix of
the file>``): the vehicle mask is the union of the view masks, ``bbox`` the filter's box (the mask's box when there is
none). Polygons and RLE (compressed or not) go through pycocotools; Label Studio brushes through
:mod:`.labelstudio_rle`. Re-importing the same file writes the same rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

import data_manifests as dm

from . import labelstudio_rle
from .annotations import HUMAN_PREFIX, KnownImage, known_images, mask_box
from .data import make_segment_row

log = logging.getLogger(__name__)

FORMATS = ("coco", "labelstudio")
MAX_LISTED = 200  # problems shown in the error message (the count is always complete)
# Share of the smaller of two view regions they may both claim: polygons drawn one after the other (Label Studio has
# no snapping) overlap by a pixel or two along shared face edges; a larger overlap is two views for one part.
DEFAULT_OVERLAP_TOLERANCE = 0.05


class AnnotationImportError(ValueError):
    """The file was refused; nothing was written. The message lists every problem."""


@dataclass
class Region:
    """One annotated region: a category and its shape (pixel polygons or a COCO RLE) on one image."""

    where: str  # for messages, e.g. "annotation id 7" or "task 3, result 'a1'"
    image_key: str  # our image id
    category: str  # the annotator's category name
    polygons: list[list[float]] | None = None  # [x1, y1, x2, y2, ...] in pixels
    rle: dict[str, Any] | None = None  # COCO RLE, counts as str or list
    mask: np.ndarray | None = None  # decoded already (Label Studio brush), (H, W) bool


@dataclass
class Parsed:
    """A file read into regions, plus the image sizes it states and the problems found while reading."""

    regions: list[Region] = field(default_factory=list)
    sizes: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # image id -> (w, h, where)
    problems: list[str] = field(default_factory=list)
    images: int = 0  # images (or tasks) in the file


@dataclass
class ImportResult:
    rows: int  # segments rows written (one per annotated image)
    images_in_file: int
    unannotated: int  # images of the file without any region (left alone)
    segmenter_ref: str
    replaced: int  # images whose previous segments row (a prediction or an older import) was replaced


# --------------------------------------------------------------------------------------------------- parsing
def _stem(name: Any) -> str:
    return Path(str(name or "").split("?d=")[-1]).stem


def parse_coco(doc: Any) -> Parsed:
    """COCO ``images`` / ``categories`` / ``annotations`` -> regions (segmentation as polygons or RLE)."""
    out = Parsed()
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        out.problems.append("not a COCO file: expected an object with 'images', 'categories' and 'annotations'")
        return out
    categories = {c.get("id"): str(c.get("name")) for c in doc.get("categories") or [] if isinstance(c, dict)}
    images: dict[Any, str] = {}
    for entry in doc["images"]:
        key = (entry.get("diffveri_image_id") or _stem(entry.get("file_name"))) if isinstance(entry, dict) else ""
        if not key:
            out.problems.append(f"image entry {entry!r:.80}: no diffveri_image_id and no file_name")
            continue
        images[entry.get("id")] = key
        if entry.get("width") is not None and entry.get("height") is not None:
            out.sizes[key] = (int(entry["width"]), int(entry["height"]), f"image id {entry.get('id')}")
    out.images = len(images)
    seen: Counter = Counter(a.get("id") for a in doc.get("annotations") or [] if isinstance(a, dict))
    out.problems += [f"annotation id {k} appears {n} times" for k, n in seen.items() if n > 1]
    for a in doc.get("annotations") or []:
        where = f"annotation id {a.get('id')}"
        if a.get("image_id") not in images:
            out.problems.append(f"{where}: image_id {a.get('image_id')} is not in the file's images")
            continue
        if a.get("category_id") not in categories:
            out.problems.append(f"{where}: category_id {a.get('category_id')} is not in the file's categories")
            continue
        seg = a.get("segmentation")
        region = Region(where, images[a["image_id"]], categories[a["category_id"]])
        if isinstance(seg, list):
            region.polygons = seg
        elif isinstance(seg, dict):
            region.rle = seg
        else:
            out.problems.append(f"{where}: segmentation must be polygons (a list) or an RLE object")
            continue
        out.regions.append(region)
    return out


def _latest_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    done = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    return done[-1] if done else None


def _ls_regions(item: dict[str, Any], key: str, where: str) -> tuple[list[Region], str | None]:
    """The regions of one Label Studio result (polygon or brush), or why it cannot be read."""
    kind, value = item.get("type"), item.get("value") or {}
    w, h = item.get("original_width"), item.get("original_height")
    if kind not in ("polygonlabels", "brushlabels"):
        return [], f"type {kind!r} is not supported; draw views with polygons (PolygonLabels) or brushes (BrushLabels)"
    if w is None or h is None:
        return [], "no original_width/original_height"
    labels = value.get(kind) or [None]
    if kind == "brushlabels":
        if value.get("format", "rle") != "rle" or not isinstance(value.get("rle"), list):
            return [], "a brush result needs value.rle (Label Studio's RLE)"
        try:
            mask = labelstudio_rle.decode(value["rle"], int(h), int(w))
        except ValueError as exc:
            return [], f"brush mask: {exc}"
        return [Region(where, key, str(label), mask=mask) for label in labels], None
    pts = value.get("points") or []
    bad = [p for p in pts if not (0 <= p[0] <= 100 and 0 <= p[1] <= 100)]
    if bad:
        return [], f"polygon point(s) {bad[:3]} outside the image (percent 0-100)"
    flat = [float(c) for x, y in pts for c in (x * int(w) / 100.0, y * int(h) / 100.0)]
    return [Region(where, key, str(label), polygons=[flat]) for label in labels], None


def parse_labelstudio(doc: Any) -> Parsed:
    """Label Studio JSON export (a list of tasks) -> regions of each task's latest annotation (polygons, brushes)."""
    out = Parsed()
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        out.problems.append("not a Label Studio export: expected a JSON list of tasks")
        return out
    out.images = len(doc)
    annotation_ids: Counter = Counter()
    for n, task in enumerate(doc):
        data = task.get("data") if isinstance(task, dict) else None
        tag = f"task {task.get('id', n) if isinstance(task, dict) else n}"
        if not isinstance(data, dict):
            out.problems.append(f"{tag}: no 'data' object")
            continue
        key = data.get("diffveri_image_id") or _stem(data.get("image"))
        annotation = _latest_annotation(task)
        if annotation is None:
            continue
        if annotation.get("id") is not None:
            annotation_ids[annotation["id"]] += 1
        result_ids: Counter = Counter()
        for item in annotation.get("result") or []:
            where = f"{tag}, result {item.get('id')!r}"
            result_ids[item.get("id")] += 1
            regions, problem = _ls_regions(item, key, where)
            if problem:
                out.problems.append(f"{where}: {problem}")
                continue
            out.sizes[key] = (int(item["original_width"]), int(item["original_height"]), where)
            out.regions += regions
        out.problems += [f"{tag}: result id {k!r} appears {c} times" for k, c in result_ids.items() if c > 1]
    out.problems += [f"annotation id {k} appears {c} times" for k, c in annotation_ids.items() if c > 1]
    return out


# ------------------------------------------------------------------------------------------------ validation
def _shape_problem(region: Region, w: int, h: int) -> str | None:
    if region.mask is not None:
        return None if region.mask.shape == (h, w) else f"mask of {region.mask.shape[::-1]} for a {w}x{h} image"
    if region.polygons is not None:
        if not region.polygons:
            return "empty polygon list"
        for poly in region.polygons:
            if len(poly) < 6 or len(poly) % 2:
                return f"a polygon needs at least 3 (x, y) points, got {len(poly)} numbers"
            xs, ys = np.asarray(poly[0::2], float), np.asarray(poly[1::2], float)
            if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
                return "a polygon has non-finite coordinates"
            if xs.min() < 0 or ys.min() < 0 or xs.max() > w or ys.max() > h:
                return (
                    f"polygon out of bounds: x in [{xs.min():g}, {xs.max():g}], y in [{ys.min():g}, {ys.max():g}] "
                    f"for a {w}x{h} image"
                )
        return None
    size = (region.rle or {}).get("size")
    if not isinstance(size, list | tuple) or [int(v) for v in size] != [h, w]:
        return f"RLE size {size} differs from the image's [height, width] [{h}, {w}]"
    if "counts" not in (region.rle or {}):
        return "RLE without counts"
    return None


def rasterise(region: Region, w: int, h: int) -> np.ndarray:
    """The region's pixels ``(H, W)`` bool, through pycocotools (polygons and RLE, compressed or not)."""
    if region.mask is not None:
        return region.mask
    if region.polygons is not None:
        rles = mask_utils.frPyObjects([list(map(float, p)) for p in region.polygons], h, w)
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    rle = dict(region.rle or {})
    if isinstance(rle["counts"], list):
        rle = mask_utils.frPyObjects(rle, h, w)
    elif isinstance(rle["counts"], str):
        rle = {"size": [h, w], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def _category_target(name: str, category_map: dict[str, str], view_classes: tuple[str, ...]) -> str | None:
    target = category_map.get(name, name)
    return target if target in view_classes else None


def build_label_maps(
    parsed: Parsed,
    known: dict[str, KnownImage],
    view_classes: tuple[str, ...],
    category_map: dict[str, str],
    overlap_tolerance: float = 0.0,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Label maps per image (indices into ``view_classes``) and every problem found."""
    problems = list(parsed.problems)
    for key, (w, h, where) in sorted(parsed.sizes.items()):
        k = known.get(key)
        if k is not None and (w, h) != (k.width, k.height):
            problems.append(f"{where}: image {key} is {w}x{h} in the file but {k.width}x{k.height} in generations")
    masks: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    for region in parsed.regions:
        k = known.get(region.image_key)
        if k is None:
            problems.append(f"{region.where}: unknown image {region.image_key!r} (not an ok generation of this root)")
            continue
        target = _category_target(region.category, category_map, view_classes)
        if target is None:
            problems.append(
                f"{region.where}: unknown category {region.category!r}; view classes are {list(view_classes[1:])} "
                "(map other names with --category-map NAME=VIEW)"
            )
            continue
        shape = _shape_problem(region, k.width, k.height)
        if shape:
            problems.append(f"{region.where}: {shape}")
            continue
        if target == "background":
            continue
        mask = rasterise(region, k.width, k.height)
        if not mask.any():
            problems.append(f"{region.where}: the region covers no pixel")
            continue
        index = view_classes.index(target)
        per_class = masks[region.image_key]
        per_class[index] = per_class[index] | mask if index in per_class else mask
    labels: dict[str, np.ndarray] = {}
    for key, per_class in sorted(masks.items()):
        k = known[key]
        label, overlaps = merge_views(per_class, (k.height, k.width), overlap_tolerance)
        problems += [
            f"image {key}: {view_classes[a]} and {view_classes[b]} overlap on {n} pixel(s), {n / smaller:.0%} of the "
            f"smaller region (tolerated: {overlap_tolerance:.0%}); a pixel has one view"
            for a, b, n, smaller in overlaps
        ]
        labels[key] = label
    return labels, problems


def merge_views(
    per_class: dict[int, np.ndarray], shape: tuple[int, int], tolerance: float
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """One label map from per-class masks, and the overlaps larger than ``tolerance``.

    Two regions drawn separately rarely meet exactly: an overlap of at most ``tolerance`` x the smaller region's area
    is boundary slop and its pixels go to the smaller region (a detail drawn over a larger face); a larger overlap is
    returned as ``(class a, class b, pixels, smaller area)`` — two views claimed for the same part of the vehicle.
    """
    label = np.zeros(shape, np.int64)
    overlaps = []
    classes = sorted(per_class, key=lambda c: (-int(per_class[c].sum()), c))  # largest first: smaller ones win
    for i, a in enumerate(classes):
        for b in classes[i + 1 :]:
            both = int((per_class[a] & per_class[b]).sum())
            smaller = int(min(per_class[a].sum(), per_class[b].sum()))
            if both > tolerance * smaller:
                overlaps.append((min(a, b), max(a, b), both, smaller))
        label[per_class[a]] = a
    return label, overlaps


# ---------------------------------------------------------------------------------------------------- import
def parse_category_map(items: list[str] | None) -> dict[str, str]:
    """``["NAME=VIEW", ...]`` -> ``{NAME: VIEW}`` (clear error on a malformed item)."""
    out = {}
    for item in items or []:
        name, sep, view = item.partition("=")
        if not sep or not name or not view:
            raise ValueError(f"--category-map expects NAME=VIEW, got {item!r}")
        out[name] = view
    return out


def detect_format(doc: Any) -> str:
    """``coco`` for an object with ``images``, ``labelstudio`` for a list of tasks."""
    if isinstance(doc, dict) and "images" in doc:
        return "coco"
    if isinstance(doc, list):
        return "labelstudio"
    raise ValueError("cannot tell the format of the file; pass --format coco|labelstudio")


def import_annotations(
    path: Path,
    root: Path,
    *,
    view_classes: tuple[str, ...],
    fmt: str | None = None,
    category_map: dict[str, str] | None = None,
    overlap_tolerance: float = DEFAULT_OVERLAP_TOLERANCE,
) -> ImportResult:
    """Validate ``path`` whole against ``root``, then upsert one human ``segments`` row per annotated image.

    ``overlap_tolerance``: two views of one image may share at most this fraction of the smaller region (boundary
    slop between polygons drawn one by one; those pixels go to the smaller region); more is refused.
    """
    if not 0.0 <= overlap_tolerance < 1.0:
        raise ValueError(f"--overlap-tolerance must be in [0, 1), got {overlap_tolerance}")
    path, root = Path(path), Path(root)
    # 1. Read the file and its format.
    data = path.read_bytes()
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise AnnotationImportError(f"{path} is not JSON ({exc})") from exc
    fmt = fmt or detect_format(doc)
    if fmt not in FORMATS:
        raise ValueError(f"unknown annotation format {fmt!r}; valid: {', '.join(FORMATS)}")
    parsed = parse_coco(doc) if fmt == "coco" else parse_labelstudio(doc)
    # 2. Validate everything against the root before writing anything.
    unknown_targets = sorted({v for v in (category_map or {}).values() if v not in view_classes})
    if unknown_targets:
        raise ValueError(f"--category-map targets {unknown_targets} are not view classes {list(view_classes)}")
    known = known_images(root)
    labels, problems = build_label_maps(parsed, known, view_classes, category_map or {}, overlap_tolerance)
    if problems:
        listed = "\n  ".join(problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise AnnotationImportError(f"{path}: {len(problems)} problem(s); nothing was imported:\n  {listed}{more}")
    # 3. One row per annotated image; the same file always gives the same rows.
    ref = f"{HUMAN_PREFIX}{fmt}:{hashlib.sha256(data).hexdigest()[:16]}"
    rows = []
    for key, label in labels.items():
        vehicle = label > 0
        bbox = known[key].bbox or mask_box(vehicle)
        rows.append(make_segment_row(key, bbox, vehicle, label, view_classes, ref))
    replaced = 0
    if rows and dm.table_exists(root, "segments"):
        replaced = len(dm.existing_keys(root, "segments") & set(labels))
    if rows:
        dm.upsert(root, "segments", rows)
    log.info("imported %d annotated images from %s (%s)", len(rows), path, ref)
    return ImportResult(len(rows), parsed.images, parsed.images - len(rows), ref, replaced)
