"""Drawn "vehicles" (flat boxes with a window band) for the filter and review tests, and a detector that knows them.

Why not the toy world (:mod:`pipeline.toyworld.synthetic`, which these tests use for renders with exact boxes): the
rule tests need boxes at chosen places and sizes (``draw(seed, boxes=[...])``), and :class:`KnownBoxesDetector`
recognises images by the hash of their pixels, so the expected rows of these tests are tied to these exact drawings.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

import data_manifests as dm

COLOURS = [(200, 30, 30), (30, 160, 40), (40, 60, 200), (220, 180, 20)]


def draw(seed: int, size: int = 96, boxes: list[tuple[int, int, int, int]] | None = None) -> tuple[np.ndarray, list]:
    """An RGB image ``(size, size, 3)`` with coloured car-like boxes; returns the image and its boxes."""
    rng = np.random.default_rng(seed)
    img = rng.integers(90, 140, (size, size, 3), dtype=np.uint8)
    if boxes is None:
        w, h = int(rng.integers(size // 3, size // 2)), int(rng.integers(size // 5, size // 3))
        x, y = int(rng.integers(4, size - w - 4)), int(rng.integers(4, size - h - 4))
        boxes = [(x, y, x + w, y + h)]
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        img[y1:y2, x1:x2] = COLOURS[(seed + i) % len(COLOURS)]
        wy1, wy2 = y1 + (y2 - y1) // 5, y1 + (y2 - y1) // 2  # a dark window band
        img[wy1:wy2, x1 + (x2 - x1) // 6 : x2 - (x2 - x1) // 6] = (20, 20, 30)
    return img, list(boxes)


def png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def write_yolo_dataset(out: Path, n_train: int = 12, n_val: int = 4, size: int = 96) -> Path:
    """A tiny YOLO dataset (one class, "car") with train/val/test splits; returns the data.yaml path.

    (The toy world's YOLO export, ``diffveri toy world``, has no test split and names its class "vehicle": the
    ``toy detector`` test checks a report on a test split of "car" boxes.)
    """
    for split, n, offset in (("train", n_train, 0), ("val", n_val, 1000), ("test", n_val, 2000)):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, boxes = draw(offset + i, size)
            (out / "images" / split / f"{i:04d}.png").write_bytes(png(img))
            lines = []
            for x1, y1, x2, y2 in boxes:
                cx, cy, bw, bh = (x1 + x2) / 2 / size, (y1 + y2) / 2 / size, (x2 - x1) / size, (y2 - y1) / size
                lines.append(f"0 {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
            (out / "labels" / split / f"{i:04d}.txt").write_text("\n".join(lines) + "\n")
    data = {"path": str(out), "train": "images/train", "val": "images/val", "test": "images/test", "names": {0: "car"}}
    (out / "data.yaml").write_text(yaml.safe_dump(data))
    return out / "data.yaml"


def make_generations(
    root: Path, n_identities: int = 2, per_identity: int = 4, size: int = 96, seed: int = 0
) -> dict[str, list]:
    """Write subjects + generations (status ok) with drawn images under ``root``; returns image_id -> boxes."""
    views = ["front", "rear", "left", "right", "front_left", "front_right", "rear_left", "rear_right"]
    subjects, gens, truth = [], [], {}
    for k in range(n_identities):
        ident = f"toy{k:03d}"
        ref, _ = draw(10_000 + k, size)
        ref_path = f"subjects/{ident}/0.png"
        dm.atomic_write_bytes(root / ref_path, png(ref))
        subjects.append(
            {
                "identity_id": ident,
                "class_name": "sedan",
                "instance_images": [ref_path],
                "source": "toyworld",
                "status": "ok",
            }
        )
        for j in range(per_identity):
            view = views[j % len(views)]
            iid = dm.image_id(ident, view, seed + j, "toy")
            img, boxes = draw(seed + 100 * k + j, size)
            path = f"generations/{ident}/{iid}.png"
            dm.atomic_write_bytes(root / path, png(img))
            truth[iid] = boxes
            gens.append(
                {
                    "image_id": iid,
                    "identity_id": ident,
                    "intended_view": view,
                    "seed": seed + j,
                    "width": size,
                    "height": size,
                    "path": path,
                    "sha256": dm.sha256_file(root / path),
                    "model_ref": "toy",
                    "status": "ok",
                }
            )
    dm.upsert(root, "subjects", subjects)
    dm.upsert(root, "generations", gens)
    return truth


class KnownBoxesDetector:
    """A :class:`pipeline.filter.Detector` that "detects" the boxes an image was drawn with.

    It recognises images by the hash of their pixels and returns the boxes through a real ultralytics ``Results``,
    so the stage is tested end to end with exact, known detections (the real YOLO run is a separate test).
    """

    ref = "known-boxes:test"
    names = {0: "car"}

    def __init__(self, boxes_by_pixels: dict[str, list[list[float]]]):
        self.boxes_by_pixels = boxes_by_pixels
        self.batches: list[int] = []

    @staticmethod
    def key(image: np.ndarray) -> str:
        import hashlib

        return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()

    def predict(self, images):
        import torch
        from ultralytics.engine.results import Results

        from pipeline.filter import boxes_from_results

        self.batches.append(len(images))
        out = []
        for im in images:
            rows = self.boxes_by_pixels.get(self.key(im), [])
            data = torch.tensor(rows, dtype=torch.float32) if rows else torch.zeros((0, 6))
            out.append(boxes_from_results(Results(im, path="x.png", names=self.names, boxes=data)))
        return out


def known_detector(root: Path, truth: dict[str, list], conf: float = 0.9) -> KnownBoxesDetector:
    """A detector that finds each drawn box of the generations under ``root`` with confidence ``conf``."""
    from pipeline.filter.stage import load_rgb

    table = {}
    for r in dm.read_rows(root, "generations"):
        img = load_rgb(root / r["path"])
        table[KnownBoxesDetector.key(img)] = [[*map(float, b), conf, 0.0] for b in truth[r["image_id"]]]
    return KnownBoxesDetector(table)
