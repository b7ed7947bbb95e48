"""The review CSV round trip: export, edit (csv module, pandas, spreadsheet-style BOM/CRLF), validated import."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd
import pytest

import data_manifests as dm
from data_manifests.queries import accepted_image_ids
from pipeline.cli import main
from pipeline.review import (
    AUTO_REVIEWER,
    COLUMNS,
    auto_review,
    candidates,
    export_batches,
    import_review_csv,
    neutralise,
    parse_policy,
    review_status,
    select,
    unneutralise,
)
from pipeline.review.stage import run_stage
from tests.filter.synth import draw, png


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def write(path: Path, rows: list[dict[str, str]], fields=COLUMNS, encoding="utf-8", lineterminator="\r\n") -> None:
    with open(path, "w", newline="", encoding=encoding) as f:
        w = csv.DictWriter(f, fieldnames=list(fields), lineterminator=lineterminator, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def bare(row: dict[str, str]) -> str:
    """The manifest id of an exported CSV row (exported ids carry the spreadsheet-safe prefix "i")."""
    assert row["image_id"].startswith("i"), row["image_id"]
    return row["image_id"][1:]


def decide(rows, decision="accept", reviewer="ann"):
    for r in rows:
        r["decision"], r["reviewer"] = decision, reviewer
    return rows


def snapshot(root: Path) -> list[dict]:
    return sorted(dm.read_rows(root, "reviews"), key=lambda r: (r["batch_id"], r["image_id"]))


@pytest.fixture
def batch(root, tmp_path):
    [bid] = export_batches(root, tmp_path / "out", "all", 100)
    return bid, tmp_path / "out" / f"batch_{bid}.csv"


# ---------------------------------------------------------------------------------------------------------- export
def test_export_writes_csv_and_contact_sheet_with_existing_images(root, tmp_path):
    ids = export_batches(root, tmp_path / "out", "all", 3)
    assert len(ids) == 3  # 8 images in batches of 3
    for bid in ids:
        csv_path = tmp_path / "out" / f"batch_{bid}.csv"
        raw = csv_path.read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf") and raw.splitlines()[0].decode() == ",".join(COLUMNS)
        rows = read(csv_path)
        assert all(r["batch_id"] == bid and r["decision"] == "" for r in rows)
        assert all(r["view_label"] == r["intended_view"] for r in rows)  # prefilled
        html_path = csv_path.with_suffix(".html")
        page = html_path.read_text()
        srcs = re.findall(r'<img src="([^"]+)"', page)
        assert len(srcs) == 2 * len(rows)  # candidate + reference per row
        assert all((html_path.parent / s).is_file() for s in srcs)
        assert all(r["image_id"] in page for r in rows)
    pending = dm.read_rows(root, "reviews")
    assert len(pending) == 8 and {r["decision"] for r in pending} == {"pending"}
    assert all(r["status"] == "pending" and r["reason"] == "awaiting_review" for r in pending)
    # Everything is queued now: a second export makes no batch.
    assert export_batches(root, tmp_path / "out", "all", 3) == []
    assert accepted_image_ids(root) == set()


def test_policies(root):
    cands = candidates(root)
    assert len(select(cands, parse_policy("all"))) == 8
    band = select(cands, parse_policy("uncertain"), uncertain_low=0.25, uncertain_high=0.6)["conf"]
    assert sorted(band) == pytest.approx([0.3, 0.3, 0.5, 0.5])
    assert len(select(cands, parse_policy("confident"), uncertain_high=0.6)) == 4
    first = select(cands, parse_policy("first:1"))
    assert list(first["identity_id"]) == ["toy000", "toy001"]
    a, b = select(cands, parse_policy("random:0.5"), seed=3), select(cands, parse_policy("random:0.5"), seed=3)
    assert list(a["image_id"]) == list(b["image_id"])
    for bad in ("most", "random:0", "random:x", "first:0", "all:3"):
        with pytest.raises(ValueError, match="valid forms"):
            parse_policy(bad)


# ------------------------------------------------------------------------------------------------------ round trips
def test_round_trip_with_csv_module_then_reimport_is_a_noop_then_correction_supersedes(root, batch):
    bid, path = batch
    rows = decide(read(path))
    rows[0]["decision"], rows[1]["decision"], rows[2]["decision"] = "reject", "unsure", ""
    rows[3]["identity_ok"] = "no"
    rows[4]["view_label"] = "top"
    write(path, rows)
    report = import_review_csv(path, root)
    assert report.ok, str(report)
    assert (report.rows, report.updated, report.blank) == (8, 7, 1)
    by_id = {r["image_id"]: r for r in dm.read_rows(root, "reviews")}
    assert by_id[bare(rows[0])]["status"] == "rejected"
    assert by_id[bare(rows[0])]["reason"] == "reviewer_rejected"
    assert by_id[bare(rows[1])]["reason"] == "reviewer_unsure"
    assert by_id[bare(rows[2])]["decision"] == "pending"
    assert by_id[bare(rows[3])]["reason"] == "identity_mismatch"
    assert by_id[bare(rows[4])]["view_label"] == "top"
    assert accepted_image_ids(root) == {bare(r) for r in rows[4:]}
    [status] = review_status(root)
    assert (status.pending, status.accepted, status.rejected, status.unsure) == (1, 5, 1, 1)

    # Re-import: nothing changes, not even reviewed_at.
    before = snapshot(root)
    again = import_review_csv(path, root)
    assert again.ok and again.updated == 0 and again.unchanged == 7
    assert snapshot(root) == before

    # A corrected file supersedes row by row; the previous decision stays in the history.
    rows[0]["decision"] = "accept"
    rows[0]["notes"] = "looked again"
    write(path, rows)
    fixed = import_review_csv(path, root)
    assert fixed.ok and fixed.updated == 1 and fixed.unchanged == 6
    row = next(r for r in dm.read_rows(root, "reviews") if r["image_id"] == bare(rows[0]))
    assert row["decision"] == "accept" and row["notes"] == "looked again"
    import json

    [old] = json.loads(row["history"])
    assert old["decision"] == "reject" and old["reviewer"] == "ann" and old["reviewed_at"]
    assert bare(rows[0]) in accepted_image_ids(root)


def test_round_trip_with_pandas(root, batch):
    bid, path = batch
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df["decision"] = "accept"
    df["reviewer"] = "pandas-user"
    df["identity_ok"] = "yes"
    df.to_csv(path, index=False)
    report = import_review_csv(path, root)
    assert report.ok and report.updated == 8, str(report)
    assert len(accepted_image_ids(root)) == 8
    # pandas' default (NaN for empty cells, floats rewritten) also imports: "0.5000" -> "0.5" is the same value.
    df = pd.read_csv(path)
    df["notes"] = "ok"
    df.to_csv(path, index=False)
    assert import_review_csv(path, root).updated == 8


def test_bom_and_windows_line_endings_import_fine(root, batch):
    bid, path = batch
    rows = decide(read(path))
    write(path, rows, encoding="utf-8-sig", lineterminator="\r\n")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf") and b"\r\n" in path.read_bytes()
    report = import_review_csv(path, root)
    assert report.ok and report.updated == 8, str(report)


def test_formula_cells_are_neutralised_and_restored(root, batch, tmp_path):
    for text in ("=1+1", "+41", "-3", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise(text) == "'" + text and unneutralise(neutralise(text)) == text
    assert neutralise("fine") == "fine" and unneutralise("'quoted") == "'quoted"
    bid, path = batch
    rows = decide(read(path))
    rows[0]["notes"] = '=HYPERLINK("http://x","y")'
    write(path, rows)
    assert import_review_csv(path, root).ok
    from pipeline.review import write_batch_files

    csv_path, _ = write_batch_files(root, bid, tmp_path / "again")
    text = csv_path.read_text()
    assert "'=HYPERLINK" in text  # a spreadsheet shows it as text
    assert import_review_csv(csv_path, root).unchanged == 8  # and import takes the quote off again


# -------------------------------------------------------------------------------------------------------- bad input
def _lines(report) -> list[tuple[int, str | None]]:
    return [(p.line, p.column) for p in report.problems]


def test_missing_and_renamed_columns(root, batch):
    bid, path = batch
    rows = decide(read(path))
    write(path, rows, fields=[c for c in COLUMNS if c != "notes"])
    before = snapshot(root)
    report = import_review_csv(path, root)
    assert not report.ok and _lines(report) == [(1, None)] and "missing column(s) ['notes']" in str(report)
    renamed = [{("verdict" if k == "decision" else k): v for k, v in r.items()} for r in rows]
    write(path, renamed, fields=[("verdict" if c == "decision" else c) for c in COLUMNS])
    report = import_review_csv(path, root)
    assert "unknown column(s) ['verdict']" in str(report) and "missing column(s) ['decision']" in str(report)
    assert snapshot(root) == before


def test_every_row_problem_is_reported_with_its_line_and_nothing_is_written(root, batch, tmp_path):
    bid, path = batch
    rows = decide(read(path))
    # lines: header = 1, rows[i] = i + 2
    rows[0]["decision"] = "maybe"  # line 2
    rows[1]["view_label"] = "sideways"  # line 3
    rows[2]["identity_id"] = "toy999"  # line 4: read-only column edited
    rows[3]["image_id"] = "0123456789abcdef"  # line 5: unknown image
    rows[4]["image"] = "../../../etc/passwd"  # line 6: outside the root
    rows[5]["identity_ok"] = "perhaps"  # line 7
    rows[6]["reviewer"] = ""  # line 8: decision without reviewer
    rows.append(dict(rows[7]))  # line 10: duplicate of line 9
    gens = {r["image_id"]: r for r in dm.read_rows(root, "generations")}
    img, _ = draw(999)
    dm.atomic_write_bytes(root / gens[bare(rows[7])]["path"], png(img))  # line 9 (and 10): bytes changed
    write(path, rows)
    before = snapshot(root)
    report = import_review_csv(path, root)
    assert not report.ok
    got = _lines(report)
    for expected in [
        (2, "decision"),
        (3, "view_label"),
        (4, "identity_id"),
        (5, "image_id"),
        (6, "image"),
        (7, "identity_ok"),
        (8, "reviewer"),
        (9, "image"),
        (10, "image_id"),
    ]:
        assert expected in got, (expected, [str(p) for p in report.problems])
    text = str(report)
    assert "nothing was imported" in text and "line 10, column image_id: duplicate row" in text
    assert "outside the data root" in text and "changed since export" in text and "'toy999'" in text
    assert snapshot(root) == before
    # The CLI prints the same list and exits non-zero.
    assert main(["review", "import", str(path), "--root", str(root)]) == 1
    assert snapshot(root) == before


def test_rows_from_another_batch_and_unknown_batches(root, tmp_path):
    ids = export_batches(root, tmp_path / "out", "all", 4)
    a, b = (tmp_path / "out" / f"batch_{i}.csv" for i in ids)
    rows_a, rows_b = decide(read(a)), decide(read(b))
    write(a, rows_a + rows_b[:1])  # line 6 is from batch b
    before = snapshot(root)
    report = import_review_csv(a, root)
    assert _lines(report) == [(6, "batch_id")] and "another batch" in str(report)
    # A file whose batch id was changed everywhere (and renamed) is an unknown batch.
    for r in rows_a:
        r["batch_id"] = "b0000000000"
    bad = tmp_path / "out" / "batch_b0000000000.csv"
    write(bad, rows_a)
    report = import_review_csv(bad, root)
    assert not report.ok and "unknown batch 'b0000000000'" in str(report)
    assert [p.line for p in report.problems][1:] == [2, 3, 4, 5]
    assert snapshot(root) == before


def test_detector_conf_is_read_only_but_reformatting_is_fine(root, batch):
    bid, path = batch
    rows = decide(read(path))
    rows[0]["detector_conf"] = str(float(rows[0]["detector_conf"]))  # 0.3000 -> 0.3: same value
    rows[1]["detector_conf"] = "0.99"
    write(path, rows)
    report = import_review_csv(path, root)
    assert _lines(report) == [(3, "detector_conf")]


def test_not_utf8(root, batch):
    bid, path = batch
    rows = decide(read(path))
    rows[0]["notes"] = "très bien"
    write(path, rows, encoding="latin-1")
    report = import_review_csv(path, root)
    assert not report.ok and "UTF-8" in str(report)


# -------------------------------------------------------------------------------------------- auto, stage and CLI
def test_auto_review_then_all_requeues_for_humans(root, tmp_path):
    [auto] = auto_review(root, "all")
    assert auto.startswith("auto-")
    rows = dm.read_rows(root, "reviews")
    assert {r["reviewer"] for r in rows} == {AUTO_REVIEWER} and {r["status"] for r in rows} == {"ok"}
    assert len(accepted_image_ids(root)) == 8
    assert auto_review(root, "all") == []  # no-op
    assert export_batches(root, tmp_path / "out", "random:1.0", 100) == []  # already reviewed (automatically)
    [human] = export_batches(root, tmp_path / "out", "all", 100)  # "all" re-queues auto-accepted images
    assert len(accepted_image_ids(root)) == 8  # still accepted until a human decides otherwise
    path = tmp_path / "out" / f"batch_{human}.csv"
    rows = decide(read(path), "reject", "ann")
    write(path, rows)
    assert import_review_csv(path, root).ok
    assert accepted_image_ids(root) == set()  # the human decision is the latest
    assert export_batches(root, tmp_path / "out", "all", 100) == []


def test_stage_auto_and_manual(root, tmp_path):
    result = run_stage({"review": {"mode": "manual", "policy": "uncertain", "batch_size": 2}}, root, None)
    assert result.counts["exported_batches"] == 2 and result.counts["awaiting"] == 4
    assert len(list((root / "review" / "batches").glob("batch_*.csv"))) == 2
    assert "4 image(s) await review" in result.message
    result = run_stage({"review": {"mode": "auto"}}, root, ["toy000"])
    cands = candidates(root)
    confident = cands[(cands["identity_id"] == "toy000") & ((cands["conf"] < 0.25) | (cands["conf"] >= 0.6))]
    assert accepted_image_ids(root) == set(confident["image_id"])  # the uncertain ones await humans
    assert result.counts["accepted"] == len(confident) > 0
    with pytest.raises(ValueError, match="mode"):
        run_stage({"review": {"mode": "sometimes"}}, root, None)


def test_cli_export_import_status(root, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["review", "export", "--root", str(root), "--out", str(out), "--policy", "first:1"]) == 0
    [path] = out.glob("batch_*.csv")
    write(path, decide(read(path)))
    assert main(["review", "import", str(path), "--root", str(root)]) == 0
    assert main(["review", "status", "--root", str(root)]) == 0
    text = capsys.readouterr().out
    assert "2 written" in text and re.search(r"all\s+2\s+0\s+2\s+0\s+0", text)
    assert main(["review", "export", "--root", str(root), "--out", str(out), "--policy", "bogus"]) == 2


def test_reviews_table_stays_valid(root, batch):
    bid, path = batch
    write(path, decide(read(path)))
    import_review_csv(path, root)
    assert not dm.validate(root)
