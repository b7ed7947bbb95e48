"""``diffveri toyworld``: render a toy world and write it as manifests and as VeRi / VehicleID / YOLO datasets.

Layout under ``out`` (every path in the manifests is relative to ``out``):

* ``subjects/<identity>/<view>.png`` — instance images at canonical views (for DreamBooth);
* ``renders/<identity>/<image_id>.png`` — every rendered image (lossless, so masks align exactly);
* ``manifests/`` — ``subjects``, ``generations``, ``segments`` and ``segments_gt`` (exact masks), ``diffveri``;
* ``VeRi/`` — VeRi-776 layout; ``VehicleID_V1.0/`` — VehicleID layout; ``detection/`` — YOLO dataset;
* ``toyworld.json`` — the settings used.

``family_size`` K >= 2 builds the family world (:mod:`pipeline.toyworld.family`): identities come in families of K
that only individual per-face cues tell apart, and the train/test split takes whole families. ``first_index`` N
makes the world hold identity indices ``[N, N + identities)``, so a second world with the same seed and an offset
(e.g. a pre-training world) has identities and families disjoint from the first.

Deterministic for a seed: every random draw comes from a generator seeded with ``(seed, identity index, image
index, purpose)``, so the result does not depend on the number of workers. Re-running skips identities whose images
and rows already exist (resume); the three folder exports are rebuilt under temporary names and swapped in whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

import data_manifests as dm
from data_manifests import INTENDED_VIEWS, VIEW_SETS, rle

from ..splits import assign_query_gallery
from .camera import view_to_camera
from .detection import render_scene, yolo_lines
from .family import check_family_size
from .identity import ToyIdentity, sample_identity
from .renderer import collapse_labels, render

log = logging.getLogger(__name__)

MODEL_REF = "toyworld:render"
SEGMENTER_REF = "groundtruth:toyworld"
INSTANCE_VIEWS: tuple[str, ...] = ("front_left", "rear_right", "left", "front")
# One virtual camera per viewpoint bin, as the assemble stage numbers them (VeRi-776 cameras see different angles).
CAMERA_OF_VIEW: dict[str, int] = {view: i + 1 for i, view in enumerate(INTENDED_VIEWS)}
# VehicleID images show the front or the rear of a vehicle (incl. three-quarter views), never the pure side or top.
VEHICLEID_VIEWS = frozenset({"front", "rear", "front_left", "front_right", "rear_left", "rear_right"})
DETECTION_CLASS_SETS: dict[str, dict[str, int]] = {
    "vehicle": {"sedan": 0, "suv": 0, "van": 0, "truck": 0, "bus": 0},
    "coco": {"sedan": 0, "suv": 0, "van": 0, "bus": 1, "truck": 2},  # names car, bus, truck
}
DETECTION_NAMES: dict[str, list[str]] = {"vehicle": ["vehicle"], "coco": ["car", "bus", "truck"]}
META_FORMAT = "toyworld-veri-meta-v1"  # VeRi/toyworld_meta.json, read by vehiclemae.reid.toymeta


@dataclass(frozen=True)
class ToyworldSettings:
    """Everything that determines a toy world export (saved as ``toyworld.json``)."""

    identities: int = 12
    images_per_identity: int = 16
    size: int = 128
    seed: int = 0
    instance_views: tuple[str, ...] = INSTANCE_VIEWS
    occluder_probability: float = 0.1  # share of rendered images with 1-2 occluders in front of the vehicle
    view_classes: str = "toyworld"  # label set of the masks: "toyworld" (left/right) or "pven" (side)
    train_fraction: float = 0.5  # share of identities in the train split (the rest: query/gallery, test lists)
    queries_per_identity: int = 2  # VeRi/diffveri queries per test identity, each on its own camera
    detection_images: int = 0  # 0 = max(16, 4 * identities)
    detection_classes: str = "vehicle"  # "vehicle" (one class) or "coco" (car, bus, truck)
    jpeg_quality: int = 95
    family_size: int = 1  # 1 = the classic world; K >= 2 = the family world (families of K identities)
    first_index: int = 0  # the world holds identity indices [first_index, first_index + identities)
    reid_crop: float | None = None  # VeRi/VehicleID images cut to the vehicle box + this margin (None: whole render)

    def validate(self) -> None:
        check_family_size(self.family_size)
        k = self.family_size
        if self.identities < 2:
            raise ValueError(
                f"--identities must be >= 2 (train and test need one identity each), got {self.identities}"
            )
        if k > 1 and (self.identities % k or self.identities < 2 * k):
            raise ValueError(
                f"--identities must be a multiple of --family-size {k} and hold at least two families (train and "
                f"test need one each), got {self.identities}; e.g. --identities {max(2, -(-self.identities // k)) * k}"
            )
        if self.first_index < 0 or self.first_index % k:
            raise ValueError(
                f"--first-index must be >= 0 and a multiple of --family-size {k} (worlds hold whole families), "
                f"got {self.first_index}"
            )
        if self.reid_crop is not None and not 0.0 <= self.reid_crop <= 1.0:
            raise ValueError(f"--reid-crop is a margin in [0, 1] (fraction of the vehicle box), got {self.reid_crop}")
        if self.images_per_identity < 2:
            raise ValueError(f"--images-per-identity must be >= 2, got {self.images_per_identity}")
        if self.size < 32:
            raise ValueError(f"--size must be >= 32 pixels, got {self.size}")
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in (0, 1), got {self.train_fraction}")
        if self.view_classes not in VIEW_SETS:
            raise ValueError(f"view_classes must be one of {sorted(VIEW_SETS)}, got {self.view_classes!r}")
        if self.detection_classes not in DETECTION_CLASS_SETS:
            raise ValueError(f"detection_classes must be one of {sorted(DETECTION_CLASS_SETS)}")
        bad = [v for v in self.instance_views if v not in INTENDED_VIEWS]
        if bad:
            raise ValueError(f"instance views {bad} are not in INTENDED_VIEWS {INTENDED_VIEWS}")


@dataclass
class ToyworldSummary:
    out: Path
    identities: int = 0
    images: int = 0
    rendered: int = 0
    skipped_identities: int = 0
    detection_images: int = 0
    splits: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"toyworld: {self.identities} identities, {self.images} images ({self.rendered} rendered, "
            f"{self.skipped_identities} identities resumed), {self.detection_images} detection images, "
            f"splits {self.splits} -> {self.out}"
        )


# Settings that change the pixels or masks of an image without changing its id, or which identities a world holds:
# a world must keep them.
RENDER_SETTINGS: tuple[str, ...] = (
    "seed", "size", "occluder_probability", "view_classes", "instance_views", "family_size", "first_index"
)  # fmt: skip


def check_compatible(out: Path, settings: ToyworldSettings) -> None:
    """Refuse to resume into a world built with other render settings (images would silently mix)."""
    info_path = out / "toyworld.json"
    if not info_path.is_file():
        return
    try:
        old = json.loads(info_path.read_text())["settings"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise ValueError(f"{info_path}: unreadable ({exc}); delete it or choose another --out") from exc
    new = asdict(settings)
    default = asdict(ToyworldSettings())  # worlds written before a setting existed used its default
    old = {k: old.get(k, default[k]) for k in RENDER_SETTINGS}
    differ = {k: (old[k], new[k]) for k in RENDER_SETTINGS if json.dumps(old[k]) != json.dumps(new[k])}
    if differ:
        shown = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in differ.items())
        raise ValueError(
            f"{out} holds a toy world rendered with other settings ({shown}); resuming would mix images. "
            "Use another --out, or delete the folder to rebuild it"
        )


def image_seed(seed: int, index: int, j: int) -> int:
    """The render seed of image ``j`` of identity ``index`` (uint32)."""
    return dm.seeds.derive_seed(seed, "toyworld.image", index, j)


@dataclass(frozen=True)
class PlannedImage:
    """An image to render: its id, view, camera and seed, and where it goes."""

    image_id: str
    identity_id: str
    j: int
    view: str
    azimuth: float
    elevation: float
    seed: int
    occluders: bool
    path: str


def plan_identity(settings: ToyworldSettings, index: int) -> tuple[ToyIdentity, list[PlannedImage]]:
    """The identity ``index`` and its ``images_per_identity`` planned images (cheap: no rendering).

    Views cycle through every ``INTENDED_VIEWS`` entry in a random order per cycle, so each identity is seen from
    all directions; cameras are jittered around each view (:func:`view_to_camera`). Image ``j`` depends only on
    ``(seed, index, j)``, so a larger ``images_per_identity`` extends a world without changing its images."""
    ident = sample_identity(settings.seed, index, settings.family_size)
    views: list[str] = []
    cycle = 0
    while len(views) < settings.images_per_identity:
        order = dm.seeds.rng(settings.seed, "toyworld.view_order", index, cycle).permutation(len(INTENDED_VIEWS))
        views.extend(INTENDED_VIEWS[int(i)] for i in order)
        cycle += 1
    plans = []
    for j, view in enumerate(views[: settings.images_per_identity]):
        rng = dm.seeds.rng(settings.seed, "toyworld.image_camera", index, j)
        azimuth, elevation = view_to_camera(view, rng)
        occluded = bool(rng.random() < settings.occluder_probability)
        seed = image_seed(settings.seed, index, j)
        iid = dm.image_id(ident.identity_id, view, seed, MODEL_REF)
        plans.append(
            PlannedImage(
                iid,
                ident.identity_id,
                j,
                view,
                azimuth,
                elevation,
                seed,
                occluded,
                f"renders/{ident.identity_id}/{iid}.png",
            )
        )
    if len({p.image_id for p in plans}) != len(plans):
        raise RuntimeError(f"{ident.identity_id}: two planned images share an image id; choose another --seed")
    return ident, plans


def write_file(path: Path, data: bytes) -> None:
    """Temp file + ``os.replace``: readers see the old file or the new one, never a part. No fsync per image
    (``data_manifests.atomic_write_bytes`` syncs, which costs more than rendering here); a crash may lose the
    last images, and the resume check then re-renders them because their rows were never written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def segment_row(image_id: str, labels: np.ndarray, bbox: tuple[float, ...] | None, classes: tuple[str, ...]) -> dict:
    """A ``segments`` row from a label map ``(H, W)`` over ``classes`` (background first). Fractions are shares of
    vehicle pixels (background's is 0); an empty vehicle (fully occluded) gives ``rejected``/``empty_mask``."""
    vehicle = labels > 0
    counts = np.bincount(labels[vehicle].ravel(), minlength=len(classes)).astype(np.float64)
    total = counts.sum()
    row: dict[str, Any] = {
        "image_id": image_id,
        "bbox": None if bbox is None else [float(v) for v in bbox],
        "vehicle_rle": rle.encode(vehicle),
        "view_classes": list(classes),
        "view_rles": rle.label_map_to_rles(labels, classes),
        "view_fractions": [float(f) for f in (counts / total if total else counts)],
        "dominant_view": classes[1 + int(np.argmax(counts[1:]))] if total else None,
        "segmenter_ref": SEGMENTER_REF,
        "status": "ok",
    }
    if not total:
        row.update(status="rejected", reason="empty_mask", message="occluders hide the whole vehicle")
    return row


