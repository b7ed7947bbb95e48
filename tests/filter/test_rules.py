"""Filter rules on ultralytics' real ``Results`` objects filled with known boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ultralytics.engine.results import Results

from data_manifests import Reason
from pipeline.filter import FilterConfig, FilterRules, boxes_from_results, judge, margin_box

H, W = 100, 200
NAMES = {0: "person", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck", 9: "traffic light"}
COCO = FilterRules(vehicle_classes=frozenset({2, 3, 5, 7}))


def results(*boxes: list[float]) -> Results:
    """A real ``Results`` with ``boxes`` rows ``[x1, y1, x2, y2, conf, cls]`` on a ``(H, W)`` image."""
    data = torch.tensor(boxes, dtype=torch.float32) if boxes else torch.zeros((0, 6))
    return Results(np.zeros((H, W, 3), np.uint8), path="img.png", names=NAMES, boxes=data)


def verdict(res: Results, rules: FilterRules = COCO):
    return judge(boxes_from_results(res), res.orig_shape, rules)


GOOD = [40.0, 20.0, 160.0, 80.0, 0.9, 2.0]  # 120x60 car well inside the image


def test_one_good_vehicle_is_kept_with_its_box():
    v = verdict(results(GOOD))
    assert v.kept and v.reason is None
    assert v.bbox == pytest.approx(tuple(GOOD[:4])) and v.conf == pytest.approx(0.9) and v.cls == 2
    assert v.n_vehicles == 1


@pytest.mark.parametrize(
    "boxes, reason",
    [
        ([], Reason.NO_VEHICLE),
        ([[40, 20, 160, 80, 0.95, 0]], Reason.NO_VEHICLE),  # a person is not a vehicle
        ([[40, 20, 160, 80, 0.1, 2]], Reason.NO_VEHICLE),  # below conf_other
        ([[40, 20, 160, 80, 0.4, 2]], Reason.LOW_CONFIDENCE),  # between conf_other and conf_min
        ([GOOD, [10, 10, 30, 30, 0.3, 7]], Reason.MULTIPLE_VEHICLES),  # a second truck above conf_other
        ([[90, 40, 110, 60, 0.9, 2]], Reason.TOO_SMALL),  # 400 px of 20000 = 0.02
        ([[0, 20, 120, 80, 0.9, 2]], Reason.TRUNCATED),  # touches the left border
        ([[40, 20, 160, 100, 0.9, 5]], Reason.TRUNCATED),  # touches the bottom border
        ([[20, 40, 190, 60, 0.9, 2]], Reason.BAD_ASPECT),  # 170x20 = 8.5
        ([[90, 5, 110, 95, 0.9, 3]], Reason.BAD_ASPECT),  # 20x90 = 0.22
    ],
)
def test_each_rule_gives_its_reason(boxes, reason):
    v = verdict(results(*boxes))
    assert not v.kept and v.reason == reason, v.message


def test_second_box_below_conf_other_or_not_a_vehicle_is_ignored():
    assert verdict(results(GOOD, [10, 10, 30, 30, 0.2, 7])).kept
    assert verdict(results(GOOD, [10, 10, 30, 30, 0.99, 9])).kept  # traffic light


def test_rejected_rows_still_report_the_best_box():
    v = verdict(results([40, 20, 160, 80, 0.4, 7], [10, 10, 30, 30, 0.3, 2]))
    assert v.reason == Reason.LOW_CONFIDENCE and v.cls == 7 and v.n_vehicles == 2


def test_vehicle_classes_are_configurable():
    truck_only = FilterRules(vehicle_classes=frozenset({7}))
    assert verdict(results(GOOD), truck_only).reason == Reason.NO_VEHICLE
    assert verdict(results(GOOD), FilterRules(vehicle_classes=None)).kept  # "all" classes (toy detector)
    assert FilterConfig(vehicle_classes="all").rules().vehicle_classes is None
    assert FilterConfig(vehicle_classes=[2, 7]).rules().vehicle_classes == frozenset({2, 7})
    with pytest.raises(ValueError, match="vehicle_classes"):
        FilterConfig(vehicle_classes="cars").rules()


def test_thresholds_are_validated():
    with pytest.raises(ValueError, match="conf_other"):
        FilterRules(conf_min=0.2, conf_other=0.5)
    with pytest.raises(ValueError, match="aspect"):
        FilterRules(min_aspect=3.0, max_aspect=2.0)


def test_margin_box_grows_and_clips():
    assert margin_box((40, 20, 160, 80), (H, W), 0.1) == (28, 14, 172, 86)
    assert margin_box((5, 5, 195, 95), (H, W), 0.5) == (0, 0, 200, 100)
