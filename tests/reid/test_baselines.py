"""Training-free baselines: histogram values on synthetic colours, the oracle's ranking, chance, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.reid.layouts import make_veri
from tests.reid.toy_layouts import make_toy_veri
from vehiclemae.cli import main
from vehiclemae.reid.baselines import (
    color_histogram,
    histogram_features,
    l2_distance,
    oracle_distance,
    run_baselines,
)
from vehiclemae.reid.toymeta import load_toy_meta


def test_histogram_of_known_colours() -> None:
    img = np.full((8, 12, 3), 250, dtype=np.uint8)  # border colour: outside the central crop, never counted
    img[2:6, 3:6] = (0, 0, 0)  # left half of the centre crop (rows 2-5, cols 3-8): bin (0, 0, 0) -> 0
    img[2:6, 6:9] = (40, 100, 200)  # right half: bins (40 // 32, 100 // 32, 200 // 32) = (1, 3, 6) -> 64 + 24 + 6
    hist = color_histogram(img)
    assert hist.shape == (512,)
    expected = np.zeros(512)
    expected[0] = expected[94] = np.sqrt(0.5)
    np.testing.assert_allclose(hist, expected)
    solid = color_histogram(np.full((5, 7, 3), (255, 0, 31), dtype=np.uint8))
    assert solid[7 * 64 + 0 * 8 + 0] == 1.0 and solid.sum() == 1.0
    with pytest.raises(ValueError, match="uint8"):
        color_histogram(img.astype(np.float32))


def test_histogram_distances(tmp_path) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)
    paths = []
    for i, arr in enumerate([a, a, np.full_like(a, 255), np.zeros_like(a)]):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(arr).save(paths[-1])
    feats = histogram_features(paths)
    dist = l2_distance(feats, feats)
    assert dist[0, 1] == 0.0 and dist[0, 0] == 0.0  # identical images
    assert dist[2, 3] == pytest.approx(np.sqrt(2.0))  # disjoint unit vectors
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-6)


def test_oracle_distance_levels(tmp_path) -> None:
    # 7, 8: family A; 9, 10: family B with A's class and colour; 11: a different class.
    fams = {7: ("A", "sedan", "red"), 8: ("A", "sedan", "red"), 9: ("B", "sedan", "red"), 10: ("B", "sedan", "red")}
    fams[11] = ("C", "truck", "red")
    meta = load_toy_meta(make_toy_veri(tmp_path / "VeRi", fams))
    dist = oracle_distance([7], [7, 8, 9, 10, 11], meta)
    np.testing.assert_array_equal(dist, [[0, 0, 1, 1, 2]])


def test_oracle_ranks_and_is_perfect_with_singleton_families(tmp_path) -> None:
    fams = {pid: (f"f{pid}", "sedan", "red") for pid in range(1, 12)}
    res = run_baselines(make_toy_veri(tmp_path / "solo", fams, family_size=1), ["oracle"], num_seeds=3)["oracle"]
    assert res["mAP"] == 100.0 and res["rank1"] == 100.0 and res["num_seeds"] == 3
    assert res["same_view_mAP"] == 100.0 and res["cross_view_mAP"] == 100.0
    # Families of two: each query's 4 true matches are tied with its family twin's 5 images; jitter breaks ties.
    res = run_baselines(make_toy_veri(tmp_path / "pairs"), ["oracle", "chance"], num_seeds=5)
    assert 25.0 < res["oracle"]["mAP"] < 100.0
    assert res["chance"]["mAP"] < res["oracle"]["mAP"]


def test_run_baselines_metrics_and_views(tmp_path) -> None:
    res = run_baselines(make_toy_veri(tmp_path / "VeRi"))
    assert set(res) == {"histogram", "oracle", "chance"}
    for metrics in res.values():
        for key in ("mAP", "rank1", "mINP", "same_view_mAP", "cross_view_mAP"):
            assert 0.0 <= metrics[key] <= 100.0
        # Every query (front) has one same-view positive (front_right) and three cross-view ones.
        assert metrics["same_view_queries"] == 5 and metrics["cross_view_queries"] == 5
    # The layout's identity is its colours: histograms find it.
    assert res["histogram"]["mAP"] > res["chance"]["mAP"]


def test_without_meta_oracle_is_skipped_or_an_error(tmp_path) -> None:
    root = make_veri(tmp_path / "VeRi")
    res = run_baselines(root)
    assert set(res) == {"histogram", "chance"} and res["histogram"]["cross_view_mAP"] is None
    with pytest.raises(FileNotFoundError, match="oracle baseline needs .*toyworld_meta.json"):
        run_baselines(root, ["oracle"])
    with pytest.raises(ValueError, match="valid baselines: histogram, oracle, chance"):
        run_baselines(root, "histogram,colour")


def test_cli(tmp_path, capsys) -> None:
    root = make_toy_veri(tmp_path / "VeRi")
    out = tmp_path / "b.json"
    assert main(["baselines", "--root", str(root), "--out", str(out), "--num-seeds", "2"]) == 0
    table = capsys.readouterr().out
    assert "| histogram |" in table and "| oracle |" in table
    payload = json.loads(out.read_text())
    assert payload["results"]["chance"]["num_seeds"] == 2
    assert main(["baselines", "--root", str(root), "--baselines", "sift"]) == 2
    assert "valid baselines: histogram, oracle, chance" in capsys.readouterr().err
    assert main(["baselines", "--root", str(tmp_path)]) == 2
    assert "is not a VeRi-776 root" in capsys.readouterr().err