def render_identity(args: tuple[ToyworldSettings, int, str, bool]) -> dict[str, Any]:
    """Worker: render identity ``index`` (instance images and planned images) into ``out``. Returns its rows.

    ``args = (settings, index, out, skip)``; with ``skip`` only the subject row is rebuilt (images exist)."""
    settings, index, out_str, skip = args
    out = Path(out_str)
    ident, plans = plan_identity(settings, index)
    classes = VIEW_SETS[settings.view_classes]
    # 1. Instance images at canonical views (no occluders).
    instance_paths = []
    rng = dm.seeds.rng(settings.seed, "toyworld.instance_cameras", index)
    for k, view in enumerate(settings.instance_views):
        azimuth, elevation = view_to_camera(view, rng)
        rel = f"subjects/{ident.identity_id}/{view}.png"
        instance_paths.append(rel)
        if not (skip and (out / rel).is_file()):
            r = render(ident, azimuth, elevation, settings.size, image_seed(settings.seed, index, 100_000 + k))
            write_file(out / rel, _png(r.image))
    subject = {
        "identity_id": ident.identity_id,
        "class_name": ident.class_name,
        "instance_images": instance_paths,
        "source": "toyworld",
        "attributes": json.dumps(ident.attributes(), sort_keys=True),
        "status": "ok",
    }
    result: dict[str, Any] = {"subject": subject, "generations": [], "segments": [], "rendered": 0}
    if skip:
        return result
    # 2. The planned images, their exact masks and rows.
    for p in plans:
        r = render(ident, p.azimuth, p.elevation, settings.size, p.seed, occluders=p.occluders)
        labels = collapse_labels(r.labels) if settings.view_classes == "pven" else r.labels
        data = _png(r.image)
        write_file(out / p.path, data)
        result["generations"].append(
            {
                "image_id": p.image_id,
                "identity_id": ident.identity_id,
                "intended_view": p.view,
                "prompt": f"a {ident.color_name} {ident.class_name}, {p.view.replace('_', ' ')} view",
                "seed": p.seed,
                "width": settings.size,
                "height": settings.size,
                "path": p.path,
                "sha256": hashlib.sha256(data).hexdigest(),
                "model_ref": MODEL_REF,
                "status": "ok",
            }
        )
        result["segments"].append(segment_row(p.image_id, labels, r.bbox, classes))
        result["rendered"] += 1
    return result


