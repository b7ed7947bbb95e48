"""YOLO filtering of generated images: a detector interface, the rules with reason codes, and the stage."""

from .detector import DETECTORS, Detector, UltralyticsDetector, build_detector
from .rules import FilterRules, Verdict, boxes_from_results, judge, margin_box, vehicle_boxes
from .stage import FilterConfig, filter_images, pending_generations, run_stage

__all__ = [
    "DETECTORS",
    "Detector",
    "UltralyticsDetector",
    "build_detector",
    "FilterRules",
    "Verdict",
    "boxes_from_results",
    "judge",
    "margin_box",
    "vehicle_boxes",
    "FilterConfig",
    "filter_images",
    "pending_generations",
    "run_stage",
]
