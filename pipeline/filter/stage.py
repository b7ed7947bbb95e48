"""The filter stage: detect vehicles in generated images, apply the rules, crop kept images, write ``detections``.

Input: ``generations`` rows with status ``ok``. Output: one ``detections`` row per image — kept (status ``ok`` with
bbox, conf, cls and ``crop_path`` of a margin crop under ``ROOT/crops/``) or rejected with a reason code; images
that cannot be read get status ``failed``. Resumable: images that already have a ``detections`` row are skipped.
"""

from __future__ import annotations

import io
import logging
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image
from tqdm import tqdm

from data_manifests import (
    ImageTooLargeError,
    PathEscapeError,
    Reason,
    Status,
    atomic_write_bytes,
    check_id,
    existing_keys,
    inside_root,
    open_image,
    read_table,
    upsert,
)

from .detector import Detector, build_detector
from .rules import FilterRules, judge, margin_box

log = logging.getLogger(__name__)

CROPS_DIR = "crops"


@dataclass
class FilterConfig:
    """The ``filter:`` config section (every value is explained in ``docs/filter.md``)."""

    backend: str = "ultralytics"
    weights: str = "models/toy-yolo.pt"  # relative to the data root, or absolute
    vehicle_classes: list[int] | str = "all"  # detector class ids that are vehicles; "all" = every detector class
    imgsz: int = 128
    device: str = "cpu"
    iou: float = 0.7
    batch_size: int = 16
    conf_min: float = 0.5
    conf_other: float = 0.25
    min_area: float = 0.05
    border_tolerance: float = 0.005
    min_aspect: float = 0.4
    max_aspect: float = 4.0
    crop_margin: float = 0.1
    write_every: int = 512
    class_names: dict[int, str] = field(default_factory=dict)  # documentation only: what the ids above mean

    def rules(self) -> FilterRules:
        if isinstance(self.vehicle_classes, str):
            if self.vehicle_classes != "all":
                raise ValueError(
                    f"filter.vehicle_classes must be a list of class ids or 'all', not {self.vehicle_classes!r}"
                )
            classes = None
        else:
            classes = frozenset(int(c) for c in self.vehicle_classes)
        return FilterRules(
            conf_min=self.conf_min,
            conf_other=self.conf_other,
            min_area=self.min_area,
            border_tolerance=self.border_tolerance,
            min_aspect=self.min_aspect,
            max_aspect=self.max_aspect,
            vehicle_classes=classes,
        )


@dataclass
class _Item:
    image_id: str
    identity_id: str
    path: str
    image: np.ndarray | None = None  # RGB (H, W, 3) uint8
    error: tuple[Reason, str] | None = None


def load_rgb(path: Path) -> np.ndarray:
    """Decode an image file to an RGB ``uint8`` array ``(H, W, 3)`` (refused over the pixel limit)."""
    with open_image(path) as im:
        return np.asarray(im.convert("RGB"))


def _load(root: Path, row: dict[str, Any]) -> _Item:
    item = _Item(row["image_id"], row["identity_id"], row["path"] or "")
    try:
        path = inside_root(root, item.path, f"generations[{item.image_id}].path") if item.path else root
    except PathEscapeError as exc:
        item.error = (Reason.PATH_OUTSIDE_ROOT, str(exc))
        return item
    if not item.path or not path.is_file():
        item.error = (Reason.MISSING_FILE, f"{path} does not exist")
        return item
    try:
        item.image = load_rgb(path)
    except ImageTooLargeError as exc:
        item.error = (Reason.IMAGE_TOO_LARGE, str(exc))
    except Exception as exc:  # PIL raises several types for broken files
        item.error = (Reason.UNREADABLE_IMAGE, f"{path}: {exc}")
    return item


def _batches(root: Path, rows: list[dict[str, Any]], batch_size: int, prefetch: int = 2) -> Iterator[list[_Item]]:
    """Decode images in a background thread so that decoding overlaps prediction (PIL releases the GIL)."""
    q: queue.Queue[list[_Item] | None] = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def work() -> None:
        try:
            for i in range(0, len(rows), batch_size):
                if stop.is_set():
                    return
                q.put([_load(root, r) for r in rows[i : i + batch_size]])
        finally:
            q.put(None)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while (batch := q.get()) is not None:
            yield batch
    finally:
        stop.set()
        while thread.is_alive():  # unblock the producer if the consumer stopped early
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)


def write_crop(root: Path, identity_id: str, image_id: str, image: np.ndarray, window: Sequence[int]) -> str:
    """Write the crop atomically as PNG; returns its path relative to the root.

    The ids come from the manifest, so they are checked to be single path components and the path to stay inside
    the root: a row with ``identity_id='../../x'`` is refused, not written outside."""
    x1, y1, x2, y2 = window
    rel = f"{CROPS_DIR}/{check_id(identity_id, 'identity_id')}/{check_id(image_id, 'image_id')}.png"
    buf = io.BytesIO()
    Image.fromarray(image[y1:y2, x1:x2]).save(buf, format="PNG")
    atomic_write_bytes(inside_root(root, rel, "crop path"), buf.getvalue())
    return rel