def _existing(out: Path, plans: list[PlannedImage], gen_keys: set[str], seg_keys: set[str]) -> bool:
    return all(p.image_id in gen_keys and p.image_id in seg_keys and (out / p.path).is_file() for p in plans)


def _swap_in(tmp: Path, dest: Path) -> None:
    """Replace folder ``dest`` by ``tmp`` (both on one file system) so readers never see a half-written export."""
    if dest.exists():
        old = dest.with_name(f".old-{dest.name}-{os.getpid()}")
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old)
    else:
        os.replace(tmp, dest)


def _tmpdir(out: Path, name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=out))


def vehicle_box(row: dict[str, Any], margin: float | None) -> tuple[int, int, int, int] | None:
    """The pixel box ``(x0, y0, x1, y1)`` of a diffveri row's vehicle mask grown by ``margin`` times its size per
    side and clipped to the image (Re-ID datasets are detection crops), or None for the whole image."""
    if margin is None:
        return None
    fg = rle.decode(row["vehicle_rle"])
    if not fg.any():
        return None
    rows, cols = np.flatnonzero(fg.any(1)), np.flatnonzero(fg.any(0))
    x0, x1, y0, y1 = int(cols[0]), int(cols[-1]) + 1, int(rows[0]), int(rows[-1]) + 1
    mx, my = round(margin * (x1 - x0)), round(margin * (y1 - y0))
    return (max(0, x0 - mx), max(0, y0 - my), min(fg.shape[1], x1 + mx), min(fg.shape[0], y1 + my))


