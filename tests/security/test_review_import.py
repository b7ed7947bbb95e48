"""Issue #19 items 4 and 6: concurrent review imports keep both decisions; malformed CSV (a stray quote that
swallows rows, a cell over the csv field limit, an unclosed quote) is refused with its line number."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

import data_manifests as dm
from pipeline.cli import main as diffveri
from pipeline.review import COLUMNS, export_batches, import_review_csv
from pipeline.review import importer as review_importer
from tests.review.helpers import reviewed_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """2 identities x 4 kept images, as in the review tests."""
    return reviewed_root(tmp_path / "data")


@pytest.fixture
def batch(root: Path, tmp_path: Path) -> tuple[str, Path]:
    [bid] = export_batches(root, tmp_path / "out", "all", 100)
    return bid, tmp_path / "out" / f"batch_{bid}.csv"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _text(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _decided(path: Path, decision: str, reviewer: str, notes: str = "") -> list[dict[str, str]]:
    rows = _rows(path)
    for r in rows:
        r.update(decision=decision, reviewer=reviewer, notes=notes)
    return rows


def _reviews(data_root: Path, batch_id: str) -> dict[str, dict]:
    return {r["image_id"]: r for r in dm.read_rows(data_root, "reviews") if r["batch_id"] == batch_id}


# ------------------------------------------------------------------------------------------------------ concurrency
def test_two_imports_of_one_batch_at_the_same_time_keep_both_decisions(
    root: Path,
    batch: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bid, path = batch
    alice, bob = tmp_path / "alice" / path.name, tmp_path / "bob" / path.name
    for file, decision, who in ((alice, "accept", "alice"), (bob, "reject", "bob")):
        file.parent.mkdir()
        file.write_text(_text(_decided(path, decision, who)), encoding="utf-8")
    # Bob's import commits while Alice's is between reading the table and writing it (the lost-update window).
    real = review_importer.batch_reviews
    state = {"bob": False}

    def read_then_let_bob_in(*args, **kwargs):  # noqa: ANN002, ANN003
        rows = real(*args, **kwargs)
        if not state["bob"]:
            state["bob"] = True
            assert import_review_csv(bob, root).ok
        return rows

    monkeypatch.setattr(review_importer, "batch_reviews", read_then_let_bob_in)
    report = import_review_csv(alice, root)
    assert report.ok and report.updated == 8
    rows = _reviews(root, bid)
    assert len(rows) == 8
    for r in rows.values():
        assert (r["decision"], r["reviewer"]) == ("accept", "alice")
        history = json.loads(r["history"])  # Bob's decision is kept, not overwritten without a trace
        assert [(h["decision"], h["reviewer"]) for h in history] == [("reject", "bob")]


def test_the_table_version_guard_refuses_a_stale_write(tmp_path: Path) -> None:
    from tests.data_manifests.rows import example_row

    dm.upsert(tmp_path, "reviews", [example_row("reviews", 0)])
    version = dm.table_version(tmp_path, "reviews")
    dm.upsert(tmp_path, "reviews", [example_row("reviews", 1)])  # someone else commits
    with pytest.raises(dm.ConflictError, match="nothing was written"):
        dm.upsert(tmp_path, "reviews", [example_row("reviews", 2)], if_version=version)
    assert dm.read_table(tmp_path, "reviews").num_rows == 2
    dm.upsert(tmp_path, "reviews", [example_row("reviews", 2)], if_version=dm.table_version(tmp_path, "reviews"))
    assert dm.read_table(tmp_path, "reviews").num_rows == 3


# -------------------------------------------------------------------------------------------------------------- csv
def _import_cli(path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = diffveri(["review", "import", str(path), "--root", str(data_root)])
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "_csv.Error" not in out.out + out.err
    return code, out.out


def test_a_stray_quote_that_swallows_rows_is_refused_with_its_line(
    root: Path,
    batch: tuple[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    bid, path = batch
    rows = _decided(path, "accept", "ann")
    rows[1]["notes"], rows[3]["notes"] = "@@OPEN@@", "@@CLOSE@@"
    # Raw text, as a hand edit leaves it: a quote opens the note on line 3 and one on line 5 closes it.
    text = _text(rows).replace("@@OPEN@@", '"looks fine').replace("@@CLOSE@@", 'ok"')
    path.write_text(text, encoding="utf-8")
    before = dm.read_rows(root, "reviews")
    report = import_review_csv(path, root)
    assert not report.ok
    assert [(p.line, p.column) for p in report.problems] == [(3, "notes")]
    assert "holds 2 other row(s) of the batch: a quote in it is not closed" in report.problems[0].message
    assert dm.read_rows(root, "reviews") == before  # the old code wrote 6 decisions and exited 0
    code, out = _import_cli(path, root, capsys)
    assert code == 1 and "line 3, column notes" in out and "nothing was imported" in out


def test_an_unclosed_quote_that_swallows_the_rest_of_the_file_is_refused(
    root: Path,
    batch: tuple[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, path = batch
    rows = _decided(path, "accept", "ann")
    rows[4]["notes"] = "@@OPEN@@"
    path.write_text(_text(rows).replace("@@OPEN@@", '"never closed'), encoding="utf-8")
    report = import_review_csv(path, root)
    assert [p.line for p in report.problems] == [6]
    assert "a quote is probably not closed" in report.problems[0].message
    assert _import_cli(path, root, capsys)[0] == 1


def test_a_cell_over_the_csv_field_limit_is_a_problem_not_a_traceback(
    root: Path,
    batch: tuple[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, path = batch
    rows = _decided(path, "accept", "ann")
    rows[2]["notes"] = "x" * (csv.field_size_limit() + 10)
    path.write_text(_text(rows), encoding="utf-8")
    before = dm.read_rows(root, "reviews")
    report = import_review_csv(path, root)  # the old code raised _csv.Error here
    assert [p.line for p in report.problems] == [4]
    assert "field larger than field limit" in report.problems[0].message
    assert dm.read_rows(root, "reviews") == before
    code, out = _import_cli(path, root, capsys)
    assert code == 1 and "line 4: not readable as CSV" in out
