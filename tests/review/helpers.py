"""A data root ready for review, shared by the review tests and the security tests of the review import."""

from __future__ import annotations

from pathlib import Path

import data_manifests as dm
from pipeline.filter import FilterRules, filter_images
from tests.filter.synth import known_detector, make_generations


def reviewed_root(root: Path) -> Path:
    """``root`` with 2 identities x 4 kept images (detections from known boxes), confidences 0.3 ... 0.95."""
    truth = make_generations(root, n_identities=2, per_identity=4)
    filter_images(root=root, detector=known_detector(root, truth), rules=FilterRules(min_area=0.02), progress=False)
    det = dm.read_rows(root, "detections")
    assert all(r["status"] == "ok" for r in det) and len(det) == 8
    confs = [0.3, 0.5, 0.7, 0.95]
    for i, r in enumerate(sorted(det, key=lambda r: r["image_id"])):
        r["conf"] = confs[i % 4]
    dm.upsert(root, "detections", det)
    return root