def _ok_generations(root: Path, identities: Sequence[str] | None) -> list[dict[str, Any]]:
    gens = read_table(
        root, "generations", columns=["image_id", "identity_id", "path"], filter=pc.field("status") == Status.OK
    )
    if identities is not None:
        gens = gens.filter(pc.is_in(gens["identity_id"], value_set=pa.array(list(identities), pa.string())))
    return gens.to_pylist()


def pending_generations(root: Path, identities: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """``generations`` rows with status ok that have no ``detections`` row yet, in a stable order."""
    done = existing_keys(root, "detections")
    rows = [r for r in _ok_generations(root, identities) if r["image_id"] not in done]
    rows.sort(key=lambda r: (r["identity_id"], r["image_id"]))
    return rows


def filter_images(
    *,
    root: Path,
    detector: Detector,
    rules: FilterRules,
    batch_size: int = 16,
    crop_margin: float = 0.1,
    identities: Sequence[str] | None = None,
    write_every: int = 512,
    progress: bool = True,
) -> dict[str, int]:
    """Run the detector over every pending generated image and record a ``detections`` row for each.

    Returns counts: ``processed`` (rows written), ``kept``, ``rejected``, ``failed``, ``skipped`` (already done).
    """
    root = Path(root)
    if batch_size < 1:
        raise ValueError(f"filter.batch_size must be >= 1, got {batch_size}")
    n_ok = len(_ok_generations(root, identities))
    rows = pending_generations(root, identities)
    counts = {"processed": 0, "kept": 0, "rejected": 0, "failed": 0, "skipped": n_ok - len(rows)}
    buffer: list[dict[str, Any]] = []

    def flush() -> None:
        if buffer:
            upsert(root, "detections", buffer)  # rows reach disk in chunks, so a crash loses at most one chunk
            buffer.clear()

    bar = tqdm(total=len(rows), desc="filter", unit="img", disable=not progress)
    for batch in _batches(root, rows, batch_size):
        good = [it for it in batch if it.image is not None]
        # 1. One batched prediction per chunk of the stream.
        boxes_per_image = detector.predict([it.image for it in good])  # type: ignore[misc]
        boxes_of = {it.image_id: b for it, b in zip(good, boxes_per_image, strict=True)}
        for it in batch:
            row: dict[str, Any] = {"image_id": it.image_id, "detector_ref": detector.ref}
            if it.error is not None:
                row.update(status=Status.FAILED.value, reason=it.error[0].value, message=it.error[1])
                counts["failed"] += 1
            else:
                # 2. The rules decide; 3. kept images are cropped with a margin.
                assert it.image is not None
                hw = it.image.shape[:2]
                verdict = judge(boxes_of[it.image_id], hw, rules)
                row.update(
                    n_vehicles=verdict.n_vehicles,
                    bbox=list(verdict.bbox) if verdict.bbox else None,
                    conf=verdict.conf,
                    cls=verdict.cls,
                )
                if verdict.kept:
                    assert verdict.bbox is not None
                    window = margin_box(verdict.bbox, hw, crop_margin)
                    row["crop_path"] = write_crop(root, it.identity_id, it.image_id, it.image, window)
                    row["status"] = Status.OK.value
                    counts["kept"] += 1
                else:
                    assert verdict.reason is not None
                    row.update(status=Status.REJECTED.value, reason=verdict.reason.value, message=verdict.message)
                    counts["rejected"] += 1
            buffer.append(row)
            counts["processed"] += 1
        bar.update(len(batch))
        if len(buffer) >= write_every:
            flush()
    flush()
    bar.close()
    log.info("filter: %s", counts)
    return counts


def resolve_path(root: Path, path: str) -> Path:
    """A config path: absolute as is, otherwise relative to the data root."""
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else Path(root) / p


def run_stage(config: dict[str, Any], root: Path, identities: list[str] | None) -> Any:
    """``diffveri run filter``: the config adapter of :func:`filter_images`."""
    from pipeline.config import section
    from pipeline.stages import StageResult

    cfg = section(config, "filter", FilterConfig)
    rules = cfg.rules()
    root = Path(root)
    if not pending_generations(root, identities):
        return StageResult("filter", {"processed": 0}, "nothing to do: every ok generation has a detections row")
    detector = build_detector(
        cfg.backend,
        resolve_path(root, cfg.weights) if cfg.weights.endswith(".pt") else cfg.weights,
        imgsz=cfg.imgsz,
        conf=min(rules.conf_other, rules.conf_min),
        iou=cfg.iou,
        device=cfg.device,
    )
    counts = filter_images(
        root=root,
        detector=detector,
        rules=rules,
        batch_size=cfg.batch_size,
        crop_margin=cfg.crop_margin,
        identities=identities,
        write_every=cfg.write_every,
    )
    return StageResult("filter", counts, f"detector {detector.ref}")
