"""Issue #19 items 5 and 9: paths built from manifest values stay inside the data root (ids are checked when
written and when read); images over the pixel limit are refused with a message before they are decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data_manifests as dm
from pipeline.cli import main as diffveri
from pipeline.filter import FilterRules, filter_images
from pipeline.filter.stage import write_crop
from pipeline.generate.common import check_image, write_png
from pipeline.generate.subjects import SubjectImportError, from_folder, import_subjects
from tests.data_manifests.rows import example_row
from tests.filter.synth import draw, known_detector, make_generations, png
from tests.generate.helpers import draw_vehicle

from .manifest_tools import bomb_png, raw_write

RULES = FilterRules(min_area=0.02, vehicle_classes=None)


def _hostile_generation(root: Path, **values: str) -> dict:
    """A generations row with a drawn image, appended by pyarrow alone (the checked writer refuses it)."""
    img, boxes = draw(7, 96)
    dm.atomic_write_bytes(root / "generations" / "ok" / "x.png", png(img))
    row = dict(example_row("generations", 0), image_id="hostile0", path="generations/ok/x.png", **values)
    raw_write(root, "generations", [row])
    return {"hostile0": boxes}


# ------------------------------------------------------------------------------------------------------------ paths
def test_a_generations_row_with_a_traversal_id_makes_the_filter_refuse_not_write_outside(tmp_path: Path) -> None:
    root = tmp_path / "data"
    truth = make_generations(root, n_identities=1, per_identity=2)
    truth |= _hostile_generation(root, identity_id="../../x")
    with pytest.raises(dm.ManifestError, match=r"identity_id='\.\./\.\./x', which is not a valid id"):
        filter_images(root=root, detector=known_detector(root, truth), rules=RULES, progress=False)
    assert not (tmp_path / "x").exists() and not (root.parent.parent / "x").exists()
    assert not dm.table_exists(root, "detections")
    problems = dm.validate(root)
    assert ("generations", "bad_id", "identity_id") in {(p.table, p.kind, p.column) for p in problems}


def test_the_checked_writer_refuses_such_ids(tmp_path: Path) -> None:
    for bad in ("../../x", "a/b", "..", ".", "", "x\\y"):
        with pytest.raises(dm.ManifestError, match="invalid id"):
            dm.upsert(tmp_path, "generations", [dict(example_row("generations"), identity_id=bad)])


def test_write_crop_checks_its_ids_and_the_path(tmp_path: Path) -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="not a valid id"):
        write_crop(tmp_path / "data", "../../x", "abc", image, (0, 0, 4, 4))
    (tmp_path / "data" / "crops").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "data" / "crops" / "toy000").symlink_to(tmp_path / "elsewhere")  # a folder that leads outside
    with pytest.raises(dm.PathEscapeError, match="leaves the data root"):
        write_crop(tmp_path / "data", "toy000", "abc", image, (0, 0, 4, 4))
    assert not list((tmp_path / "elsewhere").iterdir())


def test_a_path_outside_the_root_is_not_read_and_the_row_says_so(tmp_path: Path) -> None:
    root = tmp_path / "data"
    truth = make_generations(root, n_identities=1, per_identity=2)
    secret, boxes = draw(3, 96)
    (tmp_path / "secret.png").write_bytes(png(secret))
    raw_write(root, "generations", [dict(example_row("generations", 0), image_id="outside0", path="../secret.png")])
    truth["outside0"] = boxes
    filter_images(root=root, detector=known_detector(root, truth), rules=RULES, progress=False)
    row = next(r for r in dm.read_rows(root, "detections") if r["image_id"] == "outside0")
    assert row["status"] == "failed" and row["reason"] == "path_outside_root" and row["crop_path"] is None
    assert "leaves the data root" in row["message"]
    kinds = {(p.table, p.kind) for p in dm.validate(root, check_files=False)}
    assert ("generations", "path_outside_root") in kinds


# ----------------------------------------------------------------------------------------------------------- images
def test_a_decompression_bomb_is_refused_by_the_subjects_import(tmp_path: Path) -> None:
    src = tmp_path / "photos"
    write_png(src / "car1" / "0.png", draw_vehicle(1, 24))
    (src / "car1" / "1.png").write_bytes(bomb_png())
    assert check_image(src / "car1" / "1.png") == "image_too_large"
    with pytest.raises(SubjectImportError, match="has more pixels than the limit"):
        import_subjects(tmp_path / "root", from_folder(src))
    assert not (tmp_path / "root").exists()


def test_the_cli_says_so_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "photos"
    (src / "car1").mkdir(parents=True)
    (src / "car1" / "0.png").write_bytes(bomb_png())
    code = diffveri(["subjects", "import", "--root", str(tmp_path / "root"), "--from", "folder", str(src)])
    err = capsys.readouterr().err
    assert code == 2 and "has more pixels than the limit (DIFFVERI_MAX_IMAGE_PIXELS)" in err and "Traceback" not in err


def test_the_filter_marks_a_bomb_failed_without_decoding_it(tmp_path: Path) -> None:
    root = tmp_path / "data"
    truth = make_generations(root, n_identities=1, per_identity=2)
    bomb = next(iter(truth))
    path = next(r["path"] for r in dm.read_rows(root, "generations") if r["image_id"] == bomb)
    detector = known_detector(root, truth)  # reads the images as drawn
    (root / path).write_bytes(bomb_png())
    filter_images(root=root, detector=detector, rules=RULES, progress=False)
    row = next(r for r in dm.read_rows(root, "detections") if r["image_id"] == bomb)
    assert row["status"] == "failed" and row["reason"] == "image_too_large"
    assert "over the limit of 64.0 M pixels" in row["message"] and "144000000 pixels" in row["message"]


def test_the_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bomb.png").write_bytes(bomb_png(9000, 9000))  # between our limit and twice it: PIL only warns
    with pytest.raises(dm.ImageTooLargeError, match="9000x9000 = 81.0 M pixels, over the limit of 64.0 M pixels"):
        with dm.open_image(tmp_path / "bomb.png"):
            pass
    path = tmp_path / "small.png"
    write_png(path, draw_vehicle(1, 100))
    with dm.open_image(path) as image:
        assert image.size == (100, 100)
    monkeypatch.setenv("DIFFVERI_MAX_IMAGE_PIXELS", "5000")
    with pytest.raises(dm.ImageTooLargeError, match="over the limit of 0.0 M pixels"), dm.open_image(path):
        pass
    monkeypatch.setenv("DIFFVERI_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="must be a positive number of pixels"):
        dm.max_image_pixels()


def test_every_entry_point_makes_pil_itself_raise_over_the_limit(tmp_path: Path) -> None:
    """``apply_offline_env`` (both CLIs, the tests) sets the limit in PIL too, for images other libraries open."""
    (tmp_path / "bomb.png").write_bytes(bomb_png())
    assert Image.MAX_IMAGE_PIXELS == dm.max_image_pixels()
    with pytest.raises((Image.DecompressionBombError, Image.DecompressionBombWarning)):
        Image.open(tmp_path / "bomb.png")


# ------------------------------------------------------------------------------- pre-training data and DreamBooth
def test_pretraining_data_refuses_a_bomb_with_the_row_named(tmp_path: Path) -> None:
    from pipeline.toyworld.synthetic import write_diffveri
    from vehiclemae.data import DiffVERIDataset

    root = write_diffveri(tmp_path / "data", identities=2, size=32)
    dataset = DiffVERIDataset(root, img_size=32)
    victim = root / dataset.rows[0]["path"]
    victim.write_bytes(bomb_png())
    with pytest.raises(ValueError, match=r"row image_id=.*over the limit of .* M pixels.*mark the row failed"):
        dataset.load(0)


def test_dreambooth_never_reads_an_instance_image_outside_the_root(tmp_path: Path) -> None:
    from pipeline.generate.dreambooth import _check_inputs

    outside = tmp_path / "elsewhere.png"
    write_png(outside, np.zeros((8, 8, 3), dtype=np.uint8))
    root = tmp_path / "root"
    root.mkdir()
    rows = [
        {"identity_id": "a", "instance_images": [str(outside)]},  # absolute
        {"identity_id": "b", "instance_images": ["../elsewhere.png"]},
    ]
    problems = _check_inputs(root, rows)
    assert {k: v[0] for k, v in problems.items()} == {"a": "path_outside_root", "b": "path_outside_root"}
    assert "leaves the data root" in problems["b"][1]
