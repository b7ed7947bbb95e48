"""CMC curves in `vehiclemae eval` (JSON + figure) and the t-SNE coloured by view."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.reid.layouts import make_vehicleid, make_veri
from tests.reid.toy_layouts import make_toy_veri
from vehiclemae.cli import main
from vehiclemae.models import create_encoder, save_encoder
from vehiclemae.reid.plots import plot_tsne


def _encoder(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    enc = create_encoder("vehiclemae_vit_toy_patch8", img_size=32)
    return save_encoder(
        enc, tmp_path / "enc.safetensors", model_name="vehiclemae_vit_toy_patch8", img_size=32, source="mae"
    )


def test_eval_writes_cmc_curves_and_their_figure(tmp_path: Path) -> None:
    ck = _encoder(tmp_path)
    root = make_veri(tmp_path / "VeRi", train_ids=2, test_ids=4, cams=2, per_cam=2)
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(ck),
                "--dataset",
                "veri776",
                "--root",
                str(root),
                "--out",
                str(tmp_path / "v.json"),
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "v.json").read_text())["results"][0]
    cmc = np.asarray(result["cmc"])
    assert len(cmc) == min(50, result["num_gallery"])
    assert np.all(np.diff(cmc) >= 0) and cmc[-1] == 100.0  # every valid query's match is found by the last rank
    assert cmc[0] == result["Rank-1"] and cmc[4] == result["Rank-5"]
    with Image.open(tmp_path / "v.cmc.png") as png:
        assert png.format == "PNG" and png.width > 300

    vroot = make_vehicleid(tmp_path / "VehicleID_V1.0", train_ids=2, test_ids=8, per_id=3, sizes=(4, 8))
    args = ["eval", "--checkpoint", str(ck), "--dataset", "vehicleid", "--root", str(vroot), "--trials", "3"]
    assert main([*args, "--out", str(tmp_path / "id.json"), "--cmc-plot", str(tmp_path / "id.png")]) == 0
    results = json.loads((tmp_path / "id.json").read_text())["results"]
    for r in results:  # the mean curve over trials starts at the mean Rank-1
        rank5 = r["cmc"][min(4, len(r["cmc"]) - 1)]  # as Rank-5 is read when the gallery is smaller
        assert abs(r["cmc"][0] - r["Rank-1"]) < 1e-9 and abs(rank5 - r["Rank-5"]) < 1e-9
        assert len(r["cmc"]) == r["test_size"]  # one gallery image per identity
    assert (tmp_path / "id.png").read_bytes()[:4] == b"\x89PNG"


def test_tsne_has_a_row_coloured_by_view_on_toy_world_roots(tmp_path: Path) -> None:
    ck = _encoder(tmp_path)
    toy = make_toy_veri(tmp_path / "toy")
    plain = make_veri(tmp_path / "VeRi")
    for name, root in (("toy", toy), ("plain", plain)):
        args = ["plot", "tsne", "--checkpoint", str(ck), "--dataset", "veri776", "--root", str(root)]
        assert main([*args, "--out", str(tmp_path / f"{name}.png")]) == 0
    with Image.open(tmp_path / "toy.png") as a, Image.open(tmp_path / "plain.png") as b:
        assert a.height > 1.6 * b.height  # two rows (identity, view) vs one


def test_plot_tsne_by_view_needs_one_view_list_per_model(tmp_path: Path) -> None:
    feats = torch.randn(12, 8)
    pids = np.repeat(np.arange(4), 3)
    views = np.array(["front", "rear", "side"] * 4)
    out = plot_tsne([("a", feats, pids)], tmp_path / "t.png", views=[views])
    assert out.read_bytes()[:4] == b"\x89PNG"
    try:
        plot_tsne([("a", feats, pids)], tmp_path / "u.png", views=[views, views])
    except ValueError as exc:
        assert "2 view lists for 1 models" in str(exc)
    else:
        raise AssertionError("a view list per model is required")
