"""Dataset-level IoU of vehicle masks and per-class IoU / mIoU of view label maps."""

from __future__ import annotations

from typing import Any

import numpy as np


class SegMeter:
    """Accumulates a view-class confusion matrix and vehicle intersection/union over many images.

    IoU is computed over the summed pixels of all images (the usual semantic-segmentation convention), so large
    and small vehicles weigh by their pixel counts.
    """

    def __init__(self, view_classes: tuple[str, ...]) -> None:
        self.view_classes = tuple(view_classes)
        k = len(view_classes)
        self.confusion = np.zeros((k, k), dtype=np.int64)  # rows: truth, columns: prediction
        self.vehicle_inter = 0
        self.vehicle_union = 0
        self.images = 0

    def update(
        self,
        pred_labels: np.ndarray,
        true_labels: np.ndarray,
        pred_vehicle: np.ndarray,
        true_vehicle: np.ndarray,
        valid: np.ndarray | None = None,
    ) -> None:
        """Add one or more images: label maps ``(..., H, W)`` int, vehicle masks ``(..., H, W)`` bool."""
        if pred_labels.shape != true_labels.shape or pred_vehicle.shape != true_vehicle.shape:
            raise ValueError(
                f"prediction and truth shapes differ: labels {pred_labels.shape} vs {true_labels.shape}, "
                f"vehicle {pred_vehicle.shape} vs {true_vehicle.shape}"
            )
        k = len(self.view_classes)
        if valid is None:
            valid = np.ones(true_labels.shape, dtype=bool)
        t, p = true_labels[valid].astype(np.int64), pred_labels[valid].astype(np.int64)
        self.confusion += np.bincount(t * k + p, minlength=k * k).reshape(k, k)
        tv, pv = true_vehicle[valid], pred_vehicle[valid]
        self.vehicle_inter += int(np.logical_and(tv, pv).sum())
        self.vehicle_union += int(np.logical_or(tv, pv).sum())
        self.images += 1 if true_labels.ndim == 2 else int(np.prod(true_labels.shape[:-2]))

    def result(self) -> dict[str, Any]:
        """``{"vehicle_iou", "view_miou" (classes other than background), "miou" (all), "iou": {class: iou}}``.

        A class absent from both prediction and truth has no IoU (``None``) and is left out of the means.
        """
        inter = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - inter
        iou = {c: (float(inter[i] / union[i]) if union[i] else None) for i, c in enumerate(self.view_classes)}
        views = [v for c, v in iou.items() if c != "background" and v is not None]
        every = [v for v in iou.values() if v is not None]
        return {
            "images": self.images,
            "vehicle_iou": self.vehicle_inter / self.vehicle_union if self.vehicle_union else None,
            "view_miou": float(np.mean(views)) if views else None,
            "miou": float(np.mean(every)) if every else None,
            "iou": iou,
        }


def format_result(result: dict[str, Any]) -> str:
    """One readable line per figure."""

    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    lines = [
        f"images      {result['images']}",
        f"vehicle IoU {f(result['vehicle_iou'])}",
        f"view mIoU   {f(result['view_miou'])}  (classes other than background)",
        f"mIoU        {f(result['miou'])}  (all classes)",
    ]
    lines += [f"  IoU {name:<10} {f(v)}" for name, v in result["iou"].items()]
    return "\n".join(lines)
