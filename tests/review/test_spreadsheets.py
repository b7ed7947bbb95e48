"""The annotator round trip through spreadsheets: delimiters, ids a spreadsheet would mangle, and a review folder
that is complete on its own (zipped and sent to an annotator)."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data_manifests as dm
from data_manifests.queries import accepted_image_ids
from pipeline.review import COLUMNS, export_batches, import_review_csv
from pipeline.review.idfix import looks_numeric, numbers_agree
from pipeline.review.sheet import VIEW_COLOURS, files_dir_name, referenced_files
from tests.filter.synth import draw, png

DIGIT_ID = "8123456789012345"  # a hex id made only of digits: Excel shows and saves it as 8.12346E+15


def read(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def write(path: Path, rows: list[dict[str, str]], delimiter: str = ",", encoding: str = "utf-8") -> None:
    with open(path, "w", newline="", encoding=encoding) as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS), delimiter=delimiter, lineterminator="\r\n")
        w.writeheader()
        w.writerows(rows)


def decide(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    for r in rows:
        r["decision"], r["reviewer"] = "accept", "ann"
    return rows


def add_digit_id_image(root: Path) -> None:
    """One more kept image of toy000 whose id is made only of digits."""
    img, boxes = draw(4242)
    path, crop = f"generations/toy000/{DIGIT_ID}.png", f"crops/toy000/{DIGIT_ID}.png"
    dm.atomic_write_bytes(root / path, png(img))
    x1, y1, x2, y2 = boxes[0]
    dm.atomic_write_bytes(root / crop, png(img[y1:y2, x1:x2]))
    dm.upsert(
        root,
        "generations",
        [{"image_id": DIGIT_ID, "identity_id": "toy000", "intended_view": "front", "path": path, "status": "ok"}],
    )
    dm.upsert(
        root,
        "detections",
        [{"image_id": DIGIT_ID, "bbox": [x1, y1, x2, y2], "conf": 0.9, "crop_path": crop, "status": "ok"}],
    )


@pytest.fixture
def exported(root, tmp_path):
    add_digit_id_image(root)
    [bid] = export_batches(root, tmp_path / "out", "all", 100)
    return bid, tmp_path / "out" / f"batch_{bid}.csv"


# ---------------------------------------------------------------------------------------------------- delimiters
@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolon"), ("\t", "tab"), (",", "comma")])
def test_semicolon_and_tab_files_import_and_the_report_names_the_delimiter(root, exported, delimiter, name):
    bid, path = exported
    rows = decide(read(path))
    if delimiter == ";":  # Excel in a decimal-comma locale: "0,9000" for the read-only confidence
        for r in rows:
            r["detector_conf"] = r["detector_conf"].replace(".", ",")
    write(path, rows, delimiter=delimiter, encoding="utf-8-sig")
    report = import_review_csv(path, root)
    assert report.ok, str(report)
    assert report.delimiter == delimiter and f"{name}-delimited" in str(report)
    assert report.updated == 9 and len(accepted_image_ids(root)) == 9


def test_semicolon_file_with_a_problem_still_names_the_delimiter_and_writes_nothing(root, exported):
    bid, path = exported
    rows = decide(read(path))
    rows[0]["decision"] = "maybe"
    write(path, rows, delimiter=";")
    report = import_review_csv(path, root)
    assert not report.ok and "semicolon-delimited" in str(report) and "line 2, column decision" in str(report)
    assert accepted_image_ids(root) == set()


# ----------------------------------------------------------------------------------------------------------- ids
def test_exported_ids_carry_a_letter_prefix_and_bare_ids_still_import(root, exported):
    bid, path = exported
    rows = read(path)
    assert all(r["image_id"].startswith("i") and not looks_numeric(r["image_id"]) for r in rows)
    assert f"i{DIGIT_ID}" in {r["image_id"] for r in rows}
    rows = decide(rows)
    for r in rows[::2]:
        r["image_id"] = r["image_id"][1:]  # the old form (files exported before the prefix)
    write(path, rows)
    report = import_review_csv(path, root)
    assert report.ok and report.updated == 9, str(report)


def test_excel_edited_file_recovers_a_mangled_id_exactly_from_the_image_cell(root, exported):
    """What Excel does to an old-form file: semicolons, BOM, the digit-only id shown as 8.12346E+15."""
    bid, path = exported
    rows = decide(read(path))
    for r in rows:
        r["image_id"] = r["image_id"][1:]
    [digit_row] = [r for r in rows if r["image_id"] == DIGIT_ID]
    digit_row["image_id"] = "8.12346E+15"
    digit_row["decision"] = "reject"
    write(path, rows, delimiter=";", encoding="utf-8-sig")
    report = import_review_csv(path, root)
    assert report.ok, str(report)
    assert report.updated == 9 and DIGIT_ID not in accepted_image_ids(root)
    assert any("8.12346E+15" in note and DIGIT_ID in note for note in report.recovered)
    assert "recovered as 8123456789012345" in str(report)
    row = next(r for r in dm.read_rows(root, "reviews") if r["image_id"] == DIGIT_ID)
    assert row["decision"] == "reject"


def test_a_mangled_id_that_cannot_be_recovered_exactly_is_an_error_naming_the_row(root, exported):
    bid, path = exported
    rows = decide(read(path))
    line = next(i for i, r in enumerate(rows, start=2) if r["image_id"] == f"i{DIGIT_ID}")
    rows[line - 2]["image_id"] = "8.12346E+15"
    rows[line - 2]["image"] = ""  # the image cell no longer names the image: nothing to recover from
    write(path, rows)
    before = dm.read_rows(root, "reviews")
    report = import_review_csv(path, root)
    assert not report.ok
    problems = [p for p in report.problems if p.column == "image_id"]
    assert [p.line for p in problems] == [line]
    assert "turned into a number by a spreadsheet" in problems[0].message
    assert sorted(dm.read_rows(root, "reviews"), key=str) == sorted(before, key=str)


def test_number_agreement_rules():
    assert numbers_agree("8.12346E+15", DIGIT_ID)
    assert numbers_agree("8123456789012350", DIGIT_ID)  # 15 significant digits, as Excel keeps them
    assert numbers_agree("8,12346E+15", DIGIT_ID)  # decimal comma
    assert not numbers_agree("8.12347E+15", DIGIT_ID)
    assert not numbers_agree("8.12346E+14", DIGIT_ID)
    assert not numbers_agree("8.12346E+15", "81234567890123ab")
    assert numbers_agree("1.23457E+57", "1234567890123e45")  # digits and one "e" read as scientific notation
    assert looks_numeric("8.12346E+15") and looks_numeric("123") and not looks_numeric("i123")


# ------------------------------------------------------------------------------------------- self-contained folder
def test_review_folder_copied_alone_shows_every_image_and_names_nothing_outside(root, exported, tmp_path):
    bid, path = exported
    elsewhere = tmp_path / "annotator_machine" / "review"
    shutil.copytree(path.parent, elsewhere)
    shutil.rmtree(root)  # the data root is not on the annotator's machine
    page = elsewhere / f"batch_{bid}.html"
    srcs = referenced_files(page)
    assert len(srcs) == 2 * 9  # a candidate and a reference per row (no masks yet)
    for src in srcs:
        assert not src.startswith(("/", "..")) and "://" not in src and ".." not in Path(src).parts
        target = (elsewhere / src).resolve()
        assert target.is_relative_to(elsewhere.resolve()) and target.is_file(), src
        with Image.open(target) as img:
            img.load()
    text = page.read_text()
    assert "../" not in text and str(root) not in text
    assert all(src.startswith(files_dir_name(bid) + "/") for src in srcs)
    assert f"i{DIGIT_ID}" in text  # the sheet shows the id as the CSV has it


def test_contact_sheet_shows_view_mask_overlays_where_segments_exist(root, tmp_path):
    gens = {r["image_id"]: r for r in dm.read_rows(root, "generations")}
    iid = sorted(gens)[0]
    with Image.open(root / gens[iid]["path"]) as img:
        w, h = img.size
    labels = np.zeros((h, w), np.int64)
    labels[: h // 2, :] = 1  # front
    labels[h // 2 :, : w // 2] = 3  # side
    classes = ("background", "front", "rear", "side", "top")
    dm.upsert(
        root,
        "segments",
        [
            {
                "image_id": iid,
                "view_classes": list(classes),
                "view_rles": dm.rle.label_map_to_rles(labels, classes),
                "dominant_view": "front",
                "status": "ok",
            }
        ],
    )
    [bid] = export_batches(root, tmp_path / "out", "all", 100)
    page = tmp_path / "out" / f"batch_{bid}.html"
    srcs = referenced_files(page)
    views = [s for s in srcs if s.endswith("_views.png")]
    assert views == [f"{files_dir_name(bid)}/{iid}_views.png"]  # only the segmented image has an overlay
    assert page.read_text().count("no masks yet") == 7
    with Image.open(tmp_path / "out" / views[0]) as img:
        overlay = np.asarray(img.convert("RGB")).astype(int)
    with Image.open(root / gens[iid]["path"]) as img:
        original = np.asarray(img.convert("RGB").resize(overlay.shape[1::-1])).astype(int)
    top, bottom_right = overlay[: h // 4], overlay[-h // 4 :, -w // 4 :]
    # The front half is tinted towards the front colour; the unlabelled quarter is unchanged.
    red = np.asarray(VIEW_COLOURS["front"])
    assert np.abs(top - red).mean() < np.abs(original[: h // 4] - red).mean()
    assert np.abs(bottom_right - original[-h // 4 :, -w // 4 :]).mean() < 2
    assert re.search(r"View masks:", page.read_text())