def _save_jpeg(src: Path, dest: Path, quality: int, box: tuple[int, int, int, int] | None = None) -> None:
    buffer = io.BytesIO()
    image = Image.open(src).convert("RGB")
    (image if box is None else image.crop(box)).save(buffer, format="JPEG", quality=quality)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(buffer.getvalue())  # inside a temporary folder that is swapped in whole


# --------------------------------------------------------------------------------------------------------- splits
def train_identities(settings: ToyworldSettings, idents: list[ToyIdentity]) -> set[str]:
    """The identity ids of the train split: ``train_fraction`` of the families (of ``family_size`` consecutive
    identities; single identities in the classic world), drawn by the world seed, at least one family each for
    train and test. ``idents`` are the world's identities in index order."""
    k = settings.family_size
    n_units = len(idents) // k
    order = dm.seeds.rng(settings.seed, "toyworld.train_families").permutation(n_units)
    n_train = min(max(1, round(n_units * settings.train_fraction)), n_units - 1)
    return {idents[int(u) * k + m].identity_id for u in order[:n_train] for m in range(k)}


def assign_splits(rows: list[dict[str, Any]], train_ids: set[str], queries_per_identity: int, seed: int) -> None:
    """Set ``split`` on each row: train identities -> ``train``; the others -> query/gallery by the VeRi-776
    protocol of :func:`pipeline.splits.assign_query_gallery`."""
    test_ids = {r["identity_id"] for r in rows} - set(train_ids)
    assign_query_gallery(rows, test_ids, queries_per_identity, dm.seeds.rng(seed, "toyworld.query_gallery"))


