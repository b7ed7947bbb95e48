"""A small finished pipeline run for the assemble, flow, plan and progress tests: every table up to ``segments``,
with one image dropped by the filter and one rejected by a reviewer (:func:`build_root`).

Why hand-made rows and not the toy world (:mod:`pipeline.toyworld.synthetic`): the tests need the fate of each image
chosen (which stage drops it) and masks whose view fractions are known exactly, and they read nothing from pixels.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from PIL import Image

import data_manifests as dm
from data_manifests import rle

VIEWS = ("front", "rear", "left", "right", "front_left", "rear_right")


def build_root(root: Path, n_ids: int = 6, per_id: int = 6) -> dict[str, str]:
    """Tables of a small finished pipeline run; returns image_id -> what should happen to it."""
    subjects, gens, dets, revs, segs = [], [], [], [], []
    fate: dict[str, str] = {}
    (root / "images").mkdir(parents=True)
    for i in range(n_ids):
        identity = f"id{i:02d}"
        subjects.append(
            {"identity_id": identity, "class_name": "sedan", "instance_images": [], "source": "folder", "status": "ok"}
        )
        for j in range(per_id):
            view = VIEWS[j % len(VIEWS)]
            image_id = dm.image_id(identity, view, j, "test")
            path = f"images/{image_id}.png"
            img = np.zeros((40, 60, 3), np.uint8)
            img[10:30, 15:45] = (200, (30 * i) % 256, 10 * j)
            Image.fromarray(img).save(root / path)
            labels = np.zeros((40, 60), np.int64)
            labels[10:30, 15:30], labels[10:30, 30:45] = 1, 3
            classes = ["background", "front", "rear", "side", "top"]
            gens.append(
                {
                    "image_id": image_id,
                    "identity_id": identity,
                    "intended_view": view,
                    "seed": j,
                    "width": 60,
                    "height": 40,
                    "path": path,
                    "model_ref": "test",
                    "status": "ok",
                }
            )
            kept = not (i == 0 and j == 0)
            dets.append(
                {
                    "image_id": image_id,
                    "bbox": [15.0, 10.0, 45.0, 30.0],
                    "conf": 0.9,
                    "cls": 2,
                    "detector_ref": "yolo-test",
                    "status": "ok" if kept else "rejected",
                    "reason": None if kept else "too_small",
                }
            )
            accepted = not (i == 1 and j == 1)
            revs.append(
                {
                    "image_id": image_id,
                    "batch_id": "b1",
                    "decision": "accept" if accepted else "reject",
                    "view_label": view,
                    "identity_ok": True,
                    "reviewer": "ann",
                    "reviewed_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                    "status": "ok" if accepted else "rejected",
                    "reason": None if accepted else "reviewer_rejected",
                }
            )
            segs.append(
                {
                    "image_id": image_id,
                    "bbox": [15.0, 10.0, 45.0, 30.0],
                    "vehicle_rle": rle.encode(labels > 0),
                    "view_classes": classes,
                    "view_rles": rle.label_map_to_rles(labels, classes),
                    "view_fractions": [0.0, 0.5, 0.0, 0.5, 0.0],
                    "dominant_view": "front",
                    "segmenter_ref": "sam:test",
                    "status": "ok",
                }
            )
            fate[image_id] = "in" if kept and accepted else "out"
    for table, rows in (
        ("subjects", subjects),
        ("generations", gens),
        ("detections", dets),
        ("reviews", revs),
        ("segments", segs),
    ):
        dm.upsert(root, table, rows)
    return fate
