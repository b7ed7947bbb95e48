"""toyworld_meta.json reader: absent file, a valid layout, and errors that name the file and the problem."""

from __future__ import annotations

import json

import pytest

from tests.reid.toy_layouts import make_toy_veri
from vehiclemae.reid.data import load_veri776
from vehiclemae.reid.toymeta import META_FILE, load_toy_meta


def test_absent_file_is_none(tmp_path) -> None:
    assert load_toy_meta(tmp_path) is None


def test_valid_layout(tmp_path) -> None:
    root = make_toy_veri(tmp_path / "VeRi")
    meta = load_toy_meta(root)
    assert meta is not None and meta.family_size == 2
    split = load_veri776(root)
    assert set(meta.views_for(split.query)) == {"front"}
    assert meta.view_of(root / "image_test" / "0007_c002_00000001_0.jpg") == "front_right"
    assert meta.image("0007_c003_00000000_0.jpg").elevation == 90.0
    assert meta.family_of(7) == meta.family_of(8) != meta.family_of(9)
    ident = meta.identity(7)  # family 3: odd -> ("suv", "blue")
    assert (ident.class_name, ident.color_name, ident.dims) == ("suv", "blue", (4.0, 1.8, 1.5))
    with pytest.raises(KeyError, match="no identity 99"):
        meta.identity(99)
    with pytest.raises(KeyError, match="no entry for image"):
        meta.view_of("nope.jpg")


def _edit(root, fn) -> None:
    path = root / META_FILE
    raw = json.loads(path.read_text())
    fn(raw)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r.update(format="v0"), "format is 'v0'"),
        (lambda r: r.update(family_size=0), "family_size must be a positive integer"),
        (lambda r: r.update(images=[]), "'images' must be an object"),
        (lambda r: r["images"]["0001_c001_00000000_0.jpg"].update(view="side"), "is not a view bin; valid: front"),
        (lambda r: r["images"]["0001_c001_00000000_0.jpg"].pop("azimuth"), "lacks azimuth"),
        (lambda r: r["images"]["0001_c001_00000000_0.jpg"].update(elevation="high"), "elevation must be a number"),
        (lambda r: r["identities"].update(x1=r["identities"]["1"]), "'x1' is not a decimal VeRi vehicle id"),
        (lambda r: r["identities"]["1"].pop("family"), r"identities\['1'\] lacks family"),
        (lambda r: r["identities"]["1"].update(dims=[1, 2]), "dims must be a list"),
        (lambda r: r["identities"]["1"].update(color_name=3), "color_name must be a non-empty string"),
    ],
)
def test_validation_errors_name_file_and_problem(tmp_path, edit, message) -> None:
    root = make_toy_veri(tmp_path / "VeRi")
    _edit(root, edit)
    with pytest.raises(ValueError, match=message) as info:
        load_toy_meta(root)
    assert META_FILE in str(info.value)


def test_bad_json_and_missing_images(tmp_path) -> None:
    root = make_toy_veri(tmp_path / "VeRi")
    _edit(root, lambda r: r["images"].pop("0007_c001_00000000_0.jpg"))
    with pytest.raises(ValueError, match="lists no view for 1 of 5 images.*0007_c001"):
        load_toy_meta(root).views_for(load_veri776(root).query)
    (root / META_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_toy_meta(root)