# -------------------------------------------------------------------------------------------------------- exports
def export_veri(
    out: Path,
    rows: list[dict[str, Any]],
    quality: int,
    identities: dict[str, ToyIdentity],
    family_size: int,
    crop: float | None = None,
) -> Path:
    """``out/VeRi``: ``image_{train,query,test}/``, ``name_{train,query,test}.txt`` and ``toyworld_meta.json``.
    As in VeRi-776, ``image_test`` holds every test image (the queries too); files are
    ``{vid:04d}_c{cam:03d}_{frame:08d}_0.jpg`` with ``vid`` = identity index + 1, ``cam`` = viewpoint bin
    (``CAMERA_OF_VIEW``), ``frame`` = image index. ``toyworld_meta.json`` (:func:`veri_meta`) gives each image's
    view and camera angles and each vid's identity, family and body. ``crop`` (a margin) writes vehicle crops
    (:func:`vehicle_box`) instead of whole renders."""
    tmp = _tmpdir(out, "VeRi")
    names: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        name = veri_name(row)
        folders = ["image_train"] if row["split"] == "train" else ["image_test"]
        if row["split"] == "query":
            folders.append("image_query")
        box = vehicle_box(row, crop)
        for folder in folders:
            _save_jpeg(out / row["path"], tmp / folder / name, quality, box)
            names[folder].append(name)
    for folder in ("image_train", "image_query", "image_test"):
        (tmp / folder).mkdir(exist_ok=True)
        (tmp / folder.replace("image_", "name_")).with_suffix(".txt").write_text(
            "".join(f"{n}\n" for n in sorted(names[folder]))
        )
    meta = veri_meta(rows, identities, family_size)
    (tmp / "toyworld_meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    _swap_in(tmp, out / "VeRi")
    return out / "VeRi"


def veri_name(row: dict[str, Any]) -> str:
    """The VeRi-776 file name of a diffveri row with its export-only ``vid`` and ``frame``."""
    return f"{row['vid']:04d}_c{row['camera_id']:03d}_{row['frame']:08d}_0.jpg"


def veri_meta(rows: list[dict[str, Any]], identities: dict[str, ToyIdentity], family_size: int) -> dict[str, Any]:
    """The content of ``VeRi/toyworld_meta.json`` (format ``toyworld-veri-meta-v1``)::

        {"format": "toyworld-veri-meta-v1", "family_size": K,
         "images": {"<VeRi file name>": {"view": <INTENDED_VIEWS name>, "azimuth": float, "elevation": float}},
         "identities": {"<vid>": {"identity_id": "toy0011", "family": "fam0002", "class_name": str,
                                  "color_name": str, "dims": [length, width, height]}}}

    ``images`` covers every image of ``image_train`` and ``image_test`` (the queries are in ``image_test`` too);
    ``identities`` every vid of those names, keyed by the vid in decimal without padding. In the classic world an
    identity's ``family`` is its own identity id."""
    images: dict[str, dict[str, Any]] = {}
    idents: dict[str, dict[str, Any]] = {}
    for row in rows:
        camera = json.loads(row["provenance"])
        images[veri_name(row)] = {
            "view": row["view_label"],
            "azimuth": camera["azimuth"],
            "elevation": camera["elevation"],
        }
        ident = identities[row["identity_id"]]
        idents[str(row["vid"])] = {
            "identity_id": ident.identity_id,
            "family": ident.family or ident.identity_id,
            "class_name": ident.class_name,
            "color_name": ident.color_name,
            "dims": [round(d, 4) for d in ident.dims],
        }
    return {"format": META_FORMAT, "family_size": family_size, "images": images, "identities": idents}


def vehicleid_test_sizes(n_test: int) -> list[int]:
    """Test-list sizes scaled from VehicleID's 800/1600/2400 (of 2400): a third, two thirds and all test ids."""
    return sorted({max(1, round(n_test * k / 3)) for k in (1, 2, 3)})


def export_vehicleid(
    out: Path,
    rows: list[dict[str, Any]],
    identities: dict[str, ToyIdentity],
    train_ids: set[str],
    quality: int,
    crop: float | None = None,
) -> Path:
    """``out/VehicleID_V1.0``: ``image/<name>.jpg``, ``train_test_split/train_list.txt`` and
    ``test_list_<n>.txt`` (lines ``<name> <vid>``; the lists are nested, the smaller test sets being the first test
    identities), and ``attribute/{model_attr,color_attr}.txt`` (``<vid> <class id>``, ``<vid> <colour id>``).
    Only front/rear (incl. three-quarter) views are included, like VehicleID's surveillance photos."""
    from .identity import CLASSES, COLOR_NAMES

    tmp = _tmpdir(out, "VehicleID")
    (tmp / "train_test_split").mkdir()
    (tmp / "attribute").mkdir()
    lines: dict[str, list[str]] = defaultdict(list)
    number = 0
    for row in sorted(rows, key=lambda r: (r["vid"], r["frame"])):
        if row["view_label"] not in VEHICLEID_VIEWS:
            continue
        number += 1
        name = f"{number:07d}"
        _save_jpeg(out / row["path"], tmp / "image" / f"{name}.jpg", quality, vehicle_box(row, crop))
        lines[row["identity_id"]].append(f"{name} {row['vid']}\n")
    train = [i for i in sorted(lines) if i in train_ids]
    test = [i for i in sorted(lines) if i not in train_ids]
    (tmp / "train_test_split" / "train_list.txt").write_text("".join(x for i in train for x in lines[i]))
    for n in vehicleid_test_sizes(len(test)):
        (tmp / "train_test_split" / f"test_list_{n}.txt").write_text("".join(x for i in test[:n] for x in lines[i]))
    vids = sorted({(r["vid"], r["identity_id"]) for r in rows})
    (tmp / "attribute" / "model_attr.txt").write_text(
        "".join(f"{vid} {CLASSES.index(identities[i].class_name)}\n" for vid, i in vids)
    )
    (tmp / "attribute" / "color_attr.txt").write_text(
        "".join(f"{vid} {COLOR_NAMES.index(identities[i].color_name)}\n" for vid, i in vids)
    )
    _swap_in(tmp, out / "VehicleID_V1.0")
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
    """``out/detection``: ``images/{train,val}/*.jpg``, ``labels/{train,val}/*.txt`` (YOLO ``cls cx cy w h``), a
    ``data.yaml`` for ultralytics (paths relative to it) and ``scenes.jsonl`` (per image: every vehicle's identity,
    pixel box, and whether it is truncated or tiny). About a fifth of the images go to ``val``."""
    tmp = _tmpdir(out, "detection")
    class_of = DETECTION_CLASS_SETS[classes]
    n_val = max(1, n_images // 5)
    records = []
    for k in tqdm(range(n_images), desc="toyworld detection", disable=not progress, leave=False):
        split = "val" if k < n_val else "train"
        scene = render_scene(identities, size, dm.seeds.rng(seed, "toyworld.detection_scene", k))
        name = f"{k:06d}"
        buffer = io.BytesIO()
        Image.fromarray(scene.image).save(buffer, format="JPEG", quality=quality)
        (tmp / "images" / split).mkdir(parents=True, exist_ok=True)
        (tmp / "labels" / split).mkdir(parents=True, exist_ok=True)
        (tmp / "images" / split / f"{name}.jpg").write_bytes(buffer.getvalue())
        lines = yolo_lines(scene.vehicles, size, class_of)
        (tmp / "labels" / split / f"{name}.txt").write_text("".join(f"{line}\n" for line in lines))
        records.append(
            {
                "image": f"images/{split}/{name}.jpg",
                "split": split,
                "n_vehicles": len(scene.vehicles),
                "vehicles": [asdict(v) for v in scene.vehicles],
            }
        )
    names = DETECTION_NAMES[classes]
    yaml_lines = [
        "# YOLO dataset written by `diffveri toyworld`; paths are relative to this file's folder.",
        f"# classes: {classes!r} ({', '.join(names)})",
        "train: images/train",
        "val: images/val",
        "names:",
        *[f"  {i}: {n}" for i, n in enumerate(names)],
    ]
    (tmp / "data.yaml").write_text("\n".join(yaml_lines) + "\n")
    (tmp / "scenes.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    _swap_in(tmp, out / "detection")
    return out / "detection"


# ---------------------------------------------------------------------------------------------------------- main
def build_toyworld(
    out: str | os.PathLike,
    settings: ToyworldSettings,
    workers: int = 0,
    progress: bool = True,
    flush_every: int = 64,
) -> ToyworldSummary:
    """Render the toy world described by ``settings`` into ``out`` (see the module docstring for the layout).

    ``workers`` > 1 renders identities in that many processes; the output is identical for any value. Rows are
    written every ``flush_every`` identities (the resume granularity)."""
    settings.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_compatible(out, settings)
    summary = ToyworldSummary(out=out, identities=settings.identities)
    # 1. Plan every identity; identities whose images and rows already exist are only re-read (resume).
    first = settings.first_index
    plans = {i: plan_identity(settings, i) for i in range(first, first + settings.identities)}
    gen_keys = dm.existing_keys(out, "generations") if dm.table_exists(out, "generations") else set()
    seg_keys = dm.existing_keys(out, "segments_gt") if dm.table_exists(out, "segments_gt") else set()
    jobs = [(settings, i, str(out), _existing(out, plans[i][1], gen_keys, seg_keys)) for i in plans]
    summary.skipped_identities = sum(job[3] for job in jobs)
    # 2. Render (in worker processes when asked); results come back in identity order and are written every
    #    `flush_every` identities, so an interrupted run resumes from the last flush.
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        if not pending:
            return
        dm.upsert(out, "subjects", [r["subject"] for r in pending])
        gens = [g for r in pending for g in r["generations"]]
        segs = [s for r in pending for s in r["segments"]]
        if gens:
            # segments_gt keeps the exact masks when the segment stage later replaces `segments` with predictions.
            dm.upsert(out, "segments_gt", segs)
            dm.upsert(out, "segments", segs)
            dm.upsert(out, "generations", gens)  # last: its keys mark the identity as done for the resume check
        summary.rendered += sum(r["rendered"] for r in pending)
        pending.clear()

    bar = tqdm(total=len(jobs), desc="toyworld identities", disable=not progress)
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(get_context("spawn").Pool(workers))
            stream = pool.imap(render_identity, jobs)
        else:
            stream = map(render_identity, jobs)
        for res in stream:
            pending.append(res)
            bar.update()
            if len(pending) >= flush_every:
                flush()
        flush()
    bar.close()
    # 3. The exact masks of every planned image (from segments_gt: the ground truth even after the segment stage).
    wanted = {p.image_id for _, ps in plans.values() for p in ps}
    seg_by_id = {s["image_id"]: s for s in dm.read_rows(out, "segments_gt") if s["image_id"] in wanted}
    # 4. The diffveri table with identity-disjoint splits: whole families (classic world: single identities) go to
    #    train or test, so the test gallery holds the siblings of every query as hard negatives.
    identities = {ident.identity_id: ident for ident, _ in plans.values()}
    train_ids = train_identities(settings, [ident for ident, _ in plans.values()])
    rows = []
    for index, (ident, ps) in plans.items():
        for p in ps:
            seg = seg_by_id.get(p.image_id)
            if seg is None or seg["status"] != "ok":
                continue
            rows.append(
                {
                    "image_id": p.image_id,
                    "identity_id": ident.identity_id,
                    "class_name": ident.class_name,
                    "camera_id": CAMERA_OF_VIEW[p.view],
                    "path": p.path,
                    "width": settings.size,
                    "height": settings.size,
                    "view_label": p.view,
                    "dominant_view": seg["dominant_view"],
                    "vehicle_rle": seg["vehicle_rle"],
                    "view_classes": seg["view_classes"],
                    "view_rles": seg["view_rles"],
                    "provenance": json.dumps(
                        {
                            "model_ref": MODEL_REF,
                            "seed": p.seed,
                            "segmenter_ref": SEGMENTER_REF,
                            "azimuth": p.azimuth,
                            "elevation": p.elevation,
                            "occluders": p.occluders,
                        },
                        sort_keys=True,
                    ),
                    "status": "ok",
                    # export-only fields, dropped before writing
                    "vid": index + 1,
                    "frame": p.j,
                }
            )
    assign_splits(rows, train_ids, settings.queries_per_identity, settings.seed)
    table_rows = [{k: v for k, v in r.items() if k not in ("vid", "frame")} for r in rows]
    dm.write_table(out, "diffveri", table_rows)  # derived as a whole: replace, so no stale rows survive
    summary.images = len(rows)
    summary.splits = {s: sum(r["split"] == s for r in rows) for s in ("train", "query", "gallery")}
    # 5. Folder exports and the settings file.
    export_veri(out, rows, settings.jpeg_quality, identities, settings.family_size, settings.reid_crop)
    export_vehicleid(out, rows, identities, train_ids, settings.jpeg_quality, settings.reid_crop)
    n_det = settings.detection_images or max(16, 4 * settings.identities)
    export_detection(
        out,
        list(identities.values()),
        n_det,
        settings.size,
        settings.seed,
        settings.detection_classes,
        settings.jpeg_quality,
        progress,
    )
    summary.detection_images = n_det
    info = {"settings": asdict(settings), "train_identities": sorted(train_ids), "summary": str(summary)}
    dm.atomic_write_bytes(out / "toyworld.json", json.dumps(info, indent=1, sort_keys=True).encode())
    log.info("%s", summary)
    return summary
