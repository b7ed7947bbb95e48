"""Row builders (data_manifests.rows) make valid rows and refuse what the table writer refuses."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

import data_manifests as dm
from data_manifests import Status
from data_manifests.rows import MASK_COLUMNS, check_row, diffveri_row, generation_row, segment_row, subject_row

CLASSES = ("background", "front", "rear", "side", "top")
GOOD: dict[str, Any] = {
    "image_id": "img-1",
    "identity_id": "id-1",
    "class_name": "sedan",
    "camera_id": 2,
    "path": "images/img-1.png",
    "width": 8,
    "height": 6,
    "view_label": "rear",
    "provenance": {"seed": 3, "model_ref": "test"},
}

SUBJECT: dict[str, Any] = {
    "identity_id": "id-1",
    "class_name": "sedan",
    "instance_images": ["subjects/id-1/0.png", "subjects/id-1/1.png"],
    "source": "toyworld",
}
GENERATION: dict[str, Any] = {
    "image_id": "img-1",
    "identity_id": "id-1",
    "intended_view": "front_left",
    "seed": 7,
    "width": 32,
    "height": 32,
    "path": "generations/id-1/img-1.png",
    "model_ref": "toyworld:v1",
}


def _labels() -> np.ndarray:
    labels = np.zeros((6, 8), np.int64)
    labels[1:5, 1:4], labels[1:5, 4:7] = 2, 3
    return labels


def test_segment_row_counts_view_shares_and_rejects_an_empty_mask() -> None:
    labels = _labels()
    row = segment_row("img-1", [1, 1, 7, 5], labels > 0, labels, CLASSES, "sam:x", empty_message="nothing")
    assert row["status"] == Status.OK and row["dominant_view"] == "rear"
    assert row["view_fractions"] == [0.0, 0.0, 0.5, 0.5, 0.0] and row["bbox"] == [1.0, 1.0, 7.0, 5.0]
    assert dm.to_arrow("segments", [row]).num_rows == 1
    empty = segment_row("img-2", None, np.zeros((6, 8), bool), labels, CLASSES, "sam:x", empty_message="hidden")
    assert (empty["status"], empty["reason"], empty["message"]) == ("rejected", "empty_mask", "hidden")
    assert empty["dominant_view"] is None and dm.to_arrow("segments_gt", [empty]).num_rows == 1


def test_segment_row_refuses_an_unknown_view_class() -> None:
    labels = np.minimum(_labels(), 1)  # every vehicle pixel "front": the dominant view is valid, a class is not
    with pytest.raises(dm.ManifestError, match="view_classes='back'"):
        segment_row("img-1", None, labels > 0, labels, ("background", "front", "back"), "x", empty_message="")
    with pytest.raises(dm.ManifestError, match="'back'"):  # the writer refuses the same row
        dm.to_arrow(
            "segments",
            [
                {
                    **segment_row("i", None, labels > 0, labels, CLASSES, "x", empty_message=""),
                    "view_classes": ["background", "front", "back"],
                }
            ],
        )


def test_diffveri_row_is_what_the_table_stores() -> None:
    masks = {"dominant_view": "rear", "vehicle_rle": None, "view_classes": list(CLASSES), "view_rles": None}
    row = diffveri_row(**GOOD, masks=masks, source="synthetic")
    assert set(MASK_COLUMNS) <= set(row) and json.loads(row["provenance"]) == GOOD["provenance"]
    assert row["provenance"] == json.dumps(GOOD["provenance"], sort_keys=True) and "split" not in row
    stored = dm.to_arrow("diffveri", [{**row, "split": "train"}]).to_pylist()[0]
    assert {k: stored[k] for k in row} == row


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("view_label", "sideways"),  # outside INTENDED_VIEWS
        ("status", "okay"),  # outside Status
        ("source", "scraped"),  # outside ImageSource
        ("identity_id", None),  # required
        ("path", None),  # required
    ],
)
def test_diffveri_row_refuses_what_the_writer_refuses(column: str, value: Any) -> None:
    good = {**diffveri_row(**GOOD), "split": "gallery"}
    with pytest.raises(dm.ManifestError):
        dm.to_arrow("diffveri", [{**good, column: value}])
    with pytest.raises(dm.ManifestError, match=column):
        diffveri_row(**{**GOOD, column: value})


def test_check_row_names_unknown_columns_and_allows_later_ones() -> None:
    row = {**diffveri_row(**GOOD)}
    with pytest.raises(dm.ManifestError, match="split"):
        check_row("diffveri", row)  # split is required by the table
    check_row("diffveri", row, later=("split",))
    with pytest.raises(dm.ManifestError, match="unknown column"):
        check_row("diffveri", {**row, "vid": 1}, later=("split",))


@pytest.mark.parametrize(
    ("table", "build", "good"), [("subjects", subject_row, SUBJECT), ("generations", generation_row, GENERATION)]
)
def test_subject_and_generation_rows_are_what_the_table_stores(table: str, build: Any, good: dict[str, Any]) -> None:
    row = build(**good)
    assert row == {**good, "status": Status.OK}  # columns left at None are left out; status ok unless told
    assert list(row) == [c for c in dm.get_spec(table).schema.names if c in row]  # in the schema's order
    stored = dm.to_arrow(table, [row]).to_pylist()[0]
    assert {k: stored[k] for k in row} == row and all(v is None for k, v in stored.items() if k not in row)


def test_generation_row_of_an_image_that_was_not_made() -> None:
    row = generation_row(
        **{**GENERATION, "path": None},
        status=Status.PENDING,
        reason="budget_exhausted",
        message="synthesize.max_images=4 reached",
    )
    assert "path" not in row and (row["status"], row["reason"]) == ("pending", "budget_exhausted")
    assert dm.to_arrow("generations", [row]).num_rows == 1


@pytest.mark.parametrize(
    ("build", "good", "column", "value"),
    [
        (subject_row, SUBJECT, "source", "scraped"),  # outside Source
        (subject_row, SUBJECT, "status", "okay"),  # outside Status
        (subject_row, SUBJECT, "class_name", None),  # required
        (generation_row, GENERATION, "intended_view", "sideways"),  # outside INTENDED_VIEWS
        (generation_row, GENERATION, "reason", "tired"),  # outside Reason
        (generation_row, GENERATION, "identity_id", None),  # required
    ],
)
def test_subject_and_generation_rows_refuse_what_the_writer_refuses(
    build: Any, good: dict[str, Any], column: str, value: Any
) -> None:
    table = "subjects" if build is subject_row else "generations"
    with pytest.raises(dm.ManifestError):
        dm.to_arrow(table, [{**build(**good), column: value}])
    with pytest.raises(dm.ManifestError, match=column):
        build(**{**good, column: value})


@pytest.mark.parametrize(
    ("table", "build", "good"), [("subjects", subject_row, SUBJECT), ("generations", generation_row, GENERATION)]
)
def test_subject_and_generation_rows_refuse_an_unknown_column(table: str, build: Any, good: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match="colour"):
        build(**good, colour="red")
    with pytest.raises(dm.ManifestError, match="unknown column"):  # the same check the builder runs
        check_row(table, {**build(**good), "colour": "red"})
