"""The detector interface of the filter stage and its ultralytics implementation.

A detector turns a batch of RGB images into one ``(N, 6)`` box array per image (``[x1, y1, x2, y2, conf, cls]`` in
pixels of that image), the layout of ``ultralytics.engine.results.Results.boxes.data``. Other backends implement
the same :class:`Detector` protocol and are picked by name in :func:`build_detector`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from data_manifests import sha256_file

from .rules import boxes_from_results

log = logging.getLogger(__name__)


@runtime_checkable
class Detector(Protocol):
    """What the filter stage needs from a detector."""

    @property
    def ref(self) -> str:
        """Provenance recorded in ``detections.detector_ref`` (backend, weights file and its hash)."""
        ...

    @property
    def names(self) -> dict[int, str]:
        """Class id -> class name."""
        ...

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Detect vehicles in one batch.

        Args:
            images: RGB ``uint8`` arrays ``(H_i, W_i, 3)``; sizes may differ.
        Returns:
            one ``(N_i, 6)`` float array per image.
        """
        ...


class UltralyticsDetector:
    """A YOLO model loaded from a local weights file (``.pt``) or a model yaml (random weights, for tests)."""

    def __init__(
        self,
        weights: str | os.PathLike,
        *,
        imgsz: int = 640,
        conf: float = 0.25,
        iou: float = 0.7,
        device: str = "cpu",
        agnostic_nms: bool = True,
        half: bool = False,
    ) -> None:
        from ultralytics import YOLO

        weights = str(weights)
        if weights.endswith(".pt"):
            if not Path(weights).is_file():
                raise FileNotFoundError(
                    f"detector weights {weights} not found; set filter.weights to a local .pt file "
                    "(toy profile: run `diffveri toyworld-detector --root ROOT` first)"
                )
            digest = sha256_file(weights)[:12]
        else:  # a bundled model yaml such as "yolo11n.yaml": random weights, built offline
            digest = "random"
        self.model = YOLO(weights, task="detect")
        self._ref = f"ultralytics:{Path(weights).name}@{digest}"
        # Agnostic NMS: a car box and a truck box on the same vehicle must not count as two vehicles.
        self._kwargs = dict(
            imgsz=imgsz, conf=conf, iou=iou, device=device, agnostic_nms=agnostic_nms, half=half, verbose=False
        )

    @property
    def ref(self) -> str:
        return self._ref

    @property
    def names(self) -> dict[int, str]:
        return dict(self.model.names)

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not images:
            return []
        # Ultralytics treats numpy arrays as BGR (OpenCV order); ours are RGB.
        bgr = [np.ascontiguousarray(im[..., ::-1]) for im in images]
        # A list of arrays is one batch for ultralytics; stream=True yields Results lazily instead of keeping them.
        results = self.model.predict(bgr, stream=True, batch=len(bgr), **self._kwargs)
        return [boxes_from_results(r) for r in results]

    def predict_one(self, image: np.ndarray) -> np.ndarray:
        """One image per call (the reference of the benchmark)."""
        results = self.model.predict(np.ascontiguousarray(image[..., ::-1]), **self._kwargs)
        return boxes_from_results(results[0])


DETECTORS = ("ultralytics",)


def build_detector(backend: str, weights: str | os.PathLike, **kwargs: object) -> Detector:
    """A detector by backend name, with an error listing the valid names."""
    if backend == "ultralytics":
        return UltralyticsDetector(weights, **kwargs)  # type: ignore[arg-type]
    raise KeyError(f"unknown detector backend {backend!r}; valid backends: {', '.join(DETECTORS)}")
