"""The report pictures (pipeline/reports): each drawn from manifests with known values; the data plotted is checked,
and the PNG is decoded to see the drawing is really there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data_manifests as dm
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.generate.common import write_png
from pipeline.reports import filter_report, identity_grids, markdown_gallery, report_bands, stats_charts


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------------------------------------------ filter report
KEPT_CONF = [0.3, 0.35, 0.5, 0.7, 0.9, 0.95, 0.97]
LOW_CONF = [0.1, 0.2]


def _detections(root: Path, identity_scores: bool = False) -> None:
    rows = []
    for i, conf in enumerate(KEPT_CONF):
        rows.append({"image_id": f"k{i}", "conf": conf, "status": "ok"})
    for i, conf in enumerate(LOW_CONF):
        rows.append({"image_id": f"l{i}", "conf": conf, "status": "rejected", "reason": "low_confidence"})
    for i in range(3):
        rows.append({"image_id": f"n{i}", "n_vehicles": 0, "status": "rejected", "reason": "no_vehicle"})
    rows.append({"image_id": "m0", "conf": 0.8, "n_vehicles": 2, "status": "rejected", "reason": "multiple_vehicles"})
    rows.append({"image_id": "f0", "status": "failed", "reason": "unreadable_image"})
    if identity_scores:
        for r, score in zip(rows, [0.1, 0.45, 0.5, 0.9]):
            r["identity_score"] = score
    dm.write_table(root, "detections", rows)


def test_filter_report_counts_reasons_and_bins_confidences(tmp_path: Path) -> None:
    _detections(tmp_path)
    report = filter_report(tmp_path, conf_band=(0.25, 0.6), conf_min=0.3, bins=10)
    # kept first, then reject reasons by count, failures last
    assert report.outcomes == {
        "kept": 7,
        "no_vehicle": 3,
        "low_confidence": 2,
        "multiple_vehicles": 1,
        "failed/unreadable_image": 1,
    }
    assert list(report.outcomes) == [
        "kept",
        "no_vehicle",
        "low_confidence",
        "multiple_vehicles",
        "failed/unreadable_image",
    ]
    assert [p.column for p in report.panels] == ["conf"]  # no identity scores: no second panel
    conf = report.panels[0]
    assert conf.edges == pytest.approx(np.linspace(0, 1, 11).tolist())
    assert conf.kept == [0, 0, 0, 2, 0, 1, 0, 1, 0, 3]  # 0.3, 0.35 | 0.5 | 0.7 | 0.9, 0.95, 0.97 (float32 on the edges)
    assert conf.rejected == [0, 1, 1, 0, 0, 0, 0, 0, 1, 0]  # 0.1, 0.2 and the multiple-vehicles 0.8
    assert conf.band == (0.25, 0.6) and conf.kept_in_band == 3  # 0.3, 0.35, 0.5
    assert report.without_conf == 4 and report.conf_min == 0.3
    assert report.path == tmp_path / "reports" / "filter.png"
    image = _png(report.path)
    assert image.shape[1] > image.shape[0]  # two panels side by side
    # the review band is shaded in its colour (#f1c40f at alpha 0.3 on white)
    band = np.array([251, 237, 183])
    assert (np.abs(image.astype(int) - band).sum(axis=2) < 12).sum() > 500


def test_filter_report_adds_a_panel_per_check_score_with_its_band(tmp_path: Path) -> None:
    _detections(tmp_path, identity_scores=True)
    report = filter_report(tmp_path, out=tmp_path / "f.png", identity_band=(0.4, 0.6), bins=5)
    assert [p.column for p in report.panels] == ["conf", "identity_score"]
    ident = report.panels[1]
    assert ident.kept == [1, 0, 2, 0, 1] and ident.rejected == [0, 0, 0, 0, 0]
    assert ident.kept_in_band == 2 and ident.band == (0.4, 0.6)
    assert ident.kept_below_band == 1  # 0.1: the triage rejects it as identity_inconsistent
    assert report.panels[0].kept_below_band == 0  # a low detector confidence passes the triage
    assert (tmp_path / "f.png").is_file() and not (tmp_path / "reports").exists()


def test_report_bands_come_from_the_profile() -> None:
    bands = report_bands(load_config("toy", []))
    assert bands == {"conf_band": (0.25, 0.6), "conf_min": 0.3, "identity_band": None, "view_band": None}
    cfg = load_config("toy", ["review.checks.enabled=true", "review.uncertain_high=0.7"])
    bands = report_bands(cfg)
    assert (
        bands["conf_band"] == (0.25, 0.7) and bands["identity_band"] == (0.4, 0.6) and bands["view_band"] == (0.3, 0.5)
    )
    with pytest.raises(ValueError, match="low < high"):
        report_bands({"review": {"uncertain_low": 0.8}})
    with pytest.raises(ValueError, match="uncertain_low < uncertain_high"):  # refused as soon as the profile loads
        load_config("toy", ["review.uncertain_low=0.8"])


def test_filter_report_without_detections_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no detections table; run the filter stage"):
        filter_report(tmp_path)
    assert not (tmp_path / "reports").exists()


# ------------------------------------------------------------------------------------------------------ identity grid
RED, BLUE, GREEN = (230, 20, 20), (20, 20, 230), (20, 200, 20)


def _solid(root: Path, rel: str, colour: tuple[int, int, int]) -> str:
    write_png(root / rel, np.broadcast_to(np.array(colour, np.uint8), (32, 32, 3)).copy())
    return rel


def pixels_in(image: np.ndarray, colour: tuple[int, int, int]) -> int:
    """Pixels of ``image (H, W, 3)`` within a small distance of ``colour``."""
    return int((np.abs(image - np.array(colour)).sum(axis=2) < 30).sum())


def _grid_root(root: Path) -> None:
    subject = dm.write_table(
        root,
        "subjects",
        [
            {
                "identity_id": "car1",
                "class_name": "car",
                "instance_images": [
                    _solid(root, "subjects/car1/0.png", GREEN),
                    _solid(root, "subjects/car1/1.png", GREEN),
                ],
                "source": "folder",
                "status": "ok",
            }
        ],
    )
    assert subject == 1
    gens = []
    for i in range(3):
        path = _solid(root, f"generations/car1/f{i}.png", RED)
        gens.append(
            {"image_id": f"f{i}", "identity_id": "car1", "intended_view": "front", "path": path, "status": "ok"}
        )
    path = _solid(root, "generations/car1/l0.png", BLUE)
    gens.append({"image_id": "l0", "identity_id": "car1", "intended_view": "left", "path": path, "status": "ok"})
    gens.append(
        {"image_id": "t0", "identity_id": "car1", "intended_view": "top", "status": "failed", "reason": "exception"}
    )
    path = _solid(root, "generations/car2/r0.png", BLUE)
    gens.append({"image_id": "r0", "identity_id": "car2", "intended_view": "rear", "path": path, "status": "ok"})
    for g in gens:
        g["model_ref"] = "toyworld:v1"
    dm.write_table(root, "generations", gens)


def test_identity_grid_rows_by_view_with_subject_photos(tmp_path: Path) -> None:
    _grid_root(tmp_path)
    dm.write_table(
        tmp_path,
        "detections",
        [
            {"image_id": "f0", "conf": 0.91, "status": "ok"},
            {"image_id": "f1", "n_vehicles": 0, "status": "rejected", "reason": "no_vehicle"},
        ],
    )
    grids = identity_grids(tmp_path, per_view=2)
    assert [g.identity_id for g in grids] == ["car1", "car2"]  # car2 has no subject row: drawn without photos
    car1 = grids[0]
    assert list(car1.views) == ["front", "left"]  # prompt order; the failed top image is not drawn
    assert [t.image_id for t in car1.views["front"]] == ["f0", "f1"]  # per_view=2 of 3
    assert car1.total_images == {"front": 3, "left": 1}
    assert car1.views["front"][0].caption == "toyworld\nkept 0.91"
    assert car1.views["front"][1].caption == "toyworld\nno_vehicle"
    assert car1.views["left"][0].caption == "toyworld"  # no detections row yet
    assert car1.subject_photos == ["subjects/car1/0.png", "subjects/car1/1.png"]
    assert car1.path == tmp_path / "reports" / "identities" / "car1.png"
    image = _png(car1.path).astype(int)
    # two red tiles, one blue, two green subject photos (each tile is the same size)
    red, blue, green = pixels_in(image, RED), pixels_in(image, BLUE), pixels_in(image, GREEN)
    assert blue > 500 and red == pytest.approx(2 * blue, rel=0.1) and green == pytest.approx(2 * blue, rel=0.1)
    assert grids[1].subject_photos == [] and list(grids[1].views) == ["rear"]
    # one view row and three subject photos: every photo is shown, one per row
    photos = [_solid(tmp_path, f"subjects/car2/{k}.png", GREEN) for k in range(3)]
    car2 = {"identity_id": "car2", "class_name": "car", "instance_images": photos, "source": "folder", "status": "ok"}
    dm.upsert(tmp_path, "subjects", [car2])
    (grid,) = identity_grids(tmp_path, ["car2"])
    assert list(grid.views) == ["rear"] and grid.subject_photos == photos
    assert pixels_in(_png(grid.path).astype(int), GREEN) == pytest.approx(3 * blue, rel=0.1)


def test_identity_grid_subset_missing_files_and_errors(tmp_path: Path) -> None:
    _grid_root(tmp_path)
    (tmp_path / "generations/car1/l0.png").unlink()
    grids = identity_grids(tmp_path, ["car1"], out_dir=tmp_path / "out")
    assert [g.path for g in grids] == [tmp_path / "out" / "car1.png"]
    assert grids[0].views["left"][0].caption == "toyworld\nmissing"
    with pytest.raises(ValueError, match="per_view"):
        identity_grids(tmp_path, per_view=0)
    with pytest.raises(ValueError, match="no generations table"):
        identity_grids(tmp_path / "empty")


# ------------------------------------------------------------------------------------------------------- stats charts
def _dataset(root: Path) -> None:
    rows = []
    layout = {"a": 2, "b": 3, "c": 3}  # images per identity
    views = ["front", "side", "side", "top", None, "rear", "side", None]
    sizes = [(64, 48), (64, 48), (64, 48), (100, 80), (128, 128), (64, 48), (100, 80), (128, 128)]
    i = 0
    for ident, n in layout.items():
        for _ in range(n):
            real = views[i] is None
            rows.append(
                {
                    "image_id": f"x{i}",
                    "identity_id": ident,
                    "split": "gallery" if ident == "c" else "train",
                    "path": f"img/{i}.png",
                    "width": sizes[i][0],
                    "height": sizes[i][1],
                    "dominant_view": views[i],
                    "source": "real" if real else "synthetic",
                    "status": "ok",
                }
            )
            i += 1
    rows.append({**rows[0], "image_id": "bad", "status": "failed", "reason": "exception"})  # not ok: not counted
    dm.write_table(root, "diffveri", rows)


def test_stats_charts_plot_views_identities_sources_and_resolution(tmp_path: Path) -> None:
    _dataset(tmp_path)
    charts = stats_charts(tmp_path)
    assert charts.views == {"side": 3, "no mask": 2, "front": 1, "top": 1, "rear": 1}
    assert charts.images_per_identity == {"a": 2, "b": 3, "c": 3}
    assert charts.sources_by_split == {"gallery": {"real": 1, "synthetic": 2}, "train": {"real": 1, "synthetic": 4}}
    assert charts.resolutions == {"64x48": 4, "100x80": 2, "128x128": 2}
    assert set(charts.paths) == {"views", "identities", "sources", "resolution"}
    for name, path in charts.paths.items():
        assert path == tmp_path / "reports" / "stats" / f"{name}.png"
        assert _png(path).shape[0] > 200


def test_stats_charts_need_the_assembled_table(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no diffveri table"):
        stats_charts(tmp_path)


# ----------------------------------------------------------------------------------------------------------- commands
def test_manifests_stats_charts_and_report_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _dataset(tmp_path)
    _detections(tmp_path)
    assert main(["manifests", "stats", "--root", str(tmp_path), "--charts"]) == 0
    out = capsys.readouterr().out
    assert "| DiffVERI (this root) | 8 |" in out
    for name in ("views", "identities", "sources", "resolution"):
        assert str(tmp_path / "reports" / "stats" / f"{name}.png") in out
    band = ["--set", "review.uncertain_high=0.96"]
    assert main(["report", "filter", "--root", str(tmp_path), "--config", "toy", *band]) == 0
    out = capsys.readouterr().out
    assert "kept 7, no_vehicle 3, low_confidence 2, multiple_vehicles 1, failed/unreadable_image 1" in out
    assert "conf: 6 kept image(s) in the band [0.25, 0.96)" in out
    assert main(["report", "stats", "--root", str(tmp_path), "--out", str(tmp_path / "charts")]) == 0
    assert str(tmp_path / "charts" / "views.png") in capsys.readouterr().out
    assert main(["report", "grids", "--root", str(tmp_path / "nothing")]) == 2  # no generations table: one error line
    assert "no generations table" in capsys.readouterr().err


def test_markdown_gallery_embeds_pngs(tmp_path: Path) -> None:
    _dataset(tmp_path)
    paths = list(stats_charts(tmp_path).paths.values())
    text = markdown_gallery("Charts", paths, max_images=3, level=2)
    assert text.startswith("## Charts\n")
    assert text.count("](data:image/png;base64,iVBOR") == 3  # PNG signature, base64
    assert f"- `{paths[3]}`" in text  # beyond max_images: listed by path


def test_report_grids_command_draws_a_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _grid_root(tmp_path)
    assert main(["report", "grids", "--root", str(tmp_path), "--per-view", "1"]) == 0
    captured = capsys.readouterr()
    assert "car1: 2 image(s) drawn in 2 view row(s)" in captured.out
    assert "identity grids: 100%" in captured.err and "2/2" in captured.err
    identity_grids(tmp_path)  # the library call draws no bar unless asked
    assert "identity grids" not in capsys.readouterr().err


def test_identity_grids_drawn_in_threads_match_sequential(tmp_path: Path) -> None:
    """The flow's thread runner draws the grids of several shards at once: figures share no state."""
    from concurrent.futures import ThreadPoolExecutor

    _grid_root(tmp_path)
    sequential = {g.identity_id: g.path.read_bytes() for g in identity_grids(tmp_path, out_dir=tmp_path / "seq")}
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(identity_grids, tmp_path, [i], out_dir=tmp_path / f"t{i}") for i in ("car1", "car2") * 3]
        threaded = [g for f in futures for g in f.result()]
    assert len(threaded) == 6
    for grid in threaded:
        assert grid.path.read_bytes() == sequential[grid.identity_id]
