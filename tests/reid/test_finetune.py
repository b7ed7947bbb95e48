"""Fine-tuning engine pieces, a tiny supervised run that overfits, an unsupervised run, and the eval/plot CLIs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.reid.layouts import make_vehicleid, make_veri
from vehiclemae.benchmarks import finetune as ft
from vehiclemae.benchmarks.runner import FinetuneConfig, load_model, run
from vehiclemae.config import load_config


def test_batch_hard_triplet_matches_a_direct_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    feat, labels = torch.randn(12, 5, generator=gen), torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    dist = torch.cdist(feat, feat)
    losses = []
    for i in range(12):
        pos = [dist[i, j] for j in range(12) if labels[j] == labels[i] and j != i]
        neg = [dist[i, j] for j in range(12) if labels[j] != labels[i]]
        losses.append(torch.relu(max(pos) - min(neg) + 0.3))
    torch.testing.assert_close(ft.batch_hard_triplet(feat, labels, 0.3), torch.stack(losses).mean())
    assert float(ft.batch_hard_triplet(feat, torch.arange(12), 0.3)) == 0.0  # no positives: nothing to learn


def test_layer_decay_groups_and_schedule() -> None:
    backbone, spec = ft.build_backbone("scratch", "vehiclemae_vit_toy_patch8", 32)
    model = ft.ReIDModel(backbone, 5, spec)
    groups = ft.param_groups(model, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    depth = len(backbone.blocks)
    scales = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scales[id(backbone.patch_embed.proj.weight)] == pytest.approx(0.5 ** (depth + 1))
    assert scales[id(backbone.blocks[-1].mlp.fc1.weight)] == pytest.approx(0.5)
    assert scales[id(model.classifier.weight)] == 1.0
    assert all(g["weight_decay"] == 0.0 for g in groups if any(p.ndim <= 1 for p in g["params"]))
    assert id(model.bottleneck.bias) not in scales  # frozen BNNeck bias
    assert ft.warmup_cosine(0, 10, 2) < ft.warmup_cosine(1.9, 10, 2) <= 1.0
    assert ft.warmup_cosine(10, 10, 2, min_ratio=0.01) == pytest.approx(0.01)


def test_build_backbone_from_export_and_errors(tmp_path) -> None:
    from vehiclemae.models import create_encoder, save_encoder

    enc = create_encoder("vehiclemae_vit_toy_patch8", img_size=32)
    path = save_encoder(
        enc, tmp_path / "enc.safetensors", model_name="vehiclemae_vit_toy_patch8", img_size=32, source="vehiclemae"
    )
    backbone, spec = ft.build_backbone("export", "ignored", 32, str(path))
    assert spec["model_name"] == "vehiclemae_vit_toy_patch8" and spec["source"] == "vehiclemae"
    torch.testing.assert_close(
        backbone.state_dict()["blocks.0.attn.qkv.weight"], enc.state_dict()["blocks.0.attn.qkv.weight"]
    )
    with pytest.raises(ValueError, match="needs model.init_path"):
        ft.build_backbone("export", "x", 32)
    with pytest.raises(ValueError, match="model.init must be one of"):
        ft.build_backbone("imagenet", "x", 32)


def test_cluster_pseudo_labels_recover_clusters() -> None:
    gen = torch.Generator().manual_seed(1)
    centres = torch.randn(4, 16, generator=gen) * 3
    feats = centres.repeat_interleave(8, 0) + 0.1 * torch.randn(32, 16, generator=gen)
    labels = ft.cluster_pseudo_labels(feats, k1=8, k2=3, eps=0.6, min_samples=3)
    truth = np.repeat(np.arange(4), 8)
    assert labels.max() + 1 == 4
    for c in range(4):  # every true cluster maps to a single pseudo label
        assert len(set(labels[truth == c].tolist())) == 1


def _tiny_config(root, out, **overrides) -> FinetuneConfig:
    sets = [
        f"data.root={root}",
        f"output_dir={out}",
        "model.img_size=32",
        "model.drop_path_rate=0.0",
        "data.p=4",
        "data.k=4",
        "optim.lr=2.0e-3",
        "optim.epochs=8",
        "optim.warmup_epochs=0.5",
        "eval.every=4",
        "threads=2",
    ] + [f"{k}={v}" for k, v in overrides.items()]
    return load_config(FinetuneConfig, "configs/vehiclemae/finetune_toy.yaml", sets)


def test_supervised_finetune_overfits_a_tiny_set(tmp_path) -> None:
    root = make_veri(tmp_path / "VeRi", train_ids=4, test_ids=3, cams=2, per_cam=4)
    torch.manual_seed(0)
    result = run(_tiny_config(root, tmp_path / "run"))
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    assert rows[-1]["loss"] < 0.6 * rows[0]["loss"]
    assert rows[-1]["acc"] >= 0.9  # the 4 training identities are memorised
    assert {"mAP", "Rank-1", "mINP"} <= set(result["last"])
    for name in ("best.pth", "last.pth", "config.yaml", "result.json"):
        assert (tmp_path / "run" / name).is_file()
    model, size = load_model(tmp_path / "run" / "last.pth")
    assert size == 32 and model(torch.zeros(2, 3, 32, 32)).shape == (2, 96)


def test_unsupervised_finetune_runs_with_pseudo_labels(tmp_path) -> None:
    root = make_veri(tmp_path / "VeRi", train_ids=4, test_ids=3, cams=2, per_cam=4)
    cfg = _tiny_config(root, tmp_path / "un", mode="unsupervised", **{"optim.epochs": 2, "unsupervised.k1": 8})
    result = run(cfg)
    rows = [json.loads(x) for x in (tmp_path / "un" / "metrics.jsonl").read_text().splitlines()]
    assert all("clusters" in r for r in rows)
    assert result["mode"] == "unsupervised"
    with pytest.raises(ValueError, match="pass --resume"):
        run(cfg)
    cfg.optim.epochs = 3
    run(cfg, resume=True)  # continues after epoch 1: one more row
    rows = [json.loads(x) for x in (tmp_path / "un" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2]


def test_report_table(tmp_path) -> None:
    from vehiclemae.benchmarks.report import collect, format_table

    for init, mode, m in [
        ("none", "supervised", 10.0),
        ("vehiclemae", "supervised", 30.0),
        ("mae", "unsupervised", 5.0),
    ]:
        d = tmp_path / f"ft-{init}-{mode}"
        d.mkdir()
        best = {"mAP": m, "Rank-1": m + 1}
        (d / "result.json").write_text(json.dumps({"dataset": "veri776", "best": best}))
    zs = {"dataset": "veri776", "results": [{"mAP": 2.0, "Rank-1": 3.0}]}
    (tmp_path / "zeroshot-mae.json").write_text(json.dumps(zs))
    text = format_table(collect(tmp_path))
    lines = text.splitlines()
    assert lines[2:4] == ["| *No fine-tuning (pre-trained encoder as is)* | | | | |", "| mae | 2.0 | 3.0 | - | - |"]
    assert lines[4] == "| *Supervised fine-tuning* | | | | |"
    assert lines[5] == "| none | 10.0 | 11.0 | - | - |" and lines[6].startswith("| vehiclemae | 30.0")
    assert "| mae | 5.0 | 6.0 | - | - |" in text


def test_eval_and_plot_commands(tmp_path, capsys) -> None:
    from vehiclemae.cli import main
    from vehiclemae.models import create_encoder, save_encoder

    enc = create_encoder("vehiclemae_vit_toy_patch8", img_size=32)
    ck = save_encoder(
        enc, tmp_path / "enc.safetensors", model_name="vehiclemae_vit_toy_patch8", img_size=32, source="mae"
    )
    vroot = make_vehicleid(tmp_path / "VehicleID_V1.0", train_ids=2, test_ids=8, per_id=3, sizes=(4, 8))
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(ck),
                "--dataset",
                "vehicleid",
                "--root",
                str(vroot),
                "--trials",
                "3",
                "--json",
                str(tmp_path / "e.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| Method | Test size | VehicleID Rank-1 | Rank-5 | mAP |" in out
    payload = json.loads((tmp_path / "e.json").read_text())
    assert [r["test_size"] for r in payload["results"]] == [4, 8]
    assert payload["results"][0]["num_trials"] == 3
    root = make_veri(tmp_path / "VeRi", train_ids=2, test_ids=4, cams=2, per_cam=2)
    for kind in ("distances", "tsne"):
        png = tmp_path / f"{kind}.png"
        assert (
            main(
                [
                    "plot",
                    kind,
                    "--checkpoint",
                    str(ck),
                    "--checkpoint",
                    str(ck),
                    "--label",
                    "a",
                    "--label",
                    "b",
                    "--dataset",
                    "veri776",
                    "--root",
                    str(root),
                    "--out",
                    str(png),
                ]
            )
            == 0
        )
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert (
        main(["eval", "--checkpoint", str(tmp_path / "missing.pth"), "--dataset", "veri776", "--root", str(root)]) == 2
    )
