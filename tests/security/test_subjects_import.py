"""Issue #19 item 2: ``subjects import`` never writes into another identity's folder, refuses before copying
anything, and records each photo's sha256 so that validate notices a swapped file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import data_manifests as dm
from pipeline.cli import main as diffveri
from pipeline.generate.common import write_png
from pipeline.generate.subjects import SubjectImportError, from_folder, import_subjects
from tests.generate.helpers import draw_vehicle


def _photos(src: Path, ident: str, seed: int, n: int = 2) -> Path:
    for k in range(n):
        write_png(src / ident / f"{k}.png", draw_vehicle(seed + k, 24))
    return src


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


@pytest.fixture
def root_with_toy0001(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    import_subjects(root, from_folder(_photos(tmp_path / "first", "toy0001", seed=1)))
    return root


@pytest.mark.parametrize("other", ["toy0001.", "TOY0001", "Toy0001..", "toy0001 "])
def test_an_id_sharing_a_folder_with_an_existing_identity_is_refused_and_nothing_is_copied(
    tmp_path: Path, root_with_toy0001: Path, other: str
) -> None:
    root = root_with_toy0001
    before, rows_before = _files(root / "subjects" / "toy0001"), dm.read_rows(root, "subjects")
    src = _photos(tmp_path / "second", other, seed=50)
    if other.endswith(" "):  # a space is not an id character: refused by the id rule instead
        match = "identity ids may only use"
    else:
        match = f"{other!r}: collides with existing identity 'toy0001'"
    with pytest.raises(SubjectImportError, match=match):
        import_subjects(root, from_folder(src))
    assert _files(root / "subjects" / "toy0001") == before  # the old code wrote the new photos in here
    assert sorted(p.name for p in (root / "subjects").iterdir()) == ["toy0001"]
    assert dm.read_rows(root, "subjects") == rows_before


def test_ids_map_one_to_one_to_folders(tmp_path: Path) -> None:
    root = tmp_path / "root"
    src = _photos(_photos(tmp_path / "src", "car_1", seed=1), "car-1", seed=5)
    import_subjects(root, from_folder(src))
    rows = {r["identity_id"]: r for r in dm.read_rows(root, "subjects")}
    for ident in ("car_1", "car-1"):  # slug() used to strip and replace characters here
        assert all(p.startswith(f"subjects/{ident}/") for p in rows[ident]["instance_images"])
    assert sorted(p.name for p in (root / "subjects").iterdir()) == ["car-1", "car_1"]


def test_a_refusal_found_by_the_schema_check_comes_before_any_copy(tmp_path: Path, root_with_toy0001: Path) -> None:
    root = root_with_toy0001
    before = _files(root / "subjects" / "toy0001")
    src = _photos(tmp_path / "again", "toy0001", seed=70)
    (src / "toy0001" / "subject.json").write_text(json.dumps({"class_name": 5}))  # not a string
    with pytest.raises(SubjectImportError, match="class_name must be a non-empty string"):
        import_subjects(root, from_folder(src))  # now refused while reading subject.json, before the schema check
    assert _files(root / "subjects" / "toy0001") == before  # the old code had already copied over 000.png


def test_re_importing_an_identity_never_overwrites_a_photo_a_committed_row_names(
    tmp_path: Path, root_with_toy0001: Path
) -> None:
    root = root_with_toy0001
    (old,) = dm.read_rows(root, "subjects")
    import_subjects(root, from_folder(_photos(tmp_path / "new", "toy0001", seed=90)))
    (new,) = dm.read_rows(root, "subjects")
    assert not set(old["instance_images"]) & set(new["instance_images"])  # content-addressed names
    assert new["token"] == old["token"]
    assert sorted(f"subjects/toy0001/{n}" for n in _files(root / "subjects" / "toy0001")) == sorted(
        new["instance_images"]
    )  # the replaced photos were removed after the commit
    assert dm.validate(root) == []


def test_validate_notices_a_swapped_photo(
    tmp_path: Path, root_with_toy0001: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = root_with_toy0001
    (row,) = dm.read_rows(root, "subjects")
    assert row["instance_sha256"] == [dm.sha256_file(root / p) for p in row["instance_images"]]
    assert dm.validate(root) == []
    write_png(root / row["instance_images"][1], draw_vehicle(999, 24))  # another car's photo, same name
    problems = dm.validate(root)
    assert [(p.key, p.kind) for p in problems] == [("toy0001", "file_changed")]
    assert row["instance_images"][1] in problems[0].message
    assert diffveri(["manifests", "validate", str(root)]) == 1
    assert "differ from the sha256 recorded when it was imported" in capsys.readouterr().out


def test_the_cli_refusal_is_one_message_with_exit_code_2(
    tmp_path: Path, root_with_toy0001: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _photos(tmp_path / "second", "toy0001.", seed=50)
    code = diffveri(["subjects", "import", "--root", str(root_with_toy0001), "--from", "folder", str(src)])
    err = capsys.readouterr().err
    assert code == 2 and "collides with existing identity 'toy0001'" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "content,message",
    [
        ("[1, 2]", "holds a JSON list; expected an object"),
        ('{"class_name": ["suv"]}', "class_name must be a non-empty string"),
        ('{"attributes": "red"}', "attributes must be an object"),
        ('{"attributes": {"color": {"r": 1}}}', "attribute value(s) of ['color']"),
        ('{"clas_name": "suv"}', "unknown key(s) ['clas_name']"),
        ('{"class_name": "suv",', "is not valid JSON"),
    ],
)
def test_a_bad_subject_json_is_one_line_naming_the_file(
    content: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    src = _photos(tmp_path / "src", "toy0002", seed=3)
    (src / "toy0002" / "subject.json").write_text(content)
    code = diffveri(["subjects", "import", "--root", str(root), "--from", "folder", str(src)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "toy0002/subject.json" in err and message in err
    assert not (root / "subjects").exists()  # nothing copied
