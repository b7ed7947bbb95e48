"""The filter rules: one verdict (kept or a reason code) per image from its detected boxes.

The rules work on a plain ``(N, 6)`` array ``[x1, y1, x2, y2, conf, cls]`` in pixels of the original image, which is
exactly ``ultralytics.engine.results.Results.boxes.data``; :func:`boxes_from_results` converts a ``Results``.
Checks run in a fixed order and the first failing one gives the reason code (see ``docs/filter.md``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from data_manifests import Reason


@dataclass(frozen=True)
class FilterRules:
    """Thresholds of the filter; every value is documented in ``docs/filter.md``.

    ``vehicle_classes`` are the detector class ids that count as vehicles; ``None`` means every class the detector
    knows (the toy detector is trained on vehicle classes only).
    """

    conf_min: float = 0.5  # the one vehicle must be at least this confident
    conf_other: float = 0.25  # a second vehicle at or above this confidence rejects the image
    min_area: float = 0.05  # box area / image area must exceed this
    border_tolerance: float = 0.005  # a box edge closer than this fraction of the image side to the border = truncated
    min_aspect: float = 0.4  # box width / height must lie in [min_aspect, max_aspect]
    max_aspect: float = 4.0
    vehicle_classes: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf_other <= self.conf_min <= 1.0:
            raise ValueError(
                f"filter rules need 0 <= conf_other ({self.conf_other}) <= conf_min ({self.conf_min}) <= 1; "
                "conf_other is the lower threshold that counts a second vehicle"
            )
        if not 0.0 < self.min_aspect < self.max_aspect:
            raise ValueError(f"filter rules need 0 < min_aspect ({self.min_aspect}) < max_aspect ({self.max_aspect})")
        if not 0.0 <= self.min_area < 1.0 or not 0.0 <= self.border_tolerance < 0.5:
            raise ValueError("filter rules need 0 <= min_area < 1 and 0 <= border_tolerance < 0.5")


@dataclass(frozen=True)
class Verdict:
    """The outcome for one image. ``bbox``/``conf``/``cls`` describe the most confident vehicle (also when rejected,
    so that a reviewer can see what the detector saw); they are ``None`` when no vehicle was found."""

    kept: bool
    reason: Reason | None
    n_vehicles: int  # vehicles at or above conf_other
    bbox: tuple[float, float, float, float] | None
    conf: float | None
    cls: int | None
    message: str = ""


def vehicle_boxes(boxes: np.ndarray, vehicle_classes: Collection[int] | None) -> np.ndarray:
    """Keep the rows of ``boxes: (N, 6)`` whose class is a vehicle class, sorted by confidence (descending)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 6)
    if vehicle_classes is not None:
        boxes = boxes[np.isin(boxes[:, 5].astype(np.int64), np.fromiter(vehicle_classes, dtype=np.int64))]
    return boxes[np.argsort(-boxes[:, 4], kind="stable")]


def judge(boxes: np.ndarray, image_hw: tuple[int, int], rules: FilterRules) -> Verdict:
    """Apply the rules to the detections of one image.

    Args:
        boxes: ``(N, 6)`` array ``[x1, y1, x2, y2, conf, cls]`` in pixels of the original image (any classes).
        image_hw: ``(height, width)`` of the original image.
        rules: the thresholds.
    """
    h, w = image_hw
    cand = vehicle_boxes(boxes, rules.vehicle_classes)
    present = cand[cand[:, 4] >= rules.conf_other]
    n = int(len(present))
    if len(cand) == 0:
        return Verdict(False, Reason.NO_VEHICLE, 0, None, None, None, "no vehicle-class box")
    top = cand[0]
    bbox = tuple(float(v) for v in top[:4])
    conf, cls = float(top[4]), int(top[5])

    def reject(reason: Reason, message: str) -> Verdict:
        return Verdict(False, reason, n, bbox, conf, cls, message)  # type: ignore[arg-type]

    # 1. Is there a vehicle at all (a box the detector is at least mildly sure of)?
    if conf < rules.conf_other:
        return reject(Reason.NO_VEHICLE, f"best vehicle conf {conf:.3f} < conf_other {rules.conf_other}")
    # 2. Is it confident enough to keep without a second look?
    if conf < rules.conf_min:
        return reject(Reason.LOW_CONFIDENCE, f"best vehicle conf {conf:.3f} < conf_min {rules.conf_min}")
    # 3. A second vehicle would make the identity ambiguous.
    if n > 1:
        return reject(Reason.MULTIPLE_VEHICLES, f"{n} vehicles with conf >= {rules.conf_other}")
    x1, y1, x2, y2 = bbox
    bw, bh = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
    # 4. Too small to carry identity detail.
    area = bw * bh / float(h * w)
    if area <= rules.min_area:
        return reject(Reason.TOO_SMALL, f"box covers {area:.3f} of the image <= min_area {rules.min_area}")
    # 5. Cut by the image border: part of the vehicle is missing.
    tx, ty = rules.border_tolerance * w, rules.border_tolerance * h
    if x1 <= tx or y1 <= ty or x2 >= w - tx or y2 >= h - ty:
        return reject(Reason.TRUNCATED, f"box {[round(v, 1) for v in bbox]} touches the border of a {w}x{h} image")
    # 6. Implausible shape (usually a merged or partial box).
    aspect = bw / bh if bh > 0 else float("inf")
    if not rules.min_aspect <= aspect <= rules.max_aspect:
        return reject(
            Reason.BAD_ASPECT, f"box aspect w/h {aspect:.2f} outside [{rules.min_aspect}, {rules.max_aspect}]"
        )
    return Verdict(True, None, n, bbox, conf, cls)  # type: ignore[arg-type]


def boxes_from_results(result: object) -> np.ndarray:
    """``ultralytics.engine.results.Results`` -> ``(N, 6)`` float array ``[x1, y1, x2, y2, conf, cls]``."""
    boxes = getattr(result, "boxes", None)
    if boxes is None:
        return np.zeros((0, 6), dtype=np.float64)
    data = boxes.data
    data = data.detach().cpu().numpy() if hasattr(data, "detach") else np.asarray(data)
    if data.ndim != 2 or data.shape[1] != 6:  # tracking results carry an id column: drop it
        data = np.concatenate([data[:, :4], data[:, -2:]], axis=1)
    return data.astype(np.float64)


def margin_box(
    bbox: tuple[float, float, float, float], image_hw: tuple[int, int], margin: float
) -> tuple[int, int, int, int]:
    """The integer crop window around ``bbox`` grown by ``margin`` x its size on every side, clipped to the image."""
    h, w = image_hw
    x1, y1, x2, y2 = bbox
    mx, my = margin * (x2 - x1), margin * (y2 - y1)
    cx1, cy1 = max(int(np.floor(x1 - mx)), 0), max(int(np.floor(y1 - my)), 0)
    cx2, cy2 = min(int(np.ceil(x2 + mx)), w), min(int(np.ceil(y2 + my)), h)
    if cx2 <= cx1 or cy2 <= cy1:
        raise ValueError(f"empty crop window for box {bbox} in a {w}x{h} image")
    return cx1, cy1, cx2, cy2
